"""Address fields (From, To, Cc, Reply-To) read the same way on every Python.

The standard library's `parseaddr`/`getaddresses` changed between patch releases (3.12.6 and
3.13 parse strictly: `parseaddr("Rossi, Mario <m@x.it>")` is ('', 'Rossi') on 3.11.7 and
3.12.1, ('', '') on 3.13.0), and given text whose encoded words were already decoded they
split a display name such as `=?utf-8?q?Rossi,_Mario?=` at its comma. This reader takes the
raw, unfolded header value: an encoded word is one token wherever it stands (RFC 2047), and
is decoded only once the display name it belongs to is known. Common shapes are read whole
by one C regex; the rest token by token (one C regex for the tokens, a loop over them, no
recursion), within a per-message budget. Lenient where real mail is sloppy, silent on nothing:

- `Name <a@b>`, `"Name, Inc." <a@b>`, `<a@b>`, `a@b`, `a@b (Name)`, groups (`Team: a@b;`);
- whatever stands before `<` is the display name, even when not a proper phrase
  (`no-reply@example.com <no-reply@example.com>`), and `Name <a@b` gives its address;
- anything else (`Rossi`, `a@b c@d`, `<a@b> x`, an open quote or comment) is not read as an
  address: it is skipped and described in `problems`, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pecflow.pec import mime

MAX_ADDRESSES = 10_000  # addresses kept from the address fields of one message tree
MAX_ADDRESS_CHARS = 64 * 1024  # characters read token by token per message tree (a few µs each)

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]++)
    | (?P<ew>=\?[^?\x00-\x20]++\?[bBqQ]\?[^?\x00-\x20]*+\?=)
    | (?P<qs>"(?:[^"\\]++|\\.)*+(?P<closed>")?)
    | (?P<dl>\[(?:[^\[\]\\]++|\\.)*+\]?)
    | (?P<comment>\((?:[^()\\]++|\\.)*+\)?)
    | (?P<atom>[^ \t\r\n()<>\[\]:;@\\,."]++)
    | (?P<special>.)
    """,
    re.S | re.X,
)
_ADDR = r"[^\x00-\x20\"<>()\[\]:;@\\,]++@[^\x00-\x20\"<>()\[\]:;@\\,]++"
_WORD = r"[^\x00-\x20\"<>()\[\]:;@\\,]++"
_COMMON_ITEM = re.compile(
    rf"""[ \t\r\n]*+
    (?:
        (?:(?P<quoted>"(?:[^"\\\r\n]++|\\[^\r\n])*+")|(?P<words>{_WORD}(?:[ \t\r\n]++{_WORD})*+))?
        [ \t\r\n]*+<(?P<angle>{_ADDR})>
      | (?P<bare>{_ADDR})
    )
    [ \t\r\n]*+(?:,|\Z)""",
    re.X,
)
_PARENS = re.compile(r"\\.|[()]", re.S)
_CLOSED_QUOTE = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.S)
_CLOSED_LITERAL = re.compile(r"\[(?:[^\[\]\\]++|\\.)*+\]", re.S)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
_BLANKS = re.compile(r"[ \t\r\n]+")

# token kinds: ws, ew, qs, dl, comment, atom, and each special character as itself
_Token = tuple[str, str]
_WORDS = frozenset(("atom", "ew", "qs"))
_ADDR_SPEC_PARTS = frozenset(("atom", "ew", "qs", "dl", ".", "@"))


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str  # the addr-spec as written (local part and domain), "" for `<>`
    display_name: str = ""  # decoded; a comment after a bare address stands in for it


def _clip(value: str, size: int = 60) -> str:
    value = _BLANKS.sub(" ", mime.raw_text(value)).strip()
    return value if len(value) <= size else value[:size] + "…"


