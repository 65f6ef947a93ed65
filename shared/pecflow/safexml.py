"""A small, safe XML reader for the documents PEC and the SdI put in our hands.

Built directly on expat: no entity declarations, no external entities or DTDs, no
network, bounded size, depth and element count. Elements are matched by local name
(prefixes are dropped), since the SdI publishes the same documents under two namespaces.
"""

from __future__ import annotations

import codecs
import re
from xml.parsers import expat

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000


class XmlError(ValueError):
    """The document is not well-formed, too big, or uses a forbidden construct."""


class Node:
    __slots__ = ("tag", "attrs", "children", "parts")

    def __init__(self, tag: str, attrs: dict[str, str]):
        self.tag = tag
        self.attrs = attrs
        self.children: list[Node] = []
        self.parts: list[str] = []

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

    def iter(self, name: str | None = None):
        stack = [self]
        while stack:
            node = stack.pop()
            if name is None or node.tag == name:
                yield node
            stack.extend(reversed(node.children))


def _local(name: str) -> str:
    return name.rpartition(":")[2] if ":" in name else name


_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class _Builder:
    __slots__ = ("stack", "root", "count", "max_depth", "max_nodes")

    def __init__(self, max_depth: int, max_nodes: int):
        self.stack: list[Node] = []
        self.root: Node | None = None
        self.count = 0
        self.max_depth = max_depth
        self.max_nodes = max_nodes

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > self.max_nodes:
            raise XmlError(f"more than {self.max_nodes} elements")
        if len(self.stack) >= self.max_depth:
            raise XmlError(f"elements nested deeper than {self.max_depth}")
        node = Node(_local(name), {_local(k): v for k, v in attrs.items()} if attrs else {})
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def end(self, name: str) -> None:
        self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack:
            self.stack[-1].parts.append(text)


def _forbid(what: str):
    def handler(*args):
        raise XmlError(f"{what} not allowed")

    return handler


def _doctype(name, sysid, pubid, has_internal_subset):
    if has_internal_subset:
        raise XmlError("DOCTYPE with an internal subset not allowed")


def _parse_once(data: bytes | str, max_depth: int, max_nodes: int) -> Node:
    builder = _Builder(max_depth, max_nodes)
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.ordered_attributes = False
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _doctype
    parser.EntityDeclHandler = _forbid("entity declarations")
    parser.UnparsedEntityDeclHandler = _forbid("unparsed entities")
    parser.ExternalEntityRefHandler = _forbid("external entities")
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlError(f"not well-formed XML: {expat.ErrorString(exc.code)} "
                       f"(line {exc.lineno}, column {exc.offset})") from None
    if builder.root is None:
        raise XmlError("no root element")
    return builder.root


def parse(data: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
          max_nodes: int = MAX_NODES) -> Node:
    """Parse `data` into a tree of `Node`s, or raise `XmlError` saying why not."""
    if len(data) > max_bytes:
        raise XmlError(f"document of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    if not data.strip():
        raise XmlError("empty document")
    try:
        return _parse_once(data, max_depth, max_nodes)
    except XmlError as exc:
        # expat knows UTF-8/16, ISO-8859-1 and ASCII; decode anything else through Python's codecs
        if "unknown encoding" not in str(exc):
            raise
        match = _DECL_ENCODING.match(data)
        try:
            codec = codecs.lookup(match.group(1).decode("ascii")) if match else None
        except LookupError:
            codec = None
        if codec is None:
            raise
        text = data.decode(codec.name, errors="replace")
        text = text[text.index("?>") + 2:] if text.lstrip().startswith("<?xml") else text
        return _parse_once(text, max_depth, max_nodes)
