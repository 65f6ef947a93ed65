"""Recognise any message found in a PEC mailbox: parse raw RFC 822 bytes and classify them.

The top-level X-Ricevuta / X-Trasporto header is the first signal; daticert.xml (inside the
provider's signature) is the authority where present. Disagreements between the two are
reported in `problems`, never hidden. Only the parts a kind needs are read: the envelope's
structure, daticert.xml, the headers and structure of postacert.eml, and SdI files.
`parse` never raises on any input: what it cannot understand is `malformed`, with the reason,
and a field it cannot read is a problem on that field. Its work is linear in the input: the
MIME layer is bounded (see `mime`), and one budget per message bounds the characters of
address fields read (see `addresses`, which does not depend on the Python version) and the
addresses kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import overload

from pecflow.pec import addresses, kinds, mime, sdi
from pecflow.pec import daticert as daticert_mod
from pecflow.pec import rem as rem_mod

MAX_NESTED_MESSAGES = 8  # postacert.eml inside postacert.eml ... followed this deep
MAX_PARSE_BYTES = 200 * 1024 * 1024
MAX_ADDRESS_CHARS = addresses.MAX_ADDRESS_CHARS
MAX_ADDRESSES = addresses.MAX_ADDRESSES
MAX_DATE_CHARS = 200  # of a Date value read (a real one has about 31)

_MAIL_FIELDS = frozenset(
    (
        "from",
        "to",
        "cc",
        "date",
        "subject",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "content-type",
        "delivered-to",
        "sender",
        "reply-to",
        "x-ricevuta",
        "x-trasporto",
    )
)
_DATICERT_NAMES = ("daticert.xml", "certdata.xml")  # RFC 6109 translates the name as certdata.xml
_ON_BEHALF = re.compile(r"\s*+(?:per conto di|on behalf of)\s*+:", re.I)
_PERMANENT = re.compile(r"^\s*5\.\d{1,3}\.\d{1,3}")
_IDENTIFICATIVO_TEXT = re.compile(r"Identificativo (?:del )?messaggio:\s*(\S+)", re.I)
_LIST_TAG = re.compile(r"^\s*(?:\[[^\]]*\]\s*)+")


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    type: str | None = None  # daticert destinatari tipo: certificato | esterno


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int  # encoded size, as it sits in the message
    part: mime.Part = field(repr=False, compare=False)

    def content(self) -> bytes:
        """The decoded bytes (transfer encoding removed)."""
        return self.part.decoded()


@dataclass(slots=True)
class PecMessage:
    """What pecflow knows about one message. Fields absent from the message are None."""

    kind: str
    problems: list[str]
    size: int
    message_id: str | None = None
    subject: str | None = None
    date: datetime | None = None
    from_address: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    # PEC data (daticert.xml first, headers as fallback)
    ref_message_id: str | None = None  # receipts: the Message-ID of the message they are about
    original_message_id: str | None = None  # envelopes: the sender's own Message-ID
    identificativo: str | None = None
    provider: str | None = None  # daticert gestore-emittente
    provider_domain: str | None = None
    receipt_type: str | None = None  # completa | breve | sintetica
    sender: str | None = None  # the original message's sender
    recipients: list[Recipient] = field(default_factory=list)
    original_subject: str | None = None
    timestamp: datetime | None = None  # the provider's time of the event, with its zone
    delivered_to: str | None = None  # daticert consegna
    covered: list[str] = field(default_factory=list)  # daticert ricezione (presa in carico)
    error: str | None = None  # daticert errore, when not "nessuno"
    error_detail: str | None = None  # daticert errore-esteso
    permanent_error: bool = False  # errore-esteso starts with a 5.x.x code
    virus: bool = False
    signature: str = "none"  # present | missing | none
    daticert: daticert_mod.Daticert | None = field(default=None, repr=False)
    postacert: PecMessage | None = field(default=None, repr=False)
    attachments: list[Attachment] = field(default_factory=list, repr=False)
    sdi: sdi.SdiInfo | None = None
    rem: rem_mod.RemInfo | None = None  # REM messages (ETSI EN 319 532-4); None for PEC
    root: mime.Part | None = field(default=None, repr=False, compare=False)

    @property
    def is_pec(self) -> bool:
        return self.kind in kinds.PEC_KINDS

    def body_text(self) -> str | None:
        """The readable body of the logical message (postacert.eml for envelopes)."""
        message = self.postacert if self.postacert is not None else self
        part = body_part(message.root) if message.root is not None else None
        return part.text() if part is not None else None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (what `pecflow classify --json` prints)."""
        return {
            "kind": self.kind,
            "ref_message_id": self.ref_message_id,
            "receipt_type": self.receipt_type,
            "provider": self.provider,
            "sdi": self.sdi.to_dict() if self.sdi is not None else None,
            "problems": list(self.problems),
            "message_id": self.message_id,
            "original_message_id": self.original_message_id,
            "identificativo": self.identificativo,
            "subject": self.subject,
            "original_subject": self.original_subject,
            "from": self.from_address,
            "sender": self.sender,
            "recipients": [{"address": r.address, "type": r.type} for r in self.recipients],
            "date": self.date.isoformat() if self.date else None,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "delivered_to": self.delivered_to,
            "covered": list(self.covered),
            "error": self.error,
            "error_detail": self.error_detail,
            "permanent_error": self.permanent_error,
            "virus": self.virus,
            "signature": self.signature,
            "size": self.size,
            "postacert": None
            if self.postacert is None
            else {
                "kind": self.postacert.kind,
                "message_id": self.postacert.message_id,
                "subject": self.postacert.subject,
                "from": self.postacert.from_address,
                "attachments": [_attachment_dict(a) for a in self.postacert.attachments],
            },
            "attachments": [_attachment_dict(a) for a in self.attachments],
            "rem": self.rem.to_dict() if self.rem is not None else None,
        }


