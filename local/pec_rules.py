"""The PEC provider simulator's rules, without sockets: scripted outcomes, quotas, the access
point's formal checks (RFC 6109 §3.1.1) and the errore-esteso texts.

Used by `local.pec_provider`; kept pure so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

# --- scripted outcomes ------------------------------------------------------------------------

_OUTCOMES = (
    "deliver",
    "fail",
    "no-domain",
    "delay",
    "timeout",
    "virus",
    "reject",
    "mailbox-full",
    "smtp-reject",
    "drop-after-data",
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happens to a message for one recipient (see the constants below)."""

    name: str
    seconds: float = 0.0  # DELAY: how long after acceptance the busta is delivered
    virus: bool = False  # REJECT: the non-accettazione is "per virus" (RFC 6109 §3.1.3)

    def __post_init__(self) -> None:
        if self.name not in _OUTCOMES:
            raise ValueError(f"unknown outcome {self.name!r}; one of {', '.join(_OUTCOMES)}")
        if self.seconds < 0:
            raise ValueError("a delay cannot be negative")

    def __str__(self) -> str:
        return (
            f"delay({self.seconds:g}s)"
            if self.name == "delay"
            else "reject(virus)"
            if self.virus
            else self.name
        )

    @property
    def needs_recipient_provider(self) -> bool:
        """Played by the recipient's provider: only for addresses in a simulated domain."""
        return self.name in ("fail", "delay", "virus", "mailbox-full")

    @property
    def certifies(self) -> bool:
        """Makes any address a certified (PEC) recipient, even outside the simulated domains."""
        return self.name in ("no-domain", "timeout")


DELIVER = Outcome("deliver")  # busta in the INBOX, avvenuta-consegna to the sender
FAIL = Outcome("fail")  # errore-consegna no-dest (5.1.1), from the recipient's gestore
NO_DOMAIN = Outcome("no-domain")  # errore-consegna no-dominio, from the sender's gestore
TIMEOUT = Outcome("timeout")  # never delivered: preavviso at 12 h and at 24 h (5.4.1)
VIRUS = Outcome("virus")  # no busta; errore-consegna virus to the sender
REJECT = Outcome("reject")  # the whole message: non-accettazione
REJECT_VIRUS = Outcome("reject", virus=True)  # the whole message: non-accettazione per virus
MAILBOX_FULL = Outcome("mailbox-full")  # the real IMAP APPEND fails OVERQUOTA: errore-consegna 5.2.2
SMTP_REJECT = Outcome("smtp-reject")  # 550 5.1.1 at RCPT TO
DROP_AFTER_DATA = Outcome("drop-after-data")  # processed, but the connection drops before the final 250


def DELAY(seconds: float) -> Outcome:  # noqa: N802 - reads like the other outcome constants
    """Delivered `seconds` (of the network's clock) after acceptance."""
    return Outcome("delay", seconds=float(seconds))


