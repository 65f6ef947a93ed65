"""Lambda settings from the environment, read once at cold start: a missing variable fails
the function at start, with its name, not in the middle of a poll."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


class SettingsError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    stack_name: str
    mailboxes_table: str
    messages_table: str = ""
    outgoing_table: str = ""
    campaigns_table: str = ""
    archive_bucket: str = ""
    poll_queue_url: str = ""
    campaign_bucket: str = ""
    quota_table: str = ""
    send_queue_url: str = ""
    fanout_queue_url: str = ""

    @classmethod
    def from_env(cls, *required: str, env: dict | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {f.name: env.get(f.name.upper(), "") for f in fields(cls)}
        missing = [
            name.upper() for name in ("stack_name", "mailboxes_table", *required) if not values.get(name)
        ]
        if missing:
            raise SettingsError(f"missing environment variables: {', '.join(missing)}")
        return cls(**values)