def _attachment_dict(att: Attachment) -> dict[str, str | int | None]:
    return {"filename": att.filename, "content_type": att.content_type, "size": att.size}


# --------------------------------------------------------------------------------------------
def parse(raw: bytes) -> PecMessage:
    """Classify one message. Never raises on bad input: see `problems` and `malformed`."""
    if not raw or raw.isspace():  # (strip() would copy the whole message)
        return PecMessage(kinds.MALFORMED, ["empty file: not an e-mail"], len(raw or b""))
    if len(raw) > MAX_PARSE_BYTES:
        return PecMessage(
            kinds.MALFORMED, [f"{len(raw)} bytes: larger than the {MAX_PARSE_BYTES}-byte limit"], len(raw)
        )
    start = 0
    problems = []
    if raw.startswith(b"From "):  # an mbox separator line before the headers
        nl = raw.find(b"\n")
        start = len(raw) if nl == -1 else nl + 1
        problems.append("mbox 'From ' line before the headers skipped")
    message = _read(mime.Part(raw, start, len(raw)), 0, _Budget())
    if problems:
        message.problems[:0] = problems
    return message


_Budget = addresses.Budget  # what one message tree may still spend on address fields


def _read(root: mime.Part, nesting: int, budget: _Budget) -> PecMessage:
    size = root.end - root.start
    headers = root.headers
    if not any(name.lower() in _MAIL_FIELDS for name, _ in headers.fields):
        reason = (
            "no header fields: not an e-mail"
            if not len(headers)
            else "no e-mail header fields (From, To, Date, Subject, Message-ID, ...): not an e-mail"
        )
        return PecMessage(kinds.MALFORMED, [reason], size, root=root)

    problems: list[str] = []
    msg = PecMessage(kinds.POSTA_ORDINARIA, problems, size, root=root)
    _read_common_headers(msg, headers, problems, budget)
    if "rem-messagetype" in headers or "rem-eventidentifier" in headers:
        _read_rem(msg, headers, nesting, problems, budget)
        _collect_defects(root, problems)
        return msg

    header_kind = _kind_from_headers(headers, problems)
    survey = _Survey(root)
    if header_kind is None and survey.daticert is None:
        fallback = _kind_from_subject(msg)
        if fallback is not None:
            header_kind = fallback
            problems.append(f"no X-Ricevuta/X-Trasporto header: kind {fallback!r} taken from the subject")

    dc = None
    if survey.daticert is not None and (header_kind is not None or survey.signed is not None):
        try:
            dc = daticert_mod.parse(survey.daticert.decoded())
            problems.extend(dc.problems)
        except daticert_mod.DaticertError as exc:
            problems.append(str(exc))

    kind = header_kind
    if dc is not None and dc.tipo in daticert_mod.TIPI:
        if kind is None:
            problems.append(f"no X-Ricevuta/X-Trasporto header: kind {dc.tipo!r} taken from daticert.xml")
            kind = dc.tipo
        elif kind != dc.tipo:
            problems.append(f"header says {kind!r} but daticert.xml says {dc.tipo!r}: daticert wins")
            kind = dc.tipo
    if kind is None:
        if any(p.startswith("unknown X-") for p in problems):
            msg.kind = kinds.MALFORMED
            msg.attachments = _attachments(root)
            return msg
        msg.attachments = _attachments(root)
        _collect_defects(root, problems)
        return msg

    msg.kind = kind
    msg.daticert = dc
    _read_pec(msg, headers, survey, dc, nesting, problems, budget)
    _collect_defects(root, problems)
    return msg


