"""A reply to, or a forward of, a received message: what a person writes, made into the PEC the
sender submits (threaded to the original by In-Reply-To and References; a forward carries the
original whole, byte for byte, as an .eml attachment in base64: a message/rfc822 part would be
re-serialised, and the original's bytes are what has legal value). Deterministic: the same request
gives the same Message-ID and the same bytes, so a repeated click sends nothing twice.
Pure domain code: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from pecflow.domain.autoreply import AUTOMATIC_HEADERS
from pecflow.domain.mailbox import is_address

REPLY, FORWARD = "reply", "forward"
MAX_TEXT_CHARS = 100_000
_PREFIX = re.compile(r"^\s*((re|r|fw|fwd|i|inoltro)\s*:\s*)+", re.I)
_POSTA_CERTIFICATA = re.compile(r"^\s*(POSTA CERTIFICATA|ANOMALIA MESSAGGIO)\s*:\s*", re.I)
# line breaks and other control characters a decoded subject may hold (=?utf-8?q?=0D=0A?=)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class ReplyError(ValueError):
    """A reply or forward that cannot be made as asked (a sentence for the person)."""


@dataclass(frozen=True, slots=True)
class Direct:
    """A message a person sends from the inbox (not a campaign's): everything to render it."""

    kind: str  # reply | forward
    mailbox: str  # from
    to: str
    subject: str
    text: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    original_key: str | None = None  # forward: the archived original to attach
    original_sha256: str | None = None
    by: str = ""  # the person
    automatic: bool = False  # sent by a rule: marked so (pecflow.domain.autoreply.AUTOMATIC_HEADERS)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind, "mailbox": self.mailbox, "to": self.to, "subject": self.subject,
            "text": self.text, "in_reply_to": self.in_reply_to, "references": list(self.references),
            "original_key": self.original_key, "original_sha256": self.original_sha256, "by": self.by,
            "automatic": self.automatic,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Direct:
        references = data.get("references")
        references = references if isinstance(references, (list, tuple)) else []
        return cls(
            kind=str(data["kind"]),
            mailbox=str(data["mailbox"]),
            to=str(data["to"]),
            subject=str(data["subject"]),
            text=str(data["text"]),
            in_reply_to=str(data["in_reply_to"]) if data.get("in_reply_to") else None,
            references=tuple(str(r) for r in references),
            original_key=str(data["original_key"]) if data.get("original_key") else None,
            original_sha256=str(data["original_sha256"]) if data.get("original_sha256") else None,
            by=str(data.get("by") or ""),
            automatic=bool(data.get("automatic")),
        )


def subject_for(kind: str, original: str | None) -> str:
    """Re: / I: (the Italian mail clients' forward prefix) before the original subject, without
    the provider's POSTA CERTIFICATA: and without piling prefixes up."""
    base = _POSTA_CERTIFICATA.sub("", _CONTROL.sub(" ", original or ""))
    base = _PREFIX.sub("", base).strip() or "(senza oggetto)"
    return f"{'Re' if kind == REPLY else 'I'}: {base}"[:900]


def make_direct(
    kind: str,
    *,
    mailbox: str,
    to: str,
    text: str,
    original_subject: str | None,
    original_message_id: str | None,
    original_references: tuple[str, ...] = (),
    original_key: str | None = None,
    original_sha256: str | None = None,
    by: str,
) -> Direct:
    if kind not in (REPLY, FORWARD):
        raise ReplyError(f"unknown kind {kind!r}")
    to = (to or "").strip().lower()
    if not is_address(to):
        raise ReplyError(f"{to or 'nobody'} is not an address this message can go to")
    text = (text or "").replace("\r\n", "\n")
    if not text.strip():
        raise ReplyError("write something: the message is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ReplyError(f"the text is over {MAX_TEXT_CHARS:,} characters")
    if kind == FORWARD and not original_key:
        raise ReplyError("the original is not archived: it cannot be forwarded")
    if original_message_id and _CONTROL.search(original_message_id):
        original_message_id = None  # not an id a header can carry
    references = tuple(
        r for r in (*original_references, original_message_id) if r and not _CONTROL.search(r)
    )[-20:]
    return Direct(
        kind=kind,
        mailbox=mailbox.lower(),
        to=to,
        subject=subject_for(kind, original_subject),
        text=text,
        in_reply_to=original_message_id if kind == REPLY else None,
        references=references,
        original_key=original_key if kind == FORWARD else None,
        original_sha256=original_sha256,
        by=by,
    )


def direct_message_id(original_sha256: str, direct: Direct) -> str:
    """The same request (the same message, person, kind, recipient and text) always gives the
    same Message-ID: a repeated click or a retried request sends nothing twice."""
    key = f"{direct.mailbox}|{original_sha256}|{direct.kind}|{direct.by}|{direct.to}|{direct.text}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    domain = direct.mailbox.rpartition("@")[2].lower()
    return f"<pecflow.{direct.kind}.{digest}@{domain}>"


def render_direct(direct: Direct, message_id: str, date: datetime, original: bytes | None = None) -> bytes:
    """The message as the sender submits it."""
    if date.tzinfo is None:
        raise ValueError("the date must carry its time zone")
    message = EmailMessage(policy=SMTP)
    message["From"] = direct.mailbox
    message["To"] = direct.to
    message["Subject"] = direct.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if direct.in_reply_to:
        message["In-Reply-To"] = direct.in_reply_to
    if direct.references:
        message["References"] = " ".join(direct.references)
    if direct.automatic:
        for name, value in AUTOMATIC_HEADERS:
            message[name] = value
    message.set_content(direct.text, charset="utf-8")
    if direct.kind == FORWARD:
        if original is None:
            raise ValueError("a forward needs its original")
        message.add_attachment(
            original, maintype="application", subtype="octet-stream", filename="messaggio-originale.eml"
        )
    return message.as_bytes()
