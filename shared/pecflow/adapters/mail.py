"""Mail protocol adapters: an IMAP session over TLS (imapclient) shaped for the poller.

Every IMAP command the session sends is counted (`commands`), so tests and benchmarks can
show that a poll with nothing new costs the same whatever the mailbox holds. Messages are
fetched whole with BODY.PEEK[]: the legal original, and \\Seen stays as the users left it.
"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

from pecflow.domain.mailbox import FolderStatus, MailboxConfig, Usage
from pecflow.domain.ports import Fetched, MailboxUnavailable, Submission

__all__ = [
    "CONNECTION_ERRORS",
    "Fetched",
    "ImapSession",
    "MailboxUnavailable",
    "SmtpSubmitter",
    "Submission",
]


def _connection_errors() -> tuple[type[BaseException], ...]:
    from imapclient.exceptions import IMAPClientAbortError

    return (OSError, ssl.SSLError, IMAPClientAbortError)


CONNECTION_ERRORS = _connection_errors()  # a connection that broke while in use


def _tls_context(config: MailboxConfig) -> ssl.SSLContext:
    context = (
        ssl.create_default_context(cadata=config.ca_bundle)
        if config.ca_bundle
        else ssl.create_default_context()
    )
    if not config.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ImapSession:
    """One logged-in IMAP connection to a mailbox."""

    connection_errors = CONNECTION_ERRORS

    def __init__(self, client):
        self.client = client
        self.commands = 0
        self._condstore = False
        imap = client._imap
        new_tag = imap._new_tag

        def counting_new_tag():  # every tagged command takes a new tag: count them there
            self.commands += 1
            return new_tag()

        imap._new_tag = counting_new_tag

    @classmethod
    def open(cls, config: MailboxConfig, password: str, *, timeout: float = 30.0) -> ImapSession:
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError, LoginError

        try:
            client = IMAPClient(
                config.imap_host,
                port=config.imap_port,
                ssl=True,
                ssl_context=_tls_context(config),
                timeout=timeout,
            )
        except ssl.SSLError as exc:  # includes certificate verification failures
            raise MailboxUnavailable(
                "tls", f"TLS with {config.imap_host}:{config.imap_port} failed: {exc}"
            ) from None
        except (socket.gaierror, ConnectionError, TimeoutError, OSError) as exc:
            raise MailboxUnavailable(
                "unreachable", f"cannot reach {config.imap_host}:{config.imap_port}: {exc}"
            ) from None
        session = cls(client)
        try:
            client.login(config.login, password)
        except LoginError as exc:
            session.close()
            raise MailboxUnavailable("auth", f"login refused for {config.login}: {_text(exc)}") from None
        except (IMAPClientError, OSError) as exc:
            session.close()
            raise MailboxUnavailable(
                "protocol", f"login to {config.imap_host} failed: {_text(exc)}"
            ) from None
        return session

    def status(self, folder: str) -> FolderStatus:
        """STATUS of a folder: constant cost whatever it holds (SELECT grows with the folder)."""
        items = ["UIDNEXT", "UIDVALIDITY", "MESSAGES"]
        if b"CONDSTORE" in self.client.capabilities():
            items.append("HIGHESTMODSEQ")
        info = self.client.folder_status(folder, items)
        modseq = info.get(b"HIGHESTMODSEQ")
        return FolderStatus(
            int(info[b"UIDVALIDITY"]),
            int(info.get(b"UIDNEXT", 0)),
            int(info.get(b"MESSAGES", 0)),
            int(modseq) if modseq is not None else None,
        )

    def select(self, folder: str) -> FolderStatus:
        """Open a folder read-only for fetching (EXAMINE: \\Seen flags stay as they are)."""
        info = self.client.select_folder(folder, readonly=True)
        modseq = info.get(b"HIGHESTMODSEQ")
        return FolderStatus(
            int(info[b"UIDVALIDITY"]),
            int(info.get(b"UIDNEXT", 0)),
            int(info.get(b"EXISTS", 0)),
            int(modseq) if modseq is not None else None,
        )

    def uids_from(self, first_uid: int) -> list[int]:
        # "n:*" always matches the last message even when its UID is below n: filter
        return sorted(uid for uid in self.client.search(["UID", f"{first_uid}:*"]) if uid >= first_uid)

    def uids_before(self, when: datetime) -> list[int]:
        """UIDs of messages whose internal date is before `when`'s day (IMAP SEARCH BEFORE)."""
        return sorted(self.client.search(["BEFORE", when.date()]))

    def sizes(self, uids: list[int]) -> list[tuple[int, int]]:
        if not uids:
            return []
        data = self.client.fetch(uids, ["RFC822.SIZE"])
        return [(uid, int(data[uid][b"RFC822.SIZE"])) for uid in uids if uid in data]

    def fetch(self, uids: list[int]) -> list[Fetched]:
        if not uids:
            return []
        data = self.client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE", "FLAGS"])
        out = []
        for uid in uids:
            item = data.get(uid)
            if item is None:  # expunged meanwhile: it will simply not be recorded
                continue
            when = item.get(b"INTERNALDATE")
            if when is not None and when.tzinfo is None:
                when = when.astimezone()
            out.append(
                Fetched(
                    uid,
                    bytes(item[b"BODY[]"]),
                    when.astimezone(UTC) if when else None,
                    tuple(f.decode() if isinstance(f, bytes) else str(f) for f in item.get(b"FLAGS", ())),
                )
            )
        return out

    def internaldates(self, uids: list[int]) -> dict[int, tuple[datetime | None, int]]:
        if not uids:
            return {}
        data = self.client.fetch(uids, ["INTERNALDATE", "RFC822.SIZE"])
        return {uid: (v.get(b"INTERNALDATE"), int(v.get(b"RFC822.SIZE", 0))) for uid, v in data.items()}

    def usage(self, folder: str = "INBOX") -> Usage | None:
        if b"QUOTA" not in self.client.capabilities():
            return None
        _, quotas = self.client.get_quota_root(folder)
        storage = next((q for q in quotas if q.resource.upper() == "STORAGE"), None)
        return Usage(int(storage.usage), int(storage.limit)) if storage else None

    def move(self, folder: str, uids: list[int], target: str) -> None:
        """Move UIDs of `folder` to `target` (created when missing)."""
        if not uids:
            return
        if not self.client.folder_exists(target):
            self.client.create_folder(target)
        self.client.select_folder(folder)
        if b"MOVE" in self.client.capabilities():
            self.client.move(uids, target)
        else:
            self.client.copy(uids, target)
            self._expunge(uids)

    def expunge(self, folder: str, uids: list[int]) -> None:
        if not uids:
            return
        self.client.select_folder(folder)
        self._expunge(uids)

    def _expunge(self, uids: list[int]) -> None:
        self.client.delete_messages(uids)
        if b"UIDPLUS" in self.client.capabilities():
            self.client.uid_expunge(uids)  # only these UIDs, never someone else's \\Deleted
        else:
            self.client.expunge()

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            try:
                self.client.shutdown()
            except Exception:  # noqa: BLE001
                pass