def _read_common_headers(
    msg: PecMessage, headers: mime.Headers, problems: list[str], budget: _Budget
) -> None:
    assert msg.root is not None  # `_read` builds every message with its root
    msg.message_id = _msgid(headers.get("message-id"))
    msg.subject = mime.decode_text(headers.get("subject"), problems, msg.root.budget)
    date = headers.get("date")
    if date:
        try:
            msg.date = parsedate_to_datetime(date[:MAX_DATE_CHARS])
        except (TypeError, ValueError, IndexError, OverflowError):
            problems.append(f"unreadable Date header {date[:60]!r}")
    sender = headers.get("from")
    if sender is not None:
        msg.from_address = _address(sender, "From", problems, budget)
    msg.to = _addresses(headers.get_all("to"), "To", problems, budget)
    msg.cc = _addresses(headers.get_all("cc"), "Cc", problems, budget)
    reply_to = headers.get("reply-to")
    msg.reply_to = _address(reply_to, "Reply-To", problems, budget) if reply_to else None
    msg.in_reply_to = _msgid(headers.get("in-reply-to"))
    refs = headers.get("references")
    msg.references = re.findall(r"<[^<>\s]+>", refs) if refs else []


def _kind_from_headers(headers: mime.Headers, problems: list[str]) -> str | None:
    found = []
    for name, table in (("x-ricevuta", None), ("x-trasporto", kinds.BUSTE)):
        values = [v.strip().lower() for v in headers.get_all(name)]
        if not values:
            continue
        if len(set(values)) > 1:
            problems.append(
                f"{len(values)} different {name} headers: "
                f"{', '.join(_clip(v) for v in sorted(set(values))[:10])}"
            )
        elif len(values) > 1:
            problems.append(f"{name} header repeated {len(values)} times")
        value = values[0]
        kind = (value if value in kinds.RICEVUTE else None) if table is None else table.get(value)
        if kind is None:
            field_name = "X-Ricevuta" if table is None else "X-Trasporto"
            problems.append(f"unknown {field_name} value {_clip(value)!r}")
        else:
            found.append(kind)
    if len(found) > 1:
        problems.append(f"both X-Ricevuta and X-Trasporto present ({found[0]}, {found[1]})")
    return found[0] if found else None


def _split_subject(subject: str | None) -> tuple[str | None, str | None]:
    """(kind, original subject) from a provider subject, past list/spam tags."""
    if not subject:
        return None, subject
    text = _LIST_TAG.sub("", subject)
    upper = text.upper()
    for prefix, kind in kinds.SUBJECT_PREFIXES:
        if upper.startswith(prefix):
            return kind, text[len(prefix) :]
    return None, subject


def _kind_from_subject(msg: PecMessage) -> str | None:
    # only for messages a provider wrote: posta-certificata@<domain> sends them all
    if not msg.from_address or not msg.from_address.lower().startswith("posta-certificata@"):
        return None
    return _split_subject(msg.subject)[0]


class _Survey(mime.SignedLayout):
    """The PEC provider's layout: multipart/signed, daticert.xml, postacert.eml, smime.p7s."""

    __slots__ = ("daticert", "postacert", "other_messages")

    def __init__(self, root: mime.Part) -> None:
        self.daticert: mime.Part | None = None
        self.postacert: mime.Part | None = None
        self.other_messages: list[mime.Part] = []
        super().__init__(root)

    def claim(self, part: mime.Part, leaf: bool) -> bool:
        if not leaf:
            return False
        if part.content_type == "message/rfc822":
            if self.postacert is None and (part.filename or "").lower() == "postacert.eml":
                self.postacert = part
            else:
                self.other_messages.append(part)
        elif self.daticert is None and (part.filename or "").lower() in _DATICERT_NAMES:
            self.daticert = part
        return True


