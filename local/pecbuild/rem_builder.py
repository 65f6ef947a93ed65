"""REM message builder (ETSI EN 319 532-4, AgID REM Policy-IT): receipts and dispatches shaped
as AgID's example messages, for the repository's own fixtures, the corpus and the simulator.

Every REM message is

    multipart/signed (application/pkcs7-signature, provider signature with the test CA)
    ├── multipart/mixed                                  <- signed, byte for byte, exactly as sent
    │   ├── multipart/alternative  REM-Section-Type: rem_message/introduction (Italian + English)
    │   ├── message/rfc822 AttachedMimeMessage  REM-Section-Type: rem_message/original (dispatches)
    │   └── application/xml <Event>.xml  REM-Section-Type: rem_message/xml_evidence (EN 319 522-2)
    └── application/pkcs7-signature smime.p7s

with the REM-* header fields at the top (MessageType, EventIdentifier, ReasonIdentifier,
UAMessageIdentifier = the client's Message-ID, Evidence-ID, digest of the original,
ApplicablePolicy, MetadataVersion). Receipts carry no original, as in AgID's examples.

The evidence carries an enveloped XAdES-B `ds:Signature` made by signxml with the provider's key
(references to the evidence, its SignedProperties and KeyInfo; C14N 1.1; RSA-SHA256; QualifyingProperties with SigningTime and SigningCertificateV2): one a validator
accepts (pecflow.pec.xades), as the message's S/MIME signature is.

All output uses CRLF line endings and is deterministic given the same inputs and signer.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape as html_escape
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from local.pecbuild.builder import (
    CRLF,
    Firma,
    Gestore,
    _aware,
    _base64,
    _confine,
    _crlf,
    _entita,
    _firma,
    _indirizzi,
    _leggi,
    _Letto,
    _multipart,
    _oggetto,
    _qp,
)
from pecflow.pec import kinds

__all__ = [
    "DISPATCH",
    "EVENTS",
    "METADATA_VERSION",
    "REASONS",
    "RECEIPT",
    "RECEIPT_KINDS",
    "REM_ALTRO",
    "REM_SIMULATO",
    "WELL_FORMED",
    "Deviations",
    "Reason",
    "digest_of",
    "rem_dispatch",
    "rem_identifier",
    "rem_receipt",
    "rem_service_address",
]

RECEIPT, DISPATCH = "receipt", "dispatch"
MESSAGE_TYPE_URI = "http://uri.etsi.org/19522/v1#/ERDMessageType/"
EVENT_URI = "http://uri.etsi.org/19522/Event/"
REASON_URI = "http://uri.etsi.org/19522/EventReason/"
METADATA_VERSION = "EN31953203V010201"
POLICIES = ("http://uri.etsi.org/19532/v1#/REMbaseline", "https://eidas.agid.gov.it/REM/rem-policy-it")
DIGEST_ALGORITHM = "http://www.w3.org/2001/04/xmlenc#sha256"

REM_SIMULATO = Gestore("pecflow Gestore REM Simulato S.p.A.", "rem.simulato.test")
REM_ALTRO = Gestore("Altro Gestore REM S.p.A.", "rem.altro.test")

# PEC_FORMAT.md §10: the pecflow kind each REM message maps to. RelayToNonERDS is the REM form
# of an accettazione for an external recipient (no delivery receipt follows).
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
DISPATCH_KINDS = {"SubmissionAcceptance": kinds.POSTA_CERTIFICATA, "ReceivedFromNonERDS": kinds.ANOMALIA}


@dataclass(frozen=True, slots=True)
class Reason:
    """An ETSI EN 319 522 event reason as AgID's examples use it: its REM Policy-IT code and texts."""

    name: str  # last segment of the reason URI
    code: str  # REM Policy-IT code (RA01, RB21, ...)
    en: str
    it: str

    @property
    def uri(self) -> str:
        return REASON_URI + self.name


