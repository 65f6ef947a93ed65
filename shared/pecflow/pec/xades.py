"""The provider's XAdES signature of a REM evidence, verified over the exact signed bytes.

A REM evidence (ETSI EN 319 522, the counterpart of daticert.xml) is signed by itself: an
enveloped `ds:Signature` child of the `Evidence` root, XAdES-B (PEC_FORMAT §10), with one
reference to the whole document (URI="", the signature taken out by the enveloped-signature
transform or, as in AgID's examples, by an XPath Filter 2.0 `subtract` of the signature) and one
to its SignedProperties (SigningTime, the digest of the signing certificate). The verdict is in
the vocabulary of the S/MIME check, given by `pecflow.pec.signature.verify_evidence`: valid,
invalid, untrusted, missing, expired, with the signer, against the same trust anchors. This
module reads the signature (`read`) and checks it with signxml (`EnvelopedSignature.matches`).

signxml does the XML-DSig work (canonicalisation, the references' digests, the signature value,
the XAdES signing-certificate digest) with lxml and cryptography; the certificate's validity at
the time of signing and its path to a trust anchor are `signature`'s checks, shared with S/MIME.
Parsing is safe twice over: the document must first pass `safexml` (no DTD, no entities,
bounded), then lxml reads it with entities, DTDs and the network off. Pure.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pecflow.pec import safexml

if TYPE_CHECKING:
    from cryptography import x509

MAX_EVIDENCE_BYTES = 1024 * 1024  # as pecflow.pec.rem reads it
MAX_CHAIN_CERTIFICATES = 20  # certificates read from one signature
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = ("http://uri.etsi.org/01903/v1.3.2#", "http://uri.etsi.org/01903/v1.4.1#")
ENVELOPED = DS + "enveloped-signature"
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
# the XPath Filter 2.0 expressions that take the signature out of the signed document: the
# enveloped-signature transform by another name (AgID's examples, EU DSS's default)
_SIGNATURE_SUBTRACTED = frozenset({"/descendant::ds:Signature", "//ds:Signature"})


class NotSigned(ValueError):
    """The evidence carries no XML-DSig signature."""


class Malformed(ValueError):
    """The evidence or its signature cannot be read as a provider's signature."""


@dataclass(frozen=True, slots=True)
class EnvelopedSignature:
    """The one signature of an evidence, as read (not yet verified)."""

    data: bytes
    parser: Any
    certificates: tuple[x509.Certificate, ...]
    signer: x509.Certificate  # the certificate XAdES names as the signer's
    declared_time: datetime | None  # its SigningTime, as written (proved by `matches`)

    def matches(self) -> tuple[bool, str, datetime | None]:
        """Whether it covers the whole evidence and its signed properties with the signer's key;
        else why not. With the signed SigningTime, when there is one."""
        return _matches(self.data, self.parser, self.signer)


def read(data: bytes) -> EnvelopedSignature:
    """The signature of the evidence XML `data`. Raises `NotSigned` or `Malformed` (or whatever
    a hostile document makes lxml raise: the caller turns it into a verdict)."""
    try:  # the project's safe reader first: no DTD, no entity, bounded size, depth and elements
        gate = safexml.parse(data, max_bytes=MAX_EVIDENCE_BYTES, max_depth=32, max_nodes=20_000)
    except safexml.XmlError as exc:
        raise Malformed(f"the evidence is not readable XML ({str(exc)[:200]})") from None
    if gate.find("Signature") is None:
        raise NotSigned("the evidence carries no signature (no ds:Signature in it)")

    from lxml import etree  # type: ignore[import-untyped]

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=False
    )
    root = etree.fromstring(data, parser=parser)
    signatures = [node for node in root if node.tag == f"{{{DS}}}Signature"]
    if not signatures:
        raise NotSigned("the evidence carries no signature (ds:Signature outside the XML-DSig namespace)")
    if len(signatures) > 1:
        raise Malformed(f"the evidence carries {len(signatures)} signatures, a provider's has one")
    sig = signatures[0]
    certs = _certificates(sig)
    if not certs:
        raise Malformed("the evidence's signature does not carry the signer's certificate")
    return EnvelopedSignature(
        data, parser, tuple(certs), _signing_certificate(sig, certs), _declared_signing_time(sig)
    )


