"""The provider's signature of a PEC or REM message, verified over the exact signed bytes.

A provider signs every envelope, receipt and notice with S/MIME (PEC_FORMAT §2): a
multipart/signed whose first part is signed byte for byte and whose smime.p7s is a detached
CMS SignedData; more rarely an opaque application/pkcs7-mime carrying the signed entity
inside. The check answers one of:

- `valid`: the bytes are the signed ones, the signer's certificate was valid when it signed,
  and it chains to one of our trust anchors (`TrustAnchors`);
- `invalid`: a signature is there but does not match (the message was changed after signing,
  the signature is damaged or not a signature at all);
- `expired`: the signature matches, but the certificate was not valid when it signed;
- `untrusted`: the signature matches, but no trust anchor vouches for the certificate;
- `missing`: the message carries no signature.

The time of signing is the signingTime signed attribute, else the daticert time, else when the
message was received. The signed part is tried as it sits in the message, then with every line
ended by CRLF (S/MIME's canonical form: a mailbox that stored the message with bare LFs).

Maintained libraries do the work: asn1crypto reads the CMS structure, cryptography hashes,
checks the RSA / ECDSA / EdDSA signature and validates the certificate path (its RFC 5280
path builder, at the time of signing, with e-mail protection as the key purpose). Pure: bytes
in, a verdict out; loading anchors from a file or S3 is `pecflow.adapters.trust`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pecflow.pec import mime

if TYPE_CHECKING:
    from cryptography import x509

    from pecflow.pec.message import PecMessage

VALID = "valid"
INVALID = "invalid"
UNTRUSTED = "untrusted"
MISSING = "missing"
EXPIRED = "expired"
OUTCOMES = (VALID, INVALID, UNTRUSTED, MISSING, EXPIRED)

MAX_SIGNATURE_BYTES = 1024 * 1024  # a provider's p7s with its chain is under 10 KB
MAX_CHAIN_CERTIFICATES = 20  # certificates read from one signature
MAX_CACHED_CHAINS = 256  # validated certificate paths remembered per set of anchors
OPAQUE_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")

_HASHES = {"sha1": "SHA1", "sha224": "SHA224", "sha256": "SHA256", "sha384": "SHA384", "sha512": "SHA512"}
_LDIF_DN = re.compile(rb"^dn::? ", re.MULTILINE)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed: the certificate's subject and issuer (RFC 4514), serial (hex), validity."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    email: str | None = None  # subjectAltName rfc822Name: posta-certificata@<provider domain>

    @classmethod
    def of(cls, cert: x509.Certificate) -> Signer:
        from cryptography import x509

        email = None
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            emails = san.get_values_for_type(x509.RFC822Name)
            email = emails[0] if emails else None
        except (x509.ExtensionNotFound, ValueError):
            pass
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "x"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            email=email,
        )

    def to_dict(self) -> dict[str, str]:
        out = {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }
        if self.email:
            out["email"] = self.email
        return out


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The verdict on one message's provider signature, and why."""

    outcome: str  # one of OUTCOMES
    reason: str
    signer: Signer | None = None
    signed_at: datetime | None = None
    signed_at_from: str | None = None  # "signingTime" | "daticert" | "evidence" | "received"
    canonicalised: bool = False  # the bytes matched once every line ended with CRLF
    # a REM message: its evidence's own XAdES signature (pecflow.pec.xades); None for PEC
    evidence: SignatureCheck | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "outcome": self.outcome,
            "reason": self.reason,
            "signer": self.signer.to_dict() if self.signer else None,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "signed_at_from": self.signed_at_from,
            "canonicalised": self.canonicalised,
        }
        if self.evidence is not None:
            out["evidence"] = self.evidence.to_dict()
        return out

    def checks(self) -> tuple[tuple[str, SignatureCheck], ...]:
        """Every signature checked, named: the message's S/MIME one (""), and for a REM message
        its evidence's XAdES one ("REM evidence")."""
        if self.evidence is None:
            return (("", self),)
        return (("", self), ("REM evidence", self.evidence))