_REASONS = (
    Reason("MessageAccepted", "RA01", "Message accepted", "Messaggio accettato"),
    Reason("InvalidMessageFormat", "RA02", "Invalid message format", "Formato del messaggio non valido"),
    Reason("MalwareFound", "RA03", "Malware found in ERD original message", "Rilevato malware nel messaggio"),
    Reason(
        "S_ERDS_PolicyViolation",
        "RA05",
        "Sender's ERDS provider's policy violation, e.g.: max message size exceeded",
        "Violazione delle regole del gestore del mittente (ad es. dimensione massima superata)",
    ),
    Reason(
        "S_ERDS_Malfunction",
        "RA51",
        "Sender's ERDSP malfunction",
        "Malfunzionamento del gestore del mittente",
    ),
    Reason(
        "S_ERDS_MessageSuccessfullyRelayed",
        "RB01",
        "ERD message successfully relayed to the Recipient's ERDSP",
        "Messaggio inoltrato con successo al gestore del destinatario",
    ),
    Reason(
        "R_ERDS_MessageRejected",
        "RB02",
        "Rejected by the Recipient's ERDSP for: Invalid message format",
        "Rifiutato dal gestore del destinatario: formato del messaggio non valido",
    ),
    Reason(
        "R_ERDS_MessageRejectedForMalware",
        "RB03",
        "Rejected by the Recipient's ERDSP for: Malware found in ERD message",
        "Rifiutato dal gestore del destinatario: rilevato malware nel messaggio",
    ),
    Reason(
        "R_ERDS_MessageRejectedForInvalidSignature",
        "RB04",
        "Rejected by the Recipient's ERDSP for: Invalid ERDS signature",
        "Rifiutato dal gestore del destinatario: firma del gestore non valida",
    ),
    Reason(
        "R_ERDS_MessageRejectedForInvalidCertificate",
        "RB05",
        "Rejected by the Recipient's ERDSP for: ERDS signing certificate expired or revoked",
        "Rifiutato dal gestore del destinatario: certificato di firma scaduto o revocato",
    ),
    Reason(
        "R_ERDS_PolicyViolation",
        "RB06",
        "Rejected by the Recipient's ERDSP for: Recipient's ERDSP policy violation",
        "Rifiutato dal gestore del destinatario: violazione delle sue regole",
    ),
    Reason(
        "R_ERDS_Malfunction",
        "RB07",
        "Not relayed to the Recipient's ERDSP for: Recipient's ERDSP malfunction",
        "Non inoltrato: malfunzionamento del gestore del destinatario",
    ),
    Reason(
        "R_ERDS_NotIdentified",
        "RB08",
        "Not relayed to the Recipient's ERDSP for: Recipient's ERDSP not identified",
        "Non inoltrato: gestore del destinatario non individuato",
    ),
    Reason(
        "R_ERDS_Unreachable",
        "RB09",
        "Not relayed to the Recipient's ERDSP for: Recipient's ERDSP unreachable",
        "Non inoltrato: gestore del destinatario non raggiungibile",
    ),
    Reason(
        "UnknownRecipient",
        "RB10",
        "Not relayed to the Recipient's ERDSP for: Unknown Recipient",
        "Non inoltrato: destinatario sconosciuto",
    ),
    Reason(
        "MessageNotAcceptedForUnregisteredRecipient",
        "RB21",
        "Rejected by the Recipient's ERDSP for: Unregistered recipient",
        "Rifiutato dal gestore del destinatario: destinatario non registrato",
    ),
    Reason(
        "S_ERDSP_ReceivedNoRelayAcceptanceInfoFromR_ERDSP",
        "RB22",
        "No information on relay acceptance from the recipient's ERDSP within the given period",
        "Nessuna presa in carico dal gestore del destinatario nei tempi previsti",
    ),
    Reason(
        "MessageConsignedToRecipient",
        "RD01",
        "Message successfully consigned to the recipient",
        "Messaggio consegnato al destinatario",
    ),
    Reason(
        "S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP",
        "RD03",
        "No information on consignment from the recipient's ERDSP within the given period",
        "Nessuna notizia di consegna dal gestore del destinatario nei tempi previsti",
    ),
    Reason(
        "MessageNotConsignedForQuota",
        "RD04",
        "Not consigned for excessing recipient quota",
        "Non consegnato: casella del destinatario piena",
    ),
    Reason(
        "MessageNotConsignedForMalfunction",
        "RD05",
        "Not consigned for technical malfunction",
        "Non consegnato per un malfunzionamento tecnico",
    ),
    Reason(
        "MessageNotConsignedForUnallowedType",
        "RD06",
        "Not consigned for message type not accepted by recipient",
        "Non consegnato: tipo di messaggio non accettato dal destinatario",
    ),
    Reason(
        "MessageNotConsignedForUnregisteredRecipient",
        "RD21",
        "Not consigned for: Unregistered recipient to Recipient's ERDSP",
        "Non consegnato: destinatario non registrato presso il suo gestore",
    ),
    Reason(
        "MessageRelayedToNonERDS",
        "RF01",
        "Successful relay to non ERDS",
        "Inoltrato a un sistema di posta non REM",
    ),
    Reason(
        "ExternalSystemUnreachable",
        "RF02",
        "External system unreachable",
        "Sistema esterno non raggiungibile",
    ),
    Reason(
        "MessageRejectedByExternalSystem",
        "RF03",
        "External system rejected submission",
        "Rifiutato dal sistema esterno",
    ),
    Reason(
        "MessageReceivedFromNonERDS",
        "RF04",
        "Received from non ERDS",
        "Ricevuto da un sistema di posta non REM",
    ),
    Reason(
        "RelayToNonERDSNotAllowed",
        "RF51",
        "Not possible to relay to non ERDS external system due to system configuration",
        "Inoltro verso sistemi di posta non REM non consentito dalla configurazione",
    ),
)
REASONS: dict[str, Reason] = {r.name: r for r in _REASONS}


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    reasons: tuple[str, ...]  # the first is the default
    it: str  # what happened, in the introduction ("il messaggio ... <it>")
    en: str
    by_recipient_provider: bool = False  # issued by the recipient's provider (From, RelayDate)


