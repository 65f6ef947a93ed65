"""Mailbox passwords in AWS Secrets Manager: never in tables, templates, events or logs."""

from __future__ import annotations

import json
from typing import Any

from pecflow.domain.mailbox import MailboxConfig, secret_name

__all__ = ["SecretsManager", "mailbox_password", "password_from_secret", "secret_value"]


def password_from_secret(value: str) -> str:
    """A secret holds {"password": "..."} (or, written by hand, the bare password: text, even
    when it happens to read as JSON, such as 12345678 or true)."""
    try:  # numbers kept as written: {"password": 1.50} is "1.50", never 1.5
        data = json.loads(value, parse_int=str, parse_float=str, parse_constant=str)
    except json.JSONDecodeError:
        return value
    if not isinstance(data, dict):
        return value
    password = data.get("password")
    if password is None:
        raise ValueError("mailbox secret has no 'password' field")
    return password if isinstance(password, str) else json.dumps(password)


def secret_value(password: str) -> str:
    return json.dumps({"password": password})


# a password changes rarely, and a refused login reads it again at once (`refresh`): cached for
# hours, not for the poll interval (with 5 minutes nearly every poll paid a Secrets Manager call)
PASSWORD_CACHE_SECONDS = 12 * 3600


def mailbox_password(
    config: MailboxConfig, stack: str, *, max_age: int = PASSWORD_CACHE_SECONDS, refresh: bool = False
) -> str:
    """The mailbox's password, cached in the warm Lambda for `max_age` seconds; `refresh`
    reads it again (after a refused login: the password may have just been changed)."""
    from aws_lambda_powertools.utilities import parameters

    secret_id = config.secret_id or secret_name(stack, config.address)
    return password_from_secret(parameters.get_secret(secret_id, max_age=max_age, force_fetch=refresh))


class SecretsManager:
    """Writes mailbox passwords as secrets (the CLI); the functions read them with `mailbox_password`."""

    def __init__(self, client: Any):
        self.client = client

    def put(self, name: str, value: str, description: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.create_secret(Name=name, SecretString=secret_value(value), Description=description)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
            self.client.put_secret_value(SecretId=name, SecretString=secret_value(value))
