"""The API over HTTP on a local port, each request's JWT checked as API Gateway's authorizer
checks it (local.tokens): another issuer, another audience, expired, badly signed, no token: 401;
a valid token of a disabled person: refused by the API. The handler is the real one on fakes."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.api_server import LocalApi, json_request
from local.tokens import TokenIssuer
from tests.unit.test_api import BOX, SHA, world


@pytest.fixture
def api():
    app, people = world()
    issuer = TokenIssuer()
    server = LocalApi(lambda event, context: app.resolve(event, context), issuer).start()
    yield server, issuer, people
    server.stop()


def test_a_valid_token_reaches_the_api(api):
    server, issuer, _ = api
    status, me = json_request(f"{server.url}/me", token=issuer.issue("marco"))
    assert status == 200 and me["username"] == "marco"
    status, page = json_request(f"{server.url}/mailboxes/{BOX}/messages?size=2", token=issuer.issue("vera"))
    assert status == 200 and len(page["messages"]) == 2
    access = issuer.issue("otto", token_use="access")
    status, held = json_request(f"{server.url}/mailboxes/{BOX}/messages/{SHA}/handling", "POST", token=access,
                                body={"act": "take-in-charge"})  # fmt: skip
    assert status == 200 and held["holder"] == "otto"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda i: i.issue("carla", iss="https://cognito-idp.eu-south-1.amazonaws.com/other"),
            id="other-issuer",
        ),
        pytest.param(lambda i: i.issue("carla", aud="another-client"), id="other-audience"),
        pytest.param(lambda i: i.issue("carla", now=time.time() - 7200), id="expired"),
        pytest.param(lambda i: i.issue("carla", now=time.time() + 600), id="not-yet-valid"),
        pytest.param(
            lambda i: i.sign(
                {**_claims(i), "cognito:username": "carla"},
                key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ),
            id="badly-signed",
        ),  # fmt: skip
        pytest.param(lambda i: i.issue("carla")[:-4] + "AAAA", id="tampered"),
        pytest.param(lambda i: "", id="no-token"),
        pytest.param(lambda i: "not.a.jwt", id="garbage"),
    ],
)
def test_tokens_the_authorizer_refuses_are_401(api, forge):
    server, issuer, _ = api
    status, body = json_request(f"{server.url}/mailboxes/{BOX}/messages", token=forge(issuer))
    assert (status, body) == (401, {"message": "Unauthorized"})


def _claims(issuer):
    now = int(time.time())
    return {"iss": issuer.issuer, "aud": issuer.client_id, "token_use": "id", "iat": now, "exp": now + 600}


def test_a_disabled_persons_valid_token_is_refused(api):
    server, issuer, people = api
    token = issuer.issue("vera")
    assert json_request(f"{server.url}/me", token=token)[0] == 200
    people.set_enabled("test", "vera", False)
    status, body = json_request(f"{server.url}/me", token=token)
    assert status == 403 and body["code"] == "disabled"


def test_the_openapi_document_needs_no_token(api):
    server, _, _ = api
    status, document = json_request(f"{server.url}/openapi.json")
    assert status == 200 and "/mailboxes/{mailbox}/messages" in document["paths"]
    assert server.requests[-1] == ("GET", "/openapi.json", 200)