# why a recipient's provider refuses a message (a relay rejection, or the start of a relay failure's list)
_REFUSED_BY_RECIPIENT_PROVIDER = (
    "MessageNotAcceptedForUnregisteredRecipient",
    "R_ERDS_MessageRejected",
    "R_ERDS_MessageRejectedForMalware",
    "R_ERDS_MessageRejectedForInvalidSignature",
    "R_ERDS_MessageRejectedForInvalidCertificate",
    "R_ERDS_PolicyViolation",
)

EVENTS: dict[str, _Event] = {
    e.name: e
    for e in (
        _Event(
            "SubmissionAcceptance",
            ("MessageAccepted",),
            "è stato accettato dal sistema REM",
            "was accepted by the REM system",
        ),
        _Event(
            "SubmissionRejection",
            ("InvalidMessageFormat", "MalwareFound", "S_ERDS_PolicyViolation", "S_ERDS_Malfunction"),
            "non è stato accettato dal sistema REM",
            "was not accepted by the REM system",
        ),
        _Event(
            "RelayAcceptance",
            ("S_ERDS_MessageSuccessfullyRelayed",),
            "è stato preso in carico dal gestore del destinatario",
            "was accepted for relay by the recipient's provider",
            by_recipient_provider=True,
        ),
        _Event(
            "RelayRejection",
            _REFUSED_BY_RECIPIENT_PROVIDER,
            "è stato rifiutato dal gestore del destinatario",
            "was rejected by the recipient's provider",
            by_recipient_provider=True,
        ),
        _Event(
            "RelayFailure",
            (
                *_REFUSED_BY_RECIPIENT_PROVIDER,
                "R_ERDS_Malfunction",
                "R_ERDS_NotIdentified",
                "R_ERDS_Unreachable",
                "UnknownRecipient",
                "S_ERDSP_ReceivedNoRelayAcceptanceInfoFromR_ERDSP",
            ),
            "non è stato inoltrato al gestore del destinatario",
            "could not be relayed to the recipient's provider",
        ),
        _Event(
            "ContentConsignment",
            ("MessageConsignedToRecipient",),
            "è stato consegnato nella casella del destinatario",
            "was consigned to the recipient's mailbox",
            by_recipient_provider=True,
        ),
        _Event(
            "ContentConsignmentFailure",
            (
                "MessageNotConsignedForQuota",
                "S_ERDSP_ReceivedNoDeliveryInfoFromR_ERDSP",
                "MessageNotConsignedForMalfunction",
                "MessageNotConsignedForUnallowedType",
                "MessageNotConsignedForUnregisteredRecipient",
            ),
            "non è stato consegnato nella casella del destinatario",
            "could not be consigned to the recipient's mailbox",
            by_recipient_provider=True,
        ),
        _Event(
            "ReceivedFromNonERDS",
            ("MessageReceivedFromNonERDS",),
            "è stato ricevuto da un sistema di posta non REM",
            "was received from a non-REM mail system",
        ),
        _Event(
            "RelayToNonERDS",
            ("MessageRelayedToNonERDS",),
            "è stato inoltrato a un sistema di posta non REM: non seguirà una ricevuta di consegna",
            "was relayed to a non-REM mail system: no consignment receipt will follow",
        ),
        _Event(
            "RelayToNonERDSFailure",
            ("ExternalSystemUnreachable", "MessageRejectedByExternalSystem", "RelayToNonERDSNotAllowed"),
            "non è stato inoltrato al sistema di posta non REM",
            "could not be relayed to the non-REM mail system",
        ),
    )
}
# Not in EN 319 522's list for this builder: any other name makes an "unknown event" message
# (allowed only with `Deviations(strict=False)`, for the robustness corpus).


# --- identifiers, digests, addresses ------------------------------------------------------------


def rem_service_address(gestore: Gestore) -> str:
    """The REM provider's system address: From of its receipts and dispatches."""
    return f"rem-service@{gestore.domain}"


