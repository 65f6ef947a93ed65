"""Opening a mailbox's connection (IMAP or SMTP) with its password from the secret store."""

from __future__ import annotations

from collections.abc import Callable

from pecflow.domain.mailbox import MailboxConfig
from pecflow.domain.ports import MailboxUnavailable, PasswordOf


def open_with_fresh_password[Connection](
    config: MailboxConfig, opener: Callable[[MailboxConfig, str], Connection], password_of: PasswordOf
) -> Connection:
    """Open a connection with the cached password; if the login is refused, read the password
    again (it may have just been changed with `pecflow mailbox add`) and try once more."""
    try:
        return opener(config, password_of(config))
    except MailboxUnavailable as exc:
        if exc.kind != "auth":
            raise
        return opener(config, password_of(config, refresh=True))
