"""The local stack's sign-in (local/sign_in.py) speaks Cognito's JSON protocol as the console
calls it: password, then a TOTP code or the enrolment of a TOTP key; tokens the local API accepts."""

from __future__ import annotations

import pytest

from local.sign_in import LocalUserPool, totp
from local.tokens import TokenIssuer

T = "AWSCognitoIdentityProviderService."


class Clock:
    def __init__(self, now: float = 1_780_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def pool(clock):
    issuer = TokenIssuer(lifetime=3600)
    return LocalUserPool(issuer, now=clock)


def initiate(pool, username, password, client_id=None):
    return pool.answer(
        T + "InitiateAuth",
        {
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": client_id or pool.issuer.client_id,
            "AuthParameters": {"USERNAME": username, "PASSWORD": password},
        },
    )


def test_totp_matches_rfc_6238_test_vector():
    # RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T = 59 s: 94287082 (8 digits)
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert totp(secret, 59, digits=8) == "94287082"
    assert totp(secret, 1111111109, digits=8) == "07081804"


def test_password_only_when_mfa_is_optional_and_not_enrolled(pool, clock):
    pool.add("anna", "Anna-demo-2026")
    status, answer = initiate(pool, "Anna", "Anna-demo-2026")
    assert status == 200
    result = answer["AuthenticationResult"]
    claims = pool.issuer.verify(result["IdToken"], now=clock.now)
    assert claims["cognito:username"] == "anna" and claims["amr"] == ["pwd"]
    assert pool.issuer.verify(result["AccessToken"], now=clock.now)["token_use"] == "access"


@pytest.mark.parametrize(
    ("username", "password", "client"),
    [("anna", "wrong", None), ("nobody", "Anna-demo-2026", None), ("anna", "Anna-demo-2026", "other-app")],
)
def test_refusals_are_cognitos(pool, username, password, client):
    pool.add("anna", "Anna-demo-2026")
    status, answer = initiate(pool, username, password, client)
    assert status == 400
    assert answer["__type"] == ("ResourceNotFoundException" if client else "NotAuthorizedException")
    assert "AuthenticationResult" not in answer


def test_enrolment_then_a_code_at_each_sign_in(pool, clock):
    pool.set_mfa("required")
    pool.add("bruno", "Bruno-pw-1")
    status, answer = initiate(pool, "bruno", "Bruno-pw-1")
    assert status == 200 and answer["ChallengeName"] == "MFA_SETUP"
    status, associated = pool.answer(T + "AssociateSoftwareToken", {"Session": answer["Session"]})
    secret = associated["SecretCode"]
    assert status == 200 and len(secret) == 32

    wrong = str((int(totp(secret, clock.now)) + 1) % 1_000_000).zfill(6)
    status, refused = pool.answer(
        T + "VerifySoftwareToken", {"Session": associated["Session"], "UserCode": wrong}
    )
    assert status == 400 and refused["__type"] == "EnableSoftwareTokenMFAException"
    status, verified = pool.answer(
        T + "VerifySoftwareToken", {"Session": associated["Session"], "UserCode": totp(secret, clock.now)}
    )
    assert status == 200 and verified["Status"] == "SUCCESS"
    status, done = pool.answer(
        T + "RespondToAuthChallenge",
        {
            "ChallengeName": "MFA_SETUP",
            "ClientId": pool.issuer.client_id,
            "Session": verified["Session"],
            "ChallengeResponses": {"USERNAME": "bruno"},
        },
    )
    assert status == 200 and pool.issuer.verify(done["AuthenticationResult"]["IdToken"], now=clock.now)
    # the finished session cannot be used again
    status, again = pool.answer(
        T + "RespondToAuthChallenge",
        {"ChallengeName": "MFA_SETUP", "ClientId": pool.issuer.client_id, "Session": verified["Session"],
         "ChallengeResponses": {"USERNAME": "bruno"}},
    )  # fmt: skip
    assert status == 400 and again["__type"] == "NotAuthorizedException"

    clock.now += 600
    status, answer = initiate(pool, "bruno", "Bruno-pw-1")
    assert answer["ChallengeName"] == "SOFTWARE_TOKEN_MFA"

    def respond(code):
        return pool.answer(
            T + "RespondToAuthChallenge",
            {
                "ChallengeName": "SOFTWARE_TOKEN_MFA",
                "ClientId": pool.issuer.client_id,
                "Session": answer["Session"],
                "ChallengeResponses": {"USERNAME": "bruno", "SOFTWARE_TOKEN_MFA_CODE": code},
            },
        )

    status, refused = respond(totp(secret, clock.now - 300))  # an old code
    assert status == 400 and refused["__type"] == "CodeMismatchException"
    status, done = respond(totp(secret, clock.now))  # the same session, the right code
    claims = pool.issuer.verify(done["AuthenticationResult"]["IdToken"], now=clock.now)
    assert claims["amr"] == ["pwd", "mfa"]


def test_an_expired_session_is_refused(pool, clock):
    pool.set_mfa("required")
    pool.add("bruno", "Bruno-pw-1")
    _, answer = initiate(pool, "bruno", "Bruno-pw-1")
    clock.now += 181
    status, refused = pool.answer(T + "AssociateSoftwareToken", {"Session": answer["Session"]})
    assert status == 400 and refused["__type"] == "NotAuthorizedException"


def test_unknown_operation_and_bad_body(pool):
    assert pool.answer(T + "SignUp", {})[1]["__type"] == "UnknownOperationException"
    assert (
        pool.answer(T + "InitiateAuth", ["not", "an", "object"])[1]["__type"] == "InvalidParameterException"
    )
