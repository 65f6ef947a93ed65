"""A real IMAP server for the local stack: Dovecot, started and stopped by us, no systemd.

Private configuration in a temporary folder, IMAP over implicit TLS only (a certificate
from a CA made at start), users from a passwd file (re-read by Dovecot whenever it
changes, so users can be added while it runs), one Maildir per simulated PEC address,
IMAP QUOTA per user, and a master user through which the PEC simulator delivers
(IMAP APPEND) into any mailbox. Stopped by its PID.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from local.certs import LocalCA

INSTALL_HINT = (
    "Dovecot is not installed: `apt-get install -y dovecot-imapd` (make test and make demo do it for you)"
)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None
    )


@dataclass(frozen=True)
class Account:
    address: str
    password: str


_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = pecflow-{tag}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
auth_master_user_separator = *
mail_location = maildir:~/Maildir
# a throwaway server: no fsync after each message (a crash loses nothing anyone keeps)
mail_fsync = never
mail_max_userip_connections = 500
first_valid_uid = 1
first_valid_gid = 1
mail_plugins = quota
{nonroot}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
  process_min_avail = 1
{login_chroot}
}}
service anvil {{
{anvil_chroot}
  # no per-IP penalty after failed logins: every simulated client is 127.0.0.1
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_rule = *:storage={default_quota}
}}
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN username_format=%u {base}/masters
  pass = yes
}}
passdb {{
  driver = dict
  args = {base}/users.conf
}}
userdb {{
  driver = dict
  args = {base}/users.conf
}}
"""
# users are files read at every lookup (a passwd-file is re-read at most once a second,
# so a user added just before logging in would be unknown)
_USERS_DICT = """uri = fs:posix:prefix={base}/users/
password_key = passdb/%u
user_key = userdb/%u
iterate_disable = yes
default_pass_scheme = PLAIN
"""


