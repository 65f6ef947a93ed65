"""Fixtures of the local stack, shared by every e2e test."""

from __future__ import annotations

import os
import threading

import pytest

# --- nothing the suite starts may outlive it --------------------------------------------------


def _our_servers() -> list[str]:
    """Processes of the local stack still running (Dovecot instances in our temporary folders)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "pecflow-dovecot-" in cmdline:
            found.append(f"{pid}: {cmdline.strip()}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    before = set(_our_servers())
    yield
    left = [p for p in _our_servers() if p not in before]
    assert not left, f"the e2e suite left processes running: {left}"
    stray = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    assert not stray, f"the e2e suite left threads running: {stray}"


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
