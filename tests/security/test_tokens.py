"""Forged JWTs: the local authorizer (local.tokens, which checks as API Gateway's JWT authorizer
does) refuses `alg: none`, an HMAC token keyed with the pool's public key, a token of another user
pool (its own key, even under this pool's issuer and key id), one without a key id, expired or
not yet valid; and the deployed authorizer is bound to this stack's pool and client, whose
sign-in requires TOTP by default. Other issuers, audiences, bad signatures and disabled people:
tests/integration/test_local_api.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from local.template import load
from local.tokens import TokenError, TokenIssuer, _b64

TEMPLATE = load(Path(__file__).resolve().parents[2] / "template.yaml")


def _claims(issuer: TokenIssuer, **extra) -> dict:
    now = int(time.time())
    return {"iss": issuer.issuer, "aud": issuer.client_id, "token_use": "id", "cognito:username": "carla",
            "iat": now, "exp": now + 600, "amr": ["pwd", "mfa"], **extra}  # fmt: skip


def _unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"


def forged(issuer: TokenIssuer) -> dict[str, str]:
    claims = _claims(issuer)
    head = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    signing = f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(claims).encode())}"
    confused = hmac.new(issuer.public_pem(), signing.encode(), hashlib.sha256).digest()
    other_pool = TokenIssuer(issuer=issuer.issuer, client_id=issuer.client_id, kid=issuer.kid)
    return {
        "alg-none": _unsigned({"alg": "none", "typ": "JWT", "kid": issuer.kid}, claims),
        "alg-None": _unsigned({"alg": "None", "typ": "JWT", "kid": issuer.kid}, claims),
        "hs256-with-the-public-key": f"{signing}.{_b64(confused)}",
        "another-pools-key": other_pool.issue("carla"),
        "no-key-id": _unsigned({"alg": "RS256", "typ": "JWT"}, claims, base64.b64decode("AAAA")),
        "expired-a-second-ago": issuer.issue("carla", now=time.time() - issuer.lifetime - 1),
        "issued-in-the-future": issuer.issue("carla", now=time.time() + 120),
        "claims-swapped-after-signing": issuer.issue("vera").rsplit(".", 2)[0].split(".")[0]
        + "."
        + _b64(json.dumps(_claims(issuer)).encode())
        + "."
        + issuer.issue("vera").rsplit(".", 1)[1],
    }


@pytest.mark.parametrize("name", list(forged(TokenIssuer())))
def test_a_forged_token_is_refused(name):
    issuer = TokenIssuer()
    with pytest.raises(TokenError):
        issuer.verify(forged(issuer)[name])


def test_the_control_token_passes():
    issuer = TokenIssuer()
    assert issuer.verify(issuer.issue("carla"))["cognito:username"] == "carla"


def test_the_deployed_authorizer_trusts_this_stacks_pool_and_client_only():
    api = TEMPLATE.resources["Api"].properties
    authorizer = api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]]["JwtConfiguration"]
    assert authorizer["issuer"] == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
    assert authorizer["audience"] == [{"Ref": "UserPoolClient"}]


def test_sign_in_requires_totp_unless_the_operator_chooses_otherwise():
    assert TEMPLATE.parameters["SignInMfa"]["Default"] == "ON"
    pool = TEMPLATE.resources["UserPool"].properties
    assert pool["MfaConfiguration"] == {"Ref": "SignInMfa"} and pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
