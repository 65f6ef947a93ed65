"""`make demo` as a user runs it (smaller): the whole day on its own local stack, checked at the end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_demo_plays_the_day_and_its_figures_match_the_simulator(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "local.demo", "--recipients", "40"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Campaign solleciti-marzo — completed" in out
    assert "SdI: MT" in out and "anomalia" in out
    assert "Check: every figure above matches what the simulated providers recorded" in out
    assert (
        "HTTP API: http://127.0.0.1:" in out
        and "amministrazione@pec.bianchi-spa.test: 16 messages to handle" in out
    )
    assert '"level"' not in out, "the Lambdas' logs go to their file, not into the demo's output"