def rem_identifier(gestore: Gestore, when: datetime, seed: str) -> str:
    """A REM message or evidence id in the examples' form, `XXXXXXXX.XXXXXXXX.XXXXXXXX.XXXXXXXX.rem-service@domain`
    (no angle brackets); deterministic from its inputs."""
    h = hashlib.sha1(f"{gestore.domain}|{when.isoformat()}|{seed}".encode()).hexdigest().upper()
    return ".".join(h[i : i + 8] for i in range(0, 32, 8)) + "." + rem_service_address(gestore)


def digest_of(original: bytes) -> str:
    """REM-DigestValue: base64 SHA-256 of the original message as submitted (CRLF)."""
    return base64.b64encode(hashlib.sha256(_crlf(original)).digest()).decode("ascii")


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _relay_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC)).replace("-0000", "+0000") + " (UTC)"


# --- the evidence (ETSI EN 319 522-2) --------------------------------------------------------------

_NS = (
    'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
    'xmlns:elp="http://eidas.europa.eu/attributes/legalperson" '
    'xmlns:enp="http://eidas.europa.eu/attributes/naturalperson" '
    'xmlns:ext="http://uri.etsi.org/19532/v1#" '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
    'xmlns:tns="http://uri.etsi.org/19522/v1#"'
)
_SAML_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def _x(text: str) -> str:
    return xml_escape(text, {'"': "&quot;"})


def _attribute(person: str, friendly: str, value: str) -> str:
    kind = "elp" if person == "legalperson" else "enp"
    return (
        f'<saml:Attribute FriendlyName="{friendly}" Name="http://eidas.europa.eu/attributes/{person}/{friendly}"'
        f' NameFormat="{_SAML_URI}"><saml:AttributeValue {_XSI} xsi:type="{kind}:{friendly}Type">'
        f"{_x(value)}</saml:AttributeValue></saml:Attribute>"
    )


def _person_id(address: str) -> str:
    """A pseudonymous eIDAS PersonIdentifier (IT/IT/<hash>) for a test mailbox."""
    return "IT/IT/" + hashlib.sha256(address.lower().encode()).hexdigest().upper()


def _evidence_body(
    *,
    event: str,
    reason: Reason,
    evidence_id: str,
    message_id: str,
    when: datetime,
    gestore: Gestore,
    sender: str,
    recipients: Sequence[str],
    refers_to: str | None,
    ua_message_id: str,
    digest: str,
    subject: str,
) -> str:
    # recipients outside REM (RelayToNonERDS*) have no identity attributes, as in the examples
    registered = not event.startswith("RelayToNonERDS")
    recipients_xml = "".join(
        "<tns:RecipientDetails>"
        + (
            "<tns:Identity>"
            + _attribute("naturalperson", "PersonIdentifier", _person_id(r))
            + "</tns:Identity>"
            if registered
            else ""
        )
        + f'<Identifier IdentifierSchemeName="mailto">{_x(r)}</Identifier></tns:RecipientDetails>'
        for r in recipients
    )
    lower = [r.lower() for r in recipients]
    refers_xml = (
        f"<EvidenceRefersToRecipient>{lower.index(refers_to.lower()) + 1}</EvidenceRefersToRecipient>"
        if refers_to is not None and refers_to.lower() in lower
        else ""
    )
    return (
        f"<tns:EvidenceIdentifier>{_x(evidence_id)}</tns:EvidenceIdentifier>"
        f"<tns:ERDSEventId>{EVENT_URI}{_x(event)}</tns:ERDSEventId>"
        f"<tns:EventReasons><tns:EventReason><Code>{_x(reason.uri)}</Code>"
        f"<Details>{reason.code}</Details><Details>{_x(reason.en)}</Details></tns:EventReason></tns:EventReasons>"
        f"<EventTime>{_utc(when)}</EventTime>"
        "<tns:EvidenceIssuerPolicyID>"
        + "".join(f"<PolicyID>{p}</PolicyID>" for p in (POLICIES[0], POLICIES[1] + "#evidence-issuer-policy"))
        + "</tns:EvidenceIssuerPolicyID>"
        "<tns:EvidenceIssuerDetails><tns:Identity>"
        + _attribute("legalperson", "LegalName", gestore.name)
        + "</tns:Identity></tns:EvidenceIssuerDetails>"
        "<tns:SenderDetails><tns:Identity>"
        + _attribute("naturalperson", "PersonIdentifier", _person_id(sender))
        + f'</tns:Identity><Identifier IdentifierSchemeName="mailto">{_x(sender)}</Identifier>'
        "<AssuranceLevelsDetails><GlobalAssuranceLevel>"
        "<AssuranceLevel>http://eidas.europa.eu/LoA/substantial</AssuranceLevel>"
        f"<PolicyID>{POLICIES[1]}#assurance-level-policy</PolicyID>"
        "</GlobalAssuranceLevel></AssuranceLevelsDetails></tns:SenderDetails>"
        + recipients_xml
        + f"<tns:SubmissionTime>{_utc(when)}</tns:SubmissionTime>"
        + refers_xml
        + f"<tns:MessageIdentifier>{_x(message_id)}</tns:MessageIdentifier>"
        f"<tns:UserContentInfo><AppLayerIdentifier>{_x(ua_message_id)}</AppLayerIdentifier>"
        "<ComposingParts>1</ComposingParts><tns:PartsInfo><tns:PartInfo>"
        "<Identifier>urn:oid:1.3.6.1.7</Identifier><ContentType>message/rfc822</ContentType>"
        f'<ds:DigestMethod Algorithm="{DIGEST_ALGORITHM}"/><ds:DigestValue>{digest}</ds:DigestValue>'
        "</tns:PartInfo></tns:PartsInfo></tns:UserContentInfo>"
        '<tns:Extensions><tns:Extension isCritical="false"><ext:GeneralEvidenceInfo>'
        f"<ext:Subject>{_x(subject)}</ext:Subject></ext:GeneralEvidenceInfo></tns:Extension></tns:Extensions>"
    )