def _read_signature(msg: PecMessage, layout: mime.SignedLayout, family: str, problems: list[str]) -> None:
    """`msg.signature` and the problems of a provider's signed layout (family: "PEC", "REM")."""
    if layout.signed is not None:
        msg.signature = "present" if layout.signature is not None else "missing"
        if layout.signature is None:
            problems.append("signature_missing: multipart/signed without its smime.p7s part")
        if layout.wrapped:
            problems.append(
                f"{family} message re-wrapped inside another multipart (a list or relay changed it)"
            )
    else:
        problems.append("not signed: no multipart/signed structure")


def _read_pec(
    msg: PecMessage,
    headers: mime.Headers,
    survey: _Survey,
    dc: daticert_mod.Daticert | None,
    nesting: int,
    problems: list[str],
    budget: _Budget,
) -> None:
    kind = msg.kind
    is_busta = kind in (kinds.POSTA_CERTIFICATA, kinds.ANOMALIA)

    _read_signature(msg, survey, "PEC", problems)
    if dc is None and survey.daticert is None and kind != kinds.ANOMALIA:
        problems.append("daticert.xml missing: fields taken from headers")

    # references
    header_ref = _msgid(headers.get("x-riferimento-message-id"))
    if len(headers.get_all("x-riferimento-message-id")) > 1:
        problems.append("X-Riferimento-Message-ID header repeated")
    dc_ref = dc.msgid if dc is not None else None
    if header_ref and dc_ref and _bare(header_ref) != _bare(dc_ref):
        problems.append(
            f"X-Riferimento-Message-ID {_clip(header_ref)} disagrees with daticert msgid "
            f"{_clip(dc_ref)}: daticert wins"
        )
    reference = dc_ref or header_ref
    if is_busta:
        msg.original_message_id = reference
    else:
        msg.ref_message_id = reference
        if reference is None:
            problems.append("no reference to the original message (no X-Riferimento-Message-ID, no msgid)")

    # provider
    msg.provider_domain = _domain(msg.from_address)
    if dc is not None:
        msg.provider = dc.gestore_emittente
        msg.identificativo = dc.identificativo
        msg.sender = dc.mittente
        msg.recipients = [Recipient(d.address, d.tipo) for d in dc.destinatari]
        msg.original_subject = dc.oggetto
        msg.timestamp = dc.timestamp
        msg.delivered_to = dc.consegna
        msg.covered = list(dc.ricezione)
        msg.error = dc.errore if dc.errore != "nessuno" else None
        msg.error_detail = dc.errore_esteso
    if (
        kind == kinds.POSTA_CERTIFICATA
        and msg.message_id
        and msg.identificativo
        and _bare(msg.message_id) != _bare(msg.identificativo)
    ):
        problems.append(
            f"envelope Message-ID {_clip(msg.message_id)} differs from daticert identificativo "
            f"{_clip(msg.identificativo)}"
        )

    # receipt type
    header_type = (headers.get("x-tiporicevuta") or "").strip().lower() or None
    dc_type = dc.ricevuta if dc is not None else None
    if header_type and dc_type and header_type != dc_type:
        problems.append(
            f"X-TipoRicevuta {_clip(header_type)!r} disagrees with daticert ricevuta "
            f"{_clip(dc_type)!r}: daticert wins"
        )
    msg.receipt_type = dc_type or (header_type if header_type in daticert_mod.TIPI_RICEVUTA else None)
    if header_type and header_type not in daticert_mod.TIPI_RICEVUTA:
        problems.append(f"unknown X-TipoRicevuta {_clip(header_type)!r}")

    # the original message, when the kind carries it
    postacert_part = survey.postacert
    if postacert_part is None and survey.other_messages and (is_busta or kind == kinds.AVVENUTA_CONSEGNA):
        postacert_part = survey.other_messages[0]
        problems.append("original message not named postacert.eml")
    if postacert_part is not None:
        _read_original(msg, postacert_part, "postacert.eml", nesting, problems, budget)
    elif is_busta:
        problems.append("envelope without the original message (postacert.eml)")

    if kind == kinds.AVVENUTA_CONSEGNA and msg.receipt_type is None:
        if msg.postacert is None:
            msg.receipt_type = "sintetica"
        elif any((a.filename or "").lower().endswith(".hash") for a in msg.attachments):
            msg.receipt_type = "breve"
        else:
            msg.receipt_type = "completa"
        problems.append(f"receipt type not stated: {msg.receipt_type!r} inferred from the structure")

    # fallbacks when daticert.xml is missing
    if dc is None:
        _fallbacks(msg, headers, survey, problems, budget)

    if msg.error_detail and _PERMANENT.match(msg.error_detail):
        msg.permanent_error = True
    verifica = (headers.get("x-verificasicurezza") or "").strip().lower()
    msg.virus = (
        msg.error == "virus"
        or kind == kinds.RILEVAZIONE_VIRUS
        or (verifica == "errore" and kind in (kinds.NON_ACCETTAZIONE, kinds.ERRORE_CONSEGNA))
    )

    if kind == kinds.POSTA_CERTIFICATA and msg.postacert is not None and msg.attachments:
        msg.sdi = sdi.recognise((a.filename, a.content) for a in msg.attachments if a.filename)
        if msg.sdi is not None:
            problems.extend(msg.sdi.problems)