def _tokens(value: str) -> tuple[list[_Token], str | None]:
    """The tokens of `value`, comments as one token each; and what was left open, if anything
    (an open comment or quoted string runs to the end of the value)."""
    out: list[_Token] = []
    left_open = None
    pos, end = 0, len(value)
    while pos < end:
        for found in _TOKEN.finditer(value, pos):  # in C, up to the first nested comment
            kind = found.lastgroup
            assert kind is not None  # `special` matches any character
            if kind == "special":
                out.append((found.group(), found.group()))
            elif kind == "qs":
                out.append(("qs", found.group()))
                if found.group("closed") is None:
                    left_open = "a quoted string left open"
            elif kind == "comment" and found.group("comment")[-1] != ")":
                pos = found.start()
                break
            else:
                out.append((kind, found.group()))
        else:
            break
        depth, stop = 0, end  # a comment with comments inside: count its parentheses
        for paren in _PARENS.finditer(value, pos):
            if paren.group() == "(":
                depth += 1
            elif paren.group() == ")":
                depth -= 1
                if depth == 0:
                    stop = paren.end()
                    break
        if depth:
            left_open = "a comment left open"
        out.append(("comment", value[pos:stop]))
        pos = stop
    return out, left_open


def _unquote(text: str) -> str:
    closed = _CLOSED_QUOTE.fullmatch(text) is not None
    return _QUOTED_PAIR.sub(r"\1", text[1:-1] if closed else text[1:])


def _phrase(tokens: list[_Token]) -> str:
    """A display name: words joined by single blanks, quotes removed, encoded words decoded
    (also inside quotes, as mail clients do), raw 8-bit text read as UTF-8 or Windows-1252."""
    parts: list[str] = []
    for kind, text in tokens:
        if kind in ("ws", "comment"):
            if parts and parts[-1] != " ":
                parts.append(" ")
        else:
            parts.append(_unquote(text) if kind == "qs" else text)
    return mime.decode_text("".join(parts).strip(" "))


def _comment_text(tokens: list[_Token]) -> str:
    texts = [text[1:-1] if text.endswith(")") else text[1:] for kind, text in tokens if kind == "comment"]
    return mime.decode_text(_QUOTED_PAIR.sub(r"\1", " ".join(t.strip() for t in texts if t.strip())))


def _addr_spec(tokens: list[_Token]) -> str | None:
    """`local@domain` from its tokens (blanks and comments dropped), or None if it is not one."""
    parts = [(kind, text) for kind, text in tokens if kind not in ("ws", "comment")]
    if not parts or any(kind not in _ADDR_SPEC_PARTS for kind, _ in parts):
        return None
    kinds = [kind for kind, _ in parts]
    if kinds.count("@") != 1:
        return None
    at = kinds.index("@")
    local, domain = parts[:at], parts[at + 1 :]
    if not local or not domain or any(kind == "dl" for kind, _ in local):
        return None
    if any(kind not in ("atom", ".", "dl") for kind, _ in domain):
        return None
    if any(kind == "dl" and _CLOSED_LITERAL.fullmatch(text) is None for kind, text in domain):
        return None  # a domain literal left open: '[' to the end of the value
    address = "".join(text for _, text in parts)
    return mime.raw_text(address)


def _mailbox(tokens: list[_Token]) -> Mailbox | str:
    """One item of an address list: its mailbox, or why it is not one."""
    kinds = [kind for kind, _ in tokens]
    if "<" in kinds:
        lt = kinds.index("<")
        gt = kinds.index(">", lt) if ">" in kinds[lt:] else len(tokens)
        after = [kind for kind in kinds[gt + 1 :] if kind not in ("ws", "comment")]
        if after:
            return "text after the closing '>'"
        inside = tokens[lt + 1 : gt]
        inner = [kind for kind in kinds[lt + 1 : gt] if kind not in ("ws", "comment")]
        if ":" in inner:  # an obsolete source route <@relay:a@b>
            inside = inside[len(inside) - kinds[lt + 1 : gt][::-1].index(":") :]
        display = _phrase(tokens[:lt])
        if not inner:
            return Mailbox("", display)
        address = _addr_spec(inside)
        return Mailbox(address, display) if address else "not an address inside '<…>'"
    address = _addr_spec(tokens)
    if address is None:
        return "not an address"
    return Mailbox(address, _comment_text(tokens))


class Budget:
    """What the rest of one message tree may still spend on address fields: addresses kept,
    and characters read token by token (values the C fast path does not take whole)."""

    __slots__ = ("address_chars", "addresses")

    def __init__(self) -> None:
        self.address_chars = MAX_ADDRESS_CHARS
        self.addresses = MAX_ADDRESSES