def _xades_signed(document: str, firma: Firma, when: datetime, sig_id: str) -> bytes:
    """`document` signed in place (enveloped XAdES-B, see the module docstring): deterministic,
    its identifiers drawn from `sig_id` and its SigningTime `when`."""
    from lxml import etree
    from signxml import DigestAlgorithm, SignatureMethod
    from signxml.util import namespaces
    from signxml.xades import XAdESSigner

    class Signer(XAdESSigner):  # type: ignore[misc]
        count = 0

        def _get_token(self, length: int = 4) -> str:
            self.count += 1
            return hashlib.sha256(f"{sig_id}|{self.count}".encode()).hexdigest()[: 2 * length].upper()

        def add_signing_time(self, properties: Any, sig_root: Any, signing_settings: Any) -> None:
            etree.SubElement(properties, f"{{{namespaces.xades}}}SigningTime").text = _utc(when)

    # signxml's default canonicalisation (C14N 1.1): its references to SignedProperties and KeyInfo
    # carry no transform, and a verifier canonicalises them inclusively
    signer = Signer(signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256)
    root = etree.fromstring(document.encode("utf-8"), parser=etree.XMLParser(resolve_entities=False))
    signed = signer.sign(root, key=firma.chiave, cert=[firma.certificato])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8", standalone=False)


def evidence_xml(
    *,
    event: str,
    reason: Reason,
    evidence_id: str,
    message_id: str,
    when: datetime,
    gestore: Gestore,
    firma: Firma,
    sender: str,
    recipients: Sequence[str],
    ua_message_id: str,
    digest: str,
    subject: str,
    refers_to: str | None = None,
    padding_bytes: int = 0,
) -> bytes:
    """The evidence document, signed (see `_xades_signature`). `padding_bytes` > 0 adds a
    non-critical extension of that size (the robustness corpus's huge evidence)."""
    body = _evidence_body(
        event=event,
        reason=reason,
        evidence_id=evidence_id,
        message_id=message_id,
        when=when,
        gestore=gestore,
        sender=sender,
        recipients=recipients,
        refers_to=refers_to,
        ua_message_id=ua_message_id,
        digest=digest,
        subject=subject,
    )
    if padding_bytes:
        body += (
            '<tns:Extensions><tns:Extension isCritical="false"><ext:Padding>'
            + "A" * padding_bytes
            + "</ext:Padding></tns:Extension></tns:Extensions>"
        )
    sig_id = "id-" + hashlib.md5(evidence_id.encode(), usedforsecurity=False).hexdigest()
    return _xades_signed(
        f'<tns:Evidence {_NS} version="EN319522v1.1.1">{body}</tns:Evidence>', firma, when, sig_id
    )


# --- MIME parts --------------------------------------------------------------------------------------


def _quando(when: datetime) -> tuple[str, str]:
    zona = when.strftime("%z")
    return (
        f"Il giorno {when:%d-%m-%Y} alle ore {when:%H:%M:%S} ({zona})",
        f"On {when:%d-%m-%Y} at {when:%H:%M:%S} ({zona})",
    )


