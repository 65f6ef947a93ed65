from __future__ import annotations

from datetime import UTC, datetime

WHEN = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
