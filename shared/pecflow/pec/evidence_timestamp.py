"""RFC 3161 time-stamps of an evidence pack's manifest: the request sent to a time-stamping
authority (TSA), and the check of its answer, then and years later, offline.

The request carries the SHA-256 of the manifest, a random nonce and asks for the TSA's
certificate in the token. The token is checked as a lawyer's tool would: the TSA granted it,
its imprint is the manifest's hash (and its nonce ours, when we asked), the CMS signature over
the TSTInfo is valid with the certificate it names, that certificate is for time-stamping
(extended key usage, critical) and was valid at the time stamped, and it chains to one of the
TSA anchors given. asn1crypto reads and writes the structures; cryptography checks the
signature (pecflow.pec.signature) and the certificate path. Pure: bytes in, a verdict out; the
HTTP request is `pecflow.adapters.tsa`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pecflow.pec import signature

if TYPE_CHECKING:
    from cryptography import x509

MAX_TOKEN_BYTES = 256 * 1024
OK_STATUSES = ("granted", "granted_with_mods")


class TimestampError(ValueError):
    """A time-stamp that cannot be had, or does not hold (the message says why, in plain words)."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """A time-stamp that holds: when, by whom, which serial."""

    at: datetime
    tsa: str  # the TSA certificate's subject (RFC 4514)
    serial: str  # the token's serial number (hex)
    policy: str
    chained: bool  # its certificate chains to an anchor given (False: no anchor was given)

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "tsa": self.tsa,
            "serial": self.serial,
            "policy": self.policy,
            "chained": self.chained,
        }


def request(digest: bytes, *, nonce: int | None = None) -> tuple[bytes, int]:
    """A DER TimeStampReq for a SHA-256 `digest`, asking for the TSA's certificate; and its nonce."""
    from asn1crypto import algos, tsp

    nonce = secrets.randbits(63) if nonce is None else nonce
    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": tsp.MessageImprint(
                {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                    "hashed_message": digest,
                }
            ),
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return req.dump(), nonce


