"""Fixtures of the local stack, shared by every e2e test."""

from __future__ import annotations

import pytest

# --- PEC providers (local/pec_provider.py): one simulated network per test -------------------------
# On a virtual clock (advance `pec_network.clock`); tests use unique domains, Dovecot is shared.
PEC_START = "2024-03-05T09:00:00+00:00"


@pytest.fixture
def pec_network(dovecot):
    from datetime import datetime

    from local.clock import VirtualClock
    from local.pec_provider import PecNetwork

    network = PecNetwork(dovecot, clock=VirtualClock(datetime.fromisoformat(PEC_START))).start()
    yield network
    network.stop()


# --- end PEC providers ----------------------------------------------------------------------------


# the session's moto server (`local_aws_session`, `local_aws`) and `stack` are in tests/conftest.py:
# the browser tests use the same ones (moto's state is process-wide: one server per worker)
