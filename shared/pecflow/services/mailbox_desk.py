"""Mailboxes as administrators see them in the console: the mailboxes they administer, adding one
(its IMAP and SMTP logins tried before anything is saved), and its health (last poll, last error,
the sending quota used in the current window, the messages waiting to be handled).

Who may do what: adding a mailbox needs admin on at least one mailbox (as adding a person does,
pecflow.domain.access.may_change_person); whoever adds it becomes its admin. A mailbox that already
exists is never changed here: an admin of one mailbox cannot reach another's settings (the CLI's
`pecflow mailbox add`, with the stack's credentials, updates one). Health needs admin on the mailbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pecflow.domain import clock
from pecflow.domain.access import Action, Person, Role, may_change_person
from pecflow.domain.audit import AuditAction
from pecflow.domain.mailbox import ConfigError, MailboxConfig, secret_name
from pecflow.domain.ports import MailboxStore, MailboxUnavailable, MailOpener, SecretStore, Submitter
from pecflow.domain.quota import QuotaPolicy, sending_policy
from pecflow.domain.records import MessageRecord
from pecflow.services.audit import AuditLog
from pecflow.services.people import PeopleAdmin

SmtpOpener = Callable[[MailboxConfig, str], Submitter]
# (mailbox, its sending policy, now) -> sends counted in the window that holds now
SendsInWindow = Callable[[str, QuotaPolicy, float], int]
ToHandle = Callable[[str], int]  # mailbox -> messages "da gestire"
# (mailbox, at most) -> the records held in quarantine, newest first (the store's Quarantined index)
Quarantined = Callable[[str, int], list[MessageRecord]]

# what failed, in the office's words: (step, kind) -> sentence; {host}, {port}, {login} filled in
_WHAT_FAILED = {
    "auth": "{server} ha rifiutato l'accesso di {login}: controlla nome utente e password.",
    "unreachable": "{server} ({host}:{port}) non risponde: controlla l'indirizzo e la porta.",
    "tls": "La connessione sicura (TLS) con {server} ({host}:{port}) non è riuscita: il certificato del "
    "server non è valido o la porta non usa TLS.",
    "protocol": "{server} ({host}:{port}) ha risposto in modo inatteso.",
}
_SERVER = {"imap": "il server di ricezione (IMAP)", "smtp": "il server di invio (SMTP)"}


class MailboxRefused(ValueError):
    """A mailbox that cannot be added as asked (a clear sentence for the person)."""


class MailboxForbidden(MailboxRefused):
    """Adding mailboxes needs admin on at least one mailbox."""


class MailboxExists(MailboxRefused):
    """The address is already a mailbox of this installation."""


class MailboxLoginFailed(MailboxRefused):
    """The login check failed: nothing was saved. `step` imap | smtp; `kind` as MailboxUnavailable's."""

    def __init__(self, step: str, kind: str, config: MailboxConfig, detail: str):
        host, port = (
            (config.imap_host, config.imap_port)
            if step == "imap"
            else (config.smtp_host or config.imap_host, config.smtp_port)
        )
        sentence = _WHAT_FAILED.get(kind, _WHAT_FAILED["protocol"]).format(
            server=_SERVER[step], host=host, port=port, login=config.login
        )
        super().__init__(f"Casella non aggiunta: {sentence[0].upper()}{sentence[1:]} Nulla è stato salvato.")
        self.step, self.kind, self.detail = step, kind, detail