class Dovecot:
    """One private Dovecot instance. `with Dovecot() as imap: ...` starts and stops it."""

    def __init__(self, workdir: Path | None = None, *, default_quota: str = "1G"):
        self._own_dir = workdir is None
        # as root, the mail processes run as 'dovecot' and must traverse this folder (0755)
        self.base = Path(workdir or tempfile.mkdtemp(prefix="pecflow-dovecot-"))
        self.base.chmod(0o755)
        self.host = "127.0.0.1"
        self.port = 0
        self.default_quota = default_quota
        self.ca: LocalCA | None = None
        self.master = Account("pecflow-deliver", secrets.token_hex(16))
        self._process: subprocess.Popen | None = None
        self._users: dict[str, tuple[str, str | None, Path]] = {}
        self._homes = 0
        self._lock = threading.Lock()
        # delivery sessions kept open between appends, per address, oldest first (see append)
        self._idle: dict[str, list] = {}
        self._generation: dict[str, int] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> Dovecot:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        for sub in ("run", "state", "mail"):
            (self.base / sub).mkdir(exist_ok=True)
        self.ca = LocalCA(self.base / "tls")
        server = self.ca.issue("imap")
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("dovecot")
            uid, gid = mail_user.pw_uid, mail_user.pw_gid
            os.chown(self.base / "mail", uid, gid)
            os.chown(server.key_path, 0, gid)
            nonroot = login_chroot = anvil_chroot = ""
        else:
            uid, gid = os.getuid(), os.getgid()
            me = pwd.getpwuid(uid).pw_name
            nonroot = (
                f"default_internal_user = {me}\ndefault_internal_group = {me}\ndefault_login_user = {me}"
            )
            login_chroot = anvil_chroot = "  chroot ="
        self._uid, self._gid = uid, gid
        (self.base / "masters").write_text(f"{self.master.address}:{{PLAIN}}{self.master.password}\n")
        for kind in ("passdb", "userdb"):
            (self.base / "users" / kind).mkdir(parents=True, exist_ok=True)
        (self.base / "users.conf").write_text(_USERS_DICT.format(base=self.base))
        self.port = free_port()
        config = self.base / "dovecot.conf"
        config.write_text(
            _CONFIG.format(
                base=self.base,
                tag=self.base.name,
                cert=server.cert_path,
                key=server.key_path,
                port=self.port,
                uid=uid,
                gid=gid,
                nonroot=nonroot,
                login_chroot=login_chroot,
                anvil_chroot=anvil_chroot,
                default_quota=self.default_quota,
            )
        )
        check = subprocess.run([binary, "-c", str(config), "-n"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"dovecot rejected its configuration: {check.stderr.strip()}")
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for address in self._users:
            self._write_user(address)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(
                    f"dovecot exited at start ({self._process.returncode}): {err.strip()}\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"dovecot did not listen on {self.host}:{self.port} within {timeout}s\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        self._close_idle()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if process is not None and process.stderr:
            process.stderr.close()
        if self._own_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        log = self.base / "dovecot.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    # -- users --------------------------------------------------------------------------------
    def add_user(
        self, address: str, password: str | None = None, *, quota: str | None = None, keep_mail: bool = False
    ) -> Account:
        """Create a mailbox, empty even if the address was used before on this server (tests
        share one server and reuse addresses). `keep_mail` changes only the password and
        quota of an existing one. `quota` like "10M" overrides the default storage quota."""
        if ":" in address or "\n" in address or "*" in address:
            raise ValueError(f"not a usable mailbox address: {address!r}")
        address = address.lower()
        password = password or secrets.token_urlsafe(12)
        with self._lock:
            previous = self._users.get(address)
            if keep_mail and previous is not None:
                home = previous[2]
            else:  # a new home directory: nothing left by an earlier user of the address
                self._homes += 1
                home = self.base / "mail" / address / str(self._homes)
            self._users[address] = (password, quota, home)
            # open delivery sessions still see the old home, password and quota
            self._generation[address] = self._generation.get(address, 0) + 1
            stale = self._idle.pop(address, [])
            if self.running:
                self._write_user(address)
        for client in stale:
            _close_quietly(client)
        return Account(address, password)

    def fresh_user(self, prefix: str = "user", domain: str = "pec.test", **kw) -> Account:
        """A new mailbox with a unique address: per-test isolation on a shared server."""
        return self.add_user(f"{prefix}-{secrets.token_hex(4)}@{domain}", **kw)

    def password(self, address: str) -> str:
        return self._users[address.lower()][0]

    def _write_user(self, address: str) -> None:
        password, quota, home = self._users[address]
        userdb = {"uid": self._uid, "gid": self._gid, "home": str(home)}
        if quota:
            userdb["quota_rule"] = f"*:storage={quota}"
        for kind, record in (("userdb", userdb), ("passdb", {"password": f"{{PLAIN}}{password}"})):
            folder = self.base / "users" / kind
            tmp = folder / f".{address}.tmp"
            tmp.write_text(json.dumps(record))
            tmp.chmod(0o644)
            os.replace(tmp, folder / address)  # atomic: a lookup never sees half a record

    # -- clients --------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        if self.ca is None:
            raise RuntimeError("dovecot is not started")
        return self.ca.client_context()

    def connect(self, address: str, password: str | None = None):
        """An imapclient connection logged in as `address` (over TLS, certificate checked)."""
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=True, ssl_context=self.ssl_context(), timeout=30)
        client.login(address, password if password is not None else self.password(address))
        return client

    def connect_as_master(self, address: str):
        """A connection to `address`'s mailbox through the master user (for delivery)."""
        return self.connect(f"{address.lower()}*{self.master.address}", self.master.password)

    def append(
        self, address: str, raw: bytes, *, folder: str = "INBOX", flags: tuple = (), when=None
    ) -> int | None:
        """Deliver `raw` into a mailbox (IMAP APPEND); returns the new UID (UIDPLUS).

        Raises imapclient's IMAPClientError on failure, e.g. "[OVERQUOTA]" when the box is full.
        """
        address = address.lower()
        client, generation = self._delivery_session(address)
        try:
            if folder != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=flags, msg_time=when)
        except BaseException:
            _close_quietly(client)
            raise
        self._keep_idle(address, client, generation)
        # b'[APPENDUID <uidvalidity> <uid>] Append completed.'
        text = response.decode() if isinstance(response, bytes) else str(response)
        if "APPENDUID" in text:
            return int(text.split("APPENDUID", 1)[1].split("]")[0].split()[1])
        return None

    # A delivery session (TLS, master login, an imap process in Dovecot) costs ~50 ms; an APPEND
    # on an open one ~10 ms. Sessions are kept open per address, a few in all, and dropped when
    # the user is added again (a new home, password or quota) or fails a NOOP.
    _IDLE_MAX = 16

    def _delivery_session(self, address: str):
        with self._lock:
            generation = self._generation.get(address, 0)
            idle = self._idle.get(address)
            client = idle.pop() if idle else None
            if idle == []:
                del self._idle[address]
        if client is not None:
            try:
                client.noop()
                return client, generation
            except Exception:  # noqa: BLE001 - closed by the server: open another
                _close_quietly(client)
        return self.connect_as_master(address), generation

    def _keep_idle(self, address: str, client, generation: int) -> None:
        evicted = []
        with self._lock:
            if self._process is None or self._generation.get(address, 0) != generation:
                evicted.append(client)
            else:
                # most recently used last: dicts keep insertion order
                self._idle[address] = [*self._idle.pop(address, []), client]
                while sum(map(len, self._idle.values())) > self._IDLE_MAX:
                    oldest = next(iter(self._idle))
                    evicted.append(self._idle[oldest].pop(0))
                    if not self._idle[oldest]:
                        del self._idle[oldest]
        for stale in evicted:
            _close_quietly(stale)

    def _close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for clients in idle.values():
            for client in clients:
                _close_quietly(client)


def _close_quietly(client) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - already closed, or the server is gone
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001
            pass
