"""Signed content out of a `.p7m` file (CAdES / PKCS#7 SignedData, "busta crittografica").

Italian signed invoices arrive as `<name>.xml.p7m`. We need the document inside, not the
signature: this module does not verify anything. It reads the ASN.1 structure with a tiny
BER reader of its own (definite and indefinite lengths, constructed OCTET STRINGs split in
chunks), accepts the whole file as base64 text (with or without PEM armour), and unwraps a
document signed more than once. Work is bounded by size, nesting depth and element count,
the last also in proportion to the input, so that the reader stays linear in time.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import NamedTuple

MAX_P7M_BYTES = 32 * 1024 * 1024
MAX_LAYERS = 4  # a signed file signed again, envelope inside envelope
MAX_DEPTH = 32  # BER nesting
MAX_ELEMENTS = 200_000  # BER headers read for one file (a real p7m has a few thousand)
# headers read the general (slower) way: also at most 500 plus one per 16 bytes of input;
# short primitive elements (the chunks of a constructed OCTET STRING) are skipped quicker
ELEMENTS_PER_BYTE = 1 / 16
ELEMENTS_BASE = 500

# DER of the OIDs 1.2.840.113549.1.7.2 (signedData) and 1.2.840.113549.1.7.1 (data), without tag+length
_OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")
_PKCS7 = bytes.fromhex("2a864886f70d0107")
_PKCS7_NAMES = {
    1: "data",
    2: "signedData",
    3: "envelopedData",
    4: "signedAndEnvelopedData",
    5: "digestedData",
    6: "encryptedData",
}

# universal tags
_INTEGER, _OCTET_STRING, _OID, _SEQUENCE, _SET = 2, 4, 6, 16, 17
_UNIVERSAL, _CONTEXT = 0, 2


class P7mError(ValueError):
    """Not a SignedData with embedded content, or not readable as one."""


class _Tlv(NamedTuple):  # a tuple: built several times faster than a frozen dataclass
    cls: int  # 0 universal, 1 application, 2 context-specific, 3 private
    constructed: bool
    number: int
    start: int  # first identifier octet
    body: int  # first content octet
    end: int  # one past the content (the end-of-contents octets when indefinite)
    next: int  # one past the whole element

    def is_(self, cls: int, number: int) -> bool:
        return self.cls == cls and self.number == number


class _Reader:
    """BER over one buffer. Ends of indefinite-length elements are remembered, so each
    element is walked once however deep the indefinite nesting goes."""

    __slots__ = ("data", "budget", "slow_budget", "ends")

    def __init__(self, data: bytes):
        self.data = data
        self.budget = MAX_ELEMENTS
        self.slow_budget = ELEMENTS_BASE + int(len(data) * ELEMENTS_PER_BYTE)
        self.ends: dict[tuple[int, int], tuple[int, int]] = {}

    def _count(self, slow: bool) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise P7mError(f"more than {MAX_ELEMENTS} ASN.1 elements")
        if slow:
            self.slow_budget -= 1
            if self.slow_budget < 0:
                raise P7mError(f"too many ASN.1 elements for a file of {len(self.data)} bytes")

    def _short_primitive(self, pos: int, limit: int, depth: int) -> int:
        """Where the element at `pos` ends when it is primitive, low-tag, short-length, not an
        end-of-contents, and fits: the common chunk, skipped without building a _Tlv. Else -1."""
        data = self.data
        if depth > MAX_DEPTH or pos + 1 >= limit:
            return -1
        first, length = data[pos], data[pos + 1]
        if first == 0 or first & 0x20 or (first & 0x1F) == 0x1F or length & 0x80 or pos + 2 + length > limit:
            return -1
        self._count(slow=False)
        return pos + 2 + length

    def read(self, pos: int, limit: int, depth: int) -> _Tlv:
        data = self.data
        if depth > MAX_DEPTH:
            raise P7mError(f"ASN.1 nested deeper than {MAX_DEPTH}")
        self._count(slow=True)
        if pos >= limit:
            raise P7mError(f"truncated: element expected at byte {pos}")
        first = data[pos]
        cls, constructed, number = first >> 6, bool(first & 0x20), first & 0x1F
        i = pos + 1
        if number == 0x1F:  # high tag number, base 128
            number = 0
            for _ in range(4):
                if i >= limit:
                    raise P7mError(f"truncated tag at byte {pos}")
                octet = data[i]
                i += 1
                number = (number << 7) | (octet & 0x7F)
                if not octet & 0x80:
                    break
            else:
                raise P7mError(f"tag number too long at byte {pos}")
        if i >= limit:
            raise P7mError(f"truncated length at byte {pos}")
        octet = data[i]
        i += 1
        if octet == 0x80:
            if not constructed:
                raise P7mError(f"indefinite length on a primitive element at byte {pos}")
            end, after = self._indefinite_end(pos, i, limit, depth)
            return _Tlv(cls, constructed, number, pos, i, end, after)
        if octet & 0x80:
            count = octet & 0x7F
            if count > 4:
                raise P7mError(f"length of {count} octets at byte {pos}")
            if i + count > limit:
                raise P7mError(f"truncated length at byte {pos}")
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        else:
            length = octet
        if i + length > limit:
            raise P7mError(f"truncated: element at byte {pos} claims {length} bytes, {limit - i} available")
        return _Tlv(cls, constructed, number, pos, i, i + length, i + length)

    def _indefinite_end(self, pos: int, body: int, limit: int, depth: int) -> tuple[int, int]:
        key = (pos, limit)
        if key not in self.ends:
            data, cursor = self.data, body
            while not (cursor + 1 < limit and data[cursor] == 0 and data[cursor + 1] == 0):
                after = self._short_primitive(cursor, limit, depth + 1)
                cursor = after if after != -1 else self.read(cursor, limit, depth + 1).next
            self.ends[key] = (cursor, cursor + 2)
        return self.ends[key]

    def children(self, tlv: _Tlv, depth: int) -> Iterator[_Tlv]:
        if not tlv.constructed:
            raise P7mError(f"primitive element at byte {tlv.start} where a constructed one was expected")
        cursor = tlv.body
        while cursor < tlv.end:
            child = self.read(cursor, tlv.end, depth + 1)
            yield child
            cursor = child.next

    def octets(self, tlv: _Tlv, depth: int) -> bytes:
        """An OCTET STRING's value; a constructed one is the concatenation of its chunks."""
        data = self.data
        if not tlv.constructed:
            return data[tlv.body : tlv.end]
        out = bytearray()
        cursor = tlv.body
        while cursor < tlv.end:
            if data[cursor] == 0x04:  # a primitive chunk: the quick way
                after = self._short_primitive(cursor, tlv.end, depth + 1)
                if after != -1:
                    out += data[cursor + 2 : after]
                    cursor = after
                    continue
            chunk = self.read(cursor, tlv.end, depth + 1)
            if not chunk.is_(_UNIVERSAL, _OCTET_STRING):
                raise P7mError(f"constructed OCTET STRING holds something else at byte {chunk.start}")
            out += self.octets(chunk, depth + 1)
            cursor = chunk.next
        return bytes(out)


