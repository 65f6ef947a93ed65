"""The API fuzzed with schemathesis against its published OpenAPI document (openapi.json): every
operation, with requests made from the document (valid ones, and ones that break it), sent over
HTTP to the real handler on fakes behind the local JWT check (local.api_server), as an admin of
the mailbox and as a viewer, and with no token or a garbage one. What must hold: no 5xx; every
error a JSON body with a clear `message`; every answer as the document declares it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from local.api_server import LocalApi
from local.tokens import TokenIssuer
from tests.unit.test_api import BOX, world

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 15  # per operation and phase: the whole file in well under a minute on two busy cores

schema = schemathesis.openapi.from_path(
    ROOT / "openapi.json",
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "checks": {
                # 400 answers what the document allows but a rule refuses: an address that is
                # not one, a name taken, a cursor this API did not give
                "positive_data_acceptance": {"expected-statuses": ["2xx", 400, 401, 403, 404, 409]},
            },
            "phases": {
                # what API Gateway passes to the function (local.api_server serves those too)
                "coverage": {"unexpected-methods": ["GET", "PUT", "POST", "DELETE", "PATCH"]},
                # the coverage phase sends the invalid requests (each parameter wrong in turn): the
                # fuzzing phase's examples go to valid ones, half of them on rows that exist
                "fuzzing": {"generation": {"mode": "positive"}},
                "stateful": {"enabled": False},
            },
        }
    ),
)

# A mailbox, message and person of tests.unit.test_api.world(): the fuzz reaches rows, not only 404s.
KNOWN = {"mailbox": BOX, "sha256": f"{0:064x}", "username": "collega"}


@schema.hook
def flatmap_case(context, case):
    """Half the valid cases name a mailbox, message and person that exist, and add a person with
    a real address (a negative case stays as generated, to be refused)."""
    if case.meta and case.meta.generation.mode.is_negative:
        return st.just(case)
    real = {
        "path_parameters": {k: KNOWN.get(k, v) for k, v in (case.path_parameters or {}).items()},
        "query": {k: KNOWN.get(k, v) for k, v in (case.query or {}).items()},
    }
    if isinstance(case.body, dict) and "email" in case.body:
        real["body"] = {**case.body, "email": "nuova.persona@alfa.test"}
    return st.booleans().map(lambda existing: _with(case, real) if existing else case)


def _with(case, real):
    for name, value in real.items():
        setattr(case, name, value)
    return case


@schemathesis.check
def errors_are_json_with_a_message(ctx, response, case):
    """An error tells the person what went wrong: a JSON object with a non-empty `message`."""
    if response.status_code < 400:
        return None
    assert "application/json" in (response.headers.get("content-type") or [""])[0], (
        f"{response.status_code} is not JSON: {response.headers.get('content-type')}"
    )
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"].strip(), (
        f"{response.status_code} without a message: {response.content[:200]!r}"
    )
    return None


@pytest.fixture(scope="module")
def api():
    app, _ = world()
    issuer = TokenIssuer()
    server = LocalApi(lambda event, context: app.resolve(event, context), issuer).start()
    yield server, issuer
    server.stop()


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


@schema.parametrize()
@fuzz(EXAMPLES)
def test_the_api_as_an_admin_and_as_a_viewer(case, api):
    """Each request as the mailbox's admin, then as its viewer (mostly refused: 403)."""
    server, issuer = api
    for user in ("carla", "vera"):
        case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {issuer.issue(user)}"})


@schema.parametrize()
@fuzz(5)
def test_the_api_without_a_valid_token_is_401(case, api):
    """No token, a garbage one, an empty bearer: API Gateway's 401, before the function."""
    server, _ = api
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Bearer"}):
        response = case.call(base_url=server.url, headers=headers)
        assert response.status_code == 401, (headers, response.status_code, response.text[:200])
        assert response.json() == {"message": "Unauthorized"}
