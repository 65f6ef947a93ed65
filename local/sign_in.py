"""Sign-in on the local stack, in Cognito's own JSON protocol: what the console sends to
`cognito-idp.<region>.amazonaws.com` (POST, `X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>`,
`Content-Type: application/x-amz-json-1.1`) is answered here for the people the stack knows, with
their demo passwords, and the tokens are the local issuer's (local.tokens), which the local API
checks as API Gateway's JWT authorizer does.

Spoken: InitiateAuth (USER_PASSWORD_AUTH), RespondToAuthChallenge (SOFTWARE_TOKEN_MFA, MFA_SETUP),
AssociateSoftwareToken and VerifySoftwareToken (TOTP enrolment, RFC 6238: 6 digits, 30 s, SHA-1).
With `mfa="required"` a person without a TOTP key is made to enrol at sign-in (MFA_SETUP), as a
user pool with MFA required does; with "optional" only enrolled people are asked for a code.
Errors are Cognito's: HTTP 400, `{"__type": "NotAuthorizedException", "message": ...}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.tokens import TokenIssuer

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
SESSION_LIFETIME = 180  # seconds, as Cognito's authentication session
STEP = 30


def totp(secret: str, at: float | None = None, *, digits: int = 6) -> str:
    """The TOTP code of a base32 secret at a time (an authenticator app's six digits)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // STEP)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


class CognitoError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class _Account:
    username: str
    password: str
    totp_secret: str | None = None


@dataclass
class _Session:
    username: str
    stage: str  # "mfa" (code asked), "setup" (enrolling), "verified" (enrolled, sign-in to finish)
    expires: float
    secret: str | None = None


class LocalUserPool:
    """`pool.add("anna", "password")`; `pool.answer(target, body)` → (status, body)."""

    def __init__(self, issuer: TokenIssuer, *, mfa: str = "optional", now: Callable[[], float] = time.time):
        self.issuer, self.now = issuer, now
        self.set_mfa(mfa)
        self.accounts: dict[str, _Account] = {}
        self.sessions: dict[str, _Session] = {}
        self.lock = threading.Lock()

    def set_mfa(self, mfa: str) -> None:
        if mfa not in ("optional", "required"):
            raise ValueError("mfa is 'optional' or 'required'")
        self.mfa = mfa

    def add(self, username: str, password: str, *, totp_secret: str | None = None) -> None:
        self.accounts[username.lower()] = _Account(username.lower(), password, totp_secret)

    def totp_secret(self, username: str) -> str | None:
        account = self.accounts.get(username.lower())
        return account.totp_secret if account else None

    # --- the protocol ---------------------------------------------------------------------------
    def answer(self, target: str, body: Any) -> tuple[int, dict[str, Any]]:
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        handler = {
            "InitiateAuth": self._initiate,
            "RespondToAuthChallenge": self._respond,
            "AssociateSoftwareToken": self._associate,
            "VerifySoftwareToken": self._verify,
        }.get(operation)
        try:
            if handler is None:
                raise CognitoError("UnknownOperationException", f"unknown operation {target!r}")
            if not isinstance(body, dict):
                raise CognitoError("InvalidParameterException", "the body must be a JSON object")
            with self.lock:
                return 200, handler(body)
        except CognitoError as error:
            return 400, {"__type": error.kind, "message": str(error)}

    def _client(self, body: dict[str, Any]) -> None:
        if body.get("ClientId") != self.issuer.client_id:
            raise CognitoError("ResourceNotFoundException", "User pool client does not exist.")

    def _initiate(self, body: dict[str, Any]) -> dict[str, Any]:
        self._client(body)
        if body.get("AuthFlow") != "USER_PASSWORD_AUTH":
            raise CognitoError(
                "InvalidParameterException", "only USER_PASSWORD_AUTH is enabled for this client"
            )
        parameters = body.get("AuthParameters") or {}
        username = str(parameters.get("USERNAME") or "").strip().lower()
        account = self.accounts.get(username)
        if account is None or not hmac.compare_digest(
            account.password.encode(), str(parameters.get("PASSWORD") or "").encode()
        ):
            raise CognitoError("NotAuthorizedException", "Incorrect username or password.")
        if account.totp_secret:
            return self._challenge("SOFTWARE_TOKEN_MFA", _Session(username, "mfa", 0))
        if self.mfa == "required":
            return self._challenge("MFA_SETUP", _Session(username, "setup", 0))
        return self._tokens(username, mfa=False)

    def _respond(self, body: dict[str, Any]) -> dict[str, Any]:
        self._client(body)
        name = body.get("ChallengeName")
        session = self._session(body.get("Session"))
        responses = body.get("ChallengeResponses") or {}
        if str(responses.get("USERNAME") or "").lower() != session.username:
            raise CognitoError("NotAuthorizedException", "Invalid session for the user.")
        if name == "SOFTWARE_TOKEN_MFA" and session.stage == "mfa":
            secret = self.accounts[session.username].totp_secret or ""
            if not self._code_fits(secret, responses.get("SOFTWARE_TOKEN_MFA_CODE")):
                raise CognitoError("CodeMismatchException", "Invalid code received for user")
            self._done(body.get("Session"))
            return self._tokens(session.username, mfa=True)
        if name == "MFA_SETUP" and session.stage == "verified":
            self._done(body.get("Session"))
            return self._tokens(session.username, mfa=True)
        raise CognitoError("InvalidParameterException", f"challenge {name!r} does not follow this session")

    def _associate(self, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(body.get("Session"))
        if session.stage != "setup":
            raise CognitoError("NotAuthorizedException", "Invalid session for the user.")
        secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
        self._done(body.get("Session"))
        return {"SecretCode": secret, "Session": self._keep(_Session(session.username, "setup", 0, secret))}

    def _verify(self, body: dict[str, Any]) -> dict[str, Any]:
        session = self._session(body.get("Session"))
        if session.stage != "setup" or not session.secret:
            raise CognitoError("NotAuthorizedException", "Invalid session for the user.")
        if not self._code_fits(session.secret, body.get("UserCode")):
            raise CognitoError("EnableSoftwareTokenMFAException", "Code mismatch")
        self.accounts[session.username].totp_secret = session.secret
        self._done(body.get("Session"))
        return {"Status": "SUCCESS", "Session": self._keep(_Session(session.username, "verified", 0))}

    # --- sessions, codes, tokens ------------------------------------------------------------------
    def _challenge(self, name: str, session: _Session) -> dict[str, Any]:
        return {
            "ChallengeName": name,
            "Session": self._keep(session),
            "ChallengeParameters": {"USER_ID_FOR_SRP": session.username},
        }

    def _keep(self, session: _Session) -> str:
        now = self.now()
        self.sessions = {k: s for k, s in self.sessions.items() if s.expires > now}
        token = secrets.token_urlsafe(48)
        session.expires = now + SESSION_LIFETIME
        self.sessions[token] = session
        return token

    def _session(self, token: Any) -> _Session:
        session = self.sessions.get(str(token or ""))
        if session is None or session.expires <= self.now():
            raise CognitoError("NotAuthorizedException", "Invalid session for the user, session is expired.")
        return session

    def _done(self, token: Any) -> None:
        """A session's step succeeded: it cannot be used again (a wrong code may be tried again)."""
        self.sessions.pop(str(token), None)

    def _code_fits(self, secret: str, code: Any) -> bool:
        code = str(code or "").strip()
        now = self.now()
        return len(code) == 6 and any(
            hmac.compare_digest(totp(secret, now + drift * STEP), code) for drift in (-1, 0, 1)
        )

    def _tokens(self, username: str, *, mfa: bool) -> dict[str, Any]:
        now = self.now()
        return {
            "AuthenticationResult": {
                "IdToken": self.issuer.issue(username, mfa=mfa, now=now),
                "AccessToken": self.issuer.issue(username, token_use="access", mfa=mfa, now=now),
                "RefreshToken": secrets.token_urlsafe(48),
                "ExpiresIn": self.issuer.lifetime,
                "TokenType": "Bearer",
            },
            "ChallengeParameters": {},
        }
