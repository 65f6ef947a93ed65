"""A small, safe XML reader for the documents PEC and the SdI put in our hands.

Built directly on expat: no entity declarations, no external entities or DTDs, no
network, bounded size, depth and element count. Elements are matched by local name
(prefixes are dropped), since the SdI publishes the same documents under two namespaces.
A declared encoding expat lacks is never handed to pyexpat (which would look the name up
in Python's codec registry and raise ValueError or LookupError): the document is decoded
here, and only with linear C codecs (`mime.safe_codec`; UTF-7, which can hide markup, is
refused). `parse` raises `XmlError` and nothing else, whatever the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import NoReturn
from xml.parsers import expat

from pecflow.pec import mime

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000
NODES_BASE, BYTES_PER_NODE = 1000, 16  # and at most 1,000 plus one per 16 bytes of the document


class XmlError(ValueError):
    """The document is not well-formed, too big, or uses a forbidden construct."""


_NO_ATTRS: Mapping[str, str] = MappingProxyType({})


class Node:
    """An element: local tag name, attributes, child elements and character data (both
    sequences: a shared empty tuple until the first item, which keeps big trees small)."""

    __slots__ = ("tag", "attrs", "children", "parts")

    def __init__(self, tag: str, attrs: Mapping[str, str]):
        self.tag = tag
        self.attrs = attrs
        self.children: list[Node] | tuple[()] = ()
        self.parts: list[str] | tuple[()] = ()

    def __repr__(self) -> str:
        return f"<Node {self.tag} {len(self.children)} children>"

    @property
    def text(self) -> str:
        """The node's own character data (mixed-content stray text included), stripped."""
        return "".join(self.parts).strip()

    def find(self, path: str) -> Node | None:
        node: Node | None = self
        for name in path.split("/"):
            if node is None:
                return None
            node = next((c for c in node.children if c.tag == name), None)
        return node

    def findall(self, name: str) -> list[Node]:
        return [c for c in self.children if c.tag == name]

    def findtext(self, path: str) -> str | None:
        node = self.find(path)
        return node.text if node is not None else None

    def iter(self, name: str | None = None) -> Iterator[Node]:
        stack = [self]
        while stack:
            node = stack.pop()
            if name is None or node.tag == name:
                yield node
            stack.extend(reversed(node.children))


def _local(name: str) -> str:
    return name.rpartition(":")[2] if ":" in name else name


_DECL_ENCODING = re.compile(rb"""\s*+<\?xml[^>]*?encoding\s*+=\s*+["']([A-Za-z0-9._-]++)["']""")
_DECL_HEAD = 1024  # the declaration is looked for in the first bytes only
_REFUSED_CODECS = ("utf_7",)
_EXPAT_ENCODINGS = ("UTF-8", "UTF-16", "UTF-16BE", "UTF-16LE", "ISO-8859-1", "US-ASCII")  # built in


def declared_encoding(data: bytes) -> str | None:
    """The encoding named by the XML declaration of `data`, if any (as written)."""
    match = _DECL_ENCODING.match(data[:_DECL_HEAD]) if isinstance(data, (bytes, bytearray)) else None
    return match.group(1).decode("ascii") if match else None


def _forbid(what: str) -> Callable[..., NoReturn]:
    def handler(*args: object) -> NoReturn:
        raise XmlError(f"{what} not allowed")

    return handler


def _doctype(name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool) -> None:
    if has_internal_subset:
        raise XmlError("DOCTYPE with an internal subset not allowed")


def _parse_once(data: bytes | str, max_depth: int, max_nodes: int) -> Node:
    # the handlers are closures over locals: they run once per element, the hot path
    stack: list[Node] = []
    roots: list[Node] = []
    budget = [max_nodes]

    def start(name: str, attrs: dict[str, str]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise XmlError(f"more than {max_nodes} elements")
        if ":" in name:
            name = name.rpartition(":")[2]
        node = Node(name, {_local(k): v for k, v in attrs.items()} if attrs else _NO_ATTRS)
        if stack:
            if len(stack) >= max_depth:
                raise XmlError(f"elements nested deeper than {max_depth}")
            parent = stack[-1]
            if parent.children:
                parent.children.append(node)
            else:
                parent.children = [node]
        else:
            roots.append(node)
        stack.append(node)

    def text(chars: str) -> None:
        if stack:
            node = stack[-1]
            if node.parts:
                node.parts.append(chars)
            else:
                node.parts = [chars]

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.ordered_attributes = False
    parser.StartElementHandler = start
    parser.EndElementHandler = lambda name: stack.pop()
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = _doctype
    parser.EntityDeclHandler = _forbid("entity declarations")
    parser.UnparsedEntityDeclHandler = _forbid("unparsed entities")
    parser.ExternalEntityRefHandler = _forbid("external entities")
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlError(
            f"not well-formed XML: {expat.ErrorString(exc.code)} (line {exc.lineno}, column {exc.offset})"
        ) from None
    if not roots:
        raise XmlError("no root element")
    return roots[0]


def parse(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> Node:
    """Parse `data` into a tree of `Node`s, or raise `XmlError` saying why not."""
    if not isinstance(data, (bytes, bytearray)):
        raise XmlError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise XmlError(f"document of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    if not data.strip():
        raise XmlError("empty document")
    # building a node costs microseconds: no more of them than real documents need (they
    # spend 50 bytes or more on an element), so that the work stays linear in the bytes
    max_nodes = min(max_nodes, NODES_BASE + len(data) // BYTES_PER_NODE)
    try:
        declared = declared_encoding(data)
        if declared is not None and declared.upper() not in _EXPAT_ENCODINGS:
            return _parse_declared(bytes(data), declared, max_depth, max_nodes)
        return _parse_once(bytes(data), max_depth, max_nodes)
    except XmlError:
        raise
    except Exception as exc:  # noqa: BLE001 - the contract: XmlError only, whatever the bytes
        raise XmlError(f"unreadable XML ({type(exc).__name__}: {str(exc)[:100]})") from None


def _parse_declared(data: bytes, name: str, max_depth: int, max_nodes: int) -> Node:
    codec = mime.safe_codec(name)
    if codec is None or codec in _REFUSED_CODECS:
        raise XmlError(f"encoding {name[:40]!r} not supported")
    text = mime.clean_text(data.decode(codec, errors="replace"))
    # without its declaration: expat reads a str as UTF-8 and would refuse the encoding name
    if text.lstrip().startswith("<?xml"):
        end = text.find("?>")
        if end == -1:
            raise XmlError("XML declaration not closed")
        text = text[end + 2 :]
    return _parse_once(text, max_depth, max_nodes)
