"""The PEC provider simulator: simulated gestori over real protocols, as RFC 6109 and
docs/pec-format.md describe them.

    with PecNetwork(dovecot, clock=VirtualClock(...)) as network:
        aruba = network.add_provider(Gestore("Aruba PEC S.p.A.", "pec.aruba.test"), quota=QUOTA_ARUBA)
        alice = aruba.add_mailbox("alice@pec.aruba.test")
        network.script("bob@pec.aruba.test", DELAY(3600))
        # smtplib.SMTP_SSL(aruba.host, aruba.port, context=aruba.ssl_context()) ... login, sendmail
        network.wait_idle()          # receipts and buste are in the IMAP mailboxes now

Each provider has an SMTP submission server over implicit TLS (its access point: AUTH against
its own accounts, the formal checks of RFC 6109 §3.1.1, quota); the network has one plain-SMTP
MX where ordinary mail for a PEC mailbox arrives and becomes a busta di anomalia. Everything
the providers produce is signed by the network's CA and delivered by IMAP APPEND into Dovecot,
on worker threads (never on aiosmtpd's event loop), one FIFO lane per mailbox so UIDs follow
the order of events. Timestamps and delays follow the injected clock.

A provider added with `rem=True` is a REM provider (ETSI EN 319 532-4, AgID REM Policy-IT): its
users get REM receipts (SubmissionAcceptance, ContentConsignment, failures with their ETSI
reasons; RelayToNonERDS for ordinary addresses) instead of PEC ones, its mailboxes get REM
dispatches instead of buste (ReceivedFromNonERDS instead of the busta di anomalia), and it
exchanges messages with PEC providers (mixed flows, see `_Invio`).

Decisions where the RFC is silent are marked "decision:" below; the module's tests show
every outcome end to end.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from imapclient.exceptions import IMAPClientError

from local.imap import Account, Dovecot, free_port
from local.pec_queue import MailboxLanes, Schedule
from local.pec_rules import (
    DELAY,
    DELIVER,
    DROP_AFTER_DATA,
    FAIL,
    MAILBOX_FULL,
    NO_DOMAIN,
    QUOTA_100_AL_GIORNO,
    QUOTA_ARUBA,
    REJECT,
    REJECT_VIRUS,
    RELAY_ACCEPTANCE,
    RELAY_REJECTION_MALWARE,
    RELAY_TO_NON_ERDS,
    SMTP_REJECT,
    TIMEOUT,
    VIRUS,
    EventoRem,
    Intestazione,
    Outcome,
    Quota,
    casella_piena,
    controllo_formale,
    errore_append,
    evento_rem,
    rifiuto_simulato,
    scadenza_24_ore,
)
from local.pecbuild.builder import (
    Autorita,
    Destinatario,
    Firma,
    Gestore,
    busta_anomalia,
    busta_trasporto,
    nuovo_identificativo,
    ora_italiana,
    ricevuta,
)
from local.pecbuild.rem_builder import EVENTS as REM_EVENTS
from local.pecbuild.rem_builder import RECEIPT_KINDS as REM_RECEIPT_KINDS
from local.pecbuild.rem_builder import rem_dispatch, rem_identifier, rem_receipt
from pecflow.pec import kinds

__all__ = [
    "DELAY",
    "DELIVER",
    "DROP_AFTER_DATA",
    "FAIL",
    "MAILBOX_FULL",
    "NO_DOMAIN",
    "QUOTA_100_AL_GIORNO",
    "QUOTA_ARUBA",
    "REJECT",
    "REJECT_VIRUS",
    "SMTP_REJECT",
    "TIMEOUT",
    "VIRUS",
    "Account",
    "Delivery",
    "Outcome",
    "PecNetwork",
    "ProviderNotice",
    "Quota",
    "RecipientRecord",
    "Refusal",
    "SimulatedProvider",
    "Submission",
    "default_clock",
]

PREAVVISO_DOPO = timedelta(hours=12)  # RFC 6109 §3.1.6: first notice without delivery
SCADENZA_DOPO = timedelta(hours=24)  # the final one; the provider stops tracking the message
MOTIVO_ANOMALIA = "Il messaggio non proviene da un gestore di posta certificata."
_CASELLA_PIENA_QUOTA = "1K"  # MAILBOX_FULL: the Dovecot quota set around that APPEND


def _drop_login_data_warning(record: logging.LogRecord) -> bool:
    """aiosmtpd warns that Session.login_data is deprecated each time it sets it itself during
    AUTH: noise from inside the library, once per login."""
    return "Session.login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_drop_login_data_warning)


# --- the clock (integration point with local/clock.py) -----------------------------------------


class Clock(Protocol):
    """Anything with `now()`: epoch seconds (local.clock's clocks) or an aware datetime."""

    def now(self) -> float | datetime: ...


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def default_clock() -> Clock:
    """The local stack's clock hook (`local.clock`: whatever clock the event runner installed),
    or the system clock when that module is absent."""
    try:
        from local import clock as local_clock
    except ImportError:
        return _SystemClock()
    return local_clock  # the module: its now() reads the installed clock


def _utc(value: float | datetime) -> datetime:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError("the clock must give aware datetimes")
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)


# --- the record of truth ------------------------------------------------------------------------