def _read_original(
    msg: PecMessage, part: mime.Part, name: str, nesting: int, problems: list[str], budget: _Budget
) -> None:
    """The original message a provider carries (postacert.eml, REM's AttachedMimeMessage),
    read recursively: it becomes `msg.postacert`, its attachments the envelope's."""
    inner = part.message
    if inner is None:
        problems.append(f"{name} could not be followed")
    elif nesting + 1 >= MAX_NESTED_MESSAGES:
        problems.append(f"{name} nested deeper than {MAX_NESTED_MESSAGES} levels: not read")
    else:
        msg.postacert = _read(inner, nesting + 1, budget)
        msg.attachments = msg.postacert.attachments
        if msg.postacert.kind == kinds.MALFORMED:
            problems.append(f"{name} is not a readable message: " + "; ".join(msg.postacert.problems))


_REM_SUBJECT = re.compile(r"^\s*+REM\s++[A-Za-z_]++\s*+:\s?")
MAX_REM_FIELD_CHARS = 1000  # of a REM-* header value read (a real one has under 100)


def _read_rem(
    msg: PecMessage, headers: mime.Headers, nesting: int, problems: list[str], budget: _Budget
) -> None:
    """A REM message (PEC_FORMAT §10): kind from REM-MessageType and the event, fields from the
    evidence XML (the authority: where the headers disagree, it is reported and the evidence wins)."""
    assert msg.root is not None
    sections = rem_mod.survey(msg.root)

    def header(name: str) -> str | None:
        values = [v.strip()[:MAX_REM_FIELD_CHARS] for v in headers.get_all(name)]
        if len(set(values)) > 1:
            problems.append(
                f"{len(values)} different {name} headers: {', '.join(_clip(v) for v in values[:5])}"
            )
        return values[0] or None if values else None

    type_uri, event_uri = header("REM-MessageType"), header("REM-EventIdentifier")
    reason_uri, version = header("REM-ReasonIdentifier"), header("REM-MetadataVersion")
    header_ua = _msgid(header("REM-UAMessageIdentifier"))
    header_evidence_id = header("REM-Evidence-ID")
    if "x-ricevuta" in headers or "x-trasporto" in headers:
        problems.append("both REM and PEC (X-Ricevuta/X-Trasporto) headers: read as REM")
    if type_uri and not type_uri.startswith(rem_mod.MESSAGE_TYPE_URI):
        problems.append(f"REM-MessageType {_clip(type_uri)!r} is not an ETSI EN 319 522 message type URI")
    if event_uri and not event_uri.startswith(rem_mod.EVENT_URI):
        problems.append(f"REM-EventIdentifier {_clip(event_uri)!r} is not an ETSI EN 319 522 event URI")

    evidence = None
    part = sections.evidence
    if part is None:
        problems.append("REM evidence XML missing: fields taken from the headers")
    elif part.body_size > 2 * rem_mod.MAX_EVIDENCE_BYTES:
        problems.append(
            f"REM evidence {_clip(part.filename or '')!r} of {part.body_size} bytes: larger than the "
            f"{rem_mod.MAX_EVIDENCE_BYTES}-byte limit, not read"
        )
    else:
        try:
            evidence = rem_mod.parse_evidence(part.decoded())
            problems.extend(evidence.problems)
        except rem_mod.EvidenceError as exc:
            problems.append(str(exc))

    def agree(what: str, from_header: str | None, from_evidence: str | None) -> str | None:
        if from_header and from_evidence and _bare(from_header) != _bare(from_evidence):
            problems.append(
                f"{what} header {_clip(from_header)!r} disagrees with the evidence "
                f"{_clip(from_evidence)!r}: the evidence wins"
            )
        return from_evidence or from_header

    ev = evidence
    event = agree("REM-EventIdentifier", rem_mod.last_segment(event_uri), ev.event if ev else None)
    reason = agree("REM-ReasonIdentifier", rem_mod.last_segment(reason_uri), ev.reason if ev else None)
    evidence_id = agree("REM-Evidence-ID", _msgid(header_evidence_id), _msgid(ev.evidence_id) if ev else None)
    ua = agree("REM-UAMessageIdentifier", header_ua, _msgid(ev.ua_message_id) if ev else None)
    digest = agree("REM-DigestValue", header("REM-DigestValue"), ev.digest_value if ev else None)
    if event is None:
        problems.append("REM message without an event (no REM-EventIdentifier, no evidence)")

    message_type = rem_mod.last_segment(type_uri)
    if message_type is None:
        message_type = (
            rem_mod.DISPATCH
            if event == "ReceivedFromNonERDS"
            or (event == "SubmissionAcceptance" and sections.original is not None)
            else rem_mod.RECEIPT
        )
        problems.append(
            f"REM-MessageType missing: {message_type!r} inferred from the event and the structure"
        )
    table = {rem_mod.RECEIPT: rem_mod.RECEIPT_KINDS, rem_mod.DISPATCH: rem_mod.DISPATCH_KINDS}.get(
        message_type
    )
    if table is None:
        problems.append(f"unknown REM-MessageType {_clip(message_type)!r}")
    newer = version is not None and rem_mod.newer_version(version)
    kind = table.get(event) if table is not None and event is not None else None
    if kind is None:
        kind = kinds.ANOMALIA
        problems.append(
            f"REM {message_type} of unknown event {_clip(event or '(none)')!r}"
            + (f" (REM-MetadataVersion {_clip(version or '')}, newer than pecflow knows)" if newer else "")
            + ": recorded as an anomaly, no job moved"
        )
    elif newer:
        problems.append(
            f"REM-MetadataVersion {_clip(version or '')} is newer than the versions pecflow knows "
            f"({', '.join(rem_mod.KNOWN_METADATA_VERSIONS)}): read as those"
        )
    elif version and version not in rem_mod.KNOWN_METADATA_VERSIONS:
        problems.append(f"unknown REM-MetadataVersion {_clip(version)!r}")
    msg.kind = kind

    _read_signature(msg, sections, "REM", problems)

    # the original message
    is_dispatch = message_type == rem_mod.DISPATCH
    if sections.original is not None:
        _read_original(msg, sections.original, "AttachedMimeMessage", nesting, problems, budget)
    elif is_dispatch:
        problems.append("REM dispatch without the original message (AttachedMimeMessage)")

    # references and parties
    if is_dispatch:
        msg.original_message_id = ua
    else:
        msg.ref_message_id = ua
        if ua is None:
            problems.append("no reference to the original message (no REM-UAMessageIdentifier, no evidence)")
    introduction = (
        rem_mod.introduction_text(sections.introduction) if sections.introduction is not None else None
    )
    msg.provider_domain = _domain(msg.from_address)
    concerns: tuple[str, ...] = ()
    if ev is not None:
        msg.provider = ev.issuer
        msg.identificativo = ev.message_identifier
        msg.sender = ev.sender.address if ev.sender is not None else None
        if event in rem_mod.PER_RECIPIENT_EVENTS:
            concerns = rem_mod.concerned(ev)
        external = set(concerns) if event == rem_mod.RELAY_TO_NON_ERDS else set()
        msg.recipients = [
            Recipient(p.address, "esterno" if p.address in external else None)
            for p in ev.recipients
            if p.address
        ]
        msg.original_subject = ev.subject
        msg.timestamp = ev.time
    if msg.identificativo is None and introduction:
        found = _IDENTIFICATIVO_TEXT.search(introduction)
        msg.identificativo = found.group(1).strip('".') if found else None
    if msg.sender is None:
        msg.sender = _address(headers.get("rem-md08"), "REM-MD08", problems, budget)
    if not msg.recipients and msg.postacert is not None:
        msg.recipients = [Recipient(a) for a in (*msg.postacert.to, *msg.postacert.cc)]
    if msg.original_subject is None and msg.subject:
        msg.original_subject = _REM_SUBJECT.sub("", msg.subject, count=1)
    if msg.timestamp is None:
        msg.timestamp = msg.date
    msg.covered = list(concerns)
    if len(concerns) == 1:
        msg.delivered_to = concerns[0]
    elif event in rem_mod.PER_RECIPIENT_EVENTS and kind != kinds.PRESA_IN_CARICO and not concerns:
        problems.append(f"REM {event}: the recipient it concerns is not known (no evidence)")
    if kind in (kinds.ERRORE_CONSEGNA, kinds.NON_ACCETTAZIONE):
        msg.error = rem_mod.errore_for(reason)
        msg.error_detail = rem_mod.reason_text(reason)
        msg.virus = msg.error == "virus"

    msg.rem = rem_mod.RemInfo(
        message_type=message_type,
        event=event,
        reason=reason,
        evidence_id=evidence_id,
        ua_message_id=ua,
        policies=tuple(dict.fromkeys(v.strip() for v in headers.get_all("rem-applicablepolicy")[:20]))
        or (ev.policies if ev is not None else ()),
        metadata_version=version,
        digest_algorithm=header("REM-DigestAlgorithm") or (ev.digest_algorithm if ev else None),
        digest_value=digest,
        code=ev.code if ev is not None else None,
        concerns=concerns,
        introduction=introduction,
        evidence=ev,
    )
    if kind == kinds.POSTA_CERTIFICATA and msg.postacert is not None and msg.attachments:
        msg.sdi = sdi.recognise((a.filename, a.content) for a in msg.attachments if a.filename)
        if msg.sdi is not None:
            problems.extend(msg.sdi.problems)