def _introduction(
    *,
    message_type: str,
    event: _Event,
    reason: Reason,
    when: datetime,
    subject: str,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    gestore: Gestore,
    seed: str,
    with_original: bool,
) -> bytes:
    quando_it, quando_en = _quando(when)
    if message_type == DISPATCH:
        titolo_it, titolo_en = "Messaggio REM", "REM Dispatch"
    else:
        titolo_it, titolo_en = f"Ricevuta di {event.name}", f"Receipt of {event.name}"
    it = [
        titolo_it,
        quando_it,
        f'il messaggio: "{subject}" inviato da "{sender}"',
        "ed indirizzato a:",
        *recipients,
        "",
        f"{event.it} (Codice {reason.code}: {reason.it}).",
        *(["Il messaggio originale è incluso in allegato."] if with_original else []),
        "",
        f'Identificativo messaggio: "{message_id}"',
        f'REM service provider: "{gestore.name}".',
    ]
    en = [
        titolo_en,
        quando_en,
        f'the message: "{subject}" sent by "{sender}"',
        "and addressed to:",
        *recipients,
        "",
        f"{event.en} (Code {reason.code}: {reason.en}).",
        *(["The original message is attached."] if with_original else []),
        "",
        f'Message identifier: "{message_id}"',
        f'REM service provider: "{gestore.name}".',
    ]
    testo = "\n".join([*it, "", "-" * 60, "", *en]) + "\n"
    html = (
        "<h1>"
        + html_escape(titolo_it)
        + "</h1>\n<p>"
        + "<br>\n".join(html_escape(r) for r in it[1:])
        + "</p>\n"
        "<hr/>\n<h1>" + html_escape(titolo_en) + "</h1>\n<p>" + "<br>\n".join(html_escape(r) for r in en[1:])
    ) + "</p>\n"
    parti = [
        _entita(
            ['Content-Type: text/plain;\r\n\tcharset="UTF-8"', "Content-Transfer-Encoding: quoted-printable"],
            _qp(testo, "utf-8", "strict"),
        ),
        _entita(
            ['Content-Type: text/html;\r\n\tcharset="UTF-8"', "Content-Transfer-Encoding: quoted-printable"],
            _qp(html, "utf-8", "strict"),
        ),
    ]
    tipo, corpo = _multipart(
        "alternative", parti, _confine(seed + "|alt", parti, lambda h: f"----=_Alt_{h[:24]}")
    )
    return _entita(["REM-Section-Type: rem_message/introduction", f"Content-Type: {tipo}"], corpo)


def _evidence_part(name: str, xml: bytes) -> bytes:
    return _entita(
        [
            f'Content-Type: application/xml; charset=UTF-8; name="{name}.xml"',
            "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment; filename="{name}.xml"',
            "REM-Section-Type: rem_message/xml_evidence",
        ],
        _base64(xml),
    )


_TO_NON_ERDS = "REM-RelayToNonERDS: evidence-required"  # the dispatch goes to ordinary mail too


def _attached(orig: _Letto, message_id: str, ua_message_id: str, to_non_erds: bool = False) -> bytes:
    """The original as the dispatch carries it: Message-ID replaced by the REM message id, the
    client's Message-ID kept in REM-UAMessageIdentifier (AgID's examples)."""
    campi = [raw for name, raw in orig.campi if name not in ("message-id", "rem-uamessageidentifier")]
    at = next((i for i, (name, _) in enumerate(orig.campi) if name == "message-id"), len(campi))
    campi.insert(
        at,
        f"Message-ID: <{message_id}>\r\nREM-UAMessageIdentifier: {ua_message_id}\r\n".encode("ascii")
        + (_TO_NON_ERDS.encode("ascii") + CRLF if to_non_erds else b""),
    )
    return b"".join(campi) + CRLF + orig.corpo


def _original_part(raw: bytes) -> bytes:
    return _entita(
        [
            "Content-Type: message/rfc822; name=AttachedMimeMessage",
            f"Content-Transfer-Encoding: {'7bit' if raw.isascii() else '8bit'}",
            "Content-Disposition: attachment; filename=AttachedMimeMessage",
            "REM-Section-Type: rem_message/original",
        ],
        raw,
    )


def _signed(campi: Sequence[str | bytes], parti: Sequence[bytes], firma: Firma, seed: str) -> bytes:
    """Header fields + multipart/signed over exactly the bytes of the multipart/mixed."""
    tipo, corpo = _multipart(
        "mixed", parti, _confine(seed + "|mixed", parti, lambda h: f"----=_Part_{h[:28]}")
    )
    firmato = _entita([f"Content-Type: {tipo}"], corpo)
    p7s = _entita(
        [
            "Content-Type: application/pkcs7-signature; name=smime.p7s;\r\n\tsmime-type=signed-data",
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="smime.p7s"',
            "Content-Description: S/MIME Cryptographic Signature",
        ],
        _base64(firma.sign(firmato)),
    )
    b = _confine(seed + "|signed", [firmato, p7s], lambda h: "----=_Part_" + h[:30].upper())
    return _entita(
        [
            *campi,
            "MIME-Version: 1.0",
            f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n\tmicalg=sha-256;\r\n\tboundary="{b}"',
        ],
        b"This is a multi-part message in MIME format.\r\n\r\n--"
        + b.encode()
        + CRLF
        + firmato
        + b"\r\n--"
        + b.encode()
        + CRLF
        + p7s
        + b"\r\n--"
        + b.encode()
        + b"--"
        + CRLF,
    )