def token_of(response: bytes) -> bytes:
    """The time-stamp token (a CMS ContentInfo, DER) out of a TSA's TimeStampResp; TimestampError
    when the TSA refused, with its words."""
    from asn1crypto import tsp

    if len(response) > MAX_TOKEN_BYTES:
        raise TimestampError(f"the TSA answered {len(response):,} bytes: not a time-stamp response")
    try:
        load: Any = tsp.TimeStampResp.load  # asn1crypto is untyped
        resp = load(response)
        status = resp["status"]["status"].native
        words = resp["status"]["status_string"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise TimestampError(f"the TSA's answer is not a time-stamp response ({str(exc)[:200]})") from None
    if status not in OK_STATUSES:
        said = "; ".join(words) if words else "no reason given"
        raise TimestampError(f"the TSA refused the time-stamp ({status}: {said})")
    token = resp["time_stamp_token"]
    if not token or token.native is None:
        raise TimestampError("the TSA granted the time-stamp but sent no token")
    return bytes(token.dump())


def check(
    token: bytes,
    digest: bytes,
    anchors: Sequence[x509.Certificate] = (),
    *,
    nonce: int | None = None,
    require_anchor: bool = True,
) -> Stamp:
    """The stamp in `token` over the SHA-256 `digest`, if it holds; TimestampError saying what
    does not. `anchors`: the TSA's root (or its own certificate); with none and not
    `require_anchor`, the chain is not checked (`Stamp.chained` False)."""
    from asn1crypto import cms

    if len(token) > MAX_TOKEN_BYTES:
        raise TimestampError("the time-stamp token is too large to be one")
    try:
        load: Any = cms.ContentInfo.load
        info = load(token)
        if info["content_type"].native != "signed_data":
            raise TimestampError("the time-stamp token is not CMS signed data")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TimestampError("the token does not hold a TSTInfo (not a time-stamp)")
        tst_der = bytes(encap["content"].contents)
        tst = encap["content"].parsed
        imprint = tst["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        hashed = bytes(imprint["hashed_message"].native)
        gen_time = tst["gen_time"].native
        serial = format(tst["serial_number"].native, "x")
        policy = str(tst["policy"].native)
        token_nonce = tst["nonce"].native
        signers = signed["signer_infos"]
        certs = [
            signature.certificate(c.chosen.dump())
            for c in list(signed["certificates"] or ())[: signature.MAX_CHAIN_CERTIFICATES]
            if c.name == "certificate"
        ]
        if len(signers) != 1:
            raise TimestampError("the time-stamp token must have exactly one signer")
        signer_info = signers[0]
        cert = signature.signer_certificate(signer_info["sid"], certs)
    except TimestampError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise TimestampError(f"the time-stamp token cannot be read ({str(exc)[:200]})") from None
    if algorithm != "sha256":
        raise TimestampError(f"the time-stamp is over a {algorithm} hash, not SHA-256")
    if hashed != digest:
        raise TimestampError(
            "the time-stamp is over another content: its hash differs from the manifest's "
            f"({hashed.hex()[:16]}… instead of {digest.hex()[:16]}…)"
        )
    if nonce is not None and token_nonce != nonce:
        raise TimestampError("the time-stamp answers another request (its nonce differs)")
    if cert is None:
        raise TimestampError("the time-stamp token does not carry the TSA's certificate")
    matched, why = signature.signature_matches(signer_info, cert, tst_der)
    if not matched:
        raise TimestampError(f"the TSA's signature over the time-stamp does not hold: {why}")
    at = gen_time if gen_time.tzinfo else gen_time.replace(tzinfo=UTC)
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise TimestampError(
            f"the TSA's certificate was not valid on {at.isoformat()} "
            f"(valid from {cert.not_valid_before_utc.date()} to {cert.not_valid_after_utc.date()})"
        )
    _require_timestamping(cert)
    chained = False
    if anchors:
        _chain(cert, [c for c in certs if c is not cert], anchors, at)
        chained = True
    elif require_anchor:
        raise TimestampError("no certificate of the TSA was given to check the time-stamp against")
    return Stamp(at, cert.subject.rfc4514_string(), serial, policy, chained)


def check_response(
    response: bytes,
    digest: bytes,
    anchors: Sequence[x509.Certificate] = (),
    *,
    nonce: int | None = None,
    require_anchor: bool = True,
) -> Stamp:
    """`check` of the token in a TSA's whole answer (a TimeStampResp: what a .tsr file holds, and
    what `openssl ts -verify -in` reads)."""
    return check(token_of(response), digest, anchors, nonce=nonce, require_anchor=require_anchor)


def manifest_digest(manifest: bytes) -> bytes:
    return hashlib.sha256(manifest).digest()


def _require_timestamping(cert: x509.Certificate) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError(
            "the TSA's certificate is not for time-stamping (no extended key usage)"
        ) from None
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING] or not eku.critical:
        raise TimestampError("the TSA's certificate is not for time-stamping (RFC 3161 §2.3)")


def _chain(
    cert: x509.Certificate, others: list[x509.Certificate], anchors: Sequence[x509.Certificate], at: datetime
) -> None:
    """RFC 5280 path from the TSA's certificate to an anchor, at the time stamped."""
    from cryptography import x509
    from cryptography.x509 import verification as v

    if any(cert == a for a in anchors):
        return
    ee = (
        v.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None)
        .may_be_present(x509.AuthorityKeyIdentifier, v.Criticality.NON_CRITICAL, None)
        .may_be_present(x509.SubjectAlternativeName, v.Criticality.AGNOSTIC, None)
    )
    ca = v.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None
    )
    verifier = (
        v.PolicyBuilder()
        .store(v.Store(list(anchors)))
        .time(at.astimezone(UTC).replace(tzinfo=None))
        .max_chain_depth(8)
        .extension_policies(ca_policy=ca, ee_policy=ee)
        .build_client_verifier()
    )
    try:
        verifier.verify(cert, others)
    except v.VerificationError as exc:
        raise TimestampError(
            f"the TSA's certificate does not chain to the TSA anchors given: {str(exc)[:300]}"
        ) from None