@dataclass(slots=True)
class RecipientRecord:
    """One recipient of a submission and what became of it."""

    address: str
    tipo: str  # certificato | esterno (daticert destinatari tipo)
    outcome: Outcome  # as scripted (DELIVER when not)
    gestore: str | None  # the recipient's provider (gestore name), None outside the network
    result: str | None = None  # kind of the last receipt the sender got about it; "smtp-rejected"
    errore_esteso: str | None = None
    delivered_uid: int | None = None  # UID of the busta in the recipient's INBOX


@dataclass(slots=True)
class Submission:
    """One message that reached DATA at an access point."""

    time: datetime  # clock time of acceptance, Italian legal time
    provider: str  # the access point's gestore domain
    account: str  # the authenticated account (= MAIL FROM)
    mail_from: str
    rcpt_tos: tuple[str, ...]  # every RCPT TO the client gave, refused ones included
    message_id: str | None  # the client's Message-ID
    identificativo: str  # the PEC id assigned (also for a non-accettazione)
    size: int
    receipt: str  # accettazione | non-accettazione
    errore_esteso: str | None  # why it was not accepted
    recipients: list[RecipientRecord]
    dropped: bool = False  # DROP_AFTER_DATA: the client never saw the final 250

    def recipient(self, address: str) -> RecipientRecord:
        return next(r for r in self.recipients if r.address.lower() == address.lower())


@dataclass(frozen=True, slots=True)
class Delivery:
    """One IMAP APPEND (also the failed ones: `error` set, `uid` None)."""

    time: datetime
    mailbox: str
    kind: str  # posta-certificata, anomalia, accettazione, ...
    size: int
    uid: int | None
    identificativo: str | None = None
    ref_message_id: str | None = None
    consegna: str | None = None  # the recipient a per-recipient receipt is about
    error: str | None = None
    rem_event: str | None = None  # REM messages: the REM-EventIdentifier's last segment


@dataclass(frozen=True, slots=True)
class Refusal:
    """An SMTP-level refusal (4xx/5xx) at an access point or at the MX."""

    time: datetime
    server: str  # gestore domain, or "mx"
    account: str | None
    address: str | None
    reply: str


@dataclass(frozen=True, slots=True)
class ProviderNotice:
    """A message between providers (rilevazione-virus), not delivered to any user mailbox."""

    time: datetime
    kind: str
    sender: str  # emitting gestore domain
    recipient: str  # the gestore domain it goes to
    identificativo: str
    consegna: str | None
    raw: bytes = field(repr=False)


@dataclass(slots=True)
class _Script:
    outcome: Outcome
    remaining: int | None  # None: for every message


@dataclass(slots=True)
class _Transazione:
    """What the access point learns during one SMTP transaction (kept on the envelope)."""

    account: str
    provider_outcome: Outcome | None = None
    tentati: list[str] = field(default_factory=list)  # every RCPT TO
    esiti: dict[str, Outcome] = field(default_factory=dict)  # accepted RCPT TO -> outcome
    rifiutati: list[str] = field(default_factory=list)  # refused at RCPT TO


def _transazione(envelope: Any) -> _Transazione | None:
    return getattr(envelope, "pec", None)


# --- providers ------------------------------------------------------------------------------------


