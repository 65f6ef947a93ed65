"""The sign-in accounts in a Cognito user pool: one per person, made with an invitation (a
temporary password by e-mail, changed at the first sign-in, where TOTP is enrolled when the
pool requires it), disabled and enabled with the person."""

from __future__ import annotations

from botocore.exceptions import ClientError


class DirectoryError(RuntimeError):
    pass


class CognitoDirectory:
    def __init__(self, user_pool_id: str, client):
        self.user_pool_id, self.client = user_pool_id, client

    def create(self, username: str, email: str, name: str) -> None:
        attributes = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
        if name:
            attributes.append({"Name": "name", "Value": name})
        try:
            self.client.admin_create_user(
                UserPoolId=self.user_pool_id,
                Username=username,
                UserAttributes=attributes,
                DesiredDeliveryMediums=["EMAIL"],
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "UsernameExistsException":
                raise DirectoryError(
                    f"the user pool already has a sign-in account called {username}"
                ) from None
            raise

    def set_enabled(self, username: str, enabled: bool) -> None:
        call = self.client.admin_enable_user if enabled else self.client.admin_disable_user
        call(UserPoolId=self.user_pool_id, Username=username)

    def enabled(self, username: str) -> bool | None:
        """None when there is no such account."""
        try:
            return bool(
                self.client.admin_get_user(UserPoolId=self.user_pool_id, Username=username)["Enabled"]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "UserNotFoundException":
                return None
            raise