def _fallbacks(
    msg: PecMessage, headers: mime.Headers, survey: _Survey, problems: list[str], budget: _Budget
) -> None:
    kind = msg.kind
    if msg.original_subject is None:
        msg.original_subject = _split_subject(msg.subject)[1]
    if kind in (kinds.POSTA_CERTIFICATA, kinds.ANOMALIA):
        display = _display_name(headers.get("from") or "", budget)
        on_behalf = _ON_BEHALF.match(display)
        behalf = display[on_behalf.end() :].strip() if on_behalf else ""
        msg.sender = (
            _address(behalf, "From", problems, budget) if behalf and "\n" not in behalf else msg.reply_to
        )
        source = msg.postacert if msg.postacert is not None else msg
        msg.recipients = [Recipient(a) for a in (*source.to, *source.cc)]
        if kind == kinds.POSTA_CERTIFICATA and msg.identificativo is None:
            msg.identificativo = _bare(msg.message_id) if msg.message_id else None
    else:
        msg.sender = msg.to[0] if msg.to else None
        text = _first_text(survey.signed or msg.root)
        found = _IDENTIFICATIVO_TEXT.search(text or "")
        if found:
            msg.identificativo = found.group(1).rstrip(".")
    if msg.timestamp is None:
        msg.timestamp = msg.date


