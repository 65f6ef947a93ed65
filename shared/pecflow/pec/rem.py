"""REM (ETSI EN 319 532-4, AgID "REM Services – Policy IT"): the successor of PEC.

A REM message says what it is in top-level headers (REM-MessageType, REM-EventIdentifier,
REM-ReasonIdentifier, REM-UAMessageIdentifier, ...) and proves it with an ETSI EN 319 522
evidence XML (the counterpart of daticert.xml). This module holds the vocabulary (events,
reasons and their explanation in Italian and English, the mapping to pecflow's kinds), the
reader of the evidence (`parse_evidence`, on the safe XML reader: raises only
`EvidenceError`), and `survey`, which finds the REM sections of a message. `message.parse`
puts it together. Pure code: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from pecflow.pec import kinds, mime, safexml

MAX_EVIDENCE_BYTES = 1024 * 1024  # a real one (XAdES signature and certificates included) is ~25 KB
MAX_INTRODUCTION_CHARS = 64 * 1024

MESSAGE_TYPE_URI = "http://uri.etsi.org/19522/v1#/ERDMessageType/"
EVENT_URI = "http://uri.etsi.org/19522/Event/"
REASON_URI = "http://uri.etsi.org/19522/EventReason/"
RECEIPT, DISPATCH = "receipt", "dispatch"
MESSAGE_TYPES = (RECEIPT, DISPATCH)
# REM-MetadataVersion values read (ETSI EN 319 532-3 v1.2.1, the version AgID's rules name)
KNOWN_METADATA_VERSIONS = ("EN31953203V010201",)
_VERSION = re.compile(r"^EN31953203V(\d\d)(\d\d)(\d\d)$", re.I)

SECTION_INTRODUCTION = "rem_message/introduction"
SECTION_ORIGINAL = "rem_message/original"
SECTION_EVIDENCE = "rem_message/xml_evidence"

# PEC_FORMAT §10, "Mapping to pecflow's kinds". RelayToNonERDS (handed to ordinary e-mail: no
# delivery receipt will follow) is the REM form of a PEC accettazione for an external
# recipient: kind accettazione, its recipients typed "esterno" (docs/pec-format.md, REM).
RECEIPT_KINDS = {
    "SubmissionAcceptance": kinds.ACCETTAZIONE,
    "SubmissionRejection": kinds.NON_ACCETTAZIONE,
    "RelayAcceptance": kinds.PRESA_IN_CARICO,
    "ContentConsignment": kinds.AVVENUTA_CONSEGNA,
    "ContentConsignmentFailure": kinds.ERRORE_CONSEGNA,
    "RelayRejection": kinds.ERRORE_CONSEGNA,
    "RelayFailure": kinds.ERRORE_CONSEGNA,
    "RelayToNonERDSFailure": kinds.ERRORE_CONSEGNA,
    "RelayToNonERDS": kinds.ACCETTAZIONE,
}
DISPATCH_KINDS = {
    "SubmissionAcceptance": kinds.POSTA_CERTIFICATA,
    "ReceivedFromNonERDS": kinds.ANOMALIA,
}
EVENTS = frozenset((*RECEIPT_KINDS, *DISPATCH_KINDS))
RELAY_TO_NON_ERDS = "RelayToNonERDS"
# events about one recipient (or the recipients at one provider), not the whole message
PER_RECIPIENT_EVENTS = frozenset(
    {
        "RelayAcceptance",
        "RelayRejection",
        "RelayFailure",
        "ContentConsignment",
        "ContentConsignmentFailure",
        "RelayToNonERDS",
        "RelayToNonERDSFailure",
    }
)

# reason -> (Italian, English): what an office worker reads beside a failed or refused job
REASONS: dict[str, tuple[str, str]] = {
    "MessageAccepted": ("messaggio accettato", "message accepted"),
    "MessageConsignedToRecipient": (
        "messaggio consegnato al destinatario",
        "message delivered to the recipient",
    ),
    "S_ERDS_MessageSuccessfullyRelayed": (
        "messaggio inoltrato al gestore del destinatario",
        "message relayed to the recipient's provider",
    ),
    "MessageRelayedToNonERDS": (
        "messaggio inoltrato a un indirizzo di posta ordinaria (non REM): nessuna ricevuta di consegna seguirà",
        "message relayed to an ordinary (non-REM) e-mail address: no delivery receipt will follow",
    ),
    "MessageReceivedFromNonERDS": (
        "messaggio ricevuto da un sistema di posta ordinaria (non REM)",
        "message received from an ordinary (non-REM) e-mail system",
    ),
    "InvalidMessageFormat": ("formato del messaggio non valido", "invalid message format"),
    "MalwareFound": ("virus (malware) trovato nel messaggio", "malware found in the message"),
    "S_ERDS_PolicyViolation": (
        "il messaggio viola le regole del gestore del mittente (es. dimensione massima superata)",
        "the message breaks the sender provider's policy (e.g. maximum size exceeded)",
    ),
    "S_ERDS_Malfunction": (
        "malfunzionamento del gestore del mittente",
        "malfunction of the sender's provider",
    ),
    "UnknownRecipient": ("destinatario sconosciuto", "unknown recipient"),
    "R_ERDS_MessageRejected": (
        "rifiutato dal gestore del destinatario: formato del messaggio non valido",
        "rejected by the recipient's provider: invalid message format",
    ),
    "R_ERDS_MessageRejectedForMalware": (
        "rifiutato dal gestore del destinatario: virus (malware) nel messaggio",
        "rejected by the recipient's provider: malware in the message",
    ),
    "R_ERDS_MessageRejectedForInvalidSignature": (
        "rifiutato dal gestore del destinatario: firma del gestore non valida",
        "rejected by the recipient's provider: invalid provider signature",
    ),
    "R_ERDS_MessageRejectedForInvalidCertificate": (
        "rifiutato dal gestore del destinatario: certificato di firma scaduto o revocato",
        "rejected by the recipient's provider: signing certificate expired or revoked",
    ),
    "R_ERDS_PolicyViolation": (
        "rifiutato dal gestore del destinatario: regole del gestore violate (es. dimensione, allegati)",
        "rejected by the recipient's provider: its policy is broken (e.g. size, attachments)",
    ),
    "R_ERDS_Malfunction": (
        "non inoltrato: malfunzionamento del gestore del destinatario",
        "not relayed: the recipient's provider is malfunctioning",
    ),
    "R_ERDS_NotIdentified": (
        "non inoltrato: gestore del destinatario non identificato",
        "not relayed: the recipient's provider could not be identified",
    ),
    "R_ERDS_Unreachable": (
        "non inoltrato: gestore del destinatario irraggiungibile",
        "not relayed: the recipient's provider is unreachable",
    ),
    "MessageNotAcceptedForUnregisteredRecipient": (
        "rifiutato: destinatario non registrato presso il suo gestore",
        "refused: the recipient is not registered with its provider",
    ),
    "S_ERDSP_ReceivedNoRelayAcceptanceInfoFromR_ERDSP": (
        "nessuna conferma di presa in carico dal gestore del destinatario nei tempi previsti",
        "no relay acceptance from the recipient's provider within the time allowed",
    ),
    "S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP": (
        "mancata consegna per superamento dei tempi massimi: nessuna notizia di consegna dal gestore del destinatario",
        "not delivered within the maximum time: no delivery information from the recipient's provider",
    ),
    "MessageNotConsignedForQuota": (
        "non consegnato: casella del destinatario piena",
        "not delivered: the recipient's mailbox is full",
    ),
    "MessageNotConsignedForMalfunction": (
        "non consegnato: malfunzionamento tecnico",
        "not delivered: technical malfunction",
    ),
    "MessageNotConsignedForUnallowedType": (
        "non consegnato: tipo di messaggio non accettato dal destinatario",
        "not delivered: message type not accepted by the recipient",
    ),
    "MessageNotConsignedForUnregisteredRecipient": (
        "non consegnato: destinatario non registrato presso il suo gestore",
        "not delivered: the recipient is not registered with its provider",
    ),
    "ExternalSystemUnreachable": (
        "il sistema di posta esterno (non REM) è irraggiungibile",
        "the external (non-REM) mail system is unreachable",
    ),
    "MessageRejectedByExternalSystem": (
        "rifiutato dal sistema di posta esterno (non REM)",
        "rejected by the external (non-REM) mail system",
    ),
    "RelayToNonERDSNotAllowed": (
        "l'inoltro a indirizzi di posta ordinaria (non REM) non è consentito dal gestore",
        "relaying to ordinary (non-REM) e-mail addresses is not allowed by the provider",
    ),
}
# reason -> daticert `errore` equivalent, for failures
_NO_DEST = frozenset(
    {
        "UnknownRecipient",
        "MessageNotAcceptedForUnregisteredRecipient",
        "MessageNotConsignedForUnregisteredRecipient",
    }
)


def reason_text(reason: str | None) -> str | None:
    """The reason explained, Italian then English, with its code: "… / … (Reason)"."""
    if not reason:
        return None
    known = REASONS.get(reason)
    if known is None:
        return f"motivo non descritto / reason not described ({reason})"
    return f"{known[0]} / {known[1]} ({reason})"


def errore_for(reason: str | None) -> str:
    """The daticert `errore` value a failure with this reason corresponds to."""
    if reason in _NO_DEST:
        return "no-dest"
    if reason and "malware" in reason.lower():
        return "virus"
    return "altro"


def last_segment(uri: str | None) -> str | None:
    """`SubmissionAcceptance` from `http://uri.etsi.org/19522/Event/SubmissionAcceptance`."""
    if uri is None:
        return None
    value = uri.strip().rstrip("/")
    for sep in ("/", "#"):
        value = value.rpartition(sep)[2]
    return value or None


def _version(value: str) -> tuple[int, ...] | None:
    found = _VERSION.match(value.strip())
    return tuple(map(int, found.groups())) if found else None


def newer_version(value: str) -> bool:
    """True when REM-MetadataVersion names a version later than those known."""
    version = _version(value)
    known = [v for v in map(_version, KNOWN_METADATA_VERSIONS) if v is not None]
    return version is not None and version > max(known)


# -- the evidence -----------------------------------------------------------------------------
class EvidenceError(ValueError):
    """The evidence XML could not be read at all (not XML, too big, forbidden construct)."""


@dataclass(frozen=True, slots=True)
class Party:
    """A sender or recipient as the evidence names it: its e-mail address and the identity
    attributes (eIDAS SAML attributes: FriendlyName → value) where the provider gives them."""

    address: str | None
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # last segment of the reason URI
    details: tuple[str, ...] = ()  # e.g. ("RD04", "Not consigned for excessing recipient quota")


@dataclass(frozen=True, slots=True)
class Evidence:
    """An ETSI EN 319 522 evidence: the REM counterpart of daticert.xml."""

    version: str | None
    evidence_id: str | None
    event: str | None  # last segment of ERDSEventId
    reasons: tuple[Reason, ...] = ()
    time: datetime | None = None  # EventTime
    issuer: str | None = None  # the issuing provider's legal name
    policies: tuple[str, ...] = ()
    sender: Party | None = None
    recipients: tuple[Party, ...] = ()
    refers_to_recipient: int | None = None  # 1-based index into recipients
    relay_refers_to: tuple[int, ...] = ()  # RelayEvidenceInfo extension: 1-based, the relay's recipients
    submission_time: datetime | None = None
    message_identifier: str | None = None  # the provider's id of the REM message
    ua_message_id: str | None = None  # AppLayerIdentifier: the sender's own Message-ID
    digest_algorithm: str | None = None
    digest_value: str | None = None  # of the original
    subject: str | None = None  # the original's subject (Extensions)
    forwarded_to: str | None = None  # ForwardedToExternalSystem (non-REM relays)
    external_provider: str | None = None  # ExternalERDSDetails legal name
    signed: bool = False  # carries its own ds:Signature (XAdES; not verified here)
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def reason(self) -> str | None:
        return self.reasons[0].code if self.reasons else None

    @property
    def code(self) -> str | None:
        """The Policy-IT code in the reason details (RA01, RD04, RF01, ...), when there is one."""
        for reason in self.reasons:
            for detail in reason.details:
                if _POLICY_CODE.fullmatch(detail):
                    return detail
        return None


_POLICY_CODE = re.compile(r"R[A-Z]\d\d")


def _time(value: str | None, what: str, problems: list[str]) -> datetime | None:
    if not value:
        return None
    text = value.strip()
    try:
        found = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        problems.append(f"REM evidence: unreadable {what} {_clip(text)!r}")
        return None
    if found.tzinfo is None:
        problems.append(f"REM evidence: {what} {_clip(text)!r} has no time zone")
        return None
    return found


def _party(node: safexml.Node) -> Party:
    address = None
    for ident in node.findall("Identifier"):
        if ident.attrs.get("IdentifierSchemeName", "mailto").lower() == "mailto" and ident.text:
            address = ident.text
            break
    attributes = []
    identity = node.find("Identity")
    if identity is not None:
        for attr in identity.findall("Attribute"):
            name = attr.attrs.get("FriendlyName") or last_segment(attr.attrs.get("Name")) or "?"
            for value in attr.findall("AttributeValue"):
                if value.text:
                    attributes.append((name, value.text))
    return Party(address, tuple(attributes))


def _legal_name(node: safexml.Node | None) -> str | None:
    if node is None:
        return None
    for attr in node.iter("Attribute"):
        if attr.attrs.get("FriendlyName") == "LegalName" or (attr.attrs.get("Name") or "").endswith(
            "/LegalName"
        ):
            value = attr.findtext("AttributeValue")
            if value:
                return value
    return None


def parse_evidence(data: bytes) -> Evidence:
    """Read an evidence XML. Raises `EvidenceError` only when it is unreadable."""
    try:
        root = safexml.parse(data, max_bytes=MAX_EVIDENCE_BYTES, max_depth=32, max_nodes=20_000)
    except safexml.XmlError as exc:
        raise EvidenceError(f"REM evidence: {exc}") from None
    problems: list[str] = []
    if root.tag != "Evidence":
        problems.append(f"REM evidence: root element is <{_clip(root.tag)}>, expected <Evidence>")
    event_uri = root.findtext("ERDSEventId")
    if not event_uri:
        problems.append("REM evidence: <ERDSEventId> missing")
    reasons = []
    for node in root.findall("EventReasons"):
        for item in node.findall("EventReason"):
            code = last_segment(item.findtext("Code"))
            if code:
                reasons.append(Reason(code, tuple(d.text for d in item.findall("Details") if d.text)))
    refers = root.findtext("EvidenceRefersToRecipient")
    refers_to = int(refers) if refers and refers.isdigit() and len(refers) < 6 else None
    if refers and refers_to is None:
        problems.append(f"REM evidence: unreadable EvidenceRefersToRecipient {_clip(refers)!r}")
    recipients = tuple(_party(n) for n in root.findall("RecipientDetails"))
    if refers_to is not None and not 1 <= refers_to <= len(recipients):
        problems.append(f"REM evidence: EvidenceRefersToRecipient {refers_to} names no recipient")
        refers_to = None
    sender_node = root.find("SenderDetails")
    content = root.find("UserContentInfo")
    part_info = content.find("PartsInfo/PartInfo") if content is not None else None
    digest_method = part_info.find("DigestMethod") if part_info is not None else None
    policies = root.find("EvidenceIssuerPolicyID")
    extension_subject = None
    for ext in root.iter("GeneralEvidenceInfo"):
        extension_subject = ext.findtext("Subject") or None
        break
    evidence = Evidence(
        version=root.attrs.get("version"),
        evidence_id=root.findtext("EvidenceIdentifier") or None,
        event=last_segment(event_uri),
        reasons=tuple(reasons),
        time=_time(root.findtext("EventTime"), "EventTime", problems),
        issuer=_legal_name(root.find("EvidenceIssuerDetails")),
        policies=tuple(n.text for n in policies.findall("PolicyID") if n.text)
        if policies is not None
        else (),
        sender=_party(sender_node) if sender_node is not None else None,
        recipients=recipients,
        refers_to_recipient=refers_to,
        relay_refers_to=_relay_refers_to(root, len(recipients), problems),
        submission_time=_time(root.findtext("SubmissionTime"), "SubmissionTime", problems),
        message_identifier=root.findtext("MessageIdentifier") or None,
        ua_message_id=(content.findtext("AppLayerIdentifier") or None) if content is not None else None,
        digest_algorithm=digest_method.attrs.get("Algorithm") if digest_method is not None else None,
        digest_value=(part_info.findtext("DigestValue") or None) if part_info is not None else None,
        subject=extension_subject,
        forwarded_to=root.findtext("ForwardedToExternalSystem") or None,
        external_provider=_legal_name(root.find("ExternalERDSDetails")),
        signed=root.find("Signature") is not None,
    )
    if evidence.evidence_id is None:
        problems.append("REM evidence: <EvidenceIdentifier> missing")
    if not reasons:
        problems.append("REM evidence: no <EventReason>")
    return replace(evidence, problems=tuple(problems)) if problems else evidence


# how `attribution` found the recipients an event concerns
REFERS_TO, RELAY_REFERS_TO, FORWARDED_TO, ONLY_LISTED, ALL_LISTED = (
    "refers-to",  # EvidenceRefersToRecipient: one recipient
    "relay-refers-to",  # the RelayEvidenceInfo extension: the recipients of one relay
    "forwarded-to",  # ForwardedToExternalSystem: the recipients whose domain that host serves
    "only-listed",  # the evidence lists one recipient
    "all-listed",  # nothing says which: every recipient the evidence lists (a fallback)
)


def attribution(evidence: Evidence) -> tuple[tuple[str, ...], str]:
    """The recipients a per-recipient event concerns, and how the evidence says so: the one
    EvidenceRefersToRecipient points to; else the recipients of the relay the RelayEvidenceInfo
    extension lists (AgID's relay evidences carry it: a relay concerns the recipients at one
    provider, and the evidence lists all the message's); else, for a relay to a non-REM system,
    the recipients whose domain the external host (ForwardedToExternalSystem) belongs to; else
    every recipient the evidence lists (ALL_LISTED: a fallback the caller should report)."""
    addresses = [p.address for p in evidence.recipients if p.address]
    if evidence.refers_to_recipient is not None:
        address = evidence.recipients[evidence.refers_to_recipient - 1].address
        return ((address,) if address else ()), REFERS_TO
    relayed = [evidence.recipients[i - 1].address for i in evidence.relay_refers_to]
    if any(relayed):
        return tuple(dict.fromkeys(a for a in relayed if a)), RELAY_REFERS_TO
    host = (evidence.forwarded_to or "").strip().lower()
    if host and " " not in host:
        matching = [a for a in addresses if _host_serves(host, a.rpartition("@")[2].lower())]
        if matching:
            return tuple(matching), FORWARDED_TO
    return tuple(addresses), ONLY_LISTED if len(addresses) == 1 else ALL_LISTED


def concerned(evidence: Evidence) -> tuple[str, ...]:
    """The recipients a per-recipient event concerns (`attribution`, without the how)."""
    return attribution(evidence)[0]


def _relay_refers_to(root: safexml.Node, recipients: int, problems: list[str]) -> tuple[int, ...]:
    """The RelayEvidenceInfo extension's RelayEvidenceRefersTo indexes (1-based, into the
    recipients), at most 1000; one naming no recipient is reported and left out."""
    found: list[int] = []
    for info in root.iter("RelayEvidenceInfo"):
        for node in info.findall("RelayEvidenceRefersTo")[:1000]:
            text = (node.text or "").strip()
            index = int(text) if text.isdigit() and len(text) < 6 else None
            if index is None or not 1 <= index <= recipients:
                problems.append(f"REM evidence: RelayEvidenceRefersTo {_clip(text)!r} names no recipient")
            elif index not in found:
                found.append(index)
        break
    return tuple(found)


def _host_serves(host: str, domain: str) -> bool:
    return bool(domain) and (host == domain or host.endswith("." + domain) or host.endswith("-" + domain))


# -- the sections of a REM message --------------------------------------------------------------
class Sections(mime.SignedLayout):
    """Where a REM message keeps its parts (None: not found): by REM-Section-Type first, then
    by the names AgID's examples use."""

    __slots__ = ("introduction", "original", "evidence", "_evidence_by_name", "_original_by_type")

    def __init__(self, root: mime.Part) -> None:
        self.introduction: mime.Part | None = None
        self.original: mime.Part | None = None
        self.evidence: mime.Part | None = None
        self._evidence_by_name: mime.Part | None = None
        self._original_by_type: mime.Part | None = None
        super().__init__(root)
        self.evidence = self.evidence or self._evidence_by_name
        self.original = self.original or self._original_by_type

    def claim(self, part: mime.Part, leaf: bool) -> bool:
        section = (part.headers.get("rem-section-type") or "").strip().lower()
        if section == SECTION_INTRODUCTION and self.introduction is None:
            self.introduction = part  # a multipart/alternative: taken whole
            return True
        if not leaf:
            return False
        filename = part.filename or ""
        if section == SECTION_EVIDENCE:
            self.evidence = self.evidence or part
        elif section == SECTION_ORIGINAL or filename == "AttachedMimeMessage":
            self.original = self.original or part
        elif part.content_type == "message/rfc822":
            self._original_by_type = self._original_by_type or part
        elif filename.endswith(".xml") and filename[:-4] in EVENTS:
            self._evidence_by_name = self._evidence_by_name or part
        return True