@dataclass(slots=True)
class MailboxDesk:
    mailboxes: MailboxStore
    secrets: SecretStore
    open_imap: MailOpener
    open_smtp: SmtpOpener
    people: PeopleAdmin  # the adder becomes the new mailbox's admin
    audit: AuditLog
    sends_in_window: SendsInWindow
    to_handle: ToHandle
    stack_name: str
    now: Callable[[], float] = clock.timestamp
    quarantined: Quarantined | None = None

    def administered(self, person: Person) -> list[tuple[MailboxConfig, dict[str, Any]]]:
        """The mailboxes the person administers, each with its poll status."""
        out = []
        for address in person.mailboxes():
            if person.role_on(address) is Role.ADMIN:
                config, status = self.mailboxes.get_with_status(address)
                if config is not None:
                    out.append((config, status))
        return out

    def check_login(self, config: MailboxConfig, password: str) -> dict[str, Any]:
        """Log in over IMAP (select the first folder, read its quota), then over SMTP; raises
        MailboxLoginFailed at the first that fails."""
        try:
            session = self.open_imap(config, password)
            try:
                status = session.select(config.folders[0])
                usage = session.usage(config.folders[0])
            finally:
                session.close()
        except MailboxUnavailable as exc:
            raise MailboxLoginFailed("imap", exc.kind, config, str(exc)) from None
        try:
            self.open_smtp(config, password).close()
        except MailboxUnavailable as exc:
            raise MailboxLoginFailed("smtp", exc.kind, config, str(exc)) from None
        return {
            "messages": status.exists,
            "folder": config.folders[0],
            "usage_percent": usage.percent if usage is not None else None,
        }

    def add(self, person: Person, config: MailboxConfig, password: str) -> dict[str, Any]:
        if not may_change_person(person, None):
            raise MailboxForbidden("Solo chi amministra una casella può aggiungere caselle.")
        if not password:
            raise MailboxRefused("Casella non aggiunta: manca la password della casella.")
        try:
            config = replace(config, address=config.address.strip().lower()).validate()
        except ConfigError as exc:
            raise MailboxRefused(f"Casella non aggiunta: {exc}") from None
        if self.mailboxes.get(config.address) is not None:
            raise MailboxExists(f"La casella {config.address} è già configurata.")
        checked = self.check_login(config, password)
        name = secret_name(self.stack_name, config.address)
        self.secrets.put(name, password, f"pecflow: password of the PEC mailbox {config.address}")
        self.mailboxes.put(replace(config, secret_id=name))
        self.audit.record(
            config.address, actor=person.username, action=AuditAction.RULES_CHANGE, message=config.address,
            details={"change": "mailbox-added", "imap": f"{config.imap_host}:{config.imap_port}",
                     "quota_preset": config.quota_preset, "saturation": str(config.saturation.mode)},
        )  # fmt: skip
        # the adder administers it (as the installation's operator would grant it: nobody is admin yet)
        self.people.set_role(person.username, person.username, config.address, Role.ADMIN)
        return checked

    def health(self, person: Person, mailbox: str) -> tuple[MailboxConfig, dict[str, Any]]:
        person.require(mailbox, Action.MANAGE_MAILBOX)
        config, status = self.mailboxes.get_with_status(mailbox)
        if config is None:
            raise MailboxRefused(f"La casella {mailbox} non è configurata: aggiungila prima.")
        policy = sending_policy(config.quota_preset)
        used = self.sends_in_window(config.address, policy, self.now())
        return config, {
            **status,
            "quota": {
                "used": used,
                "limit": policy.limit,
                "window": policy.describe(),
                "window_seconds": policy.window_seconds,
                "rolling": policy.rolling,
                "timezone": policy.timezone,
            },
            "to_handle": self.to_handle(config.address),
        }

    def quarantine(self, person: Person, mailbox: str, limit: int = 100) -> list[dict[str, Any]]:
        """The mailbox's messages held in quarantine (kept and recorded, never dropped), newest
        first, each with why: its processing failed, or a rule (accepted formats) held it."""
        person.require(mailbox, Action.MANAGE_MAILBOX)
        if self.mailboxes.get(mailbox) is None:
            raise MailboxRefused(f"La casella {mailbox} non è configurata: aggiungila prima.")
        if self.quarantined is None:
            raise MailboxRefused("Questa installazione non elenca i messaggi in quarantena.")
        out = []
        for record in self.quarantined(mailbox.lower(), limit):
            held = dict(record.quarantined or {})
            out.append(
                {
                    "sha256": record.sha256,
                    "received_at": record.received_at,
                    "kind": record.kind,
                    "sender": record.sender or record.from_address,
                    "subject": record.original_subject or record.subject,
                    "stage": held.get("stage"),
                    "reason": held.get("reason") or "",
                    "at": held.get("at"),
                    "uid": record.uid,
                }
            )
        return out
