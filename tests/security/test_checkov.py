"""checkov's checks on template.yaml pass, or are skipped with their reason in .checkov.yaml (or in
a resource's Metadata). Runs when `make checkov-venv` has made .venv-checkov (checkov pins too
many packages to share the dev venv)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


def test_every_skipped_check_says_why():
    lines = (REPO / ".checkov.yaml").read_text(encoding="utf-8").splitlines()
    skipped = yaml.safe_load("\n".join(lines))["skip-check"]
    assert skipped, "nothing skipped: remove the list"
    for check in skipped:
        at = next(i for i, line in enumerate(lines) if line.strip() == f"- {check}")
        above = lines[at - 1].strip()
        assert above.startswith("#") or above.startswith("- CKV_"), f"{check} has no reason above it"


@pytest.mark.timeout(300)
def test_checkov_finds_nothing_on_the_template():
    if not CHECKOV.exists():
        pytest.skip("no .venv-checkov: `make checkov-venv` makes it")
    run = subprocess.run([str(CHECKOV), "--config-file", ".checkov.yaml", "-f", "template.yaml"], cwd=REPO,
                         capture_output=True, text=True, timeout=280, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Failed checks: 0" in run.stdout
