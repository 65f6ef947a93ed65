"""The local IMAP server: real Dovecot over TLS, read by third-party clients."""

from __future__ import annotations

import imaplib
import os
import ssl

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from local.imap import Dovecot

MESSAGE = b"From: mittente@pec.test\r\nTo: x@pec.test\r\nSubject: prova\r\nMessage-ID: <m1@pec.test>\r\n\r\nciao\r\n"


def test_delivery_then_imapclient_and_imaplib_read_it(dovecot):
    account = dovecot.fresh_user()
    uid = dovecot.append(account.address, MESSAGE)
    with dovecot.connect(account.address) as client:
        info = client.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == 1 and uid == 1
        fetched = client.fetch([uid], ["BODY.PEEK[]", "RFC822.SIZE"])[uid]
        assert fetched[b"BODY[]"] == MESSAGE and fetched[b"RFC822.SIZE"] == len(MESSAGE)
    stdlib = imaplib.IMAP4_SSL(dovecot.host, dovecot.port, ssl_context=dovecot.ssl_context())
    try:
        stdlib.login(account.address, account.password)
        stdlib.select("INBOX", readonly=True)
        typ, data = stdlib.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == MESSAGE
    finally:
        stdlib.logout()


def test_tls_only_with_our_certificate(dovecot):
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(
            dovecot.host, port=dovecot.port, ssl=True, ssl_context=ssl.create_default_context(), timeout=5
        )
    # plaintext: Dovecot refuses the login (an IMAP error) or drops the connection (OSError)
    with pytest.raises((OSError, imaplib.IMAP4.error)):
        IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=1).login("a", "b")


def test_bad_password_is_refused(dovecot):
    account = dovecot.fresh_user()
    with pytest.raises(LoginError):
        dovecot.connect(account.address, "wrong")


def test_users_are_isolated(dovecot):
    one, two = dovecot.fresh_user(), dovecot.fresh_user()
    dovecot.append(one.address, MESSAGE)
    with dovecot.connect(two.address) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    with pytest.raises(LoginError):
        dovecot.connect(two.address, one.password)


def test_an_address_used_again_starts_empty_unless_its_mail_is_kept(dovecot):
    """Tests on one worker reuse addresses (ufficio@...): a new mailbox never sees an old one's mail."""
    address = f"riusata-{os.getpid()}@pec.test"
    dovecot.add_user(address)
    dovecot.append(address, MESSAGE)
    account = dovecot.add_user(address, "altra-password", keep_mail=True)  # a password change
    with dovecot.connect(address, account.password) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
    dovecot.add_user(address)  # a new user of the address
    with dovecot.connect(address) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_capabilities_the_poller_relies_on(dovecot):
    account = dovecot.fresh_user()
    with dovecot.connect(account.address) as client:
        caps = set(client.capabilities())
        assert {b"CONDSTORE", b"QRESYNC", b"UIDPLUS", b"MOVE", b"QUOTA", b"IDLE"} <= caps
        client.enable("CONDSTORE")
        assert b"HIGHESTMODSEQ" in client.select_folder("INBOX")


def test_quota_is_reported_and_enforced(dovecot):
    account = dovecot.fresh_user(quota="20K")
    dovecot.append(account.address, MESSAGE)
    with dovecot.connect(account.address) as client:
        quota = client.get_quota_root("INBOX")[1][0]
        assert quota.resource == "STORAGE" and quota.limit == 20 and quota.usage >= 0
    with pytest.raises(IMAPClientError, match="OVERQUOTA"):
        dovecot.append(account.address, MESSAGE + b"x" * 40_000)


def test_folder_recreated_gets_a_new_uidvalidity(dovecot):
    account = dovecot.fresh_user()
    dovecot.append(account.address, MESSAGE, folder="Archivio")
    with dovecot.connect(account.address) as client:
        first = client.select_folder("Archivio")[b"UIDVALIDITY"]
        client.close_folder()
        client.delete_folder("Archivio")
        client.create_folder("Archivio")
        assert client.select_folder("Archivio")[b"UIDVALIDITY"] != first


def test_start_and_stop_by_pid_leave_nothing_behind():
    server = Dovecot().start()
    pid, base = server.pid, server.base
    account = server.fresh_user()
    server.append(account.address, MESSAGE)
    server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not base.exists()