def survey(root: mime.Part) -> Sections:
    """The REM sections of the message under `root`."""
    return Sections(root)


def introduction_text(part: mime.Part) -> str | None:
    """The introduction's plain text (its HTML only when there is no plain text), bounded."""
    html = None
    for leaf in part.walk():
        if leaf.content_type == "text/plain":
            return leaf.text()[:MAX_INTRODUCTION_CHARS].strip() or None
        if leaf.content_type == "text/html" and html is None:
            html = leaf
    if html is None:
        return None
    return re.sub(r"<[^>]*>", "", html.text()[:MAX_INTRODUCTION_CHARS]).strip() or None


@dataclass(frozen=True, slots=True)
class RemInfo:
    """What a REM message says about itself (headers, with the evidence as the authority)."""

    message_type: str | None
    event: str | None
    reason: str | None
    evidence_id: str | None = None
    ua_message_id: str | None = None
    policies: tuple[str, ...] = ()
    metadata_version: str | None = None
    digest_algorithm: str | None = None
    digest_value: str | None = None
    code: str | None = None  # Policy-IT code (RA01, RD04, ...)
    concerns: tuple[str, ...] = ()  # per-recipient events: the recipients concerned
    introduction: str | None = field(default=None, repr=False)
    evidence: Evidence | None = field(default=None, repr=False)

    @property
    def reason_text(self) -> str | None:
        return reason_text(self.reason)

    def to_dict(self) -> dict[str, object]:
        ev = self.evidence
        return {
            "event": self.event,
            "message_type": self.message_type,
            "reason": self.reason,
            "reason_text": self.reason_text,
            "code": self.code,
            "evidence_id": self.evidence_id,
            "ua_message_id": self.ua_message_id,
            "policies": list(self.policies),
            "metadata_version": self.metadata_version,
            "digest_algorithm": self.digest_algorithm,
            "digest_value": self.digest_value,
            "concerns": list(self.concerns),
            "evidence": None
            if ev is None
            else {
                "version": ev.version,
                "issuer": ev.issuer,
                "time": ev.time.isoformat() if ev.time else None,
                "message_identifier": ev.message_identifier,
                "sender": _party_dict(ev.sender),
                "recipients": [_party_dict(p) for p in ev.recipients],
                "forwarded_to": ev.forwarded_to,
                "external_provider": ev.external_provider,
                "signed": ev.signed,
            },
        }


def _party_dict(party: Party | None) -> dict[str, object] | None:
    if party is None:
        return None
    return {"address": party.address, "attributes": [list(a) for a in party.attributes]}


def _clip(value: str, size: int = 100) -> str:
    return value if len(value) <= size else value[:size] + "…"
