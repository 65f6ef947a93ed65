"""Address fields read the same on every Python (3.11, 3.12.1, Lambda's 3.12.6+, 3.13).

The standard library's `parseaddr`/`getaddresses` answer differently across patch releases
(strict parsing since 3.12.6 and 3.13), so the table below asserts exact results rather than
comparing with them; `make test` runs this file on 3.12 and 3.13. Well-formed lists are also
checked against the policy-aware `email.headerregistry` parser, whose answers on valid input
do not depend on the version.
"""

from __future__ import annotations

import time
from email.headerregistry import AddressHeader, HeaderRegistry

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pecflow.pec import addresses, kinds, message
from pecflow.pec.addresses import Mailbox


def _read(value: str) -> tuple[list[tuple[str, str]], list[str]]:
    problems: list[str] = []
    found = addresses.read([value], "To", problems)
    return [(m.address, m.display_name) for m in found], problems


NOT_AN_ADDRESS = "To header unreadable: not an address: "

TABLE = [
    # an encoded word is one token: what it holds never splits or ends the display name
    ("=?utf-8?q?Rossi,_Mario?= <m@x.it>", [("m@x.it", "Rossi, Mario")], []),
    ("=?UTF-8?B?Um9zc2ksIE1hcmlv?= <m@x.it>", [("m@x.it", "Rossi, Mario")], []),
    ("=?utf-8?q?Rossi_<r@y.it>?= <m@x.it>", [("m@x.it", "Rossi <r@y.it>")], []),
    ("=?utf-8?q?Mario_=22il_capo=22_Rossi?= <m@x.it>", [("m@x.it", 'Mario "il capo" Rossi')], []),
    ("=?utf-8?q?Citt=C3=A0,?= =?utf-8?q?_Ufficio?= <m@x.it>", [("m@x.it", "Città, Ufficio")], []),
    ('"=?utf-8?q?Rossi,_Mario?=" <m@x.it>', [("m@x.it", "Rossi, Mario")], []),  # quoted anyway
    ("=?utf-8?q?Rossi,_Mario?= <m@x.it>, b@y.it", [("m@x.it", "Rossi, Mario"), ("b@y.it", "")], []),
    # quoted display names
    ('"Rossi, Mario" <m@x.it>', [("m@x.it", "Rossi, Mario")], []),
    ('"Rossi \\"Mario\\"" <m@x.it>', [("m@x.it", 'Rossi "Mario"')], []),
    (
        '"Per conto di: a@b.it" <posta-certificata@pec.it>',
        [("posta-certificata@pec.it", "Per conto di: a@b.it")],
        [],
    ),
    # several addresses, groups, comments
    (
        'a@b.it, "Rossi, M." <m@x.it>, c@d.it (Ufficio)',
        [("a@b.it", ""), ("m@x.it", "Rossi, M."), ("c@d.it", "Ufficio")],
        [],
    ),
    ("Ufficio: a@b.it, Rossi <m@x.it>;, c@d.it", [("a@b.it", ""), ("m@x.it", "Rossi"), ("c@d.it", "")], []),
    ("undisclosed-recipients:;", [], []),
    ("a@b.it,, ,c@d.it,", [("a@b.it", ""), ("c@d.it", "")], []),
    ("Mario (ufficio) Rossi <m@x.it>", [("m@x.it", "Mario Rossi")], []),
    ("<@relay.it:m@x.it>", [("m@x.it", "")], []),
    # no display name, bare address, odd but harmless shapes
    ("<m@x.it>", [("m@x.it", "")], []),
    ("m@x.it", [("m@x.it", "")], []),
    ("  m@x.it  ", [("m@x.it", "")], []),
    ('"a b"@x.it', [('"a b"@x.it', "")], []),
    ("m@[192.0.2.1]", [("m@[192.0.2.1]", "")], []),
    ("Mario R. Rossi <m@x.it>", [("m@x.it", "Mario R. Rossi")], []),
    ("no-reply@example.com <no-reply@example.com>", [("no-reply@example.com", "no-reply@example.com")], []),
    ("Rossi <m@x.it", [("m@x.it", "Rossi")], []),  # '>' missing
    ("Citt\xc3\xa0 <m@x.it>", [("m@x.it", "Città")], []),  # raw UTF-8, as the header holds it
    ("Citt\xe0 <m@x.it>", [("m@x.it", "Città")], []),  # raw Windows-1252
    ("<>", [], []),
    ("", [], []),
    # what is not an address is reported, never guessed at
    ("Rossi, Mario <m@x.it>", [("m@x.it", "Mario")], [NOT_AN_ADDRESS + "'Rossi'"]),
    ("Rossi", [], [NOT_AN_ADDRESS + "'Rossi'"]),
    ("a@b.it c@d.it", [], [NOT_AN_ADDRESS + "'a@b.it c@d.it'"]),
    ("<a@b.it> <c@d.it>", [], ["To header unreadable: text after the closing '>': '<a@b.it> <c@d.it>'"]),
    ("Rossi <mario>", [], ["To header unreadable: not an address inside '<…>': 'Rossi <mario>'"]),
    ('"Rossi <m@x.it>', [], ["To header unreadable: a quoted string left open in '\"Rossi <m@x.it>'"]),
    ("((m@x.it", [], ["To header unreadable: a comment left open in '((m@x.it'"]),
    ("@@@", [], [NOT_AN_ADDRESS + "'@@@'"]),
    ("a@b@c", [], [NOT_AN_ADDRESS + "'a@b@c'"]),
    ("=@[@", [], [NOT_AN_ADDRESS + "'=@[@'"]),  # a domain literal left open
    ("=?utf-8?q?a@b.it?=", [], [NOT_AN_ADDRESS + "'=?utf-8?q?a@b.it?='"]),
]


