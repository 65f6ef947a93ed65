"""The hashed lock files (`make lock`): every pin exact and hashed, each lock up to date with its
.in source, and the deps layer closed, free of the AWS SDK and pinned at the dev lock's versions."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LAYER_IN = ROOT / "layers/deps/requirements.in"
LAYER_LOCK = ROOT / "layers/deps/requirements.txt"
DEV_IN = ROOT / "requirements/dev.in"
DEV_LOCK = ROOT / "requirements/dev.txt"
LOCKS = {
    LAYER_IN: LAYER_LOCK,
    DEV_IN: DEV_LOCK,
    ROOT / "requirements/sam.in": ROOT / "requirements/sam.txt",
    ROOT / "requirements/uv.in": ROOT / "requirements/uv.txt",
    ROOT / "requirements/pip.in": ROOT / "requirements/pip.txt",
}
# The Lambda runtime provides boto3 (and so botocore, s3transfer); the X-Ray SDK was dropped.
NOT_IN_LAYER = {"boto3", "botocore", "s3transfer", "aws-xray-sdk"}
# The environments the locks serve: Lambda (x86_64, arm64) and the dev venvs, Python 3.12 and 3.13.
TARGETS = [
    {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    for version in ("3.12", "3.13")
    for machine in ("x86_64", "aarch64")
]


def pins(lock: Path) -> list[tuple[Requirement, list[str]]]:
    """The requirements of a lock file with their hashes (backslash continuations joined)."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *hashes = (part.strip() for part in line.split("--hash="))
        entries.append((Requirement(requirement), hashes))
    return entries


def versions(lock: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for requirement, _ in pins(lock):
        (spec,) = requirement.specifier
        found.setdefault(canonicalize_name(requirement.name), set()).add(spec.version)
    return found


def sources(source: Path) -> list[Requirement]:
    """The requirements an .in file names, following its `-r other.in` includes."""
    found = []
    for line in source.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += sources((source.parent / line[3:].strip()).resolve())
        elif line:
            found.append(Requirement(line))
    return found


@pytest.mark.parametrize("lock", sorted(LOCKS.values()), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_pin_is_exact_and_hashed(lock):
    entries = pins(lock)
    assert entries, f"{lock} pins nothing"
    for requirement, hashes in entries:
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{lock.name}: {requirement} is not pinned to one version"
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), (
            f"{lock.name}: {requirement} has no sha256 hash (run `make lock`)"
        )


@pytest.mark.parametrize("source", sorted(LOCKS), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_lock_has_what_its_source_asks(source):
    locked = versions(LOCKS[source])
    for wanted in sources(source):
        name = canonicalize_name(wanted.name)
        assert name in locked, (
            f"{source.name} asks for {wanted}, {LOCKS[source].name} lacks it: run `make lock`"
        )
        assert any(wanted.specifier.contains(v) for v in locked[name]), (
            f"{LOCKS[source].name} pins {name} {sorted(locked[name])}, {source.name} asks {wanted}: run `make lock`"
        )


def test_the_layer_pins_are_the_dev_locks():
    dev = versions(DEV_LOCK)
    for name, pinned in versions(LAYER_LOCK).items():
        assert name in dev, f"the layer carries {name}, the dev venvs do not: tests would not see it"
        assert pinned <= dev[name], f"{name}: layer {sorted(pinned)}, dev lock {sorted(dev[name])}"


def test_the_layer_carries_no_aws_sdk_nor_xray():
    carried = set(versions(LAYER_LOCK))
    assert not carried & NOT_IN_LAYER, f"the deps layer must not carry {sorted(carried & NOT_IN_LAYER)}"
    for wanted in sources(LAYER_IN):
        assert not wanted.extras, f"{wanted}: an extra in the layer ({wanted.extras}) pulls more than we use"
    needed = {"aws-lambda-powertools", "jinja2", "markupsafe", "imapclient", "jsonschema"}
    assert needed <= carried, f"the functions import {sorted(needed - carried)}: not in the deps layer"


def test_the_layer_is_closed():
    """Every dependency of every layer package, on every target, is pinned in the layer itself
    (read from the packages' metadata in this venv, built from the dev lock at the same versions)."""
    layer = versions(LAYER_LOCK)
    for name, (version,) in layer.items():
        installed = importlib.metadata.distribution(name)
        assert installed.version == version, (
            f"this venv has {name} {installed.version}, the lock {version}: rebuild it (make test-fast)"
        )
        for line in installed.requires or []:
            needed = Requirement(line)
            if needed.marker and not any(needed.marker.evaluate(target) for target in TARGETS):
                continue  # an extra, or another platform
            dependency = canonicalize_name(needed.name)
            assert dependency in layer, f"{name} {version} needs {needed}: not in the deps layer"
            assert needed.specifier.contains(next(iter(layer[dependency]))), f"{name} needs {needed}"


def test_the_workstation_extras_are_in_the_locks():
    project = tomllib.loads((ROOT / "shared/pyproject.toml").read_text())["project"]
    dev = versions(DEV_LOCK)
    for extra, packages in project["optional-dependencies"].items():
        for line in packages:
            name = canonicalize_name(Requirement(line).name)
            assert name in dev, f"shared[{extra}] needs {name}, which the dev venvs do not test"
    layer_sources = {canonicalize_name(r.name) for r in sources(LAYER_IN)}
    functions_import = {
        canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["aws"]
    }
    assert functions_import - {"boto3"} == layer_sources


def test_the_lock_compiler_is_pinned():
    (uv,) = sources(ROOT / "requirements/uv.in")
    assert str(uv.specifier).startswith("=="), "requirements/uv.in pins uv to one version"
    assert versions(ROOT / "requirements/uv.txt")["uv"] == {str(uv.specifier)[2:]}
