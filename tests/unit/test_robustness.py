"""No input crashes the classifier, memory stays bounded, every result has a kind.

A mutation corpus (truncations, doubled headers, wrong charsets, base64 garbage, deep
nesting, huge headers, XML bombs in daticert and in REM evidence) is applied to PEC and REM
messages built by our own builders (the REM robustness cases among them) and, where available,
to the real samples; hypothesis adds random bytes and random byte-level mutations on top. A REM
message is never taken for ordinary mail, and an anomaly says why.
"""

from __future__ import annotations

import base64
import random
import re
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.pecbuild import corpus as pecmix
from pecflow.pec import kinds, message
from tests.conftest import FIXTURES
from tests.unit.test_rem import rem_message

BOMB_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE postacert [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
]>
<postacert tipo="accettazione" errore="nessuno"><intestazione><mittente>&e;</mittente></intestazione></postacert>"""
BOMB_EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE postacert [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<postacert tipo="accettazione"><intestazione><mittente>&x;</mittente></intestazione></postacert>"""
BOMB_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE postacert SYSTEM "http://127.0.0.1:9/daticert.dtd" [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]>
<postacert tipo="accettazione"/>"""
BOMB_QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]><postacert tipo="x">'
    + b"&a;" * 5_000
    + b"</postacert>"
)
BOMB_DEEP = b"<postacert>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</postacert>"


def rem_seeds() -> list[tuple[str, bytes]]:
    """REM messages: hand-written ones of every kind, the builder's robustness cases (broken
    evidence XML, missing sections, huge evidence, unknown event, ...), and every sixth of AgID's
    examples when present (those that are REM messages, not the originals they are about)."""
    out = [
        (f"rem-{t}-{e}", rem_message(e, message_type=t, refers=1))
        for t, e in (
            ("dispatch", "SubmissionAcceptance"),
            ("dispatch", "ReceivedFromNonERDS"),
            ("receipt", "SubmissionAcceptance"),
            ("receipt", "ContentConsignment"),
            ("receipt", "RelayFailure"),
            ("receipt", "RelayToNonERDS"),
        )
    ]
    out += [(c.name, c.raw) for c in pecmix.rem_robustness()]
    out += [(p.name, p.read_bytes()) for p in _agid_examples() if _AGID_REM in p.name]
    return out


_AGID_REM = "__REM_"  # in the names of AgID's REM messages


def _agid_examples() -> list[Path]:
    rem = FIXTURES / "rem"
    return sorted(rem.glob("*.eml"))[::6] if rem.is_dir() else []


def seeds() -> list[tuple[str, bytes]]:
    out = [(c.name, c.raw) for c in pecmix.corpus(40, seed=7)]
    pec = FIXTURES / "pec"
    if pec.is_dir():
        out += [(p.name, p.read_bytes()) for p in sorted(pec.glob("*.eml"))]
    out += rem_seeds()
    out += [(p.name, p.read_bytes()) for p in _agid_examples() if _AGID_REM not in p.name]
    return out


def _replace_daticert(raw: bytes, xml: bytes) -> bytes:
    """Swap the base64 body of the daticert.xml part for `xml`."""
    match = re.search(rb'name="?daticert\.xml"?[^\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n', raw)
    if not match:
        return raw
    start = match.end()
    end = raw.find(b"\n--", start)
    encoded = base64.encodebytes(xml).replace(b"\n", b"\r\n")
    return raw[:start] + encoded + raw[end:]


def _replace_evidence(raw: bytes, xml: bytes) -> bytes:
    """Swap the base64 body of a REM evidence part for `xml` (unchanged when there is none)."""
    match = re.search(rb"REM-Section-Type: rem_message/xml_evidence\r?\n\r?\n", raw)
    if not match:
        return raw
    start = match.end()
    end = raw.find(b"\n--", start)
    return raw[:start] + base64.encodebytes(xml) + raw[end:]


def mutations(name: str, raw: bytes):
    """(label, mutated bytes) pairs for one seed message."""
    rng = random.Random(name)
    size = len(raw)
    for frac in (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        yield f"truncated@{frac}", raw[: int(size * frac)]
    head_end = raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.find(b"\n\n")
    head, body = raw[:head_end], raw[head_end:]
    yield "doubled-headers", head + b"\r\n" + head.split(b"\n", 1)[-1] + body
    yield "conflicting-x-ricevuta", b"X-Ricevuta: avvenuta-consegna\r\nX-Ricevuta: bogus\r\n" + raw
    yield "x-trasporto-and-x-ricevuta", b"X-Trasporto: errore\r\n" + raw
    yield "unknown-charset", raw.replace(b'charset="iso-8859-1"', b'charset="x-no-such-charset"')
    yield "charset-lies", raw.replace(b"charset=", b"charset=utf-16; x=")
    yield "encoded-word-garbage", b"Subject: =?utf-8?B?////?= =?koi8-zz?Q?=ZZ?=\r\n" + raw
    yield (
        "base64-garbage",
        re.sub(
            rb"(?m)^[A-Za-z0-9+/]{60,}$", lambda m: bytes(rng.choice(b"!@#$%^&*()A") for _ in m.group(0)), raw
        ),
    )
    yield "base64-bad-padding", re.sub(rb"(?m)^([A-Za-z0-9+/]{8,})=*$", rb"\1=", raw)
    yield "no-line-ends", raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    yield "nul-bytes", raw.replace(b"\r\n", b"\x00\r\n", 50)
    yield "boundary-removed", re.sub(rb'boundary="?[^";\r\n]+"?', b"", raw)
    yield "boundary-empty", re.sub(rb'boundary="?[^";\r\n]+"?', b'boundary=""', raw)
    yield "huge-header", b"Subject: " + b"x" * 3_000_000 + b"\r\n" + raw
    yield "many-headers", b"X-A: b\r\n" * 60_000 + raw
    yield "folded-forever", b"Subject: start\r\n" + b" more\r\n" * 50_000 + raw
    for bomb_name, bomb in (
        ("laughs", BOMB_LAUGHS),
        ("external", BOMB_EXTERNAL),
        ("parameter", BOMB_PARAMETER),
        ("quadratic", BOMB_QUADRATIC),
        ("deep", BOMB_DEEP),
    ):
        yield f"daticert-bomb-{bomb_name}", _replace_daticert(raw, bomb)
        if b"rem_message/xml_evidence" in raw:
            yield f"evidence-bomb-{bomb_name}", _replace_evidence(raw, bomb)
    if b"rem_message/xml_evidence" in raw:
        yield "evidence-not-xml", _replace_evidence(raw, b"\x00\xff not xml")
        yield "evidence-huge", _replace_evidence(raw, b"<Evidence>" + b"<a/>" * 1_000_000 + b"</Evidence>")
        yield "rem-headers-only", re.sub(rb"(?s)\r?\n\r?\n.*", b"\n\n", raw, count=1)
    flipped = bytearray(raw)
    for _ in range(max(1, size // 200)):
        flipped[rng.randrange(size)] = rng.randrange(256)
    yield "bit-flips", bytes(flipped)


def nested_messages(depth: int) -> bytes:
    raw = b"From: a@b.it\r\nSubject: leaf\r\n\r\nleaf"
    for i in range(depth):
        raw = (
            b"From: posta-certificata@p.it\r\nX-Trasporto: posta-certificata\r\n"
            b"Content-Type: multipart/mixed; boundary=b"
            + str(i).encode()
            + b"\r\n\r\n--b"
            + str(i).encode()
            + b"\r\nContent-Type: message/rfc822; name=postacert.eml\r\n\r\n"
            + raw
            + b"\r\n--b"
            + str(i).encode()
            + b"--\r\n"
        )
    return raw


def nested_multiparts(depth: int) -> bytes:
    head = "".join(f"Content-Type: multipart/mixed; boundary=m{i}\r\n\r\n--m{i}\r\n" for i in range(depth))
    return ("From: a@b.it\r\n" + head + "\r\nleaf\r\n").encode()


def base64_nested_messages(depth: int) -> bytes:
    raw = b"From: a@b.it\r\n\r\nleaf"
    for _ in range(depth):
        raw = (
            b"From: a@b.it\r\nX-Trasporto: posta-certificata\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
            b"--z\r\nContent-Type: message/rfc822; name=postacert.eml\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(raw)
            + b"\r\n--z--\r\n"
        )
    return raw


PATHOLOGICAL = {
    "empty": b"",
    "whitespace": b" \r\n\t\n",
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    "json": b'{"From": "x", "a": 1}',
    "binary": bytes(range(256)) * 64,
    "only-colons": b":::::\n:::\n\n",
    "mbox-line": b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\nFrom: a@b.it\nSubject: x\n\nbody",
    "nested-messages-50": nested_messages(50),
    "nested-multiparts-2000": nested_multiparts(2000),
    "base64-nested-20": base64_nested_messages(20),
    "many-parts": b"From: a@b.it\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n"
    + b"--q\r\n\r\nx\r\n" * 20_000,
}


def _check(raw: bytes) -> message.PecMessage:
    result = message.parse(raw)
    assert result.kind in kinds.ALL
    if result.kind == kinds.MALFORMED:
        assert result.problems, "a malformed result always says why"
    result.to_dict()
    for att in result.attachments:
        att.content()
    result.body_text()
    return result


def _check_rem(raw: bytes) -> message.PecMessage:
    """`_check`, and: still REM, never ordinary mail; an anomaly or a malformed one says why
    (a problem, or the REM reason of mail received from outside REM)."""
    result = _check(raw)
    assert result.rem is not None, result.problems
    assert result.kind != kinds.POSTA_ORDINARIA
    if result.kind in (kinds.MALFORMED, kinds.ANOMALIA):
        assert result.problems or (
            result.rem.event == "ReceivedFromNonERDS" and result.rem.reason == "MessageReceivedFromNonERDS"
        ), "an anomaly always says why"
    return result


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_inputs(name):
    _check(PATHOLOGICAL[name])


def test_not_an_email_is_malformed_with_a_reason():
    for name in ("empty", "whitespace", "pdf", "binary", "only-colons"):
        result = message.parse(PATHOLOGICAL[name])
        assert result.kind == kinds.MALFORMED, name
        assert "not an e-mail" in result.problems[0]


def test_mutation_corpus_never_raises_and_always_has_a_kind():
    count = 0
    for name, raw in seeds():
        for label, mutated in mutations(name, raw):
            try:
                _check(mutated)
            except Exception as exc:  # pragma: no cover - the assertion message is the point
                raise AssertionError(f"{name} / {label}: {type(exc).__name__}: {exc}") from exc
            count += 1
    assert count > 500


# mutations that may leave a REM message's header fields unreadable (a malformed message, or
# ordinary mail with problems): every other one keeps them
_REM_HEADERS_LOST = {"truncated@0.0", "truncated@0.01", "no-line-ends", "many-headers", "bit-flips"}


@pytest.mark.parametrize("name, raw", rem_seeds(), ids=[name for name, _ in rem_seeds()])
def test_rem_messages_stay_rem_and_say_what_is_wrong(name, raw):
    _check_rem(raw)
    checked = 0
    for label, mutated in mutations(name, raw):
        if label in _REM_HEADERS_LOST:
            continue
        try:
            _check_rem(mutated)
        except AssertionError as exc:  # pragma: no cover - the assertion message is the point
            raise AssertionError(f"{name} / {label}: {exc}") from exc
        checked += 1
    assert checked >= 20


def test_xml_bombs_are_refused_not_expanded():
    seed = next(c.raw for c in pecmix.corpus(20, seed=3) if c.expected["kind"] == kinds.ACCETTAZIONE)
    for bomb in (BOMB_LAUGHS, BOMB_EXTERNAL, BOMB_PARAMETER, BOMB_QUADRATIC, BOMB_DEEP):
        result = message.parse(_replace_daticert(seed, bomb))
        assert result.daticert is None
        assert any(p.startswith("daticert.xml:") for p in result.problems), result.problems
        assert result.kind == kinds.ACCETTAZIONE  # the header still says what it is


@pytest.mark.parametrize(
    "name",
    [
        "huge-header",
        "many-headers",
        "folded-forever",
        "base64-garbage",
        "daticert-bomb-laughs",
        "daticert-bomb-quadratic",
    ],
)
def test_memory_stays_bounded(name):
    raw = next(m for label, m in mutations("seed", pecmix.corpus(5, seed=11)[1].raw) if label == name)
    peak = _peak_memory(raw)
    assert peak < 8 * len(raw) + 4_000_000, f"{name}: peak {peak} for {len(raw)} bytes"


@pytest.mark.parametrize(
    "name", ["nested-messages-50", "nested-multiparts-2000", "base64-nested-20", "many-parts"]
)
def test_memory_bounded_on_deep_structures(name):
    raw = PATHOLOGICAL[name]
    peak = _peak_memory(raw)
    assert peak < 30 * len(raw) + 4_000_000, f"{name}: peak {peak} for {len(raw)} bytes"


def _peak_memory(raw: bytes) -> int:
    """Peak bytes allocated while parsing `raw`."""
    tracemalloc.start()
    try:
        message.parse(raw)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes(raw):
    _check(raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_mutations_of_pec_messages(data):
    corpus = _seed_cache()
    raw = bytearray(data.draw(st.sampled_from(corpus)))
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        if not raw:
            break
        i = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[i:]
        elif op == "insert":
            raw[i:i] = data.draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b"\r\n\r\n",
                        b"--",
                        b":",
                        b"=?",
                        b"\x00",
                        b"<",
                        b"&",
                        b"Content-Type: multipart/mixed; boundary=x\r\n",
                    ]
                )
            )
        elif op == "delete":
            del raw[i : i + data.draw(st.integers(1, 200))]
        else:
            j = data.draw(st.integers(i, min(len(raw), i + 500)))
            raw[j:j] = raw[i:j]
    _check(bytes(raw))


_SEEDS: list[bytes] = []


def _seed_cache() -> list[bytes]:
    if not _SEEDS:
        _SEEDS.extend(raw for _, raw in seeds())
    return _SEEDS