# --- quotas -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` messages per sending account in any window of `window_seconds`
    (rolling), or in each window aligned to the epoch (`rolling=False`, e.g. per day in UTC)."""

    limit: int
    window_seconds: float
    rolling: bool = True

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_seconds <= 0:
            raise ValueError("a quota needs limit >= 1 and a positive window")

    def _window(self, when: datetime) -> int:
        return int(when.timestamp() // self.window_seconds)

    def used(self, times: Sequence[datetime], now: datetime) -> int:
        """How many of `times` count against a message sent at `now`."""
        if self.rolling:
            start = now.timestamp() - self.window_seconds
            return sum(1 for t in times if start < t.timestamp() <= now.timestamp())
        return sum(1 for t in times if self._window(t) == self._window(now) and t <= now)

    def violations(self, times: Sequence[datetime]) -> list[tuple[datetime, int]]:
        """Windows holding more than `limit` of `times`: (the window's last message, count)."""
        ordered = sorted(times)
        found: list[tuple[datetime, int]] = []
        if self.rolling:
            first = 0
            for last, t in enumerate(ordered):
                while ordered[first].timestamp() <= t.timestamp() - self.window_seconds:
                    first += 1
                if last - first + 1 > self.limit:
                    found.append((t, last - first + 1))
            return found
        counts: dict[int, list[datetime]] = {}
        for t in ordered:
            counts.setdefault(self._window(t), []).append(t)
        return [(ts[-1], len(ts)) for ts in counts.values() if len(ts) > self.limit]


QUOTA_ARUBA = Quota(250, 20 * 60)  # 250 messages per 20 minutes
QUOTA_100_AL_GIORNO = Quota(100, 24 * 3600, rolling=False)  # 100 per calendar day (UTC days)


# --- the access point's formal checks (RFC 6109 §3.1.1) ----------------------------------------

_ADDRESS = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def valid_address(address: str) -> bool:
    return bool(_ADDRESS.match(address or ""))


@dataclass(frozen=True, slots=True)
class Intestazione:
    """The header values of a submitted message the access point looks at."""

    mittenti: tuple[str, ...]  # From addresses ("" for an unreadable one)
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: str  # the Bcc field's value, "" when absent or empty
    message_id: str | None
    oggetto: str

    @classmethod
    def leggi(cls, raw: bytes) -> Intestazione:
        head = BytesHeaderParser(policy=compat32).parsebytes(raw)

        def indirizzi(name: str) -> tuple[str, ...]:
            values = [str(v) for v in head.get_all(name, [])]
            return tuple(a.strip() for _, a in getaddresses(values)) if values else ()

        bcc = " ".join(str(v) for v in head.get_all("bcc", [])).strip()
        message_id = str(head.get("message-id") or "").strip() or None
        return cls(
            mittenti=indirizzi("from"),
            to=indirizzi("to"),
            cc=indirizzi("cc"),
            bcc=bcc,
            message_id=message_id,
            oggetto=str(head.get("subject") or ""),
        )

    @property
    def destinatari(self) -> tuple[str, ...]:
        """To then Cc, each address once (the first spelling wins)."""
        seen, out = set(), []
        for a in (*self.to, *self.cc):
            if a.lower() not in seen:
                seen.add(a.lower())
                out.append(a)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Difetto:
    """Why the access point does not accept a message: the errore-esteso's code and text."""

    codice: str
    testo: str

    def errore_esteso(self, gestore_name: str) -> str:
        return f"{self.codice} - {gestore_name} - {self.testo}"


def controllo_formale(
    raw: bytes, head: Intestazione, *, mail_from: str, rcpt_tos: Sequence[str], max_bytes: int
) -> Difetto | None:
    """The first failed check of RFC 6109 §3.1.1, or None. `rcpt_tos` are every RCPT TO the
    client gave (also those refused at RCPT: the client did address them)."""
    if len(head.mittenti) != 1 or not valid_address(head.mittenti[0]):
        return Difetto("5.6.0", "campo From assente o non valido")
    if not head.to or not all(valid_address(a) for a in head.to):
        return Difetto("5.6.0", "campo To assente o non valido")
    if not all(valid_address(a) for a in head.cc):
        return Difetto("5.6.0", "campo Cc non valido")
    if head.mittenti[0].lower() != mail_from.lower():
        return Difetto(
            "5.7.1", f"il mittente {head.mittenti[0]} non corrisponde al mittente SMTP {mail_from}"
        )
    if head.bcc:
        return Difetto("5.7.0", "destinatari in copia nascosta (Bcc) non ammessi")
    rcpt = {a.lower() for a in rcpt_tos}
    intestati = {a.lower() for a in head.destinatari}
    if rcpt != intestati:
        extra = sorted(rcpt - intestati)
        missing = sorted(intestati - rcpt)
        detail = "; ".join(
            filter(
                None,
                (
                    f"non in To/Cc: {', '.join(extra)}" if extra else "",
                    f"in To/Cc ma non in RCPT TO: {', '.join(missing)}" if missing else "",
                ),
            )
        )
        return Difetto("5.7.0", f"destinatari SMTP diversi da quelli in To e Cc ({detail})")
    if len(raw) * len(rcpt) > max_bytes:
        return Difetto(
            "5.3.4",
            f"dimensione del messaggio oltre il limite consentito ({len(raw)} byte "
            f"x {len(rcpt)} destinatari > {max_bytes} byte)",
        )
    return None


# --- errore-esteso texts ------------------------------------------------------------------------


def rifiuto_simulato(virus: bool) -> Difetto:
    if virus:
        return Difetto("5.7.1", "rilevato contenuto pericoloso nel messaggio")
    return Difetto("5.7.0", "messaggio rifiutato dal gestore")


def casella_piena(gestore_name: str) -> str:
    return f"5.2.2 - {gestore_name} - casella piena"


def scadenza_24_ore(gestore_name: str) -> str:
    return f"5.4.1 - {gestore_name} - consegna non avvenuta entro 24 ore"


def errore_append(gestore_name: str, error: Exception) -> str:
    return f"4.3.0 - {gestore_name} - errore di consegna: {str(error)[:120]}"


# --- REM providers: the REM event and reason of each PEC receipt ---------------------------------
# A REM provider (ETSI EN 319 532-4, AgID REM Policy-IT) tells its users the same facts in REM
# form; this is the translation the simulator uses (PEC_FORMAT.md §10, read the other way).


@dataclass(frozen=True, slots=True)
class EventoRem:
    """A REM receipt's event and reason (last segments of their ETSI URIs)."""

    event: str
    reason: str


def evento_rem(
    tipo: str, *, errore: str = "nessuno", errore_esteso: str | None = None, virus: bool = False
) -> EventoRem | None:
    """The REM receipt a REM provider sends instead of the PEC receipt `tipo` (its X-Ricevuta
    value), or None when REM has none (the 12-hour preavviso: REM only reports the final
    outcome after 24 hours, S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP)."""
    esteso = errore_esteso or ""
    if tipo == "accettazione":
        return EventoRem("SubmissionAcceptance", "MessageAccepted")
    if tipo == "non-accettazione":
        if virus or errore == "virus":
            return EventoRem("SubmissionRejection", "MalwareFound")
        if esteso.startswith("5.3.4"):  # size over the provider's limit
            return EventoRem("SubmissionRejection", "S_ERDS_PolicyViolation")
        return EventoRem("SubmissionRejection", "InvalidMessageFormat")
    if tipo == "presa-in-carico":
        return RELAY_ACCEPTANCE
    if tipo == "avvenuta-consegna":
        return EventoRem("ContentConsignment", "MessageConsignedToRecipient")
    if tipo == "rilevazione-virus":
        return RELAY_REJECTION_MALWARE
    if tipo == "errore-consegna":
        if virus or errore == "virus":
            return EventoRem("RelayFailure", "R_ERDS_MessageRejectedForMalware")
        if errore == "no-dest":
            return EventoRem("RelayFailure", "MessageNotAcceptedForUnregisteredRecipient")
        if errore == "no-dominio":
            return EventoRem("RelayFailure", "R_ERDS_NotIdentified")
        if esteso.startswith("5.2.2"):
            return EventoRem("ContentConsignmentFailure", "MessageNotConsignedForQuota")
        if esteso.startswith("5.4.1"):
            return EventoRem("ContentConsignmentFailure", "S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP")
        return EventoRem("ContentConsignmentFailure", "MessageNotConsignedForMalfunction")
    if tipo == "preavviso-errore-consegna":  # the 24-hour one is final (5.4.1), the 12-hour one not
        if esteso.startswith("5.4.1"):
            return EventoRem("ContentConsignmentFailure", "S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP")
        return None
    raise ValueError(f"no REM counterpart for {tipo!r}")


RELAY_TO_NON_ERDS = EventoRem("RelayToNonERDS", "MessageRelayedToNonERDS")
RELAY_ACCEPTANCE = EventoRem("RelayAcceptance", "S_ERDS_MessageSuccessfullyRelayed")
RELAY_REJECTION_MALWARE = EventoRem("RelayRejection", "R_ERDS_MessageRejectedForMalware")
