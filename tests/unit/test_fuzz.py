"""The fuzz targets (fuzz/targets.py) in the suite: every crash the fuzzers found, kept as an input
in tests/fuzz_regressions/<target>/, is now read as documented; and each target takes a short
hypothesis run (mutated seeds and random bytes) on every test run. `make fuzz SECONDS=N` runs the
long, coverage-guided form."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.limits import run_bounded
from fuzz.strategies import inputs
from fuzz.targets import TARGETS

REPO = Path(__file__).resolve().parents[2]
REGRESSIONS = REPO / "tests" / "fuzz_regressions"
FIXTURES = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file())


def test_every_regression_folder_names_a_target():
    assert FIXTURES, "tests/fuzz_regressions holds the crashes found so far"
    assert {p.parent.name for p in FIXTURES} <= set(TARGETS)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_crash_found_once_is_read_as_documented(path):
    run_bounded(TARGETS[path.parent.name].run, path.read_bytes(), seconds=10)


def test_the_regressions_replay_in_processes_of_bounded_memory():
    run = subprocess.run([sys.executable, "-m", "fuzz", "--replay"], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "regression input(s): ok" in run.stdout


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_hostile_inputs_end_as_documented(name):
    target = TARGETS[name]

    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(inputs(target.seeds()))
    def one(data: bytes) -> None:
        run_bounded(target.run, data, seconds=10)

    one()


def test_the_api_models_fuzzed_are_the_request_bodies():
    from fuzz.targets import request_models

    names = {model.__name__ for model in request_models()}
    assert {"ReplyIn", "ForwardIn", "HandlingAct", "NewPerson"} <= names, names