class SimulatedProvider:
    """One gestore: its domains, accounts (Dovecot users), quota and access point (SMTPS)."""

    def __init__(
        self,
        network: PecNetwork,
        gestore: Gestore,
        domains: tuple[str, ...],
        quota: Quota | None,
        max_message_bytes: int,
        rem: bool = False,
    ):
        self.network = network
        self.gestore = gestore
        self.rem = rem  # a REM provider: REM receipts and dispatches instead of PEC ones
        self.domains = tuple(d.lower() for d in domains)
        self.quota = quota
        self.max_message_bytes = max_message_bytes
        self.firma = Firma.per(gestore, network.autorita)
        self.accounts: dict[str, Account] = {}
        self.host = "127.0.0.1"
        self.port = 0
        self._quote: dict[str, str | None] = {}  # mailbox -> its own Dovecot quota
        self._next: deque[Outcome] = deque()  # script_next
        self.data_replies: deque[str] = deque()  # the next DATA commands answered with these refusals
        self._sent: dict[str, list[datetime]] = {}  # account -> submission times (UTC), for the quota
        self._controller: Controller | None = None

    def __repr__(self) -> str:
        kind = "REM" if self.rem else "PEC"
        return f"SimulatedProvider({kind} {self.gestore.name!r}, {self.domains}, port={self.port})"

    # -- mailboxes
    def add_mailbox(self, address: str, password: str | None = None, quota: str | None = None) -> Account:
        """A PEC mailbox: the Dovecot user and this provider's SMTP account (same password)."""
        address = address.lower()
        if address.rpartition("@")[2] not in self.domains:
            raise ValueError(f"{address} is not in {self.gestore.name}'s domains {self.domains}")
        account = self.network.dovecot.add_user(address, password, quota=quota)
        self.accounts[address] = account
        self._quote[address] = quota
        return account

    def fresh_mailbox(self, prefix: str = "utente", **kw: Any) -> Account:
        return self.add_mailbox(f"{prefix}-{secrets.token_hex(3)}@{self.domains[0]}", **kw)

    def has_mailbox(self, address: str) -> bool:
        return address.lower() in self.accounts

    @contextmanager
    def _casella_piena(self, address: str) -> Iterator[None]:
        """The mailbox's real Dovecot quota made tiny for one APPEND (its lane runs nothing else)."""
        account = self.accounts[address]
        self.network.dovecot.add_user(address, account.password, quota=_CASELLA_PIENA_QUOTA, keep_mail=True)
        try:
            yield
        finally:
            self.network.dovecot.add_user(
                address, account.password, quota=self._quote[address], keep_mail=True
            )

    # -- scripting
    def script_next(self, n: int, outcome: Outcome) -> None:
        """The next `n` transactions at this access point get `outcome` for every recipient
        without an address script (taken at MAIL FROM)."""
        with self.network._lock:
            self._next.extend([outcome] * n)

    def _take_next(self) -> Outcome | None:
        with self.network._lock:
            return self._next.popleft() if self._next else None

    # -- records
    @property
    def submissions(self) -> list[Submission]:
        return [s for s in self.network.submissions if s.provider == self.gestore.domain]

    def sent_times(self, account: str) -> list[datetime]:
        """Clock times of the messages `account` submitted here (what the quota counts)."""
        with self.network._lock:
            return list(self._sent.get(account.lower(), ()))

    # -- the access point server
    def ssl_context(self):
        """A client context trusting the local CA (the same one as the IMAP server)."""
        return self.network.dovecot.ssl_context()

    def _start(self) -> None:
        dovecot = self.network.dovecot
        cert = dovecot.ca.issue(f"smtp-{self.domains[0]}-{secrets.token_hex(3)}")
        self.port = free_port()
        handler = _PuntoDiAccesso(self)
        self._controller = Controller(
            handler,
            hostname=self.host,
            port=self.port,
            ssl_context=cert.server_context(),
            server_hostname=f"smtp.{self.domains[0]}",
            authenticator=handler.authenticate,
            # implicit TLS: the channel is already encrypted, so AUTH is offered at once; the
            # access point itself answers 530 to MAIL FROM before AUTH (see handle_MAIL)
            auth_require_tls=False,
            data_size_limit=self.max_message_bytes,
            ready_timeout=10,
        )
        self._controller.start()

    def _stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


class _PuntoDiAccesso:
    """aiosmtpd handler of one provider's access point. Hooks only decide and enqueue: the
    IMAP work runs on the network's worker threads."""

    def __init__(self, provider: SimulatedProvider):
        self.provider = provider
        self.network = provider.network

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace").lower()
        account = self.provider.accounts.get(login)
        ok = account is not None and hmac.compare_digest(account.password.encode(), auth_data.password)
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    def _refuse(self, account: str | None, address: str | None, reply: str) -> str:
        self.network._record_refusal(self.provider.gestore.domain, account, address, reply)
        return reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        account = session.auth_data if session.authenticated else None
        if account is None:
            return self._refuse(None, address, "530 5.7.0 Authentication required")
        # decision: a MAIL FROM other than the authenticated account is an SMTP refusal, like
        # real providers' submission servers (the formal checks then compare From with MAIL FROM)
        if address.lower() != account:
            return self._refuse(
                account,
                address,
                f"553 5.7.1 <{address}>: mittente non corrispondente all'utente autenticato {account}",
            )
        if self.network._over_quota(self.provider, account):
            return self._refuse(account, address, _quota_reply(self.provider.quota))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.pec = _Transazione(account, self.provider._take_next())
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        tx = _transazione(envelope)
        if tx is None:
            return "503 5.5.1 Error: need MAIL command"
        outcome = self.network._resolve(address, tx.provider_outcome)
        tx.tentati.append(address)
        if outcome.name == SMTP_REJECT.name:
            tx.rifiutati.append(address)
            return self._refuse(tx.account, address, f"550 5.1.1 <{address}>: destinatario rifiutato")
        tx.esiti[address.lower()] = outcome
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        tx = _transazione(envelope)
        if self.provider.data_replies:  # refused at DATA (e.g. 554): nothing was submitted
            return self._refuse(tx.account if tx else None, None, self.provider.data_replies.popleft())
        raw = envelope.original_content or b""
        submission = self.network._submit(self.provider, tx, envelope.mail_from, raw)
        if isinstance(submission, str):  # refused (quota reached meanwhile)
            return submission
        if submission.dropped:
            # processed and queued, but the client never gets the final reply
            server.transport.abort()
            await asyncio.sleep(5)  # connection_lost cancels this coroutine almost at once
        return f"250 2.0.0 Ok: queued as {submission.identificativo}"


def _quota_reply(quota: Quota | None) -> str:
    window = f"{quota.window_seconds:g} s" if quota else "?"
    return (
        f"451 4.7.1 Limite di invio raggiunto ({quota.limit if quota else '?'} messaggi in {window}): "
        "riprovare più tardi"
    )