@pytest.mark.parametrize("value,expected,problems", TABLE, ids=[repr(case[0])[:50] for case in TABLE])
def test_tricky_headers(value, expected, problems):
    assert _read(value) == (expected, problems)


def test_the_example_that_differs_across_pythons():
    # email.utils.parseaddr gives ('', 'Rossi') on 3.11.7 and 3.12.1, ('', '') on 3.13.0
    assert message._address("Rossi, Mario <m@x.it>") == "m@x.it"
    assert message._addresses(["Rossi, Mario <m@x.it>"]) == ["m@x.it"]
    assert message._address("=?utf-8?q?Rossi,_Mario?= <m@x.it>") == "m@x.it"


def test_several_values_of_one_field_are_read_in_order():
    problems: list[str] = []
    found = addresses.read(["a@b.it, c@d.it", "=?utf-8?q?E,_F?= <e@f.it>"], "Cc", problems)
    assert found == [Mailbox("a@b.it"), Mailbox("c@d.it"), Mailbox("e@f.it", "E, F")]
    assert problems == []


def test_a_problem_is_reported_once_per_field():
    problems: list[str] = []
    addresses.read(["Rossi, Rossi, a@b.it"], "To", problems)
    assert problems == [NOT_AN_ADDRESS + "'Rossi'"]


RECEIPT = (
    b"From: {from_}\r\nTo: {to}\r\nSubject: ACCETTAZIONE: prova\r\n"
    b"Date: Mon, 02 Mar 2026 10:30:00 +0100\r\nMessage-ID: <ricevuta@pec.esempio.it>\r\n"
    b"X-Ricevuta: accettazione\r\nX-Riferimento-Message-ID: <orig@pec.esempio.it>\r\n\r\nbody\r\n"
)


def test_a_message_with_an_encoded_comma_in_its_display_names():
    raw = RECEIPT.replace(b"{from_}", b"=?utf-8?q?Gestore,_PEC?= <posta-certificata@pec.esempio.it>").replace(
        b"{to}",
        b"=?utf-8?q?Rossi,_Mario?=\r\n <m@pec.esempio.it>, =?utf-8?q?Bianchi,_A.?= <b@pec.esempio.it>",
    )
    result = message.parse(raw)
    assert result.kind == kinds.ACCETTAZIONE
    assert result.from_address == "posta-certificata@pec.esempio.it"
    assert result.provider_domain == "pec.esempio.it"
    assert result.to == ["m@pec.esempio.it", "b@pec.esempio.it"]
    assert result.sender == "m@pec.esempio.it"
    assert not [p for p in result.problems if "header unreadable" in p], result.problems


def test_a_garbage_from_is_a_problem_on_from_not_a_crash():
    result = message.parse(RECEIPT.replace(b"{from_}", b'"Rossi <(((').replace(b"{to}", b"a@b.it"))
    assert result.kind == kinds.ACCETTAZIONE and result.from_address is None and result.to == ["a@b.it"]
    assert any(p.startswith("From header unreadable: a quoted string left open") for p in result.problems)