def _certificates(sig: Any) -> list[x509.Certificate]:
    from cryptography import x509

    found: list[x509.Certificate] = []
    for node in sig.iterfind(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"):
        if len(found) >= MAX_CHAIN_CERTIFICATES:
            break
        try:
            der = base64.b64decode("".join((node.text or "").split()), validate=True)
            found.append(x509.load_der_x509_certificate(der))
        except (ValueError, binascii.Error):
            continue
    return found


def _signing_certificate(sig: Any, certs: list[x509.Certificate]) -> x509.Certificate:
    """The certificate XAdES names as the signer's (the first CertDigest of SigningCertificate or
    SigningCertificateV2), else the first one that is not a CA's, else the first."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    algorithms = {
        "http://www.w3.org/2000/09/xmldsig#sha1": hashes.SHA1(),
        "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256(),
        "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384(),
        "http://www.w3.org/2001/04/xmlenc#sha512": hashes.SHA512(),
    }
    for ns in XADES:
        for digest in sig.iterfind(f".//{{{ns}}}SignedSignatureProperties/*/{{{ns}}}Cert/{{{ns}}}CertDigest"):
            method = digest.find(f"{{{DS}}}DigestMethod")
            value = digest.findtext(f"{{{DS}}}DigestValue") or ""
            algorithm = algorithms.get(method.get("Algorithm", "") if method is not None else "")
            if algorithm is None:
                break
            try:
                wanted = base64.b64decode("".join(value.split()))
            except (ValueError, binascii.Error):
                break
            for cert in certs:
                if cert.fingerprint(algorithm) == wanted:
                    return cert
            break
    for cert in certs:
        try:
            if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return cert
        except x509.ExtensionNotFound:
            return cert
    return certs[0]


def _declared_signing_time(sig: Any) -> datetime | None:
    for ns in XADES:
        text = sig.findtext(f".//{{{ns}}}SignedSignatureProperties/{{{ns}}}SigningTime")
        if text:
            return _iso(text)
    return None


def _iso(text: str) -> datetime | None:
    value = text.strip()
    try:
        found = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _matches(data: bytes, parser: Any, cert: x509.Certificate) -> tuple[bool, str, datetime | None]:
    """Whether the signature covers the whole evidence and its signed properties with `cert`'s
    key (signxml); else why not. With the SigningTime signxml verified, when there is one."""
    from lxml import etree
    from signxml import exceptions as sx
    from signxml.xades import XAdESSignatureConfiguration

    config = XAdESSignatureConfiguration(
        location="./",
        expect_references=True,  # any number: the document's and SignedProperties' are required below
        signature_methods=frozenset(_SignatureMethods.all()),
        digest_algorithms=frozenset(_SignatureMethods.digests()),
        # signxml checks the certificate's dates at this time; ours is the time of signing (the
        # caller's check, which says `expired`): here, any instant the certificate was valid
        verification_time=cert.not_valid_before_utc + timedelta(seconds=1),
    )
    verifier = _EvidenceVerifier()
    try:
        results = verifier.verify(data, x509_cert=cert, parser=parser, expect_config=config)
    except sx.InvalidDigest as exc:
        if "certificate" in str(exc):
            return (
                False,
                "the signing certificate is not the one the signature names (XAdES SigningCertificate)",
                None,
            )
        return False, "the evidence was changed after signing (its digest differs from the signed one)", None
    except sx.InvalidSignature as exc:
        return (
            False,
            f"the evidence's signature does not match the provider's certificate ({str(exc)[:200]})",
            None,
        )
    except etree.DocumentInvalid as exc:  # the XML-DSig schema signxml checks the signature against
        return (
            False,
            f"the evidence's signature is not a well-formed XML-DSig signature ({str(exc)[:200]})",
            None,
        )
    except (sx.SignXMLException, ValueError, KeyError) as exc:
        return (
            False,
            f"the evidence's signature cannot be checked: {type(exc).__name__}: {str(exc)[:200]}",
            None,
        )
    if not verifier.whole_document:
        return False, "the signature does not cover the whole evidence (no reference to the document)", None
    when = None
    for result in results:
        props = getattr(result, "signed_properties", None)
        if props is not None:
            for ns in XADES:
                text = props.findtext(f"{{{ns}}}SigningTime")
                if text:
                    when = _iso(text)
    return True, "", when


class _SignatureMethods:
    """Every algorithm signxml knows: SHA-1 too, as the S/MIME check accepts it (a provider's
    older signatures; the path validator still refuses SHA-1 certificates)."""

    @staticmethod
    def all() -> list[Any]:
        from signxml.algorithms import SignatureMethod

        return [m for m in SignatureMethod if not m.name.startswith("HMAC")]

    @staticmethod
    def digests() -> list[Any]:
        from signxml.algorithms import DigestAlgorithm

        return list(DigestAlgorithm)


@functools.cache
def _evidence_verifier_class() -> type:
    from signxml import exceptions as sx
    from signxml.xades import XAdESVerifier

    class EvidenceVerifier(XAdESVerifier):
        """signxml's XAdES verifier, which also reads the XPath Filter 2.0 transform that AgID's
        evidences use to take their signature out of the signed document."""

        whole_document = False

        def _verify_reference(self, reference: Any, index: Any, root: Any, *args: Any, **kwargs: Any) -> Any:
            if reference.get("URI") == "":
                self.whole_document = True
            return super()._verify_reference(reference, index, root, *args, **kwargs)  # type: ignore[no-untyped-call]

        def _apply_transforms(self, payload: Any, *, transforms_node: Any, signature: Any) -> Any:
            if transforms_node is not None:
                for transform in list(transforms_node):
                    if transform.get("Algorithm") != FILTER2:
                        continue
                    paths = list(transform)
                    if (
                        len(paths) != 1
                        or paths[0].get("Filter") != "subtract"
                        or (paths[0].text or "").strip() not in _SIGNATURE_SUBTRACTED
                        or paths[0].nsmap.get("ds") != DS
                    ):
                        raise sx.InvalidInput("XPath Filter 2.0 transform other than the signature's removal")
                    # the signature subtracted: what the enveloped-signature transform does (another
                    # ds:Signature nested deeper would stay, and the digest would not match: invalid)
                    transform.set("Algorithm", ENVELOPED)
                    transform.remove(paths[0])
            return super()._apply_transforms(payload, transforms_node=transforms_node, signature=signature)

    return EvidenceVerifier


def _EvidenceVerifier() -> Any:  # noqa: N802 - the class is built on first use (signxml loads lazily)
    return _evidence_verifier_class()()
