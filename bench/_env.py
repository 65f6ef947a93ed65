"""What the benches that use moto set before anything else: the repository and the core
package importable, and fake AWS credentials and region (no account is ever reached)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "shared")]
for _name, _value in {
    "AWS_DEFAULT_REGION": "eu-south-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}.items():
    os.environ.setdefault(_name, _value)