@pytest.mark.parametrize(
    "from_,sender",
    [
        (b'"Per conto di: a@b.it" <posta-certificata@pec.it>', "a@b.it"),
        (b"=?utf-8?q?Per_conto_di:_a@b.it?= <posta-certificata@pec.it>", "a@b.it"),
        (b'"=?utf-8?q?Per_conto_di=3A_Rossi=2C_Mario_=3Cm@x.it=3E?=" <posta-certificata@pec.it>', "m@x.it"),
    ],
)
def test_on_behalf_of_in_a_quoted_or_encoded_display_name(from_, sender):
    raw = (
        b"From: " + from_ + b"\r\nTo: d@pec.it\r\nSubject: POSTA CERTIFICATA: prova\r\n"
        b"Date: Mon, 02 Mar 2026 10:30:00 +0100\r\nMessage-ID: <busta@pec.it>\r\n"
        b"X-Trasporto: posta-certificata\r\n\r\nbody\r\n"
    )
    result = message.parse(raw)
    assert result.kind == kinds.POSTA_CERTIFICATA
    assert result.from_address == "posta-certificata@pec.it"
    assert result.sender == sender


# --- properties -----------------------------------------------------------------------------------
_atoms = st.text(alphabet="abcxyz019-_+", min_size=1, max_size=6)
_domains = st.lists(_atoms, min_size=1, max_size=3).map(".".join)
_addr_specs = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.lists(_atoms, min_size=1, max_size=2).map(".".join),
    _domains,
)
_name_text = st.text(alphabet="abcRM ,.<>\"'@:;()àè€", min_size=1, max_size=12).filter(lambda t: t.strip())


def _encoded(text: str) -> str:
    data = text.encode()
    return (
        "=?utf-8?q?"
        + "".join(f"={b:02X}" if not (chr(b).isascii() and chr(b).isalnum()) else chr(b) for b in data)
        + "?="
    )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def _mailboxes(draw):
    address = draw(_addr_specs)
    shape = draw(st.sampled_from(["bare", "angle", "quoted", "encoded", "words"]))
    if shape == "bare":
        return address, "", address
    if shape == "angle":
        return f"<{address}>", "", address
    if shape == "words":
        words = draw(st.lists(_atoms, min_size=1, max_size=3))
        return f"{' '.join(words)} <{address}>", " ".join(words), address
    name = " ".join(draw(_name_text).split())  # the display name, blanks as one space
    if not name:
        name = "x"
    return f"{(_quoted if shape == 'quoted' else _encoded)(name)} <{address}>", name, address


@settings(max_examples=400, deadline=None)
@given(st.lists(_mailboxes(), min_size=1, max_size=5), st.sampled_from([", ", ",", ",\r\n ", " , "]))
def test_well_formed_lists_give_their_mailboxes(items, separator):
    value = separator.join(text for text, _, _ in items)
    value = value.encode().decode("latin-1")  # raw UTF-8, as a header value holds it
    problems: list[str] = []
    found = addresses.read([value], "To", problems)
    assert [(m.address, m.display_name) for m in found] == [(a, n) for _, n, a in items]
    assert problems == []
    # the token reader alone (the path for values the C fast path does not take) agrees
    assert addresses._read_tokens(value, "To", []) == found


@settings(max_examples=400, deadline=None)
@given(st.lists(_mailboxes(), min_size=1, max_size=5))
def test_well_formed_lists_agree_with_the_policy_aware_stdlib_parser(items):
    value = ", ".join(text for text, _, _ in items)
    header = HeaderRegistry()("To", value)
    assert isinstance(header, AddressHeader)
    if header.defects:  # the oracle is trusted on what it finds valid only
        return
    expected = [(a.addr_spec, a.display_name) for a in header.addresses]
    raw = value.encode().decode("latin-1")
    assert [(m.address, m.display_name) for m in addresses.read([raw], "To", [])] == expected


_garbage = st.text(alphabet='ab.-_@<> ,;:"()\\[]=?qQ\r\n\tà\x00', max_size=60)


@settings(max_examples=1000, deadline=None)
@given(_garbage)
def test_any_text_gives_mailboxes_or_problems_and_the_fast_path_agrees(value):
    problems: list[str] = []
    found = addresses.read([value], "From", problems)
    for mailbox in found:
        local, at, domain = mailbox.address.rpartition("@")
        assert at and local and domain
    assert all(p.startswith("From header unreadable: ") for p in problems)
    fast = addresses._common_shapes(value, addresses.MAX_ADDRESSES)
    if fast is not None:
        assert fast == addresses._read_tokens(value, "From", [])


def test_the_token_reader_is_linear_and_bounded():
    for shape in ("@", "<", "(", '"', "a.", "=?utf-8?q?,?= "):
        value = shape * (addresses.MAX_ADDRESS_CHARS // len(shape))
        start = time.perf_counter()
        addresses.read([value], "To", [])
        assert time.perf_counter() - start < 5, shape
    problems: list[str] = []
    budget = addresses.Budget()
    addresses.read(["@" * 40_000, "(" * 40_000], "To", problems, budget)
    assert (
        problems[-1]
        == f"To header unreadable: 40000 characters, past the {addresses.MAX_ADDRESS_CHARS} read for one message"
    )
