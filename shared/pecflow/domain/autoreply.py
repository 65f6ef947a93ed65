"""Automatic replies that cannot loop (the rules' `reply` action), PEC and REM alike.

An auto-reply answers only a certified message a person wrote: never a receipt or any other kind
than posta-certificata, never an anomaly or a mailer daemon, never a message that says it is
automatic (Auto-Submitted other than "no", Precedence bulk/junk/list/auto_reply,
X-Auto-Response-Suppress, List-Id), never a PEC/REM provider's address or our own mailbox, and
the same sender at most once per period per rule (the period is claimed in DynamoDB by the
service, so two pollers cannot both reply). Our replies say they are automatic (AUTOMATIC_HEADERS),
so a correspondent's auto-responder does not answer them either: the loop stops on both sides.

Templates are Jinja2 in the campaigns' sandbox (pecflow.domain.campaign.rendering: bounded in time
and size, StrictUndefined), with the variables of VARIABLES only. Pure domain code: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jinja2 import TemplateSyntaxError, meta

from pecflow.domain.campaign.issues import CampaignError
from pecflow.domain.campaign.rendering import RENDER_SECONDS, Templates, environment, one_line
from pecflow.domain.mailbox import is_address
from pecflow.pec import kinds, mime

DEFAULT_PERIOD = "7d"
MAX_TEMPLATE_CHARS = 20_000
MAX_TEXT_CHARS = 100_000  # as a person's reply (pecflow.domain.replies)
PERIOD = re.compile(r"^([1-9][0-9]{0,2})([hd])$")
# what our auto-replies carry (RFC 3834; Microsoft's header for Exchange and Outlook)
AUTOMATIC_HEADERS = (("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All"))
# the template's variables
VARIABLES = {
    "mittente": "who wrote (the certified sender)",
    "oggetto": "the subject they wrote",
    "casella": "our mailbox",
    "ricevuto_il": "when it arrived, as dd/mm/yyyy",
    "identificativo": "the provider's identifier of the message",
    "regola": "the rule's name",
}
DAEMONS = frozenset(
    ("mailer-daemon", "postmaster", "mail-daemon", "no-reply", "noreply", "do-not-reply", "donotreply")
)
PROVIDER_LOCAL_PARTS = frozenset(("posta-certificata", "rem-service"))  # providers' system mailboxes
BULK = frozenset(("bulk", "junk", "list", "auto_reply"))


class ReplyTemplateError(ValueError):
    """A reply action that cannot be used: every problem as (its field, a sentence)."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{field}: {text}" for field, text in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class AutoReply:
    """The rules' `reply` action: the text (and subject) templates, and the period within which a
    sender is answered once."""

    template: str
    subject: str | None
    once_per: str
    period: timedelta
    templates: Templates  # compiled

    def render(self, values: Mapping[str, str]) -> tuple[str | None, str]:
        """(subject or None for the usual "Re: ...", text); CampaignError says why not."""
        rendered = self.templates.render(values)
        subject = one_line(rendered.subject)[:900] if self.subject is not None else None
        return subject, rendered.text


def parse_period(text: str) -> timedelta:
    """ "12h", "7d", at most 999 of them."""
    found = PERIOD.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r}: un numero seguito da h (ore) o d (giorni), per esempio 7d")
    count, unit = int(found.group(1)), found.group(2)
    return timedelta(hours=count) if unit == "h" else timedelta(days=count)


def period_words(once_per: str) -> str:
    count, unit = int(once_per[:-1]), once_per[-1]
    if unit == "h":
        return "ora" if count == 1 else f"{count} ore"
    return "giorno" if count == 1 else f"{count} giorni"


class _Variables(meta.TrackingCodeGenerator):
    """The variables a template reads, without folding constants (as the campaigns do)."""

    def __init__(self, env: Any):
        super().__init__(env)
        self.optimizer = None


def compile_reply(template: str, subject: str | None, once_per: str = DEFAULT_PERIOD) -> AutoReply:
    """An auto-reply from its document's fields; ReplyTemplateError lists every problem."""
    problems: list[tuple[str, str]] = []
    compiled = []
    # no subject template: a placeholder (the service writes "Re: <their subject>")
    sources = (("subject", subject if subject is not None else "-"), ("body_text", template))
    env = environment()
    for field, source in sources:
        where = "subject" if field == "subject" else "template"
        if len(source) > MAX_TEMPLATE_CHARS:
            problems.append((where, f"più lungo di {MAX_TEMPLATE_CHARS} caratteri"))
            continue
        try:
            tree = env.parse(source)
            finder = _Variables(env)
            finder.visit(tree)
            unknown = sorted(finder.undeclared_identifiers - set(env.globals) - set(VARIABLES))
            if unknown:
                problems.append(
                    (where, f"usa {', '.join(f'«{name}»' for name in unknown)}, ma le variabili sono "
                     f"{', '.join(VARIABLES)}")
                )  # fmt: skip
                continue
            compiled.append((field, env.from_string(tree)))
        except TemplateSyntaxError as exc:
            problems.append((where, f"non è un modello valido (riga {exc.lineno}): {exc.message}"))
        except (RecursionError, SyntaxError, ValueError):
            problems.append((where, "non è un modello valido: troppo annidato o non compilabile"))
    try:
        period = parse_period(once_per)
    except ValueError as exc:
        problems.append(("once_per", str(exc)))
        period = timedelta(0)
    if problems:
        raise ReplyTemplateError(problems)
    templates = Templates(
        tuple(compiled), frozenset(VARIABLES), max_chars=MAX_TEXT_CHARS, seconds=RENDER_SECONDS
    )
    return AutoReply(template, subject, once_per.strip(), period, templates)


