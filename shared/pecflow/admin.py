"""Administration of a pecflow installation: mailboxes (what `pecflow mailbox ...` runs)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from pecflow.deployment import Deployment
from pecflow.mail import ImapSession, MailboxUnavailable
from pecflow.mailbox import MailboxConfig, secret_name
from pecflow.secrets import secret_value
from pecflow.store import MailboxStore


def store_password(deployment: Deployment, address: str, password: str) -> str:
    """Create or update the mailbox's secret; returns its name. The password goes nowhere else."""
    secrets = deployment.client("secretsmanager")
    name = secret_name(deployment.stack_name, address)
    try:
        secrets.create_secret(Name=name, SecretString=secret_value(password),
                              Description=f"pecflow: password of the PEC mailbox {address}")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
            raise
        secrets.put_secret_value(SecretId=name, SecretString=secret_value(password))
    return name


def check_login(config: MailboxConfig, password: str) -> str:
    """Log in once over IMAP; returns a one-line summary, raises MailboxUnavailable."""
    session = ImapSession.open(config, password, timeout=20)
    try:
        status = session.select(config.folders[0])
        usage = session.usage(config.folders[0])
    finally:
        session.close()
    quota = f", {usage.percent:.0f}% of the quota used" if usage and usage.percent is not None else ""
    return f"{status.exists} message(s) in {config.folders[0]}{quota}"


def add_mailbox(deployment: Deployment, config: MailboxConfig, password: str, *, check: bool = True) -> str:
    config.validate()
    summary = check_login(config, password) if check else "login not checked"
    name = store_password(deployment, config.address, password)
    config = MailboxConfig(**{**{f: getattr(config, f) for f in config.__dataclass_fields__}, "secret_id": name})
    MailboxStore(deployment.mailboxes_table, deployment.resource("dynamodb")).put(config)
    return summary


def list_mailboxes(deployment: Deployment) -> list[tuple[MailboxConfig, dict]]:
    store = MailboxStore(deployment.mailboxes_table, deployment.resource("dynamodb"))
    return [(config, store.status(config.address)) for config in store.list()]


def set_enabled(deployment: Deployment, address: str, enabled: bool) -> None:
    MailboxStore(deployment.mailboxes_table, deployment.resource("dynamodb")).set_enabled(address, enabled)


__all__ = ["MailboxUnavailable", "add_mailbox", "check_login", "list_mailboxes", "set_enabled", "store_password"]
