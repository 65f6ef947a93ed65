"""The local token issuer: what Cognito is to the deployed API, for the local stack and the tests.
It signs RS256 JWTs shaped as Cognito's ID and access tokens (`iss`, `aud` or `client_id`,
`token_use`, `cognito:username`/`username`, `exp`, `iat`, `auth_time`, `amr` with "mfa" after a
TOTP), publishes its keys as a JWKS, and checks a token exactly as API Gateway's JWT authorizer
does: the signature against the issuer's keys (RS256 only, by `kid`), the issuer, the audience
(`aud`, or `client_id` for an access token), `exp` and `nbf`/`iat` with no leeway.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class TokenError(ValueError):
    """Why a token is refused (the authorizer answers 401)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class TokenIssuer:
    issuer: str = "http://127.0.0.1/local-user-pool"
    client_id: str = field(default_factory=lambda: "local-console-" + secrets.token_hex(4))
    lifetime: int = 3600
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = field(default_factory=lambda: secrets.token_hex(8))

    # --- issuing ------------------------------------------------------------------------------
    def issue(
        self,
        username: str,
        *,
        token_use: str = "id",
        mfa: bool = True,
        now: float | None = None,
        lifetime: int | None = None,
        **override: Any,
    ) -> str:
        """A signed token for `username`; `override` replaces any claim (tests: another issuer,
        audience, an expired one)."""
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "sub": f"local-{username}",
            "iss": self.issuer,
            "token_use": token_use,
            "auth_time": int(now),
            "iat": int(now),
            "exp": int(now) + (self.lifetime if lifetime is None else lifetime),
            "amr": ["pwd", "mfa"] if mfa else ["pwd"],
        }
        if token_use == "id":
            claims |= {"aud": self.client_id, "cognito:username": username}
        else:
            claims |= {
                "client_id": self.client_id,
                "username": username,
                "scope": "aws.cognito.signin.user.admin",
            }
        claims |= override
        return self.sign(claims)

    def sign(
        self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None
    ) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = (key or self.key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": self.kid,
                    "n": _int_b64(numbers.n),
                    "e": _int_b64(numbers.e),
                }  # fmt: skip
            ]
        }

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # --- checking, as the authorizer does -----------------------------------------------------------
    def verify(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        try:
            head, body, signature = token.split(".")
            header = json.loads(_unb64(head))
            claims = json.loads(_unb64(body))
            raw_signature = _unb64(signature)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TokenError("not a JWT") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError("not a JWT")
        if header.get("alg") != "RS256":
            raise TokenError(f"algorithm {header.get('alg')!r} is not accepted")
        if header.get("kid") != self.kid:
            raise TokenError("signed with a key this issuer does not publish")
        try:
            self.key.public_key().verify(
                raw_signature, f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise TokenError("the signature does not match") from None
        if claims.get("iss") != self.issuer:
            raise TokenError(f"issued by {claims.get('iss')!r}, not by this user pool")
        audience = claims.get("aud") if "aud" in claims else claims.get("client_id")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.client_id not in audiences:
            raise TokenError("issued for another application")
        now = time.time() if now is None else now
        if not isinstance(claims.get("exp"), (int, float)) or now >= claims["exp"]:
            raise TokenError("expired")
        not_before = claims.get("nbf", claims.get("iat"))
        if isinstance(not_before, (int, float)) and now < not_before:
            raise TokenError("not valid yet")
        return claims
