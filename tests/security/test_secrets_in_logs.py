"""The suite-wide check of tests/conftest.py (no test password in any log line) sees what it
must: a password the code read from a secret, logged by Powertools or by a plain logger, in the
message or in an extra field, is caught; a log line without one is not."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger

from pecflow.adapters import secrets
from tests import conftest


def _caught(log) -> list[str]:
    before = len(conftest._LEAKS)
    log()
    found = conftest._LEAKS[before:]
    del conftest._LEAKS[before:]  # this test's own leaks do not fail the session
    return found


def test_a_password_read_from_a_secret_is_caught_wherever_it_is_logged():
    password = secrets.password_from_secret(secrets.secret_value("Pw-letta-dal-secret-42"))
    assert password in conftest.SECRETS
    plain, powertools = logging.getLogger("pecflow.test"), Logger(service="pecflow-test")
    assert _caught(lambda: plain.warning("login with %s", password))
    assert _caught(lambda: powertools.info("login", extra={"detail": {"password": password}}))
    assert _caught(lambda: plain.error("failed", exc_info=RuntimeError(f"refused {password}")))
    assert not _caught(lambda: powertools.info("login refused", extra={"mailbox": "u@pec.it"}))
