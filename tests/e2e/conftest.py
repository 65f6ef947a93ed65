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


# --- the whole stack (local/stack.py): session Dovecot and moto, a fresh network and runner per test --
@pytest.fixture
def stack(dovecot, local_aws):
    from local.stack import LocalStack

    stack = LocalStack.start(dovecot=dovecot, aws=local_aws, state_file=None)
    yield stack
    stack.stop()


# --- end stack -------------------------------------------------------------------------------------