def _oid_text(body: bytes) -> str:
    """Dotted form of an OID's content octets, for error messages."""
    if not body:
        return "(empty OID)"
    arcs, value = [], 0
    for octet in body[:64]:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        return "(malformed OID)"
    head = arcs[0]
    first = 2 if head >= 80 else head // 40
    dotted = ".".join(str(a) for a in [first, head - 40 * first, *arcs[1:]])
    if body[:-1] == _PKCS7 and body[-1] in _PKCS7_NAMES:
        dotted += f" ({_PKCS7_NAMES[body[-1]]})"
    return dotted


def _one_layer(data: bytes, require_signer: bool = False) -> bytes:
    """eContent of one ContentInfo { signedData, SignedData { ..., encapContentInfo } };
    `require_signer`: refuse a SignedData without a SignerInfo (nobody signed it)."""
    reader = _Reader(data)
    top = reader.read(0, len(data), 0)
    if not top.is_(_UNIVERSAL, _SEQUENCE) or not top.constructed:
        raise P7mError("not a PKCS#7/CMS ContentInfo (does not start with a SEQUENCE)")
    info = reader.children(top, 0)
    oid = next(info, None)
    if oid is None or not oid.is_(_UNIVERSAL, _OID) or oid.constructed:
        raise P7mError("not a PKCS#7/CMS ContentInfo (no content type)")
    content_type = data[oid.body : oid.end]
    if content_type != _OID_SIGNED_DATA:
        raise P7mError(f"content type {_oid_text(content_type)} is not SignedData")
    wrapper = next(info, None)
    if wrapper is None or not wrapper.is_(_CONTEXT, 0):
        raise P7mError("SignedData ContentInfo has no [0] content")
    signed = next(reader.children(wrapper, 1), None)
    if signed is None or not signed.is_(_UNIVERSAL, _SEQUENCE):
        raise P7mError("SignedData is not a SEQUENCE")
    fields = reader.children(signed, 2)
    version = next(fields, None)
    if version is None or not version.is_(_UNIVERSAL, _INTEGER):
        raise P7mError("SignedData has no version")
    digests = next(fields, None)
    if digests is None or not digests.is_(_UNIVERSAL, _SET):
        raise P7mError("SignedData has no digestAlgorithms")
    encap = next(fields, None)
    if encap is None or not encap.is_(_UNIVERSAL, _SEQUENCE):
        raise P7mError("SignedData has no encapContentInfo")
    encap_fields = reader.children(encap, 3)
    e_type = next(encap_fields, None)
    if e_type is None or not e_type.is_(_UNIVERSAL, _OID):
        raise P7mError("encapContentInfo has no eContentType")
    e_content = next(encap_fields, None)
    if e_content is None:
        raise P7mError("detached signature: the SignedData carries no content")
    if not e_content.is_(_CONTEXT, 0):
        raise P7mError("encapContentInfo holds something other than [0] eContent")
    inner = next(reader.children(e_content, 4), None)
    if inner is None:
        raise P7mError("detached signature: eContent is empty")
    if inner.is_(_UNIVERSAL, _OCTET_STRING):
        content = reader.octets(inner, 5)
    else:
        # PKCS#7 v1.5 allowed `content [0] EXPLICIT ANY` for other types: hand back the encoding
        content = data[inner.start : inner.next]
    if require_signer:  # then [0] certificates, [1] crls (optional), the SignerInfos SET
        signers = next((f for f in fields if f.is_(_UNIVERSAL, _SET)), None)
        if signers is None or signers.body == signers.end:
            raise P7mError("no signature: the SignedData has no SignerInfo")
    return content


