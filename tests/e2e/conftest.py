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