def values(mailbox: str, record: Mapping[str, Any], rule: str) -> dict[str, str]:
    """The template's variables for a recorded message."""
    received = str(record.get("received_at") or "")[:10]
    day = "/".join(reversed(received.split("-"))) if len(received) == 10 else ""
    return {
        "mittente": sender_of(record),
        "oggetto": str(record.get("original_subject") or record.get("subject") or ""),
        "casella": mailbox.lower(),
        "ricevuto_il": day,
        "identificativo": str(record.get("identificativo") or ""),
        "regola": rule,
    }


def render(reply: AutoReply, mailbox: str, record: Mapping[str, Any], rule: str) -> tuple[str | None, str]:
    """The reply's (subject or None, text) for a recorded message; ValueError says why not."""
    try:
        subject, text = reply.render(values(mailbox, record, rule))
    except CampaignError as exc:
        raise ValueError(f"il modello della risposta non si compone: {exc}") from None
    if not text.strip():
        raise ValueError("il modello della risposta dà un testo vuoto")
    if subject is not None and not subject:
        raise ValueError("il modello dell'oggetto dà un oggetto vuoto")
    return subject, text


def sender_of(record: Mapping[str, Any]) -> str:
    """Whom a reply goes to: the certified sender (daticert mittente), else the From address."""
    return str(record.get("sender") or record.get("from") or "").strip().lower()


def message_id(mailbox: str, sha256: str, rule: str) -> str:
    """The auto-reply's Message-ID, the same for a message and rule however often the rules run
    on it: the sender's job id, so it goes out once."""
    digest = hashlib.sha256(f"{mailbox.lower()}|{sha256}|{rule.casefold()}".encode()).hexdigest()[:24]
    return f"<pecflow.autoreply.{digest}@{mailbox.lower().rpartition('@')[2]}>"


# --- never -----------------------------------------------------------------------------------------
def automatic_sign(headers: mime.Headers | None) -> str | None:
    """Why a message's own header says it is automatic or not to be answered (None: it does not)."""
    if headers is None:
        return None

    def value(name: str) -> str:
        return " ".join((headers.get(name) or "").split())[:80]

    auto = value("auto-submitted")
    if auto and auto.split(";")[0].strip().lower() != "no":
        return f"il messaggio è stato scritto da un sistema automatico (Auto-Submitted: {auto})"
    precedence = value("precedence")
    if precedence.lower() in BULK:
        return f"il messaggio è un invio automatico o di massa (Precedence: {precedence})"
    suppress = value("x-auto-response-suppress")
    if suppress and suppress.lower() != "none":
        return (
            f"il mittente chiede di non ricevere risposte automatiche (X-Auto-Response-Suppress: {suppress})"
        )
    if "list-id" in headers:
        return f"il messaggio viene da una lista di distribuzione (List-Id: {value('list-id')})"
    for name in ("x-autoreply", "x-autorespond"):
        if name in headers:
            return f"il messaggio è una risposta automatica ({name}: {value(name)})"
    return None


def refusal(mailbox: str, record: Mapping[str, Any], automatic: str | None = None) -> str | None:
    """Why a recorded message gets no auto-reply, in words (None: it may get one). `automatic`:
    what `automatic_sign` found in the sender's message (for an envelope, postacert.eml),
    else what the ingestion kept on the record."""
    kind = str(record.get("kind") or "")
    if kind in kinds.RICEVUTE:
        return f"è una ricevuta ({kind}): alle ricevute non si risponde"
    if kind == kinds.ANOMALIA:
        return "è un'anomalia (un messaggio non certificato, spesso di un mailer daemon): alle anomalie non si risponde"
    if kind != kinds.POSTA_CERTIFICATA:
        return f"è {kind or 'un messaggio non riconosciuto'}: si risponde in automatico solo alla posta certificata"
    if not record.get("sender"):  # the envelope's From ("Per conto di: ...") is the provider's
        return "il mittente certificato non è indicato dal gestore: l'indirizzo della busta è del gestore PEC/REM"
    sender = sender_of(record)
    if not is_address(sender):
        return f"il mittente {sender} non è un indirizzo a cui rispondere"
    local = sender.rpartition("@")[0]
    if sender == mailbox.lower():
        return "il mittente è questa stessa casella"
    if local in DAEMONS:
        return f"il mittente {sender} è un servizio automatico (MAILER-DAEMON, postmaster, no-reply)"
    if local in PROVIDER_LOCAL_PARTS or sender == str(record.get("from") or "").strip().lower():
        return f"{sender} è un indirizzo del gestore PEC/REM, non di una persona"
    return automatic or (str(record["automatic"]) if record.get("automatic") else None)


def logical_headers(msg: Any) -> mime.Headers | None:
    """The headers of what the sender wrote: postacert.eml for an envelope, else the message."""
    logical = msg.postacert if getattr(msg, "postacert", None) is not None else msg
    root = getattr(logical, "root", None)
    return root.headers if root is not None else None
