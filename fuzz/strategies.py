"""Hypothesis inputs for a target: its seeds mutated byte-wise (cuts, insertions, repeated slices,
bytes from the seeds' own alphabet) and random bytes; shrinking then minimises a crash."""

from __future__ import annotations

from hypothesis import strategies as st

from fuzz.targets import MAX_INPUT

# bytes that matter to the parsers: MIME, XML, CSV, JSON, Jinja, ASN.1 lengths
_TOKENS = [b"\r\n", b"\n", b"--", b"=?utf-8?b?", b"?=", b"<", b">", b"&", b";", b",", b'"', b"{{", b"}}", b"{%",
           b"%}", b"\x00", b"\x80", b"\xff", b"0\x82", b"[", b"]", b"{", b"}", b"\\", b"'"]  # fmt: skip


@st.composite
def _mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(("cut", "insert", "token", "repeat", "flip")))
        if op == "cut":
            del data[at : at + draw(st.integers(1, 256))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(_TOKENS)) * draw(st.integers(1, 64))
        elif op == "repeat" and data:
            piece = bytes(data[at : at + draw(st.integers(1, 64))])
            data[at:at] = piece * draw(st.integers(2, 200))
        elif op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(data[:MAX_INPUT])


def inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    random_bytes = st.binary(max_size=2048)
    if not seeds:
        return random_bytes
    return st.one_of(st.sampled_from(seeds).flatmap(_mutated), random_bytes)
