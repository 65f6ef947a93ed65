"""Where a pecflow installation lives, read one way for everyone: the functions read their
environment at cold start (`Config.for_function`: a missing variable fails the function at start,
with its name, not in the middle of a poll); the CLI reads a deployed stack's outputs
(`--stack NAME`), the local stack's file (`--local`: `.local-run/stack.json`, moto's endpoint
and the resource names from template.yaml) or the same environment as a function.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

LOCAL_STATE = Path(".local-run") / "stack.json"

_OUTPUTS = {  # the stack's outputs the CLI reads
    "MailboxesTableName": "mailboxes_table",
    "MessagesTableName": "messages_table",
    "OutgoingTableName": "outgoing_table",
    "CampaignsTableName": "campaigns_table",
    "AuditTableName": "audit_table",
    "PeopleTableName": "people_table",
    "UserPoolId": "user_pool_id",
    "InboxTableName": "inbox_table",
    "InvoicesTableName": "invoices_table",
    "ArchiveBucketName": "archive_bucket",
    "PollQueueUrl": "poll_queue_url",
    "CampaignBucketName": "campaign_bucket",
    "SendQueueUrl": "send_queue_url",
    "AlertsTableName": "alerts_table",
    "AlertsTopicArn": "alerts_topic",
    "AlertsWebhookSecretArn": "alerts_webhook_secret",
}


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Config:
    stack_name: str
    region: str | None = None
    endpoint_url: str | None = None
    mailboxes_table: str = ""
    messages_table: str = ""
    outgoing_table: str = ""
    campaigns_table: str = ""
    audit_table: str = ""
    people_table: str = ""
    user_pool_id: str = ""
    api_secret: str = ""  # the secret whose value keys the API's page cursors
    inbox_table: str = ""
    invoices_table: str = ""  # SdI invoices (pecflow.adapters.dynamodb.invoices)
    archive_bucket: str = ""
    downloads_bucket: str = ""  # the API's copies of files taken out of originals
    poll_queue_url: str = ""
    campaign_bucket: str = ""
    send_queue_url: str = ""
    quota_table: str = ""
    fanout_queue_url: str = ""
    # the trust anchors of providers' signatures: s3://bucket/key or a file (pecflow.adapters.trust)
    trust_anchors: str = ""
    # the RFC 3161 time-stamping authority of evidence packs (TSA_URL) and the certificates its
    # own must chain to (TSA_ANCHORS: s3://bucket/key or a file; empty: the chain is not checked)
    tsa_url: str = ""
    tsa_anchors: str = ""
    # alerts (pecflow.services.alerts): the grouping table, the topic, the chat webhook's secret,
    # the grouping period in minutes (empty: an hour)
    alerts_table: str = ""
    alerts_topic: str = ""
    alerts_webhook_secret: str = ""
    alerts_period_minutes: str = ""

    @classmethod
    def for_function(cls, *required: str, env: Mapping[str, str] | None = None) -> Config:
        """A function's configuration from its environment; `required` names the settings it
        cannot run without (besides the stack and the mailboxes table)."""
        env = os.environ if env is None else env
        values = {name: env.get(name.upper(), "") for name in _SETTINGS}
        missing = [n.upper() for n in ("stack_name", "mailboxes_table", *required) if not values.get(n)]
        if missing:
            raise ConfigError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            region=env.get("AWS_REGION") or None, endpoint_url=env.get("AWS_ENDPOINT_URL") or None, **values
        )

    @classmethod
    def from_stack(cls, stack_name: str, region: str | None = None) -> Config:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            stacks = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack_name)[
                "Stacks"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"cannot read stack {stack_name!r}: {exc}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        values = {field: outputs[key] for key, field in _OUTPUTS.items() if key in outputs}
        if "mailboxes_table" not in values:
            raise ConfigError(
                f"stack {stack_name!r} has no MailboxesTableName output: is it a pecflow stack?"
            )
        return cls(stack_name=stack_name, region=region, **values)

    @classmethod
    def from_local(cls, path: Path | None = None) -> Config:
        path = path or Path(os.environ.get("PECFLOW_LOCAL_STATE", LOCAL_STATE))
        if not path.exists():
            raise ConfigError(
                f"no local stack state at {path}: start the local stack first "
                "(`make demo`, or `python -m local.stack`)"
            )
        data = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def from_env(cls) -> Config:
        """The CLI's third way: the same environment a function has."""
        env = os.environ
        if not env.get("MAILBOXES_TABLE"):
            raise ConfigError(
                "say where pecflow runs: --stack NAME, --local, or MAILBOXES_TABLE and "
                "STACK_NAME in the environment"
            )
        return cls(
            stack_name=env.get("STACK_NAME", "pecflow"),
            region=env.get("AWS_REGION"),
            endpoint_url=env.get("AWS_ENDPOINT_URL"),
            **{name: env.get(name.upper(), "") for name in _SETTINGS if name != "stack_name"},
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: getattr(self, k) for k in self.__dataclass_fields__}, indent=2))

    def client(self, service: str):
        return _cached("client", service, self.region, self.endpoint_url)

    def resource(self, service: str):
        return _cached("resource", service, self.region, self.endpoint_url)


_SETTINGS = tuple(f.name for f in fields(Config) if f.name not in ("region", "endpoint_url"))
_local = threading.local()


def _cached(kind: str, service: str, region: str | None, endpoint_url: str | None):
    """boto3 clients and resources, made once per thread (making one reads botocore's models;
    resources are not thread-safe)."""
    import boto3

    cache = _local.__dict__.setdefault("cache", {})
    key = (kind, service, region, endpoint_url)
    if key not in cache:
        factory = boto3.client if kind == "client" else boto3.resource
        cache[key] = factory(service, region_name=region, endpoint_url=endpoint_url)
    return cache[key]
