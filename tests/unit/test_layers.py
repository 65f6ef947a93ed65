"""The dependency rule of the core, read from the source (every import, also those inside functions):

- `pecflow.pec` (the formats) imports only itself; `pecflow.domain` only itself and `pec`;
  neither loads an AWS SDK, an IMAP/SMTP library or a socket;
- `pecflow.services` depend on the domain's ports, never on an adapter module or a network library;
- `pecflow.adapters` never reach up into the services, the bootstrap or the CLI;
- the shipped package never imports the test tooling (`local`, `tests`);
- no import cycle, in the package or in the local stack's tooling.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = REPO / "shared"

NETWORK_AND_AWS = ("boto3", "botocore", "imapclient", "smtplib", "imaplib", "socket", "ssl", "urllib.request")
NETWORK_AND_AWS += ("aws_lambda_powertools", "moto", "http.client")

# (layer, what it may not import)
RULES = {
    "pecflow.pec": (
        *NETWORK_AND_AWS,
        "pecflow.domain",
        "pecflow.services",
        "pecflow.adapters",
        "pecflow.config",
        "pecflow.bootstrap",
        "pecflow.cli",
    ),
    "pecflow.domain": (
        *NETWORK_AND_AWS,
        "pecflow.services",
        "pecflow.adapters",
        "pecflow.config",
        "pecflow.bootstrap",
        "pecflow.cli",
    ),
    "pecflow.services": (*NETWORK_AND_AWS, "pecflow.adapters", "pecflow.bootstrap", "pecflow.cli"),
    "pecflow.adapters": ("pecflow.services", "pecflow.bootstrap", "pecflow.cli"),
    "pecflow": ("local", "tests", "bench"),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> Iterator[tuple[int, str]]:
    return imports_in(path.read_text(), module, is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import statement, relative ones resolved."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from pkg import sub` may name a submodule: the edge goes to it when it exists
                yield node.lineno, f"{base}.{alias.name}"


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def sources(root: Path, top: str) -> dict[str, Path]:
    return {
        module_name(path, root): path
        for path in sorted((root / top).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def import_graph(root: Path, top: str) -> dict[str, dict[str, int]]:
    """module → {module it imports (inside `top`): line}."""
    modules = sources(root, top)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        for line, name in imports_of(path, module):
            # the longest known module the name starts with (`pkg.mod.Class` → `pkg.mod`)
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.setdefault(target, line)
    return graph


def violations() -> list[str]:
    found = []
    for module, path in sources(PACKAGE_ROOT, "pecflow").items():
        for line, name in imports_of(path, module):
            for layer, forbidden in RULES.items():
                if not within(module, layer):
                    continue
                for banned in forbidden:
                    if within(name, banned) and not within(name, layer):
                        found.append(f"{path.relative_to(REPO)}:{line} {module} imports {name}")
    return sorted(set(found))


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_each_layer_imports_only_what_it_may():
    assert violations() == []


@pytest.mark.parametrize("root, top", [(PACKAGE_ROOT, "pecflow"), (REPO, "local")])
def test_no_import_cycle(root, top):
    assert cycles(import_graph(root, top)) == []


def test_the_rule_is_read_from_the_source():
    """The checks see what they must: a known import of each kind is found."""
    graph = import_graph(PACKAGE_ROOT, "pecflow")
    assert "pecflow.pec.mime" in graph["pecflow.pec.message"]
    assert "pecflow.domain.campaign.rendering" in graph["pecflow.domain.campaign"]
    names = {
        name
        for _, name in imports_of(PACKAGE_ROOT / "pecflow/adapters/archive.py", "pecflow.adapters.archive")
    }
    assert any(within(name, "boto3") or within(name, "botocore") for name in names)
    # a cycle and a forbidden import are reported
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    lines = list(imports_in("from ..adapters import dynamodb\nimport boto3\n", "pecflow.pec.x"))
    assert lines == [(1, "pecflow.adapters.dynamodb"), (2, "boto3")]