def read(
    values: list[str], name: str, problems: list[str], budget: Budget | None = None, *, first: bool = False
) -> list[Mailbox]:
    """The mailboxes of header `name`'s raw values (groups flattened), within `budget`; with
    `first`, only the first (as From and Reply-To are read: not charged to the addresses kept).
    Items that are not mailboxes are reported in `problems` as "<name> header unreadable:
    <why>: <the item>" and skipped; an empty item (`a@b,,c@d`), a group's name
    (`undisclosed-recipients:;`) and `<>` are no problem, and give no mailbox."""
    budget = budget or Budget()
    out: list[Mailbox] = []
    for value in values:
        found = _common_shapes(value, 1 if first else budget.addresses + 1)
        if found is None:
            if len(value) > budget.address_chars:
                _problem(
                    problems,
                    f"{name} header unreadable: {len(value)} characters, past the "
                    f"{MAX_ADDRESS_CHARS} read for one message",
                )
                continue
            budget.address_chars -= len(value)
            found = _read_tokens(value, name, problems)
        if first:
            if found:
                return found[:1]
            continue
        if len(found) > budget.addresses:
            _problem(problems, f"{name}: addresses beyond the {MAX_ADDRESSES} read for one message ignored")
            found = found[: budget.addresses]
        budget.addresses -= len(found)
        out.extend(found)
    return out


def _problem(problems: list[str], text: str) -> None:
    if text not in problems:
        problems.append(text)


def _common_shapes(value: str, limit: int) -> list[Mailbox] | None:
    """The mailboxes of a list of the common shapes (`a@b`, `Name <a@b>`, `"Name, Inc." <a@b>`),
    read in C, no more than `limit`; None for anything else. Gives what `_read_tokens` gives."""
    out: list[Mailbox] = []
    pos, end = 0, len(value)
    while pos < end and len(out) < limit:
        found = _COMMON_ITEM.match(value, pos)
        if found is None:
            return None
        address = found.group("angle") or found.group("bare")
        if "=?" in address:  # an encoded word is one token, which may hold the '@'
            return None
        address = mime.raw_text(address)
        quoted, words = found.group("quoted"), found.group("words")
        if quoted:
            display = mime.decode_text(_unquote(quoted).strip(" "))
        elif words:
            display = mime.decode_text(_BLANKS.sub(" ", words))
        else:
            display = ""
        out.append(Mailbox(address, display))
        pos = found.end()
    return out


def _read_tokens(value: str, name: str, problems: list[str]) -> list[Mailbox]:
    out: list[Mailbox] = []
    tokens, left_open = _tokens(value)
    if left_open:
        _problem(problems, f"{name} header unreadable: {left_open} in {_clip(value)!r}")
    for item in _items(tokens):
        found = _mailbox(item)
        if isinstance(found, str):
            if not left_open:  # else the open quote or comment is the problem reported
                text = "".join(t for _, t in item)
                _problem(problems, f"{name} header unreadable: {found}: {_clip(text)!r}")
        elif found.address:
            out.append(found)
    return out


def _items(tokens: list[_Token]) -> list[list[_Token]]:
    """The non-empty items of an address list: split at ',' and ';' outside '<…>', group
    names (`Team:`) dropped."""
    items: list[list[_Token]] = []
    item: list[_Token] = []
    in_angle = False
    for token in tokens:
        kind = token[0]
        if in_angle:
            in_angle = kind != ">"
            item.append(token)
        elif kind == ":" and _is_group_name(item):
            item = []  # a group's name: its members are read as any other item
        elif kind in (",", ";"):
            items.append(item)
            item = []
        else:
            in_angle = kind == "<"
            item.append(token)
    items.append(item)
    return [item for item in items if any(kind not in ("ws", "comment") for kind, _ in item)]


def _is_group_name(tokens: list[_Token]) -> bool:
    """Whether `tokens`, followed by ':', name a group (a phrase; `Per conto di:` unquoted)."""
    kinds = [kind for kind, _ in tokens if kind not in ("ws", "comment")]
    return bool(kinds) and all(kind in _WORDS or kind == "." for kind in kinds)