_B64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]+")


def _unarmour(data: bytes) -> bytes | None:
    """The bytes inside base64 text (PEM armour allowed), or None when `data` is not base64 text."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        lines = []
        for line in text.splitlines()[1:]:
            if line.startswith(b"-----END"):
                break
            if b":" not in line:  # skip RFC 1421 headers such as "Proc-Type: ..."
                lines.append(line)
        text = b"".join(lines)
    if not text or not _B64_TEXT.fullmatch(text):
        return None
    compact = text.translate(None, b" \t\r\n\v\f")
    compact += b"=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


_SIGNED_DATA_TLV = bytes([_OID, len(_OID_SIGNED_DATA)]) + _OID_SIGNED_DATA


def _starts_signed(data: bytes) -> bool:
    """Header check only: SEQUENCE (any length form) then the signedData OID."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    octet = data[1]
    skip = 2 + (octet & 0x7F if octet > 0x80 else 0)
    return data[skip : skip + len(_SIGNED_DATA_TLV)] == _SIGNED_DATA_TLV


def _looks_signed(data: bytes) -> bool:
    """Is `data` (DER, BER or base64 text of them) a SignedData ContentInfo?"""
    if _starts_signed(data):
        return True
    head = data[:64].lstrip()
    if not (head.startswith(b"MI") or head.startswith(b"-----BEGIN")):
        return False
    decoded = _unarmour(data)
    return decoded is not None and _starts_signed(decoded)


def extract_signed_content(data: bytes, *, require_signer: bool = False) -> bytes:
    """The signed content (eContent) of a `.p7m` file: DER, BER or base64 text of either.

    A document signed again in an outer envelope is unwrapped (up to `MAX_LAYERS`). The
    signature is NOT verified; `require_signer` refuses an envelope that names no signer at all.
    Raises `P7mError` saying why when there is no content to give.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise P7mError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_P7M_BYTES:
        raise P7mError(f"file of {len(data)} bytes exceeds the {MAX_P7M_BYTES}-byte limit")
    if not data.strip():
        raise P7mError("empty file")
    for _ in range(MAX_LAYERS):
        decoded = None if data[:1] == b"\x30" else _unarmour(data)  # DER/BER starts with SEQUENCE
        if decoded is not None:
            if not decoded:
                raise P7mError("empty file after base64 decoding")
            data = decoded
        content = _one_layer(data, require_signer)
        if not _looks_signed(content):
            return content
        data = content
    raise P7mError(f"more than {MAX_LAYERS} nested signatures")