def _text(exc: Exception) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith(("b'", 'b"')) else text


# --- SMTP submission --------------------------------------------------------------------------------
class SmtpSubmitter:
    """One authenticated SMTP connection over implicit TLS to a provider's access point.
    MAIL, RCPT and DATA are sent step by step so that a failure is known to be before DATA
    (nothing sent) or during/after it (perhaps sent: never resend blindly)."""

    def __init__(self, smtp):
        self.smtp = smtp

    @classmethod
    def open(cls, config: MailboxConfig, password: str, *, timeout: float = 60.0) -> SmtpSubmitter:
        import smtplib

        host = config.smtp_host or config.imap_host
        try:
            smtp = smtplib.SMTP_SSL(host, config.smtp_port, context=_tls_context(config), timeout=timeout)
        except ssl.SSLError as exc:
            raise MailboxUnavailable("tls", f"TLS with {host}:{config.smtp_port} failed: {exc}") from None
        except OSError as exc:
            raise MailboxUnavailable(
                "unreachable", f"cannot reach {host}:{config.smtp_port}: {exc}"
            ) from None
        try:
            smtp.login(config.login, password)
        except smtplib.SMTPAuthenticationError as exc:
            _quit(smtp)
            raise MailboxUnavailable(
                "auth", f"SMTP login refused for {config.login}: {exc.smtp_code} {_smtp_text(exc.smtp_error)}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            _quit(smtp)
            raise MailboxUnavailable("protocol", f"SMTP login to {host} failed: {exc}") from None
        return cls(smtp)

    def submit(self, raw: bytes, mail_from: str, recipients: list[str]) -> Submission:
        import smtplib

        smtp = self.smtp
        try:
            code, text = smtp.mail(mail_from, [f"SIZE={len(raw)}"] if smtp.has_extn("size") else [])
            if code != 250:
                return _refusal(code, text, before_data=True)
            for rcpt in recipients:
                code, text = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    smtp.rset()
                    return _refusal(code, text, before_data=True)
        except (smtplib.SMTPException, OSError) as exc:  # before DATA: nothing went out
            return Submission("temporary", None, f"connection failed before DATA: {exc}", before_data=True)
        try:
            code, text = smtp.data(raw)
        except smtplib.SMTPDataError as exc:
            return _refusal(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:  # during or after DATA: perhaps sent
            return Submission("lost", None, f"no answer after DATA: {type(exc).__name__}: {exc}")
        if code == 250:
            return Submission("accepted", code, _smtp_text(text))
        return _refusal(code, text)

    def close(self) -> None:
        _quit(self.smtp)


def _refusal(code: int, text, *, before_data: bool = False) -> Submission:
    return Submission("permanent" if code >= 500 else "temporary", code, _smtp_text(text), before_data)


def _smtp_text(text) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _quit(smtp) -> None:
    try:
        smtp.quit()
    except Exception:  # noqa: BLE001 - already gone
        try:
            smtp.close()
        except Exception:  # noqa: BLE001
            pass