# --- the messages ---------------------------------------------------------------------------------------

SECTIONS = frozenset({"introduction", "original", "evidence"})


@dataclass(frozen=True, slots=True)
class Deviations:
    """How a REM message departs from a well-formed one, for the robustness corpus: `omit`
    sections (of SECTIONS), replace the `evidence` bytes, pad the evidence with
    `evidence_padding` bytes, make header and evidence disagree (`header_event`,
    `header_reason`), another `metadata_version`, an unknown event or a reason the event does
    not have (`strict=False`)."""

    omit: frozenset[str] = frozenset()
    evidence: bytes | None = None
    evidence_padding: int = 0
    header_event: str | None = None
    header_reason: str | None = None
    metadata_version: str = METADATA_VERSION
    strict: bool = True

    def __post_init__(self) -> None:
        if not self.omit <= SECTIONS:
            raise ValueError(f"omit: unknown sections {sorted(self.omit - SECTIONS)}")


WELL_FORMED = Deviations()


def _rem_message(
    message_type: str,
    event_name: str,
    original: bytes,
    *,
    gestore: Gestore,
    message_id: str,
    data: datetime,
    recipients: Sequence[str] | None,
    recipient: str | None = None,
    reason: str | None = None,
    to: Sequence[str] | None = None,
    firma: Firma | None,
    evidence_id: str | None,
    relay_date: datetime | None,
    deviations: Deviations,
    to_non_erds: bool = False,
) -> bytes:
    _aware(data)
    firma = _firma(gestore, firma)
    event = EVENTS.get(event_name)
    if event is None:
        if deviations.strict:
            raise ValueError(f"unknown REM event {event_name!r}; one of {', '.join(EVENTS)}")
        event = _Event(
            event_name, ("MessageAccepted",), "ha avuto un esito sconosciuto", "had an unknown outcome"
        )
    reason_obj = REASONS[reason or event.reasons[0]]
    if deviations.strict and reason_obj.name not in event.reasons:
        raise ValueError(f"{reason_obj.name} is not a reason of {event.name}")
    orig = _leggi(original)
    ua = orig.message_id or f"<{message_id}>"
    recipients = list(recipients) if recipients is not None else [*orig.to, *orig.cc]
    digest = digest_of(original)
    evidence_id = evidence_id or rem_identifier(
        gestore, data, f"evidence|{message_id}|{event.name}|{recipient}"
    )
    with_original = message_type == DISPATCH
    seed = f"{message_id}|{event.name}|{evidence_id}"

    if message_type == DISPATCH:
        prefix = "EXTERNAL: " if event.name == "ReceivedFromNonERDS" else "REM Dispatch: "
        campi: list[str | bytes] = [
            *orig.ereditati("received", "return-path"),
            *(orig.ereditati("reply-to") or [f"Reply-To: {orig.mittente}"]),
            _per_conto_di_rem(orig.mittente, gestore),
            *orig.ereditati("to", "cc"),
        ]
    else:
        prefix = f"REM {event.name}: "
        campi = [f"From: <{rem_service_address(gestore)}>", _indirizzi("To", list(to or [orig.mittente]))]
    campi += [
        _oggetto(prefix + orig.oggetto),
        f"Date: {format_datetime(data)}",
        f"Message-ID: <{message_id if message_type == DISPATCH else rem_identifier(gestore, data, seed)}>",
        f"REM-MetadataVersion: {deviations.metadata_version}",
    ]
    if relay_date is not None:
        campi.append(f"REM-RelayDate: {_relay_date(relay_date)}")
    campi += [
        *(f"REM-ApplicablePolicy: {p}" for p in POLICIES),
        f"REM-MessageType: {MESSAGE_TYPE_URI}{message_type}",
        f"REM-DigestAlgorithm: {DIGEST_ALGORITHM}",
        f"REM-DigestValue: {digest}",
        f"REM-UAMessageIdentifier: {ua}",
        f"REM-EventIdentifier: {EVENT_URI}{deviations.header_event or event.name}",
        f"REM-Evidence-ID: <{evidence_id}>",
        f"REM-ReasonIdentifier: {REASON_URI}{deviations.header_reason or reason_obj.name}",
        # the original's From, as the examples' REM-MD08 (raw, folding kept)
        *(b"REM-MD08:" + raw[len(b"From:") :] for raw in orig.ereditati("from")[:1]),
    ]
    if to_non_erds:
        campi.append(_TO_NON_ERDS)

    parti = []
    if "introduction" not in deviations.omit:
        parti.append(
            _introduction(
                message_type=message_type,
                event=event,
                reason=reason_obj,
                when=data,
                subject=orig.oggetto,
                sender=orig.mittente,
                recipients=[recipient] if recipient is not None else recipients,
                message_id=message_id,
                gestore=gestore,
                seed=seed,
                with_original=with_original,
            )
        )
    if with_original and "original" not in deviations.omit:
        parti.append(_original_part(_attached(orig, message_id, ua, to_non_erds)))
    if "evidence" not in deviations.omit:
        xml = deviations.evidence or evidence_xml(
            event=event.name,
            reason=reason_obj,
            evidence_id=evidence_id,
            message_id=message_id,
            when=data,
            gestore=gestore,
            firma=firma,
            sender=orig.mittente,
            recipients=recipients,
            refers_to=recipient,
            ua_message_id=ua,
            digest=digest,
            subject=orig.oggetto,
            padding_bytes=deviations.evidence_padding,
        )
        parti.append(_evidence_part(event.name, xml))
    return _signed(campi, parti, firma, seed)