class TrustAnchors:
    """The certificates a provider's signature must chain to: AgID's CA (the PEC providers'
    issuer), or the providers' own certificates as AgID lists them. An empty set trusts
    nobody: every signature that matches is then `untrusted`. `problem`: why the configured
    anchors could not be read (said in every `untrusted` verdict)."""

    __slots__ = ("certificates", "source", "problem", "chains", "_store", "_fingerprints")

    def __init__(self, certificates: Iterable[x509.Certificate] = (), source: str = "", problem: str = ""):
        unique: dict[bytes, x509.Certificate] = {}
        for cert in certificates:
            unique.setdefault(_fingerprint(cert), cert)
        self.certificates: tuple[x509.Certificate, ...] = tuple(unique.values())
        self._fingerprints = frozenset(unique)
        self.source = source
        self.problem = problem
        self._store: Any = None
        # validated paths: (signer, other certificates of the signature) -> when all were valid
        self.chains: dict[tuple[x509.Certificate, ...], tuple[datetime, datetime]] = {}

    def __len__(self) -> int:
        return len(self.certificates)

    @classmethod
    def read(cls, data: bytes, source: str = "") -> TrustAnchors:
        """From a PEM bundle, a DER certificate, an XML list of certificates (an ETSI TS 119 612
        trusted list, or any XML whose `...Certificate` elements hold base64 DER) or an LDIF
        export of the PEC providers' index (`...Certificate...::` attributes). ValueError when
        nothing in it is a certificate."""
        return cls(read_certificates(data), source)

    def merged(self, other: Iterable[x509.Certificate]) -> TrustAnchors:
        return TrustAnchors((*self.certificates, *other), self.source)

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        out = []
        for cert in self.certificates:
            out.append(f"# {cert.subject.rfc4514_string()}\n".encode())
            out.append(cert.public_bytes(Encoding.PEM))
        return b"".join(out)

    def anchors(self, cert: x509.Certificate) -> bool:
        """Whether `cert` itself is one of the anchors (a provider's certificate from AgID's list)."""
        return _fingerprint(cert) in self._fingerprints

    def verifier(self, at: datetime) -> Any:
        """cryptography's path validator over these anchors at `at`: RFC 5280 with the Web PKI
        profile's checks, except that the signer's certificate must be for e-mail protection
        (not TLS client authentication) and may lack an authority key identifier."""
        from cryptography import x509
        from cryptography.x509 import verification as v

        if self._store is None:
            self._store = v.Store(list(self.certificates))
        ee = (
            v.ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, _email_protection)
            .may_be_present(x509.AuthorityKeyIdentifier, v.Criticality.NON_CRITICAL, None)
        )
        ca = v.ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None
        )
        return (
            v.PolicyBuilder()
            .store(self._store)
            .time(at.astimezone(UTC).replace(tzinfo=None))
            .max_chain_depth(8)
            .extension_policies(ca_policy=ca, ee_policy=ee)
            .build_client_verifier()
        )


def _email_protection(policy: Any, cert: Any, eku: Any) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if eku is not None and not {
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    } & set(eku):
        raise ValueError("the certificate is not for e-mail protection")


