"""Fixtures of the local stack, shared by every e2e test."""

from __future__ import annotations

import pytest

# --- IMAP: one Dovecot per test session; tests isolate themselves with fresh users ----------------


@pytest.fixture(scope="session")
def dovecot():
    from local.imap import Dovecot, dovecot_binary, INSTALL_HINT

    if dovecot_binary() is None:
        pytest.fail(INSTALL_HINT)
    server = Dovecot().start()
    yield server
    server.stop()


# --- PEC providers (local/pec_provider.py): one simulated network per test -------------------------
# On a virtual clock (advance `pec_network.clock`); tests use unique domains, Dovecot is shared.
PEC_START = "2024-03-05T09:00:00+00:00"


@pytest.fixture
def pec_network(dovecot):
    from datetime import datetime

    from local.pec_provider import PecNetwork

    try:
        from local.clock import VirtualClock
    except ImportError:  # the stack's clock module absent: a minimal stand-in
        class VirtualClock:  # type: ignore[no-redef]
            def __init__(self, start):
                self._now = start

            def now(self):
                return self._now

            def advance(self, seconds):
                from datetime import timedelta
                self._now += timedelta(seconds=seconds)

    network = PecNetwork(dovecot, clock=VirtualClock(datetime.fromisoformat(PEC_START))).start()
    yield network
    network.stop()
# --- end PEC providers ----------------------------------------------------------------------------


# --- AWS: one moto server per session with template.yaml's resources (local/aws.py) ------------
# `local_aws` gives each test fresh resources and points boto3 in this process at the server for
# the test only. Drive handlers with `local.runner.EventRunner(template, local_aws, clock)`.


@pytest.fixture(scope="session")
def local_aws_session():
    from pathlib import Path

    from local.aws import LocalAws

    aws = LocalAws.start(Path(__file__).resolve().parents[2] / "template.yaml", set_environ=False)
    yield aws
    aws.stop()


@pytest.fixture
def local_aws(local_aws_session):
    local_aws_session.reset()
    with local_aws_session.environ():
        yield local_aws_session
# --- end AWS -------------------------------------------------------------------------------------