def _first_text(root: mime.Part | None) -> str | None:
    if root is None:
        return None
    for part in root.walk():
        if part.content_type == "text/plain" and not part.filename:
            return part.text()
    return None


def body_part(root: mime.Part) -> mime.Part | None:
    html = None
    for part in root.walk():
        disposition = part.disposition[0]
        if part.filename or disposition == "attachment":
            continue
        if part.content_type == "text/plain":
            return part
        if part.content_type == "text/html" and html is None:
            html = part
    return html


def _attachments(root: mime.Part) -> list[Attachment]:
    """Files carried by a message: every leaf with a file name or an attachment disposition,
    plus non-text leaves and attached messages (the body's text parts are not attachments)."""
    out = []
    for part in root.walk():
        if part.is_multipart:
            continue
        ctype = part.content_type
        name = part.filename
        body_text = ctype.startswith("text/") or ctype == "message/delivery-status"
        if name is not None or part.disposition[0] == "attachment" or (not body_text and part is not root):
            out.append(Attachment(name, ctype, part.body_size, part))
    return out


def _collect_defects(root: mime.Part, problems: list[str]) -> None:
    seen = set(problems)
    for defect in root.all_defects():
        if defect not in seen:
            seen.add(defect)
            problems.append(defect)


# helpers ------------------------------------------------------------------------------------
# what the recipient's provider says of a delivery: each ends or holds a recipient's job past accepted
DELIVERY_OUTCOMES = frozenset(
    {kinds.AVVENUTA_CONSEGNA, kinds.ERRORE_CONSEGNA, kinds.PREAVVISO_ERRORE_CONSEGNA, kinds.RILEVAZIONE_VIRUS}
)