def _fingerprint(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()


def read_certificates(data: bytes) -> list[x509.Certificate]:
    """Every X.509 certificate in a PEM bundle, a DER file or an XML list (see `TrustAnchors.read`)."""
    from cryptography import x509

    found: list[x509.Certificate] = []
    blocks = _PEM_CERT.findall(data)
    if blocks:
        for block in blocks:
            found.append(x509.load_der_x509_certificate(base64.b64decode(b"".join(block.split()))))
        return found
    stripped = data.lstrip()
    if _LDIF_DN.search(data):
        found.extend(_ldif_certificates(data))
    elif stripped.startswith(b"<"):
        from pecflow.pec import safexml

        root = safexml.parse(data, max_bytes=64 * 1024 * 1024)
        for node in root.iter():
            if node.tag.endswith("Certificate") and node.text and not node.children:
                try:
                    found.append(x509.load_der_x509_certificate(base64.b64decode("".join(node.text.split()))))
                except (ValueError, binascii.Error):
                    continue
    elif stripped[:1] == b"\x30":
        found.append(x509.load_der_x509_certificate(data))
    if not found:
        raise ValueError("no certificate found (expected PEM, DER, or an XML list of certificates)")
    return found


def _ldif_certificates(data: bytes) -> list[x509.Certificate]:
    """The certificates of an LDIF export (the PEC providers' index, RFC 6109 §5): every attribute
    whose name says certificate, base64 (`name:: value`, `name;binary:: value`), folded lines joined."""
    from cryptography import x509

    found = []
    unfolded = re.sub(rb"\r?\n ", b"", data)
    for line in unfolded.splitlines():
        name, sep, value = line.partition(b"::")
        if sep and b"certificate" in name.lower():
            try:
                found.append(x509.load_der_x509_certificate(base64.b64decode(value.strip())))
            except (ValueError, binascii.Error):
                continue
    return found


# --- the check ----------------------------------------------------------------------------------


def check_message(
    msg: PecMessage, anchors: TrustAnchors, *, received: datetime | None = None
) -> SignatureCheck:
    """The verdict on a classified message's provider signature (never raises: a signature
    that cannot be read is `invalid`, with the reason). `received`: when the message arrived,
    the time of signing when neither the signature nor the daticert says (else: now)."""
    if msg.root is None:
        return SignatureCheck(MISSING, "the message could not be read")
    try:
        check = verify(msg.root, anchors, daticert_time=msg.timestamp, received=received)
    except Exception as exc:  # noqa: BLE001 - a hostile signature must not stop ingestion
        check = SignatureCheck(
            INVALID, f"the signature could not be read ({type(exc).__name__}: {str(exc)[:200]})"
        )
    if msg.rem is not None:
        return replace(check, evidence=check_rem_evidence(msg, anchors, received=received))
    return check


def check_rem_evidence(
    msg: PecMessage, anchors: TrustAnchors, *, received: datetime | None = None
) -> SignatureCheck:
    """The verdict on the XAdES signature of a REM message's evidence (never raises)."""
    from pecflow.pec import rem

    if msg.root is None:
        return SignatureCheck(MISSING, "the message could not be read")
    part = rem.survey(msg.root).evidence
    if part is None:
        return SignatureCheck(MISSING, "the REM message carries no evidence XML")
    evidence = msg.rem.evidence if msg.rem is not None else None
    return verify_evidence(
        part.decoded(), anchors, event_time=evidence.time if evidence else None, received=received
    )


def verify_evidence(
    data: bytes,
    anchors: TrustAnchors,
    *,
    event_time: datetime | None = None,
    received: datetime | None = None,
) -> SignatureCheck:
    """The verdict on the XAdES signature of the REM evidence XML `data` (pecflow.pec.xades;
    never raises). The time of signing is the signed SigningTime, else the evidence's EventTime
    (`event_time`), else `received` (else now)."""
    try:
        return _verify_evidence(data, anchors, event_time, received)
    except Exception as exc:  # noqa: BLE001 - a hostile evidence must not stop ingestion
        return SignatureCheck(
            INVALID, f"the evidence's signature could not be read ({type(exc).__name__}: {str(exc)[:200]})"
        )


def _verify_evidence(
    data: bytes, anchors: TrustAnchors, event_time: datetime | None, received: datetime | None
) -> SignatureCheck:
    from pecflow.pec import xades

    try:
        sig = xades.read(data)
    except xades.NotSigned as exc:
        return SignatureCheck(MISSING, str(exc))
    except xades.Malformed as exc:
        return SignatureCheck(INVALID, str(exc))
    signer = _signer(sig.signer)

    def otherwise() -> tuple[datetime, str]:
        return (event_time, "evidence") if event_time else (received or datetime.now(UTC), "received")

    # who signed and when are said even of a signature that does not match: the time declared
    # until it is known to be the signed one
    at, at_from = (sig.declared_time, "signingTime") if sig.declared_time else otherwise()

    def verdict(outcome: str, reason: str) -> SignatureCheck:
        when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        return SignatureCheck(outcome, reason, signer, when, at_from)

    matched, why, verified_time = sig.matches()
    if not matched:
        return verdict(INVALID, why)
    if verified_time is not None:
        at, at_from = verified_time, "signingTime"
    elif sig.declared_time is not None:  # a SigningTime outside the signed properties proves nothing
        at, at_from = otherwise()
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not signer.not_before <= at <= signer.not_after:
        return verdict(
            EXPIRED,
            f"the provider's certificate was not valid on {at.isoformat()} ({at_from}): "
            f"valid from {signer.not_before.date()} to {signer.not_after.date()}",
        )
    trusted, why = _trusted(sig.signer, sig.certificates, anchors, at)
    if not trusted:
        return verdict(UNTRUSTED, why)
    return verdict(
        VALID, "the evidence is signed by the provider over these exact bytes; certificate trusted"
    )


def verify(
    root: mime.Part,
    anchors: TrustAnchors,
    *,
    daticert_time: datetime | None = None,
    received: datetime | None = None,
) -> SignatureCheck:
    """The verdict on the provider signature of the message whose MIME tree is `root`."""
    layout = mime.SignedLayout(root)
    if layout.signed is None:
        opaque = _opaque_part(root)
        if opaque is None:
            return SignatureCheck(MISSING, "the message is not signed (no multipart/signed)")
        return _check(opaque.decoded(), None, anchors, daticert_time, received)
    if layout.signature is None:
        return SignatureCheck(MISSING, "multipart/signed without its signature part (smime.p7s)")
    parts = layout.signed.children
    if not parts:
        return SignatureCheck(INVALID, "multipart/signed without the part it signs")
    first = parts[0]
    return _check(
        layout.signature.decoded(), first.raw[first.start : first.end], anchors, daticert_time, received
    )


def _opaque_part(root: mime.Part) -> mime.Part | None:
    """An opaque signed message (application/pkcs7-mime, signed-data): the root, or the single
    part of a wrapping multipart."""
    for part in (root, *root.children[:1]):
        if part.content_type in OPAQUE_TYPES and part.params.get("smime-type", "signed-data").lower() in (
            "signed-data",
            "",
        ):
            return part
    return None


def _check(
    der: bytes,
    detached: bytes | None,
    anchors: TrustAnchors,
    daticert_time: datetime | None,
    received: datetime | None,
) -> SignatureCheck:
    from asn1crypto import cms

    if not der.strip():
        return SignatureCheck(MISSING, "the signature part is empty")
    if len(der) > MAX_SIGNATURE_BYTES:
        return SignatureCheck(
            INVALID, f"the signature part is {len(der):,} bytes: not a provider's signature"
        )
    try:
        load: Any = cms.ContentInfo.load  # asn1crypto is untyped
        info = load(der, strict=False)
        if info["content_type"].native != "signed_data":
            return SignatureCheck(
                INVALID, f"the signature is a CMS {info['content_type'].native}, not signed data"
            )
        signed = info["content"]
        signers = signed["signer_infos"]
        if len(signers) == 0:
            return SignatureCheck(INVALID, "the signature names no signer")
        signer_info = signers[0]
        certs = [
            _certificate(choice.chosen.dump())
            for choice in list(signed["certificates"] or ())[:MAX_CHAIN_CERTIFICATES]
            if choice.name == "certificate"
        ]
        content = detached
        if content is None:
            content = signed["encap_content_info"]["content"].native
            if content is None:
                return SignatureCheck(INVALID, "opaque signature without the content it signs")
        cert = _signer_certificate(signer_info["sid"], certs)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return SignatureCheck(INVALID, f"the signature is not a readable CMS SignedData ({str(exc)[:200]})")
    if cert is None:
        return SignatureCheck(INVALID, "the signature does not carry the signer's certificate")
    signer = _signer(cert)
    signing_time = _signing_time(signer_info)
    if signing_time is not None:
        at, at_from = signing_time, "signingTime"
    elif daticert_time is not None:
        at, at_from = daticert_time, "daticert"
    else:
        at, at_from = received or datetime.now(UTC), "received"
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    matched, reason = _matches(signer_info, cert, content)
    canonical = False
    if not matched and detached is not None and _has_bare_lf(content):
        matched, _ = _matches(signer_info, cert, _crlf(content))
        canonical = matched

    def verdict(outcome: str, reason: str) -> SignatureCheck:
        return SignatureCheck(outcome, reason, signer, at, at_from, canonical)

    if not matched:
        return verdict(INVALID, reason)
    if not signer.not_before <= at <= signer.not_after:
        return verdict(
            EXPIRED,
            f"the provider's certificate was not valid on {at.isoformat()} ({at_from}): "
            f"valid from {signer.not_before.date()} to {signer.not_after.date()}",
        )
    trusted, why = _trusted(cert, certs, anchors, at)
    if not trusted:
        return verdict(UNTRUSTED, why)
    return verdict(VALID, "signed by the provider over these exact bytes; certificate trusted")


def _signer_certificate(sid: Any, certs: Sequence[x509.Certificate]) -> x509.Certificate | None:
    from cryptography import x509

    if sid.name == "issuer_and_serial_number":
        serial = sid.chosen["serial_number"].native
        issuer = sid.chosen["issuer"].dump()
        for cert in certs:
            if cert.serial_number == serial and cert.issuer.public_bytes() == issuer:
                return cert
        # an issuer name encoded differently (string types): the serial alone decides
        return next((c for c in certs if c.serial_number == serial), None)
    key_id = sid.chosen.native
    for cert in certs:
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            continue
        if ski == key_id:
            return cert
    return None


def _signing_time(signer_info: Any) -> datetime | None:
    attrs = signer_info["signed_attrs"]
    if not attrs:
        return None
    for attr in attrs:
        if attr["type"].native == "signing_time":
            value = attr["values"][0].native
            if isinstance(value, datetime):
                return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def _hash(name: str) -> Any:
    from cryptography.hazmat.primitives import hashes

    if name not in _HASHES:
        raise ValueError(f"digest algorithm {name} not supported")
    return getattr(hashes, _HASHES[name])()


def _matches(signer_info: Any, cert: x509.Certificate, content: bytes) -> tuple[bool, str]:
    """Whether the signature covers `content` with `cert`'s key; else why not."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes

    try:
        algorithm = _hash(signer_info["digest_algorithm"]["algorithm"].native)
    except ValueError as exc:
        return False, str(exc)
    digest = hashes.Hash(algorithm)
    digest.update(content)
    content_digest = digest.finalize()
    attrs = signer_info["signed_attrs"]
    if attrs:
        digests = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
        if len(digests) != 1:
            return False, "the signed attributes carry no single message digest"
        if digests[0] != content_digest:
            return False, "the signed part was changed after signing (its digest differs from the signed one)"
        signed_data = attrs.untag().dump()
    else:
        signed_data = content
    try:
        _verify_with_key(cert, signer_info, signer_info["signature"].native, signed_data, algorithm)
    except InvalidSignature:
        if attrs:
            return False, "the signature does not match the provider's certificate"
        return False, "the signed part was changed after signing, or the signature does not match"
    except (ValueError, TypeError) as exc:
        return False, f"the signature cannot be checked: {str(exc)[:200]}"
    return True, ""


def _verify_with_key(
    cert: x509.Certificate, signer_info: Any, signature: bytes, data: bytes, algorithm: Any
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    key = cert.public_key()
    sig_algo = signer_info["signature_algorithm"]
    name = sig_algo["algorithm"].native
    if isinstance(key, rsa.RSAPublicKey):
        if name == "rsassa_pss":
            params = sig_algo["parameters"]
            pss_hash = _hash(params["hash_algorithm"]["algorithm"].native)
            mgf_hash = _hash(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
            pad: Any = padding.PSS(padding.MGF1(mgf_hash), params["salt_length"].native)
            key.verify(signature, data, pad, pss_hash)
        else:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(signature, data)
    else:
        raise ValueError(f"public key type {type(key).__name__} not supported")


def _trusted(
    cert: x509.Certificate, certs: Sequence[x509.Certificate], anchors: TrustAnchors, at: datetime
) -> tuple[bool, str]:
    from cryptography.x509.verification import VerificationError

    if not anchors.certificates:
        why = anchors.problem or "no trust anchors configured (pecflow trust import)"
        return False, f"the signature matches, but nobody vouches for the provider's certificate: {why}"
    if anchors.anchors(cert):
        return True, ""
    others = [c for c in certs if c is not cert]
    key = (cert, *others)
    window = anchors.chains.get(key)
    if window is not None and window[0] <= at <= window[1]:
        return True, ""
    try:
        chain = anchors.verifier(at).verify(cert, others).chain
    except VerificationError as exc:
        return False, f"the provider's certificate does not chain to a trust anchor: {str(exc)[:300]}"
    # the same path holds whenever every certificate on it is valid: later messages signed with
    # this certificate (thousands a day from one provider) are not validated again
    if len(anchors.chains) >= MAX_CACHED_CHAINS:
        anchors.chains.clear()
    anchors.chains[key] = (
        max(c.not_valid_before_utc for c in chain),
        min(c.not_valid_after_utc for c in chain),
    )
    return True, ""


@functools.lru_cache(maxsize=64)
def _certificate(der: bytes) -> x509.Certificate:
    """A certificate read once per process: a provider signs every message with the same one."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der)


_SIGNERS: dict[x509.Certificate, Signer] = {}


def _signer(cert: x509.Certificate) -> Signer:
    signer = _SIGNERS.get(cert)
    if signer is None:
        if len(_SIGNERS) >= 64:
            _SIGNERS.clear()
        signer = _SIGNERS[cert] = Signer.of(cert)
    return signer


def _has_bare_lf(data: bytes) -> bool:
    return data.count(b"\n") != data.count(b"\r\n")


def _crlf(data: bytes) -> bytes:
    """Every line ended by CRLF (S/MIME's canonical form); CRLFs already there kept."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# --- for other CMS signatures (the RFC 3161 time-stamp token of an evidence pack) ---------------
def signature_matches(signer_info: Any, cert: x509.Certificate, content: bytes) -> tuple[bool, str]:
    """Whether a CMS SignerInfo covers `content` with `cert`'s key; else why not."""
    return _matches(signer_info, cert, content)


def signer_certificate(sid: Any, certs: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The certificate a SignerInfo's identifier names, among `certs`."""
    return _signer_certificate(sid, certs)


def certificate(der: bytes) -> x509.Certificate:
    return _certificate(der)
