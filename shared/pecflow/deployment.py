"""Where a pecflow installation lives: a deployed CloudFormation stack, or the local stack.

The CLI uses it to reach the same tables, bucket, queues and secrets the functions use:
`--stack NAME` reads the stack's outputs; `--local` reads the file the local stack writes
(`.local-run/stack.json`: moto's endpoint and the resource names from template.yaml).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

LOCAL_STATE = Path(".local-run") / "stack.json"

_OUTPUTS = {
    "MailboxesTableName": "mailboxes_table",
    "MessagesTableName": "messages_table",
    "OutgoingTableName": "outgoing_table",
    "CampaignsTableName": "campaigns_table",
    "ArchiveBucketName": "archive_bucket",
    "PollQueueUrl": "poll_queue_url",
    "CampaignBucketName": "campaign_bucket",
    "SendQueueUrl": "send_queue_url",
}


class DeploymentError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Deployment:
    stack_name: str
    region: str | None = None
    endpoint_url: str | None = None
    mailboxes_table: str = ""
    messages_table: str = ""
    outgoing_table: str = ""
    campaigns_table: str = ""
    archive_bucket: str = ""
    poll_queue_url: str = ""
    campaign_bucket: str = ""
    send_queue_url: str = ""

    @classmethod
    def from_stack(cls, stack_name: str, region: str | None = None) -> Deployment:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            stacks = boto3.client("cloudformation", region_name=region).describe_stacks(StackName=stack_name)[
                "Stacks"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise DeploymentError(f"cannot read stack {stack_name!r}: {exc}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        values = {field: outputs[key] for key, field in _OUTPUTS.items() if key in outputs}
        if "mailboxes_table" not in values:
            raise DeploymentError(
                f"stack {stack_name!r} has no MailboxesTableName output: is it a pecflow stack?"
            )
        return cls(stack_name=stack_name, region=region, **values)

    @classmethod
    def from_local(cls, path: Path | None = None) -> Deployment:
        path = path or Path(os.environ.get("PECFLOW_LOCAL_STATE", LOCAL_STATE))
        if not path.exists():
            raise DeploymentError(
                f"no local stack state at {path}: start the local stack first "
                "(`make demo`, or `python -m local.stack`)"
            )
        data = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def from_env(cls) -> Deployment:
        env = os.environ
        if not env.get("MAILBOXES_TABLE"):
            raise DeploymentError(
                "say where pecflow runs: --stack NAME, --local, or MAILBOXES_TABLE and "
                "STACK_NAME in the environment"
            )
        return cls(
            stack_name=env.get("STACK_NAME", "pecflow"),
            region=env.get("AWS_REGION"),
            endpoint_url=env.get("AWS_ENDPOINT_URL"),
            **{field: env.get(field.upper(), "") for field in _OUTPUTS.values()},
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: getattr(self, k) for k in self.__dataclass_fields__}, indent=2))

    def client(self, service: str):
        return _cached("client", service, self.region, self.endpoint_url)

    def resource(self, service: str):
        return _cached("resource", service, self.region, self.endpoint_url)


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