def delivery_reference(raw: bytes) -> str | None:
    """The Message-ID (bare: no brackets, lower case) a receipt on a delivery (avvenuta consegna,
    errore di consegna, preavviso, rilevazione virus) refers to, read from its top-level headers
    alone (X-Ricevuta, X-Riferimento-Message-ID): a glance at a message of a fetched batch before
    it is read in full. None for any other message, or one without the header (its daticert,
    read in full by `parse`, may still say it)."""
    try:
        headers = mime.Part(raw, 0, len(raw)).headers
        if (headers.get("x-ricevuta") or "").strip().lower() not in DELIVERY_OUTCOMES:
            return None
        found = _msgid(headers.get("x-riferimento-message-id"))
    except Exception:  # noqa: BLE001 - a glance only: whatever it is, `parse` reads it properly
        return None
    return _bare(found) if found else None


def _msgid(value: str | None) -> str | None:
    if not value:
        return None
    found = re.search(r"<[^<>]+>", value)
    return daticert_mod.normalise_msgid(found.group(0) if found else value.split()[0])


def _bare(value: str) -> str:
    return value.strip().strip("<>").strip().lower()


def bare_message_id(value: str) -> str:
    """A Message-ID as two are compared: without brackets and spaces, lower case."""
    return _bare(value)


def _address(
    value: str | None, name: str = "From", problems: list[str] | None = None, budget: _Budget | None = None
) -> str | None:
    """The first address of a field (From may name several mailboxes; the first is the author)."""
    if not value:
        return None
    found = addresses.read([value], name, [] if problems is None else problems, budget, first=True)
    return found[0].address if found else None


def _addresses(
    values: list[str], name: str = "To", problems: list[str] | None = None, budget: _Budget | None = None
) -> list[str]:
    if not values:
        return []
    found = addresses.read(values, name, [] if problems is None else problems, budget)
    return [mailbox.address for mailbox in found]


def _display_name(value: str, budget: _Budget) -> str:
    """The decoded display name of a From field's first mailbox ("" when it has none). Its
    problems were reported when the field was first read."""
    found = addresses.read([value], "From", [], budget, first=True) if value else []
    return found[0].display_name if found else ""


@overload
def _clip(value: str, size: int = 100) -> str: ...
@overload
def _clip(value: None, size: int = 100) -> None: ...
@overload
def _clip(value: str | None, size: int = 100) -> str | None: ...
def _clip(value: str | None, size: int = 100) -> str | None:
    """A value quoted in a problem, cut to a readable length."""
    return value if value is None or len(value) <= size else value[:size] + "…"


def _domain(address: str | None) -> str | None:
    return address.rpartition("@")[2].lower() or None if address and "@" in address else None


def classify(raw: bytes) -> PecMessage:
    """`parse`, with a last line of defence for long-running callers (CLI, poller): an
    unexpected internal error becomes a `malformed` result carrying the error, so one
    message can never stop a batch. Tests call `parse` directly, where errors surface."""
    try:
        return parse(raw)
    except Exception as exc:  # noqa: BLE001 - deliberate: see docstring
        return PecMessage(
            kinds.MALFORMED, [f"internal parser error: {type(exc).__name__}: {exc}"], len(raw or b"")
        )