class _IngressoOrdinario:
    """The network's MX: ordinary mail for a PEC mailbox, delivered in a busta di anomalia."""

    def __init__(self, network: PecNetwork):
        self.network = network

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        provider = self.network.provider_for(address)
        if provider is None:
            return self._refuse(address, f"550 5.7.1 <{address}>: relay non consentito")
        if not provider.has_mailbox(address):
            return self._refuse(address, f"550 5.1.1 <{address}>: casella inesistente")
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    def _refuse(self, address: str, reply: str) -> str:
        self.network._record_refusal("mx", None, address, reply)
        return reply

    async def handle_DATA(self, server, session, envelope):
        self.network._arrive(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content or b"",
            session.host_name or "unknown",
            session.peer,
        )
        return "250 2.0.0 Ok"


# --- one accepted (or refused) message and the work it causes --------------------------------------


class _Invio:
    """A submission being processed: builds its receipts and busta, delivers them, and records.

    Mixed flows (decision: AgID's REM rules have REM providers interoperate with PEC during the
    transition; each user sees the form of their own provider): the sender gets receipts in its
    provider's form (a REM provider translates what a PEC provider reports, and signs it), and
    each recipient's mailbox gets the form of the recipient's provider (a REM dispatch at a REM
    provider, a busta di trasporto at a PEC one), built by the sender's provider when both
    speak the same form, else by the recipient's provider acting as the gateway.
    """

    def __init__(
        self,
        network: PecNetwork,
        provider: SimulatedProvider,
        submission: Submission,
        raw: bytes,
        destinatari: tuple[Destinatario, ...],
    ):
        self.network = network
        self.provider = provider
        self.submission = submission
        self.raw = raw
        self.destinatari = destinatari
        self._buste: dict[bool, bytes] = {}  # REM form? -> the envelope, built once
        self._busta_lock = threading.Lock()

    @property
    def mittente(self) -> str:
        return self.submission.account

    def busta(self, destinazione: SimulatedProvider | None = None) -> bytes:
        """What the recipients at `destinazione` get (its Date: the acceptance): the busta di
        trasporto, or the REM dispatch at a REM provider; each form built once."""
        rem = destinazione.rem if destinazione is not None else self.provider.rem
        emittente = self.provider if destinazione is None or rem == self.provider.rem else destinazione
        with self._busta_lock:
            if rem not in self._buste:
                if rem:
                    self._buste[rem] = rem_dispatch(
                        self.raw,
                        gestore=emittente.gestore,
                        message_id=self.submission.identificativo,
                        data=self.submission.time,
                        recipients=[d.address for d in self.destinatari],
                        firma=emittente.firma,
                    )
                else:
                    self._buste[rem] = busta_trasporto(
                        self.raw,
                        gestore=emittente.gestore,
                        identificativo=self.submission.identificativo,
                        data=self.submission.time,
                        destinatari=self.destinatari,
                        firma=emittente.firma,
                    )
            return self._buste[rem]

    def ricevuta_rem(
        self,
        evento: EventoRem,
        when: datetime,
        gestore: SimulatedProvider,
        rec: RecipientRecord | None,
        originale: bytes | None = None,
    ) -> bytes:
        """The REM receipt of `evento`: issued by `gestore` when it is a REM provider and the
        event is its to report, else by the sender's provider (translating)."""
        issuer = gestore if gestore.rem and REM_EVENTS[evento.event].by_recipient_provider else self.provider
        return rem_receipt(
            evento.event,
            originale or self.raw,
            gestore=issuer.gestore,
            message_id=self.submission.identificativo,
            data=ora_italiana(when),
            recipients=[d.address for d in self.destinatari],
            recipient=rec.address if rec is not None else None,
            reason=evento.reason,
            firma=issuer.firma,
        )

    def notifica(
        self,
        tipo: str,
        when: datetime,
        gestore: SimulatedProvider,
        rec: RecipientRecord | None = None,
        *,
        originale: bytes | None = None,
        destinatari: tuple[Destinatario, ...] | None = None,
        evento: EventoRem | None = None,
        **extra: Any,
    ) -> None:
        """A receipt or notice from `gestore` into the sender's mailbox; at a REM provider its
        REM form (`evento`, default: the REM counterpart of `tipo`), none when REM has none."""
        if self.provider.rem:
            evento = evento or evento_rem(
                tipo,
                errore=extra.get("errore", "nessuno"),
                errore_esteso=extra.get("errore_esteso"),
                virus=extra.get("virus", False),
            )
            if evento is None:
                return
            raw = self.ricevuta_rem(evento, when, gestore, rec, originale)
            kind = REM_RECEIPT_KINDS[evento.event]  # what pecflow will classify it as
            self.network._append(self.mittente, raw, kind, when, self.submission, rec, evento.event)
            if rec is not None:
                with self.network._lock:
                    rec.result = kind
                    rec.errore_esteso = extra.get("errore_esteso")
            return
        raw = ricevuta(
            tipo,
            originale or self.raw,
            gestore=gestore.gestore,
            identificativo=self.submission.identificativo,
            data=ora_italiana(when),
            destinatari=destinatari or self.destinatari,
            consegna=rec.address if rec else None,
            firma=gestore.firma,
            **extra,
        )
        self.network._append(self.mittente, raw, tipo, when, self.submission, rec)
        if rec is not None:
            with self.network._lock:
                rec.result = tipo
                rec.errore_esteso = extra.get("errore_esteso")

    def consegna(self, rec: RecipientRecord, when: datetime) -> None:
        """The recipient's provider delivers the busta (on the recipient's lane), then tells the sender."""
        network, destinazione = self.network, self.network.provider_for(rec.address)
        if destinazione is None or not destinazione.has_mailbox(rec.address):
            return self.errore_no_dest(rec, when)
        box = rec.address.lower()
        busta = self.busta(destinazione)
        evento = "SubmissionAcceptance" if destinazione.rem else None  # the dispatch's event
        if destinazione.rem and self.provider.rem and destinazione is not self.provider:
            # between REM providers the recipient's one reports RelayAcceptance to the sender's
            self.network._record_notice(
                ProviderNotice(
                    ora_italiana(when),
                    kinds.PRESA_IN_CARICO,
                    destinazione.gestore.domain,
                    self.provider.gestore.domain,
                    self.submission.identificativo,
                    rec.address,
                    self.ricevuta_rem(RELAY_ACCEPTANCE, when, destinazione, rec),
                )
            )
        try:
            if rec.outcome.name == MAILBOX_FULL.name:
                with destinazione._casella_piena(box):
                    uid = network._append(
                        box, busta, kinds.POSTA_CERTIFICATA, when, self.submission, rec, evento
                    )
            else:
                uid = network._append(box, busta, kinds.POSTA_CERTIFICATA, when, self.submission, rec, evento)
        except IMAPClientError as error:
            # decision: a full mailbox (or any failed APPEND) is an errore-consegna "altro" from the
            # recipient's provider; the RFC does not cover mailbox-full
            esteso = (
                casella_piena(destinazione.gestore.name)
                if "OVERQUOTA" in str(error).upper()
                else errore_append(destinazione.gestore.name, error)
            )
            network._lanes.submit(
                self.mittente,
                lambda: self.notifica(
                    kinds.ERRORE_CONSEGNA, when, destinazione, rec, errore="altro", errore_esteso=esteso
                ),
            )
            return
        with network._lock:
            rec.delivered_uid = uid
        network._lanes.submit(
            self.mittente, lambda: self.notifica(kinds.AVVENUTA_CONSEGNA, when, destinazione, rec)
        )

    def errore_no_dest(self, rec: RecipientRecord, when: datetime) -> None:
        destinazione = self.network.provider_for(rec.address) or self.provider
        self.network._lanes.submit(
            self.mittente,
            lambda: self.notifica(kinds.ERRORE_CONSEGNA, when, destinazione, rec, errore="no-dest"),
        )

    def virus(self, rec: RecipientRecord, when: datetime) -> None:
        """The recipient's provider finds a virus: rilevazione-virus to the sender's provider
        (RFC 6109 §3.2.3), which tells its user with an errore-consegna per virus (§3.2.4)."""
        destinazione = self.network.provider_for(rec.address) or self.provider
        notice = (
            self.ricevuta_rem(RELAY_REJECTION_MALWARE, when, destinazione, rec)
            if destinazione.rem
            else self._rilevazione_virus(destinazione, rec, when)
        )
        self.network._record_notice(
            ProviderNotice(
                ora_italiana(when),
                kinds.RILEVAZIONE_VIRUS,
                destinazione.gestore.domain,
                self.provider.gestore.domain,
                self.submission.identificativo,
                rec.address,
                notice,
            )
        )
        self.notifica(kinds.ERRORE_CONSEGNA, when, self.provider, rec, virus=True)

    def _rilevazione_virus(
        self, destinazione: SimulatedProvider, rec: RecipientRecord, when: datetime
    ) -> bytes:
        return ricevuta(
            kinds.RILEVAZIONE_VIRUS,
            self.raw,
            gestore=destinazione.gestore,
            identificativo=self.submission.identificativo,
            data=ora_italiana(when),
            destinatari=self.destinatari,
            consegna=rec.address,
            firma=destinazione.firma,
        )


