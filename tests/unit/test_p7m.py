"""p7m: the signed content out of CAdES / PKCS#7 SignedData, whatever the encoding."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pecflow.pec import p7m
from pecflow.pec.p7m import P7mError, extract_signed_content

INVOICE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<p:FatturaElettronica versione="FPR12" xmlns:p="urn:test">\xc3\xa8 '
    + b"x" * 2500
    + b"</p:FatturaElettronica>\n"
)


def sign(signer, content: bytes, *, detached: bool = False, encoding=serialization.Encoding.DER) -> bytes:
    cert, key = signer
    options = [pkcs7.PKCS7Options.Binary]  # keep the bytes exactly (no MIME canonicalisation)
    if detached:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(cert, key, hashes.SHA256())
    return builder.sign(encoding, options)


@pytest.fixture(scope="module")
def signed(signer) -> bytes:
    return sign(signer, INVOICE)


# --- a DER -> BER re-encoder, independent of the module under test ---------------------------


def _der_items(data: bytes):
    """(tag octet, value) for each DER element in `data` (low tag numbers only, as CMS uses)."""
    pos = 0
    while pos < len(data):
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if first & 0x80:
            count = first & 0x7F
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        else:
            length = first
        yield tag, data[pos : pos + length]
        pos += length


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def indefinite(tag: int, *parts: bytes) -> bytes:
    return bytes([tag | 0x20, 0x80]) + b"".join(parts) + b"\x00\x00"


def chunked(value: bytes, size: int, *, indefinite_length: bool) -> bytes:
    chunks = [tlv(0x04, value[i : i + size]) for i in range(0, len(value), size)]
    return indefinite(0x24, *chunks) if indefinite_length else tlv(0x24, b"".join(chunks))


def to_ber(der: bytes, payload: bytes, *, chunk: int = 1000, indefinite_length: bool = True) -> bytes:
    """Every constructed element with indefinite length; the OCTET STRING holding `payload`
    split into constructed chunks, as Italian signing software writes it."""
    out = []
    for tag, value in _der_items(der):
        if tag == 0x04 and value == payload:
            out.append(chunked(value, chunk, indefinite_length=indefinite_length))
        elif tag & 0x20:
            inner = to_ber(value, payload, chunk=chunk, indefinite_length=indefinite_length)
            out.append(indefinite(tag, inner) if indefinite_length else tlv(tag, inner))
        else:
            out.append(tlv(tag, value))
    return b"".join(out)


# --- round trips --------------------------------------------------------------------------------


def test_der_round_trip(signed):
    assert signed[:1] == b"\x30"
    assert extract_signed_content(signed) == INVOICE


def test_accepts_bytearray_and_memoryview(signed):
    assert extract_signed_content(bytearray(signed)) == INVOICE
    assert extract_signed_content(memoryview(signed)) == INVOICE


def test_ber_indefinite_lengths_and_chunked_octet_string(signed):
    ber = to_ber(signed, INVOICE, chunk=1000)
    assert b"\x24\x80\x04\x82\x03\xe8" in ber  # constructed OCTET STRING, 1000-byte chunks
    assert ber.count(b"\x30\x80") > 5
    assert extract_signed_content(ber) == INVOICE


def test_definite_length_with_chunked_octet_string(signed):
    ber = to_ber(signed, INVOICE, chunk=1000, indefinite_length=False)
    assert b"\x24\x82" in ber
    assert extract_signed_content(ber) == INVOICE


def test_tiny_chunks(signed):
    assert extract_signed_content(to_ber(signed, INVOICE, chunk=1)) == INVOICE


def test_chunks_nested_in_chunks():
    parts = [b"<a>", b"bc", b"</a>"]
    content = indefinite(
        0x24, tlv(0x04, parts[0]), indefinite(0x24, tlv(0x04, parts[1])), tlv(0x04, parts[2])
    )
    assert extract_signed_content(_minimal_signed_data(content)) == b"".join(parts)


SIGNED_DATA = bytes.fromhex("2a864886f70d010702")
DATA = bytes.fromhex("2a864886f70d010701")


def _minimal_signed_data(e_content: bytes | None, content_type: bytes = SIGNED_DATA) -> bytes:
    """ContentInfo by hand: no certificates, no signers; enough for the structure."""
    encap = [tlv(0x06, DATA)]
    if e_content is not None:
        encap.append(indefinite(0xA0, e_content))
    no_signers = tlv(0x31, b"")
    signed_data = indefinite(0x30, tlv(0x02, b"\x01"), tlv(0x31, b""), indefinite(0x30, *encap), no_signers)
    return indefinite(0x30, tlv(0x06, content_type), indefinite(0xA0, signed_data))


def test_hand_built_ber():
    assert extract_signed_content(_minimal_signed_data(tlv(0x04, b"hello"))) == b"hello"
    assert extract_signed_content(_minimal_signed_data(tlv(0x04, b""))) == b""


@pytest.mark.parametrize(
    "wrap",
    [
        lambda der: base64.b64encode(der),
        lambda der: base64.encodebytes(der),  # 76-column lines
        lambda der: base64.encodebytes(der).replace(b"\n", b"\r\n"),
        lambda der: b"\n  " + base64.b64encode(der).rstrip(b"=") + b"\n",  # padding dropped
        lambda der: b"-----BEGIN PKCS7-----\n" + base64.encodebytes(der) + b"-----END PKCS7-----\n",
    ],
)
def test_base64_text(signed, wrap):
    assert extract_signed_content(wrap(signed)) == INVOICE


def test_pem_from_cryptography(signer):
    pem = sign(signer, INVOICE, encoding=serialization.Encoding.PEM)
    assert pem.startswith(b"-----BEGIN")
    assert extract_signed_content(pem) == INVOICE


def test_base64_of_ber(signed):
    assert extract_signed_content(base64.encodebytes(to_ber(signed, INVOICE))) == INVOICE


def test_double_signed_is_unwrapped(signer, signed):
    twice = sign(signer, signed)
    assert extract_signed_content(twice) == INVOICE
    thrice = sign(signer, base64.b64encode(twice))  # an inner layer kept as base64 text
    assert extract_signed_content(thrice) == INVOICE


def test_too_many_layers(signer):
    data = INVOICE
    for _ in range(p7m.MAX_LAYERS + 1):
        data = sign(signer, data)
    with pytest.raises(P7mError, match="nested signatures"):
        extract_signed_content(data)


# --- refusals -----------------------------------------------------------------------------------


def test_detached_signature(signer):
    detached = sign(signer, INVOICE, detached=True)
    with pytest.raises(P7mError, match="detached"):
        extract_signed_content(detached)
    with pytest.raises(P7mError, match="detached"):
        extract_signed_content(_minimal_signed_data(None))


def test_not_signed_data():
    enveloped = bytes.fromhex("2a864886f70d010703")
    with pytest.raises(P7mError, match=r"1\.2\.840\.113549\.1\.7\.3 \(envelopedData\) is not SignedData"):
        extract_signed_content(_minimal_signed_data(tlv(0x04, b"x"), content_type=enveloped))
    with pytest.raises(P7mError, match="ContentInfo"):
        extract_signed_content(tlv(0x02, b"\x01"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"<?xml version='1.0'?><a/>",
        b"%PDF-1.4 hello",
        b"\x30",
        b"\x30\x80",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x85\x01\x00\x00\x00\x00\x00",
        b"\x30\xff",
        b"\x04\x80\x00\x00",
        b"\x1f\xff\xff\xff\xff\x7f\x00",
        b"MIIB",
        b"-----BEGIN PKCS7-----\n-----END PKCS7-----\n",
        b"\x00\x00",
    ],
)
def test_garbage(data):
    with pytest.raises(P7mError):
        extract_signed_content(data)


def test_not_bytes():
    with pytest.raises(P7mError, match="expected bytes"):
        extract_signed_content("MIIB")  # type: ignore[arg-type]


def test_size_limit(signed, monkeypatch):
    monkeypatch.setattr(p7m, "MAX_P7M_BYTES", len(signed) - 1)
    with pytest.raises(P7mError, match="limit"):
        extract_signed_content(signed)


def test_depth_bomb():
    with pytest.raises(P7mError, match="deeper"):
        extract_signed_content(b"\x30\x80" * 100_000)
    bomb = _minimal_signed_data(b"\x24\x80" * 1000 + b"\x04\x01x" + b"\x00\x00" * 1000)
    with pytest.raises(P7mError, match="deeper"):
        extract_signed_content(bomb)


def test_element_budget(signed, monkeypatch):
    monkeypatch.setattr(p7m, "MAX_ELEMENTS", 500)
    with pytest.raises(P7mError, match="elements"):
        extract_signed_content(to_ber(signed, INVOICE, chunk=1))


def test_truncations_all_raise(signed):
    for cut in range(len(signed) - 1):
        try:
            extract_signed_content(signed[:cut])
        except P7mError:
            continue
        # a cut inside the trailing signer info may still leave the content readable
        assert cut > signed.index(INVOICE) + len(INVOICE)


# --- never anything but P7mError --------------------------------------------------------------------


def _call(data: bytes) -> None:
    try:
        result = extract_signed_content(data)
    except P7mError:
        return
    assert isinstance(result, bytes)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data):
    _call(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_behind_a_valid_header(data):
    _call(b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x80" + data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutations_of_a_valid_p7m(signed, data):
    ber = to_ber(signed, INVOICE, chunk=700)
    sample = data.draw(st.sampled_from([signed, ber, base64.encodebytes(signed)]))
    mutated = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 6))):
        if not mutated:
            break
        pos = data.draw(st.integers(0, len(mutated) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if action == "flip":
            mutated[pos] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del mutated[pos:]
        elif action == "insert":
            mutated[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del mutated[pos : pos + data.draw(st.integers(1, 16))]
    _call(bytes(mutated))
