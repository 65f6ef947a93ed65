"""Every benchmark starts: its imports resolve from the repository as `make bench` runs it (the
figures themselves are `make bench`'s business, not a test's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHES = sorted(p.name for p in (REPO / "bench").glob("[!_]*.py"))


def test_there_are_benches():
    assert {"classify.py", "fanout.py", "hostile.py", "poll.py", "quota.py"} <= set(BENCHES)


@pytest.mark.parametrize("bench", BENCHES)
def test_a_bench_starts(bench):
    run = subprocess.run(
        [sys.executable, f"bench/{bench}", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--quick" in run.stdout