# --- the network ------------------------------------------------------------------------------------


class PecNetwork:
    """Simulated PEC providers sharing one signing CA, a router by domain, one MX, one clock."""

    def __init__(
        self,
        dovecot: Dovecot,
        *,
        clock: Clock | None = None,
        autorita: Autorita | None = None,
        workers: int = 4,
    ):
        self.dovecot = dovecot
        self.clock: Clock = clock if clock is not None else default_clock()
        self.autorita = autorita or Autorita.nuova("pecflow CA dei gestori simulati")
        self.providers: list[SimulatedProvider] = []
        self.submissions: list[Submission] = []
        self.deliveries: list[Delivery] = []
        self.refusals: list[Refusal] = []
        self.provider_notices: list[ProviderNotice] = []
        self.errors: list[BaseException] = []  # simulator bugs, raised by wait_idle
        self.mx_host = "127.0.0.1"
        self.mx_port = 0
        self._by_domain: dict[str, SimulatedProvider] = {}
        self._scripts: dict[str, _Script] = {}
        self._lock = threading.RLock()
        self._release_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._workers = workers
        self._lanes: MailboxLanes | None = None
        self._schedule = Schedule()
        self._ticker: threading.Thread | None = None
        self._ticking = threading.Event()
        self._mx: Controller | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="pecflow-pec-"))
        self.ca_file = self._dir / "gestori-ca.pem"  # for `openssl smime -verify -CAfile`
        self.ca_file.write_bytes(self.autorita.cert_pem)

    # -- lifecycle
    @property
    def running(self) -> bool:
        return self._lanes is not None

    def start(self) -> PecNetwork:
        if self.running:
            return self
        if self.dovecot.ca is None or not self.dovecot.running:
            raise RuntimeError("start Dovecot before the PEC network")
        self._lanes = MailboxLanes(self._workers, self._report_error, name="pec-consegna")
        self._lanes.start()
        self._ticking.clear()
        self._ticker = threading.Thread(target=self._tick, name="pec-orologio", daemon=True)
        self._ticker.start()
        self.mx_port = free_port()
        self._mx = Controller(
            _IngressoOrdinario(self),
            hostname=self.mx_host,
            port=self.mx_port,
            server_hostname="mx.pecflow.test",
            ready_timeout=10,
        )
        self._mx.start()
        for provider in self.providers:
            provider._start()
        return self

    def stop(self) -> None:
        """Servers first (no new work), then the workers (queued work is dropped) and the clock."""
        for provider in self.providers:
            provider._stop()
        mx, self._mx = self._mx, None
        if mx is not None:
            mx.stop()
        self._ticking.set()
        if self._ticker is not None:
            self._ticker.join(10)
            self._ticker = None
        lanes, self._lanes = self._lanes, None
        if lanes is not None:
            lanes.stop()
        self._schedule.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PecNetwork:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- providers and routing
    def add_provider(
        self,
        gestore: Gestore,
        *,
        domains: tuple[str, ...] | None = None,
        quota: Quota | None = None,
        max_message_bytes: int = 30 * 1024 * 1024,
        rem: bool = False,
    ) -> SimulatedProvider:
        """A provider serving `domains` (default: the gestore's); `rem=True` makes it a REM provider."""
        domains = tuple(d.lower() for d in (domains or (gestore.domain,)))
        with self._lock:
            taken = [d for d in domains if d in self._by_domain]
            if taken:
                raise ValueError(f"domains already served by another provider: {taken}")
            provider = SimulatedProvider(self, gestore, domains, quota, max_message_bytes, rem)
            self.providers.append(provider)
            for d in domains:
                self._by_domain[d] = provider
        if self.running:
            provider._start()
        return provider

    def provider_for(self, address: str) -> SimulatedProvider | None:
        """The provider whose domain `address` is in."""
        return self._by_domain.get(address.rpartition("@")[2].lower())

    # -- scripting
    def script(self, address: str, outcome: Outcome, *, times: int | None = None) -> None:
        """What happens to messages for `address` (all of them, or the next `times` ones)."""
        if outcome.needs_recipient_provider and self.provider_for(address) is None:
            raise ValueError(
                f"{outcome} is played by the recipient's provider: {address} is in no simulated domain"
            )
        with self._lock:
            if outcome == DELIVER and times is None:
                self._scripts.pop(address.lower(), None)
            else:
                self._scripts[address.lower()] = _Script(outcome, times)

    def _resolve(self, address: str, provider_outcome: Outcome | None) -> Outcome:
        """The outcome for one recipient, consumed when it is named at RCPT TO."""
        with self._lock:
            script = self._scripts.get(address.lower())
            if script is not None:
                if script.remaining is not None:
                    script.remaining -= 1
                    if script.remaining <= 0:
                        del self._scripts[address.lower()]
                return script.outcome
        if provider_outcome is not None and not (
            provider_outcome.needs_recipient_provider and self.provider_for(address) is None
        ):
            return provider_outcome
        return DELIVER

    def _tipo(self, address: str, outcome: Outcome) -> str:
        return "certificato" if self.provider_for(address) is not None or outcome.certifies else "esterno"

    # -- time and the schedule
    def now(self) -> datetime:
        """The network's clock, UTC."""
        return _utc(self.clock.now())

    def pending(self) -> list[datetime]:
        """When scheduled work (DELAY deliveries, 12 h / 24 h notices) falls due."""
        return self._schedule.pending()

    def _tick(self) -> None:
        while not self._ticking.wait(0.02):
            self._release_due()

    def _release_due(self) -> int:
        with self._release_lock:
            if self._lanes is None:
                return 0
            due = self._schedule.due(self.now())
            for lane, task in due:
                self._lanes.submit(lane, task)
            return len(due)

    def _later(self, when: datetime, lane: str, task: Callable[[], None]) -> None:
        self._schedule.add(when, lane, task)

    def run_due(self, timeout: float = 30.0) -> None:
        """Process what the clock says is due, now (not at the next tick), and wait for it."""
        self._release_due()
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is in progress and nothing is due (future work may stay scheduled).
        Raises TimeoutError, or the first error a worker met."""
        deadline = time.monotonic() + timeout
        while True:
            with self._release_lock:
                lanes = self._lanes
                idle = lanes is None or (lanes.in_flight == 0 and not self._schedule.has_due(self.now()))
            if idle:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"PEC network still busy after {timeout}s "
                    f"({lanes.in_flight if lanes else 0} tasks in flight)"
                )
            # work fallen due goes to the lanes now, rather than at the ticker's next tick (the
            # loop would spin until then: the lanes may be idle)
            self._release_due()
            if lanes is not None:
                lanes.wait_idle(min(deadline, time.monotonic() + 0.05))
        with self._lock:
            errors, self.errors = self.errors, []
        if errors:
            raise RuntimeError(f"{len(errors)} simulator task(s) failed") from errors[0]

    def _report_error(self, error: BaseException) -> None:
        with self._lock:
            self.errors.append(error)

    # -- records
    def _record_refusal(self, server: str, account: str | None, address: str | None, reply: str) -> None:
        with self._lock:
            self.refusals.append(Refusal(ora_italiana(self.now()), server, account, address, reply))

    def _record_notice(self, notice: ProviderNotice) -> None:
        with self._lock:
            self.provider_notices.append(notice)

    def _append(
        self,
        mailbox: str,
        raw: bytes,
        kind: str,
        when: datetime,
        submission: Submission | None,
        rec: RecipientRecord | None,
        rem_event: str | None = None,
    ) -> int | None:
        """IMAP APPEND into `mailbox`'s INBOX (INTERNALDATE from the clock), recorded either way."""
        record = dict(
            time=ora_italiana(when),
            mailbox=mailbox,
            kind=kind,
            size=len(raw),
            identificativo=submission.identificativo if submission else None,
            ref_message_id=submission.message_id if submission else None,
            consegna=rec.address if rec is not None else None,
            rem_event=rem_event,
        )
        try:
            uid = self.dovecot.append(mailbox, raw, when=ora_italiana(when))
        except IMAPClientError as error:
            with self._lock:
                self.deliveries.append(Delivery(uid=None, error=str(error), **record))
            raise
        with self._lock:
            self.deliveries.append(Delivery(uid=uid, **record))
        return uid

    # -- the access point (called on aiosmtpd's loop: decide, record, enqueue; no IMAP here)
    def _over_quota(self, provider: SimulatedProvider, account: str) -> bool:
        if provider.quota is None:
            return False
        with self._lock:
            return provider.quota.used(provider._sent.get(account, ()), self.now()) >= provider.quota.limit

    def _submit(
        self, provider: SimulatedProvider, tx: _Transazione, mail_from: str, raw: bytes
    ) -> Submission | str:
        head = Intestazione.leggi(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        with self._lock:
            # checked again here: parallel connections may all have passed MAIL FROM
            if self._over_quota(provider, tx.account):
                return self._refuse_data(provider, tx, _quota_reply(provider.quota))
            now = self.now()
            when = ora_italiana(now)
            seq = next(self._seq)
            identificativo = (
                rem_identifier(provider.gestore, when, f"dispatch|{seq}")
                if provider.rem
                else nuovo_identificativo(provider.gestore, when, seq)
            )
            difetto = controllo_formale(
                raw, head, mail_from=mail_from, rcpt_tos=tx.tentati, max_bytes=provider.max_message_bytes
            )
            rifiuto = next((o for o in tx.esiti.values() if o.name == REJECT.name), None)
            per_virus = False
            if difetto is None and rifiuto is not None:
                difetto, per_virus = rifiuto_simulato(rifiuto.virus), rifiuto.virus
            # recipients in header order (To, then Cc), then any RCPT TO not in the header
            ordered = [a for a in head.destinatari if a.lower() in tx.esiti]
            ordered += [a for a in tx.esiti if a not in {o.lower() for o in ordered}]
            records = []
            for address in ordered:
                outcome = tx.esiti[address.lower()]
                destinazione = self.provider_for(address)
                records.append(
                    RecipientRecord(
                        address,
                        self._tipo(address, outcome),
                        outcome,
                        destinazione.gestore.name if destinazione else None,
                    )
                )
            for address in tx.rifiutati:
                destinazione = self.provider_for(address)
                records.append(
                    RecipientRecord(
                        address,
                        self._tipo(address, SMTP_REJECT),
                        SMTP_REJECT,
                        destinazione.gestore.name if destinazione else None,
                        result="smtp-rejected",
                    )
                )
            submission = Submission(
                time=when,
                provider=provider.gestore.domain,
                account=tx.account,
                mail_from=mail_from,
                rcpt_tos=tuple(tx.tentati),
                message_id=head.message_id,
                identificativo=identificativo,
                size=len(raw),
                receipt=kinds.NON_ACCETTAZIONE if difetto else kinds.ACCETTAZIONE,
                errore_esteso=difetto.errore_esteso(provider.gestore.name) if difetto else None,
                recipients=records,
                dropped=any(o.name == DROP_AFTER_DATA.name for o in tx.esiti.values()),
            )
            self.submissions.append(submission)
            provider._sent.setdefault(tx.account, []).append(now)
        destinatari = tuple(Destinatario(r.address, r.tipo) for r in records if r.result != "smtp-rejected")
        invio = _Invio(self, provider, submission, raw, destinatari)
        if difetto is not None:
            self._plan_non_accettazione(invio, head, mail_from, per_virus, now)
        else:
            self._plan_accettazione(invio, now)
        return submission

    def _refuse_data(self, provider: SimulatedProvider, tx: _Transazione, reply: str) -> str:
        self._record_refusal(provider.gestore.domain, tx.account, None, reply)
        return reply

    def _plan_non_accettazione(
        self, invio: _Invio, head: Intestazione, mail_from: str, virus: bool, now: datetime
    ) -> None:
        # decision: the notice goes to the reverse-path (RFC 6109 §2.1) and certifies the envelope
        # sender, so a missing or forged From is replaced by MAIL FROM in what the receipt reads
        originale = invio.raw if head.mittenti == (mail_from,) else _con_mittente(invio.raw, mail_from)
        assert self._lanes is not None
        self._lanes.submit(
            invio.mittente,
            lambda: invio.notifica(
                kinds.NON_ACCETTAZIONE,
                now,
                invio.provider,
                originale=originale,
                virus=virus,
                errore="virus" if virus else "altro",
                errore_esteso=invio.submission.errore_esteso,
            ),
        )

    def _plan_accettazione(self, invio: _Invio, now: datetime) -> None:
        lanes = self._lanes
        assert lanes is not None
        lanes.submit(invio.mittente, lambda: invio.notifica(kinds.ACCETTAZIONE, now, invio.provider))
        for rec in invio.submission.recipients:
            if rec.result == "smtp-rejected":
                continue
            if rec.tipo != "certificato":
                # external recipients: ordinary mail (not simulated further); no receipt ever from
                # PEC, RelayToNonERDS from a REM provider (the job ends as an external recipient's)
                if invio.provider.rem:
                    lanes.submit(
                        invio.mittente,
                        lambda rec=rec: invio.notifica(
                            kinds.ACCETTAZIONE, now, invio.provider, rec, evento=RELAY_TO_NON_ERDS
                        ),
                    )
                continue
            name = rec.outcome.name
            if name in (DELIVER.name, DROP_AFTER_DATA.name, MAILBOX_FULL.name):
                lanes.submit(rec.address.lower(), lambda rec=rec: invio.consegna(rec, now))
            elif name == FAIL.name:
                invio.errore_no_dest(rec, now)
            elif name == NO_DOMAIN.name:
                # decision: an unknown domain is found by the sender's provider (directory lookup)
                lanes.submit(
                    invio.mittente,
                    lambda rec=rec: invio.notifica(
                        kinds.ERRORE_CONSEGNA, now, invio.provider, rec, errore="no-dominio"
                    ),
                )
            elif name == VIRUS.name:
                lanes.submit(invio.mittente, lambda rec=rec: invio.virus(rec, now))
            elif name in ("delay", TIMEOUT.name):
                consegna = now + timedelta(seconds=rec.outcome.seconds) if name == "delay" else None
                if consegna is not None:
                    self._later(
                        consegna, rec.address.lower(), lambda rec=rec, at=consegna: invio.consegna(rec, at)
                    )
                # the timers run on their own: a delivery after 12 h still had its 12 h notice
                for dopo, esteso in (
                    (PREAVVISO_DOPO, None),
                    (SCADENZA_DOPO, scadenza_24_ore(invio.provider.gestore.name)),
                ):
                    at = now + dopo
                    if consegna is None or consegna > at:
                        self._later(
                            at,
                            invio.mittente,
                            lambda rec=rec, at=at, esteso=esteso: invio.notifica(
                                kinds.PREAVVISO_ERRORE_CONSEGNA, at, invio.provider, rec, errore_esteso=esteso
                            ),
                        )

    # -- the MX: ordinary mail into PEC mailboxes
    def _arrive(self, mail_from: str, rcpt_tos: list[str], raw: bytes, helo: str, peer: Any) -> None:
        now = self.now()
        when = ora_italiana(now)
        host = peer[0] if isinstance(peer, tuple) else str(peer)
        # what arrived, as the Incoming Point received it (the anomaly inherits these fields)
        ricevuto = (
            f"Return-Path: <{mail_from}>\r\nReceived: from {helo} ([{host}])\r\n"
            f"\tby mx.pecflow.test with SMTP; {format_datetime(when)}\r\n"
        ).encode() + raw
        lanes = self._lanes
        assert lanes is not None
        for address in rcpt_tos:
            provider = self.provider_for(address)
            if provider is None:
                continue
            seq = next(self._seq)

            def deliver(
                address: str = address, provider: SimulatedProvider = provider, seq: int = seq
            ) -> None:
                if provider.rem:
                    evento: str | None = "ReceivedFromNonERDS"
                    busta = rem_dispatch(
                        ricevuto,
                        gestore=provider.gestore,
                        message_id=rem_identifier(provider.gestore, when, f"inflow|{address}|{seq}"),
                        data=when,
                        recipients=[address],
                        event="ReceivedFromNonERDS",
                        firma=provider.firma,
                    )
                else:
                    evento = None
                    busta = busta_anomalia(
                        ricevuto,
                        gestore=provider.gestore,
                        data=when,
                        motivo=MOTIVO_ANOMALIA,
                        firma=provider.firma,
                    )
                try:
                    self._append(address.lower(), busta, kinds.ANOMALIA, now, None, None, evento)
                except IMAPClientError:
                    pass  # RFC 6109 §3.3.2: no notice for ordinary mail that cannot be delivered; recorded

            lanes.submit(address.lower(), deliver)


def _con_mittente(raw: bytes, mail_from: str) -> bytes:
    """`raw` with its From field(s) replaced by `mail_from`."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines, skipping = [], False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"from:")
        if not skipping:
            lines.append(line)
    return f"From: {mail_from}".encode() + b"\r\n" + b"\r\n".join(lines) + (sep or b"\r\n\r\n") + body