def _per_conto_di_rem(mittente: str, gestore: Gestore) -> str:
    nome = mittente.replace("\\", "\\\\").replace('"', '\\"')
    line = f'From: "On behalf of: {nome}" <{rem_service_address(gestore)}>'
    return line if len(line) <= 78 else line.replace('" <', '"\r\n <', 1)


def rem_receipt(
    event: str,
    original: bytes,
    *,
    gestore: Gestore,
    message_id: str,
    data: datetime,
    recipients: Sequence[str] | None = None,
    recipient: str | None = None,
    reason: str | None = None,
    to: Sequence[str] | None = None,
    firma: Firma | None = None,
    evidence_id: str | None = None,
    relay_date: datetime | None = None,
    deviations: Deviations = WELL_FORMED,
) -> bytes:
    """A REM receipt (evidence for the sender) of `event` about `original`.

    `original` is the message as the user submitted it (its Message-ID becomes
    REM-UAMessageIdentifier; its digest REM-DigestValue); `gestore` is the issuing provider and
    `message_id` the REM message id (of the dispatch) the sender's provider gave it. `recipients`
    are the message's recipients (default: the original's To and Cc), `recipient` the one a
    per-recipient event concerns (the evidence's EvidenceRefersToRecipient); `reason`
    defaults to the event's usual one; `to` to the original's sender. Events issued after
    submission get REM-RelayDate (default: `data`). `deviations` make a deliberately broken
    or unusual message (the robustness corpus).
    """
    if relay_date is None and not event.startswith("Submission"):
        relay_date = data
    return _rem_message(
        RECEIPT,
        event,
        original,
        gestore=gestore,
        message_id=message_id,
        data=data,
        recipients=recipients,
        recipient=recipient,
        reason=reason,
        to=to,
        firma=firma,
        evidence_id=evidence_id,
        relay_date=relay_date,
        deviations=deviations,
    )


def rem_dispatch(
    original: bytes,
    *,
    gestore: Gestore,
    message_id: str,
    data: datetime,
    recipients: Sequence[str] | None = None,
    event: str = "SubmissionAcceptance",
    firma: Firma | None = None,
    evidence_id: str | None = None,
    deviations: Deviations = WELL_FORMED,
    to_non_erds: bool = False,
) -> bytes:
    """The REM dispatch bringing `original` to its recipients: event SubmissionAcceptance (a
    message from a REM sender) or ReceivedFromNonERDS (ordinary mail arrived at a REM
    mailbox; subject prefixed "EXTERNAL:"). `to_non_erds`: some recipients are outside REM
    (REM-RelayToNonERDS: evidence-required, as AgID's outflow example). Keywords as
    `rem_receipt`."""
    if deviations.strict and event not in DISPATCH_KINDS:
        raise ValueError(f"a dispatch is SubmissionAcceptance or ReceivedFromNonERDS, not {event!r}")
    return _rem_message(
        DISPATCH,
        event,
        original,
        gestore=gestore,
        message_id=message_id,
        data=data,
        recipients=recipients,
        firma=firma,
        evidence_id=evidence_id,
        relay_date=data if event == "ReceivedFromNonERDS" else None,
        deviations=deviations,
        to_non_erds=to_non_erds,
    )
