"""AWS on one machine: moto as a real HTTP server on a free local port, with the stack's
resources created from template.yaml itself (the template stays the single source of truth).

    aws = LocalAws.start("template.yaml")
    aws.physical("ArchiveBucket"); aws.client("s3").put_object(...)
    aws.stop()

Created: DynamoDB tables (also SAM SimpleTable, GlobalTable as one regional table), SQS queues,
S3 buckets (versioning, Object Lock, encryption, public access block, lifecycle, CORS, tags,
queue/topic/EventBridge notifications), Secrets Manager secrets (SecretString or
GenerateSecretString), SNS topics and subscriptions, KMS keys and aliases, SSM parameters.
Not created, listed in `skipped`: everything else (IAM, Lambda permissions, layers, alarms,
log groups, policies, ...). Functions are not created either: the event runner (`local.runner`)
runs them in-process; `Ref`/`GetAtt` of them and of skipped resources give synthetic names/ARNs.
Physical names: the template's name property (TableName, QueueName, BucketName, Name, ...), else
`<stack>-<LogicalId>` (lower-cased for buckets, `.fifo` added for FIFO queues and topics).

moto keeps its state per process, not per server: every LocalAws of a process sees the same
resources, so stacks need distinct names, and `reset()` recreates every live stack.

Developers: `python -m local.aws --template template.yaml` serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import json
import logging
import os
import re
import signal
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from local import moto_sqs
from local.clock import Clock
from local.template import (
    ACCOUNT_ID,
    Intrinsics,
    Resource,
    Template,
    TemplateError,
    load,
    parameter_values,
    references,
)

REGION = "eu-south-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

# Not created in moto, with the reason shown in `LocalAws.skipped`.
_NOT_CREATED = {
    "AWS::Serverless::Function": "run in-process by local.runner",
    "AWS::Lambda::Function": "run in-process by local.runner",
    "AWS::Serverless::LayerVersion": "layers: their folders go on sys.path in local.runner",
    "AWS::Lambda::LayerVersion": "layers: their folders go on sys.path in local.runner",
    "AWS::Lambda::Permission": "permissions are not enforced locally",
    "AWS::Lambda::EventSourceMapping": "event sources are driven by local.runner",
    "AWS::Lambda::EventInvokeConfig": "read by local.runner from the function",
    "AWS::CloudWatch::Alarm": "alarms are not modelled locally",
    "AWS::Logs::LogGroup": "logs go to the test output",
    "AWS::SQS::QueuePolicy": "policies are not enforced locally",
    "AWS::SNS::TopicPolicy": "policies are not enforced locally",
    "AWS::S3::BucketPolicy": "policies are not enforced locally",
    "AWS::Serverless::HttpApi": "served on a local port by local.api_server (LocalStack.serve_api)",
}
_SQS_INT_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsDataKeyReusePeriodSeconds",
)
_SQS_BOOL_ATTRIBUTES = ("FifoQueue", "ContentBasedDeduplication", "SqsManagedSseEnabled")
_SQS_TEXT_ATTRIBUTES = ("DeduplicationScope", "FifoThroughputLimit", "KmsMasterKeyId")

# moto's backends are process-wide: every server of this process serves the same state.
_LIVE: list[LocalAws] = []
_CLOCK_FOLLOWER: str | None = None  # the stack whose virtual clock moto's SQS reads


# One boto3 session per region for every LocalAws of the process: a session reads botocore's
# service models once, so a test's stack makes its clients in milliseconds instead of a second.
# Sessions are not thread-safe: clients and resources are made under _SESSION_LOCK.
_SESSIONS: dict[str, boto3.session.Session] = {}
_SESSION_LOCK = threading.Lock()


def _session(region: str) -> boto3.session.Session:
    if region not in _SESSIONS:
        _SESSIONS[region] = boto3.session.Session(
            region_name=region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
    return _SESSIONS[region]


# Parsed templates by (path, content): parsing template.yaml takes most of a second, and the
# integration tests make a stack per test. Each caller gets its own copy.
_TEMPLATES: dict[tuple[Path, str], Template] = {}
_TEMPLATES_LOCK = threading.Lock()


def _load_template(path: str | Path) -> Template:
    path = Path(path).resolve()
    key = (path, hashlib.sha256(path.read_bytes()).hexdigest())
    with _TEMPLATES_LOCK:
        if key not in _TEMPLATES:
            _TEMPLATES[key] = load(path)
        return copy.deepcopy(_TEMPLATES[key])


@dataclass(frozen=True)
class StackResource:
    """One resource as it exists in moto: what Ref returns, its attributes for GetAtt."""

    logical_id: str
    type: str
    physical: str
    ref: Any
    arn: str | None = None
    url: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _BucketSubscription:
    """An extra notification from a bucket to a queue of our own (the runner's S3 sources)."""

    bucket_logical_id: str
    queue_name: str
    events: tuple[str, ...]
    filter_rules: tuple[tuple[str, str], ...]


class LocalAws:
    """moto server + the template's resources. Build it with `LocalAws.start(...)`."""

    def __init__(
        self,
        template: Template,
        *,
        stack_name: str,
        parameters: dict[str, Any],
        region: str,
        server: ThreadedMotoServer,
        endpoint_url: str,
    ):
        self.template = template
        self.stack_name = stack_name
        self.region = region
        self.account_id = ACCOUNT_ID
        self.endpoint_url = endpoint_url
        self.parameters = parameters
        self.resources: dict[str, StackResource] = {}
        self.skipped: dict[str, str] = {}
        self._server: ThreadedMotoServer | None = server
        self._intrinsics = Intrinsics(
            template, stack_name=stack_name, region=region, parameters=parameters, lookup=self._lookup
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._notifications: dict[str, dict] = {}  # bucket name -> template's configuration
        self._subscriptions: dict[str, _BucketSubscription] = {}
        self._reset_hooks: list[Callable[[], None]] = []
        self._restore_environ: Callable[[], None] | None = None
        self._restore_clock: Callable[[], None] | None = None
        self._restore_logging: Callable[[], None] | None = None

    # --- life cycle ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        template_path: str | Path,
        stack_name: str = "pecflow-local",
        parameters: dict[str, Any] | None = None,
        *,
        region: str = REGION,
        port: int = 0,
        set_environ: bool = True,
        direct_calls: bool = False,
    ) -> LocalAws:
        """Start moto on 127.0.0.1 (`port=0`: a free port) and create the template's resources.
        With `set_environ`, the process environment points boto3 at it (AWS_ENDPOINT_URL, region,
        fake credentials) until `stop()`; otherwise use `with aws.environ(): ...` where needed.
        With `direct_calls`, botocore requests of this process to the endpoint are handed to
        moto's server application without the socket (see `_direct_calls`); other processes
        (a browser, the CLI) still reach it over HTTP."""
        template = _load_template(template_path)
        values = parameter_values(template, parameters)
        if any(aws.stack_name == stack_name for aws in _LIVE):
            raise ValueError(
                f"a LocalAws with stack name {stack_name!r} is already running in this process "
                "(moto's state is process-wide: give each stack its own name)"
            )
        restore_logging = _quiet_werkzeug()
        _atomic_dynamodb()
        _keyed_table_queries()
        _quick_key_values()
        _parsed_update_expressions()
        _fast_dispatch()
        _plain_dynamodb_responses()
        _lazy_queue_attributes()
        _lazy_kms_key_material()
        server = _KeepAliveMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        host, bound_port = server.get_host_and_port()
        aws = cls(
            template,
            stack_name=stack_name,
            parameters=values,
            region=region,
            server=server,
            endpoint_url=f"http://{host}:{bound_port}",
        )
        aws._restore_logging = restore_logging
        _LIVE.append(aws)
        if direct_calls:
            _direct_calls()
            _DIRECT_ENDPOINTS.add(f"{host}:{bound_port}")
        try:
            aws._create_stack()
            if set_environ:
                aws._restore_environ = aws._install_environ()
        except BaseException:
            aws.stop()
            raise
        return aws

    @classmethod
    def in_process(
        cls,
        template_path: str | Path,
        stack_name: str = "pecflow-test",
        parameters: dict[str, Any] | None = None,
        *,
        region: str = REGION,
    ) -> LocalAws:
        """The template's resources in moto's in-process mock (call it inside `mock_aws()`): no
        server, no endpoint; for integration tests of the adapters."""
        template = _load_template(template_path)
        _atomic_dynamodb()
        _keyed_table_queries()
        _quick_key_values()
        _parsed_update_expressions()
        _plain_dynamodb_responses()
        _lazy_queue_attributes()
        _lazy_kms_key_material()
        aws = cls(
            template,
            stack_name=stack_name,
            parameters=parameter_values(template, parameters),
            region=region,
            server=None,
            endpoint_url=None,
        )
        aws._create_stack()
        return aws

    def stop(self) -> None:
        """Stop the server and put back the environment, moto's clock and logging as they were."""
        if self._restore_clock:
            self.follow_clock(None)
        for name in ("_restore_environ", "_restore_logging"):
            restore = getattr(self, name)
            setattr(self, name, None)
            if restore:
                restore()
        if self in _LIVE:
            _LIVE.remove(self)
        if self.endpoint_url:
            _DIRECT_ENDPOINTS.discard(self.endpoint_url.removeprefix("http://"))
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> LocalAws:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Fresh resources: moto forgets everything, then the stack is created again. moto's
        state is process-wide, so every live LocalAws of this process is recreated too."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        for aws in [self, *(other for other in _LIVE if other is not self)]:
            aws._recreate()

    def _recreate(self) -> None:
        with self._lock:
            self.resources.clear()
            self.skipped.clear()
            self._notifications.clear()
            self._intrinsics = Intrinsics(
                self.template,
                stack_name=self.stack_name,
                region=self.region,
                parameters=self.parameters,
                lookup=self._lookup,
            )
            self._create_stack()
            for subscription in self._subscriptions.values():
                self._subscribe(subscription)
        for hook in list(self._reset_hooks):
            hook()

    def on_reset(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call `hook` after every reset (ARNs of secrets and keys change); returns the undo."""
        self._reset_hooks.append(hook)
        return lambda: self._reset_hooks.remove(hook) if hook in self._reset_hooks else None

    # --- what the stack holds -----------------------------------------------------------------

    def physical(self, logical_id: str) -> str:
        """The physical name (table/queue/bucket/topic/secret name, key id, ...)."""
        if logical_id in self.resources:
            return self.resources[logical_id].physical
        return str(self._lookup(logical_id, None))

    def arn(self, logical_id: str) -> str:
        if logical_id in self.resources and self.resources[logical_id].arn:
            return self.resources[logical_id].arn
        return str(self._lookup(logical_id, "Arn"))

    def url(self, logical_id: str) -> str:
        """A queue's URL on the local endpoint."""
        resource = self.resources.get(logical_id)
        if resource is None or resource.url is None:
            raise KeyError(f"{logical_id} is not a queue of this stack")
        return resource.url

    def resolve(self, value: Any) -> Any:
        """A template value with its intrinsic functions resolved against this stack."""
        with self._lock:
            return self._intrinsics.resolve(value)

    def condition(self, name: str) -> bool:
        return self._intrinsics.condition(name)

    def function_environment(self, function_logical_id: str) -> dict[str, str]:
        """Globals.Function.Environment merged with the function's own, resolved, as strings."""
        properties = self.template.function_properties(function_logical_id)
        variables = self.resolve((properties.get("Environment") or {}).get("Variables") or {})
        return {name: _env_text(value) for name, value in variables.items()}

    # --- clients ------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client bound to the local endpoint (cached; clients are thread-safe)."""
        with self._lock:
            if service not in self._clients:
                with _SESSION_LOCK:
                    self._clients[service] = _session(self.region).client(
                        service,
                        endpoint_url=self.endpoint_url,
                        config=Config(max_pool_connections=64, retries={"mode": "standard"}),
                    )
            return self._clients[service]

    def resource(self, service: str) -> Any:
        """A new boto3 resource bound to the local endpoint (resources are not thread-safe)."""
        with _SESSION_LOCK:
            return _session(self.region).resource(service, endpoint_url=self.endpoint_url)

    @contextmanager
    def environ(self) -> Iterator[dict[str, str]]:
        """Point boto3 in this process at the local endpoint for the block, then restore."""
        restore = self._install_environ()
        try:
            yield dict(self.environment())
        finally:
            restore()

    def environment(self) -> dict[str, str]:
        """What in-process handlers need to reach this stack with an unchanged boto3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **FAKE_CREDENTIALS,
        }

    def _install_environ(self) -> Callable[[], None]:
        wanted = self.environment()
        drop = ["AWS_PROFILE", *(k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_"))]
        saved = {name: os.environ.get(name) for name in [*wanted, *drop]}
        os.environ.update(wanted)
        for name in drop:
            os.environ.pop(name, None)

        def restore() -> None:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

        return restore

    # --- the clock moto's SQS reads -----------------------------------------------------------

    def follow_clock(self, clock: Clock | None) -> None:
        """Make moto's SQS read the time from `clock` (None, or a real clock: back to real time).

        moto runs in this process (ThreadedMotoServer), and its SQS model reads the time only
        through the names `unix_time` and `unix_time_millis` imported into `moto.sqs.models`
        (sent timestamps, receive timestamps, visibility, delays, retention, FIFO dedup window).
        With a virtual clock those two names are replaced by the clock, plus two adjustments
        so that a frozen clock behaves like SQS: a message is visible again when now >= its
        visible-at time (moto says >, which would keep a ChangeMessageVisibility(0) message
        hidden until the clock moves), and long polls return at once (moto would wait for the
        frozen clock forever). The same patch (`local.moto_sqs`) keeps moto's SQS linear in a
        queue's length. Everything is put back by `follow_clock(None)` or `stop()`.
        """
        global _CLOCK_FOLLOWER
        if self._restore_clock:
            if clock is not None and clock.virtual:
                raise RuntimeError("moto already follows a virtual clock (one event runner at a time)")
            self._restore_clock()
            self._restore_clock = None
            _CLOCK_FOLLOWER = None
        if clock is not None and clock.virtual:
            if _CLOCK_FOLLOWER is not None:
                raise RuntimeError(f"moto already follows the virtual clock of stack {_CLOCK_FOLLOWER}")
            self._restore_clock = _patch_sqs_time(clock)
            _CLOCK_FOLLOWER = self.stack_name

    def sqs_next_change(self, queue_names: list[str], now: float) -> float | None:
        """When (epoch seconds) the next message of these queues becomes visible or stops being
        delayed, after `now`; None if nothing is waiting. Reads moto's in-process model."""
        times = []
        for name in queue_names:
            queue = self._moto_queue(name)
            if queue is None:
                continue
            if self._restore_clock:  # local.moto_sqs indexes the queue
                at = moto_sqs.next_ready_at(queue, now * 1000)
                if at is not None and at / 1000 > now:
                    times.append(at / 1000)
                continue
            for message in list(queue._messages):
                at = max(message.visible_at, message.delayed_until) / 1000
                if at > now:
                    times.append(at)
        return min(times, default=None)

    def sqs_ready(self, queue_name: str) -> bool:
        """Whether moto holds a message of this queue that a receive could return now."""
        queue = self._moto_queue(queue_name)
        if queue is None:
            return True
        try:
            from moto.sqs import models as sqs_models

            now = sqs_models.unix_time_millis()  # the clock moto follows
            if self._restore_clock:  # local.moto_sqs indexes the queue
                return moto_sqs.any_ready(queue, now)
            return any(now >= m.visible_at and now >= m.delayed_until for m in list(queue._messages))
        except AttributeError:  # moto changed shape: poll anyway
            return True

    def _moto_queue(self, queue_name: str) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[self.account_id][self.region].queues.get(queue_name)

    # --- bucket notifications to queues of our own (the runner's S3 sources) -------------------

    def notify_queue(
        self, bucket_logical_id: str, queue_name: str, events: list[str], filter_rules: list[tuple[str, str]]
    ) -> str:
        """Create queue `queue_name` and make the bucket notify it of `events` (kept across
        `reset()`); the template's own notifications stay. Returns the queue URL."""
        subscription = _BucketSubscription(bucket_logical_id, queue_name, tuple(events), tuple(filter_rules))
        with self._lock:
            self._subscriptions[queue_name] = subscription
            return self._subscribe(subscription)

    def stop_notifying(self, queue_name: str) -> None:
        with self._lock:
            subscription = self._subscriptions.pop(queue_name, None)
            if subscription is None or self._server is None:
                return
            self._apply_notifications(self.physical(subscription.bucket_logical_id))
            sqs = self.client("sqs")
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue_name)["QueueUrl"])

    def _subscribe(self, subscription: _BucketSubscription) -> str:
        url = self.client("sqs").create_queue(
            QueueName=subscription.queue_name,
            Attributes={"VisibilityTimeout": "900", "MessageRetentionPeriod": "1209600"},
        )["QueueUrl"]
        self._apply_notifications(self.physical(subscription.bucket_logical_id))
        return url

    def _apply_notifications(self, bucket: str) -> None:
        configuration = json.loads(json.dumps(self._notifications.get(bucket, {})))
        for subscription in self._subscriptions.values():
            if self.physical(subscription.bucket_logical_id) != bucket:
                continue
            entry: dict[str, Any] = {
                "Id": subscription.queue_name,
                "QueueArn": f"arn:aws:sqs:{self.region}:{self.account_id}:{subscription.queue_name}",
                "Events": list(subscription.events),
            }
            if subscription.filter_rules:
                entry["Filter"] = {
                    "Key": {
                        "FilterRules": [
                            {"Name": name, "Value": value} for name, value in subscription.filter_rules
                        ]
                    }
                }
            configuration.setdefault("QueueConfigurations", []).append(entry)
        self.client("s3").put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=configuration
        )

    # --- creating the stack -------------------------------------------------------------------

    def _create_stack(self) -> None:
        creators = self._creators()
        to_create: list[Resource] = []
        for resource in self.template.resources.values():
            if resource.condition and not self._intrinsics.condition(resource.condition):
                self.skipped[resource.logical_id] = (
                    f"{resource.type} (condition {resource.condition} is false)"
                )
            elif resource.type in creators:
                to_create.append(resource)
            else:
                reason = _NOT_CREATED.get(resource.type)
                if reason is None and resource.type.startswith("AWS::IAM::"):
                    reason = "IAM is not enforced locally"
                self.skipped[resource.logical_id] = f"{resource.type} ({reason or 'not modelled locally'})"
        for resource in _creation_order(to_create):
            properties = self._intrinsics.resolve(resource.properties)
            try:
                self.resources[resource.logical_id] = creators[resource.type](resource, properties)
            except Exception as error:
                raise TemplateError(f"creating {resource.logical_id} ({resource.type}): {error}") from error

    def _creators(self) -> dict[str, Callable[[Resource, dict], StackResource]]:
        return {
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::DynamoDB::GlobalTable": self._create_table,
            "AWS::Serverless::SimpleTable": self._create_simple_table,
            "AWS::SQS::Queue": self._create_queue,
            "AWS::S3::Bucket": self._create_bucket,
            "AWS::SecretsManager::Secret": self._create_secret,
            "AWS::SNS::Topic": self._create_topic,
            "AWS::SNS::Subscription": self._create_subscription,
            "AWS::KMS::Key": self._create_key,
            "AWS::KMS::Alias": self._create_alias,
            "AWS::SSM::Parameter": self._create_ssm_parameter,
            "AWS::Cognito::UserPool": self._create_user_pool,
            "AWS::Cognito::UserPoolClient": self._create_user_pool_client,
        }

    def _name(self, resource: Resource, properties: dict, name_property: str | None) -> str:
        if name_property and properties.get(name_property):
            return str(properties[name_property])
        return f"{self.stack_name}-{resource.logical_id}"

    def _create_table(self, resource: Resource, p: dict) -> StackResource:
        name = self._name(resource, p, "TableName")[:255]
        billing = p.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            request["ProvisionedThroughput"] = _throughput(
                p.get("ProvisionedThroughput") or p.get("WriteProvisionedThroughputSettings")
            )
        indexes = []
        for index in p.get("GlobalSecondaryIndexes", []):
            entry = {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
            if billing == "PROVISIONED":
                entry["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
            indexes.append(entry)
        if indexes:
            request["GlobalSecondaryIndexes"] = indexes
        if p.get("LocalSecondaryIndexes"):
            request["LocalSecondaryIndexes"] = [
                {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
                for index in p["LocalSecondaryIndexes"]
            ]
        stream = p.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        sse = p.get("SSESpecification")
        if sse:
            request["SSESpecification"] = {
                "Enabled": _bool(sse.get("SSEEnabled")),
                **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
            }
        for key in ("TableClass", "DeletionProtectionEnabled"):
            if key in p:
                request[key] = p[key]
        if p.get("Tags"):
            request["Tags"] = p["Tags"]
        dynamodb = self.client("dynamodb")
        table = dynamodb.create_table(**request)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and _bool(ttl.get("Enabled", True)):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        recovery = p.get("PointInTimeRecoverySpecification")
        if recovery and _bool(recovery.get("PointInTimeRecoveryEnabled")):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": table["TableArn"], "TableId": table.get("TableId")}
        if table.get("LatestStreamArn"):
            attributes["StreamArn"] = table["LatestStreamArn"]
        return StackResource(
            resource.logical_id, resource.type, name, ref=name, arn=table["TableArn"], attributes=attributes
        )

    def _create_simple_table(self, resource: Resource, p: dict) -> StackResource:
        key = p.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        kind = {"String": "S", "Number": "N", "Binary": "B"}[key.get("Type", "String")]
        table = {
            "TableName": p.get("TableName"),
            "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": kind}],
            "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
            "BillingMode": "PROVISIONED" if p.get("ProvisionedThroughput") else "PAY_PER_REQUEST",
        }
        for name in ("ProvisionedThroughput", "SSESpecification"):
            if p.get(name):
                table[name] = p[name]
        if p.get("Tags"):
            table["Tags"] = [{"Key": k, "Value": v} for k, v in p["Tags"].items()]
        return self._create_table(resource, table)

    def _create_queue(self, resource: Resource, p: dict) -> StackResource:
        fifo = _bool(p.get("FifoQueue", False))
        if p.get("QueueName"):
            name = str(p["QueueName"])
        else:
            name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.stack_name}-{resource.logical_id}")
            name = name[:75] + ".fifo" if fifo else name[:80]
        attributes: dict[str, str] = {}
        for key in _SQS_INT_ATTRIBUTES:
            if key in p:
                attributes[key] = str(int(p[key]))
        for key in _SQS_BOOL_ATTRIBUTES:
            if key in p:
                attributes[key] = str(_bool(p[key])).lower()
        for key in _SQS_TEXT_ATTRIBUTES:
            if key in p:
                attributes[key] = str(p[key])
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if p.get(key):
                policy = p[key] if isinstance(p[key], dict) else json.loads(p[key])
                if "maxReceiveCount" in policy:
                    policy = {**policy, "maxReceiveCount": int(policy["maxReceiveCount"])}
                attributes[key] = json.dumps(policy)
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if p.get("Tags"):
            request["tags"] = {t["Key"]: str(t["Value"]) for t in p["Tags"]}
        url = self.client("sqs").create_queue(**request)["QueueUrl"]
        arn = f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"
        return StackResource(
            resource.logical_id,
            resource.type,
            name,
            ref=url,
            arn=arn,
            url=url,
            attributes={"Arn": arn, "QueueName": name, "QueueUrl": url},
        )

    def _create_bucket(self, resource: Resource, p: dict) -> StackResource:
        name = p.get("BucketName") or _bucket_name(f"{self.stack_name}-{resource.logical_id}")
        s3 = self.client("s3")
        request: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        if _bool(p.get("ObjectLockEnabled", False)):
            request["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(**request)
        if p.get("VersioningConfiguration"):
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
            )
        lock = p.get("ObjectLockConfiguration")
        if lock:
            configuration: dict[str, Any] = {"ObjectLockEnabled": lock.get("ObjectLockEnabled", "Enabled")}
            retention = (lock.get("Rule") or {}).get("DefaultRetention")
            if retention:
                configuration["Rule"] = {
                    "DefaultRetention": {
                        k: (int(v) if k in ("Days", "Years") else v) for k, v in retention.items()
                    }
                }
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=configuration)
        encryption = p.get("BucketEncryption")
        if encryption:
            rules = []
            for rule in encryption["ServerSideEncryptionConfiguration"]:
                entry: dict[str, Any] = {}
                default = rule.get("ServerSideEncryptionByDefault")
                if default:
                    by_default = {"SSEAlgorithm": default["SSEAlgorithm"]}
                    if default.get("KMSMasterKeyID"):
                        by_default["KMSMasterKeyID"] = default["KMSMasterKeyID"]
                    entry["ApplyServerSideEncryptionByDefault"] = by_default
                if "BucketKeyEnabled" in rule:
                    entry["BucketKeyEnabled"] = _bool(rule["BucketKeyEnabled"])
                rules.append(entry)
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if p.get("PublicAccessBlockConfiguration"):
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={
                    k: _bool(v) for k, v in p["PublicAccessBlockConfiguration"].items()
                },
            )
        if p.get("LifecycleConfiguration"):
            s3.put_bucket_lifecycle_configuration(
                Bucket=name,
                LifecycleConfiguration={
                    "Rules": [_lifecycle_rule(rule) for rule in p["LifecycleConfiguration"]["Rules"]]
                },
            )
        if p.get("CorsConfiguration"):
            s3.put_bucket_cors(
                Bucket=name,
                CORSConfiguration={
                    "CORSRules": [_cors_rule(rule) for rule in p["CorsConfiguration"]["CorsRules"]]
                },
            )
        if p.get("Tags"):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": p["Tags"]})
        if p.get("NotificationConfiguration"):
            self._notifications[name] = _notification_configuration(p["NotificationConfiguration"])
            self._apply_notifications(name)
        arn = f"arn:aws:s3:::{name}"
        return StackResource(
            resource.logical_id,
            resource.type,
            name,
            ref=name,
            arn=arn,
            attributes={
                "Arn": arn,
                "DomainName": f"{name}.s3.amazonaws.com",
                "DualStackDomainName": f"{name}.s3.dualstack.{self.region}.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
                "WebsiteURL": f"http://{name}.s3-website.{self.region}.amazonaws.com",
            },
        )

    def _create_user_pool(self, resource: Resource, p: dict) -> StackResource:
        """The people's sign-in accounts: `pecflow users add` makes them here as in Cognito (the
        local API's tokens come from local.tokens, which this pool does not sign)."""
        name = self._name(resource, p, "UserPoolName")
        pool = self.client("cognito-idp").create_user_pool(PoolName=name)["UserPool"]
        provider = f"cognito-idp.{self.region}.amazonaws.com/{pool['Id']}"
        return StackResource(
            resource.logical_id, resource.type, pool["Id"], ref=pool["Id"], arn=pool["Arn"],
            attributes={"Arn": pool["Arn"], "ProviderName": provider, "ProviderURL": f"https://{provider}"},
        )  # fmt: skip

    def _create_user_pool_client(self, resource: Resource, p: dict) -> StackResource:
        client = self.client("cognito-idp").create_user_pool_client(
            UserPoolId=p["UserPoolId"], ClientName=p.get("ClientName", resource.logical_id)
        )["UserPoolClient"]
        return StackResource(resource.logical_id, resource.type, client["ClientId"], ref=client["ClientId"])

    def _create_secret(self, resource: Resource, p: dict) -> StackResource:
        name = self._name(resource, p, "Name")
        secrets = self.client("secretsmanager")
        request: dict[str, Any] = {"Name": name}
        for key in ("Description", "KmsKeyId"):
            if p.get(key):
                request[key] = p[key]
        if p.get("Tags"):
            request["Tags"] = p["Tags"]
        if "SecretString" in p:
            request["SecretString"] = p["SecretString"]
        elif "GenerateSecretString" in p:
            request["SecretString"] = _generated_secret(secrets, p["GenerateSecretString"])
        arn = secrets.create_secret(**request)["ARN"]
        return StackResource(
            resource.logical_id, resource.type, name, ref=arn, arn=arn, attributes={"Id": arn}
        )

    def _create_topic(self, resource: Resource, p: dict) -> StackResource:
        fifo = _bool(p.get("FifoTopic", False))
        if p.get("TopicName"):
            name = str(p["TopicName"])
        else:
            name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.stack_name}-{resource.logical_id}")
            name = name[:251] + ".fifo" if fifo else name[:256]
        attributes = {}
        for key in ("DisplayName", "KmsMasterKeyId"):
            if p.get(key):
                attributes[key] = str(p[key])
        for key in ("FifoTopic", "ContentBasedDeduplication"):
            if key in p:
                attributes[key] = str(_bool(p[key])).lower()
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if p.get("Tags"):
            request["Tags"] = p["Tags"]
        sns = self.client("sns")
        arn = sns.create_topic(**request)["TopicArn"]
        for subscription in p.get("Subscription", []):
            sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        return StackResource(
            resource.logical_id,
            resource.type,
            name,
            ref=arn,
            arn=arn,
            attributes={"TopicArn": arn, "TopicName": name},
        )

    def _create_subscription(self, resource: Resource, p: dict) -> StackResource:
        attributes = {}
        for key in ("RawMessageDelivery", "FilterPolicyScope"):
            if key in p:
                attributes[key] = str(p[key]).lower() if key == "RawMessageDelivery" else str(p[key])
        for key in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
            if p.get(key):
                attributes[key] = p[key] if isinstance(p[key], str) else json.dumps(p[key])
        arn = self.client("sns").subscribe(
            TopicArn=p["TopicArn"],
            Protocol=p["Protocol"],
            Endpoint=p["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return StackResource(resource.logical_id, resource.type, arn, ref=arn, arn=arn)

    def _create_key(self, resource: Resource, p: dict) -> StackResource:
        kms = self.client("kms")
        request: dict[str, Any] = {}
        for key in ("Description", "KeyUsage", "KeySpec", "MultiRegion"):
            if key in p:
                request[key] = p[key]
        if p.get("KeyPolicy"):
            policy = p["KeyPolicy"]
            request["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        if p.get("Tags"):
            request["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in p["Tags"]]
        metadata = kms.create_key(**request)["KeyMetadata"]
        if _bool(p.get("EnableKeyRotation", False)):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        if not _bool(p.get("Enabled", True)):
            kms.disable_key(KeyId=metadata["KeyId"])
        key_id, arn = metadata["KeyId"], metadata["Arn"]
        return StackResource(
            resource.logical_id,
            resource.type,
            key_id,
            ref=key_id,
            arn=arn,
            attributes={"Arn": arn, "KeyId": key_id},
        )

    def _create_alias(self, resource: Resource, p: dict) -> StackResource:
        self.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        arn = f"arn:aws:kms:{self.region}:{self.account_id}:{p['AliasName']}"
        return StackResource(resource.logical_id, resource.type, p["AliasName"], ref=p["AliasName"], arn=arn)

    def _create_ssm_parameter(self, resource: Resource, p: dict) -> StackResource:
        name = self._name(resource, p, "Name")
        request = {"Name": name, "Type": p.get("Type", "String"), "Value": str(p["Value"])}
        if p.get("Description"):
            request["Description"] = p["Description"]
        self.client("ssm").put_parameter(**request)
        arn = f"arn:aws:ssm:{self.region}:{self.account_id}:parameter/{name.lstrip('/')}"
        return StackResource(
            resource.logical_id,
            resource.type,
            name,
            ref=name,
            arn=arn,
            attributes={"Type": request["Type"], "Value": request["Value"]},
        )

    # --- Ref/GetAtt of what moto does not hold ------------------------------------------------

    def _lookup(self, logical_id: str, attribute: str | None) -> Any:
        if logical_id in self.resources:
            resource = self.resources[logical_id]
            if attribute is None:
                return resource.ref
            if attribute in resource.attributes:
                return resource.attributes[attribute]
            raise TemplateError(f"GetAtt {logical_id}.{attribute} is not available locally")
        declared = self.template.resources[logical_id]
        if declared.type in self._creators() and logical_id not in self.skipped:
            raise TemplateError(f"{logical_id} is referenced before it is created (a cycle?)")
        return self._synthetic(declared, attribute)

    def _synthetic(self, resource: Resource, attribute: str | None) -> Any:
        """Names and ARNs of resources moto does not hold, deterministic per stack."""
        kind = resource.type
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            name = resource.properties.get("FunctionName")
            name = self._intrinsics.resolve(name) if name else f"{self.stack_name}-{resource.logical_id}"[:64]
            arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            return name if attribute is None else arn
        if kind in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            name = f"{self.stack_name}-{resource.logical_id}"
            return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{name}:1"
        name = f"{self.stack_name}-{resource.logical_id}"
        if attribute is None:
            return name
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return f"arn:aws:iam::{self.account_id}:role/{name}"
        if attribute == "Arn":
            service = kind.split("::")[1].lower()
            return f"arn:aws:{service}:{self.region}:{self.account_id}:{name}"
        return f"{name}.{attribute}"


# --- helpers ----------------------------------------------------------------------------------


def _creation_order(resources: list[Resource]) -> list[Resource]:
    """Dependencies first (Ref/GetAtt/Sub/DependsOn among the created), template order otherwise."""
    by_id = {r.logical_id: r for r in resources}
    needs = {
        r.logical_id: (references(r.properties) | set(r.depends_on)) & set(by_id) - {r.logical_id}
        for r in resources
    }
    ordered: list[Resource] = []
    done: set[str] = set()
    while len(ordered) < len(resources):
        ready = [r for r in resources if r.logical_id not in done and needs[r.logical_id] <= done]
        if not ready:
            stuck = sorted(set(by_id) - done)
            raise TemplateError(f"circular references between {', '.join(stuck)}")
        for resource in ready:
            ordered.append(resource)
            done.add(resource.logical_id)
    return ordered


def _patch_sqs_time(clock: Clock) -> Callable[[], None]:
    return moto_sqs.patch(clock)


_DYNAMODB_LOCK = threading.RLock()


class _Transaction(threading.local):
    active = False


_TRANSACTION = _Transaction()  # this thread is inside transact_write_items


# moto's DynamoDB backend methods that return the stored item itself
_RETURNS_STORED_ITEM = ("put_item", "get_item", "update_item", "delete_item")


def _atomic_dynamodb() -> None:
    """DynamoDB applies each write (conditional ones included) and each transaction atomically;
    moto checks a condition and then writes without a lock, so two concurrent requests can both
    pass the same condition. Serialise moto's DynamoDB reads and writes behind one lock (once per
    process) so that concurrent handlers and tests see DynamoDB's guarantees.

    The item methods return moto's stored item, which moto's response code then copies and
    serialises outside any lock: a concurrent update of that item failed the reader with
    "dictionary changed size during iteration". They return a copy made under the lock."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_pecflow_atomic", False):
        return
    for name in (
        "put_item",
        "get_item",
        "update_item",
        "delete_item",
        "transact_write_items",
        "transact_get_items",
        "query",
        "scan",
    ):
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self, *args, __original=original, __copy=name in _RETURNS_STORED_ITEM, **kwargs):
            with _DYNAMODB_LOCK:
                result = __original(self, *args, **kwargs)
                # inside a transaction moto drops what update_item returns: no copy
                return copy.deepcopy(result) if __copy and not _TRANSACTION.active else result

        locked.__name__ = name
        setattr(DynamoDBBackend, name, locked)
    _cheap_transactions(DynamoDBBackend)
    DynamoDBBackend._pecflow_atomic = True


class _NoTableCopies:
    """Stands in for the `copy` module inside moto's transact_write_items (see below)."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value


def _cheap_transactions(backend_class) -> None:
    """moto deep-copies every table a transaction touches, to roll back on failure: the cost of
    a transaction grows with the table (tens of ms at a few thousand items, so a campaign's
    counters make the local stack crawl). Under the DynamoDB lock, copy only the items the
    transaction touches instead, and put them back if it fails."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = backend_class.transact_write_items

    def transact_write_items(self, transact_items):
        with _DYNAMODB_LOCK:
            return _transact(self, transact_items)

    def _transact(self, transact_items):
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or {
                name: op.get("Item", {}).get(name)
                for name in (table.hash_key_attr, table.range_key_attr)
                if name
            }
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            current = (
                table.items.get(hash_value, {}).get(range_value)
                if range_value is not None
                else table.items.get(hash_value)
            )
            saved.append((table, hash_value, range_value, copy.deepcopy(current)))
        real_copy, models.copy = models.copy, _NoTableCopies
        _TRANSACTION.active = True
        try:
            return original(self, transact_items)
        except BaseException:
            for table, hash_value, range_value, item in reversed(saved):
                if range_value is None:
                    if item is None:
                        table.items.pop(hash_value, None)
                    else:
                        table.items[hash_value] = item
                else:
                    bucket = table.items[hash_value]
                    if item is None:
                        bucket.pop(range_value, None)
                    else:
                        bucket[range_value] = item
            raise
        finally:
            models.copy = real_copy
            _TRANSACTION.active = False

    transact_write_items.__name__ = "transact_write_items"
    backend_class.transact_write_items = transact_write_items


class _QueriedKey(threading.local):
    hash_key: Any = None
    index_conditions: Any = None  # an index query's (attribute, value) pairs


_QUERIED_KEY = _QueriedKey()  # the partition key of the table query this thread is running


def _keyed_table_queries() -> None:
    """moto answers a Query on a table's own key by sorting every item of the table
    (`Table.all_items`) and keeping those of the partition: each query grows with the table
    (O(n log n) comparisons of moto's values), a campaign's or a mailbox's queries with it.
    During such a query `all_items` gives the partition's items alone, in the same order; the
    rest of moto's query (its filter on the key, its sort by the range key) runs as before.
    A Query on an index gets the items moto's own test on the index's key keeps, sorted as moto
    sorts the table (not the whole table sorted, then tested: about 60 ms a query at 20,000 items,
    once for every receipt reconciled in a soak). Scans and every other caller still see the
    whole table, sorted as moto sorts it but on each key's value read once (moto compares its
    DynamoType objects, reading their values at every comparison)."""
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_pecflow_keyed", False):
        return
    query = Table.query

    def sort_key(item: Any) -> Any:
        # moto's key: (hash, range) when there is a range key, else hash; a table's keys have
        # one type each, so their values compare (==, <) as the DynamoType objects do
        if item.range_key is not None:
            return (item.hash_key.cast_value, item.range_key.cast_value)
        return item.hash_key.cast_value

    def table_items(self: Any) -> list:
        hash_key = _QUERIED_KEY.hash_key
        if hash_key is None:
            buckets = self.items.values() if self.range_key_attr else [self.items]
            conditions = _QUERIED_KEY.index_conditions
            if not conditions:
                return sorted((item for bucket in buckets for item in bucket.values()), key=sort_key)
            # moto's own test on the index's key, before the sort (not the whole table sorted)
            return sorted(on_index(buckets, conditions), key=sort_key)
        found = self.items.get(hash_key)  # never self.items[...]: a defaultdict
        if found is None:
            return []
        if not self.range_key_attr:
            return [found]
        return sorted(found.values(), key=sort_key)

    def on_index(buckets: Iterable, conditions: list) -> list:
        """The items moto keeps: `not value or value != expected` drops one (a DynamoType is
        always true, and a string equals a string of the same characters)."""
        if len(conditions) == 1 and conditions[0][1].type == "S":
            name, want = conditions[0][0], conditions[0][1].value
            return [
                i
                for bucket in buckets
                for i in bucket.values()
                if (v := i.attrs.get(name)) is not None and v.value == want and v.type == "S"
            ]
        return [
            i
            for bucket in buckets
            for i in bucket.values()
            if all(not (not (v := i.attrs.get(n)) or v != value) for n, value in conditions)
        ]

    signature = inspect.signature(query)

    def keyed_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = signature.bind(self, *args, **kwargs).arguments
        hash_key = given.get("hash_key")
        if given.get("index_name"):
            _QUERIED_KEY.index_conditions = given.get("hash_key_conditions")
            try:
                return query(self, *args, **kwargs)
            finally:
                _QUERIED_KEY.index_conditions = None
        if hash_key is None:
            return query(self, *args, **kwargs)
        _QUERIED_KEY.hash_key = hash_key
        try:
            return query(self, *args, **kwargs)
        finally:
            _QUERIED_KEY.hash_key = None

    Table._pecflow_moto = (Table.all_items, query)  # moto's own, for tests comparing the two
    Table.all_items = table_items
    Table.query = keyed_query
    Table._pecflow_keyed = True


def _quick_key_values() -> None:
    """moto compares, hashes and sorts its attribute values through `DynamoType.cast_value`, a
    chain of five type tests before the plain value of a string: read for every item a query,
    a scan or a key lookup touches. The scalar types answer at once; the same values."""
    from decimal import Decimal

    from moto.dynamodb.models.dynamo_type import DDBType, DynamoType

    if getattr(DynamoType, "_pecflow_quick", False):
        return
    general = DynamoType.cast_value.fget
    plain = frozenset({DDBType.STRING, DDBType.BINARY, DDBType.BOOLEAN})

    def cast_value(self: Any) -> Any:
        kind = self.type
        if kind in plain:
            return self.value
        if kind == DDBType.NUMBER:
            return Decimal(self.value)
        return general(self)

    DynamoType._pecflow_moto_cast_value = DynamoType.cast_value  # moto's own, for tests
    DynamoType.cast_value = property(cast_value)
    DynamoType._pecflow_quick = True


def _parsed_update_expressions() -> None:
    """moto parses an UpdateExpression twice per update (its response code to validate it, its
    backend to run it) with a tokenizer and a recursive parser in Python, deep-copies the tree
    for its validator, which rewrites the copy, and walks it ten times, testing each node's type
    through ABCMeta at every step: a tenth of a campaign's time in moto, for the few expressions
    the code writes again and again. Each expression is parsed once and kept pickled: every call
    gets a tree of its own from the bytes, and the validator's copy is a pickle round trip
    (deepcopy walks the tree in Python). A walker's type tests are answered once per (walker,
    node) type: the tables of node types of moto's walkers are constants.
    tests/integration/test_local_aws_dynamodb.py compares the updates with moto's own."""
    import pickle

    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if getattr(UpdateExpressionParser, "_pecflow_parsed", False):
        return
    parse = UpdateExpressionParser.make.__func__
    parsed: dict[str, bytes] = {}

    def make(cls: Any, expression: str) -> Any:
        if cls is not UpdateExpressionParser:
            return parse(cls, expression)
        tree = parsed.get(expression)
        if tree is None:
            if len(parsed) >= 4096:  # expressions built from data would grow it without end
                parsed.clear()
            tree = parsed[expression] = pickle.dumps(parse(cls, expression), pickle.HIGHEST_PROTOCOL)
        return pickle.loads(tree)

    deepcopy = validators.deepcopy

    def copied(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Node):
            return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
        return deepcopy(value, memo)

    # isinstance on moto's node classes goes through ABCMeta (none registers virtual subclasses:
    # the answer depends on the types alone); kept per type, and per (walker, node) type
    is_node: dict[type, bool] = {}
    processes: dict[tuple[type, type], bool] = {}

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        """moto's DepthFirstTraverser.traverse_node_recursively, its type tests remembered."""
        kind = type(node)
        node_kind = is_node.get(kind)
        if node_kind is None:
            node_kind = is_node[kind] = isinstance(node, Node)
        if not node_kind:
            return node
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        key = (type(self), kind)
        processed = processes.get(key)
        if processed is None:
            processed = processes[key] = isinstance(node, self.nodes_to_be_processed())
        if processed:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    UpdateExpressionParser._pecflow_moto_make = UpdateExpressionParser.make  # moto's own, for tests
    UpdateExpressionParser.make = classmethod(make)
    validators._pecflow_moto_deepcopy = deepcopy
    validators.deepcopy = copied
    DepthFirstTraverser._pecflow_moto_traverse = DepthFirstTraverser.traverse_node_recursively
    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively
    UpdateExpressionParser._pecflow_parsed = True


def _lazy_kms_key_material() -> None:
    """moto makes an RSA-2048 key pair for every KMS key, symmetric ones included (~0.1 s each,
    two keys per stack and per reset), though only asymmetric keys (Sign, Verify, GetPublicKey)
    ever use it. Symmetric keys get theirs when first used, if ever."""
    import moto.kms.models as kms

    if getattr(kms, "_pecflow_lazy", False):
        return
    eager = kms.generate_private_key

    class LazyKeyPair:
        def __init__(self, key_spec: str):
            self._key_spec, self._real = key_spec, None

        def __getattr__(self, name: str) -> Any:
            if self._real is None:
                self._real = eager(self._key_spec)
            return getattr(self._real, name)

    def generate_private_key(key_spec: str) -> Any:
        return LazyKeyPair(key_spec) if key_spec == "SYMMETRIC_DEFAULT" else eager(key_spec)

    kms.generate_private_key = generate_private_key
    kms._pecflow_lazy = True


class _KeepAliveMotoServer(ThreadedMotoServer):
    """moto's server, keeping connections open between requests. werkzeug's development server
    closes every connection after one response (it cannot tell how much of a request body the
    application left unread), so each boto3 call paid a new TCP connection and a new server
    thread: most of the cost of a small DynamoDB or SQS call. Here a request's body is read
    whole before the application runs, so the next request starts where this one ended."""

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=_KeepAliveRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def _keep_alive_handler() -> type:
    import io

    from moto.moto_server.werkzeug_app import MotoRequestHandler

    # After each response werkzeug reads the connection until nothing more comes (safe only
    # because it closes it): during that step it gets a socket at end-of-file instead.
    at_eof, closed_end = socket.socketpair()
    closed_end.close()

    class KeepAliveRequestHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # werkzeug writes the headers and the body separately: without this, on a connection
            # kept open, Nagle's algorithm holds the body until the client's delayed ACK (40 ms)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle_one_request(self) -> None:
            self._drained = None  # (connection, rfile) while a request's body has been read whole
            try:
                super().handle_one_request()
            finally:
                if self._drained is not None:
                    self.connection, self.rfile = self._drained

        def make_environ(self) -> dict[str, Any]:
            environ = super().make_environ()
            length = environ.get("CONTENT_LENGTH") or "0"
            if length.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
                environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)))
                self._drained = (self.connection, self.rfile)
                self.connection, self.rfile = at_eof, io.BytesIO()
            return environ

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # werkzeug formats a line for every request before its logger drops it (warnings only)
            if _WERKZEUG_LOG.isEnabledFor(logging.INFO):
                super().log_request(code, size)

        def send_header(self, keyword: str, value: str) -> None:
            # werkzeug always says "Connection: close"; kept open when the body was read whole
            if keyword.lower() == "connection" and value.lower() == "close" and self._drained:
                return
            super().send_header(keyword, value)

    return KeepAliveRequestHandler


_WERKZEUG_LOG = logging.getLogger("werkzeug")
_KeepAliveRequestHandler = _keep_alive_handler()


# --- botocore requests of this process, without the socket ---------------------------------------
_DIRECT_ENDPOINTS: set[str] = set()  # host:port of the servers whose requests go to moto's app directly


def _direct_calls() -> None:
    """The handlers run in this process, and every boto3 call of theirs went to moto's server
    through urllib3, a socket, werkzeug's HTTP parsing and a server thread: a sixth of a
    campaign's CPU time beside moto's own. For the endpoints in `_DIRECT_ENDPOINTS`, botocore's
    HTTP session hands the request, built, signed and serialised as for AWS, to the same WSGI
    application the server runs (moto's DomainDispatcherApplication), in the calling thread, with
    the environ werkzeug's server would give it (headers with underscores kept as moto's request
    handler keeps them); botocore parses the answer as before. Everything before `send` (the
    handlers' `before-send` hooks, local/faults.py's among them) and after it is unchanged.
    tests/e2e/test_local_aws.py compares the answers of both paths."""
    import botocore.httpsession as httpsession

    if getattr(httpsession.URLLib3Session, "_pecflow_direct", False):
        return
    send = httpsession.URLLib3Session.send

    def direct_send(self: Any, request: Any) -> Any:
        url = urlsplit(request.url)
        if url.netloc not in _DIRECT_ENDPOINTS:
            return send(self, request)
        return _call_moto_app(request, url)

    httpsession.URLLib3Session.send = direct_send
    httpsession.URLLib3Session._pecflow_direct = True


_MOTO_APP: list[Any] = []  # the WSGI application of moto's server, made once


def _call_moto_app(request: Any, url: Any) -> Any:
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    if not _MOTO_APP:
        _MOTO_APP.append(DomainDispatcherApplication(create_backend_app))
    body = request.body
    if body is None:
        data = b""
    elif isinstance(body, bytes | bytearray):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode()
    else:  # a file or botocore's aws-chunked wrapper: what urllib3 would have sent, unframed
        data = body.read()
    headers = [
        (name, value.decode("latin-1") if isinstance(value, bytes) else value)
        for name, value in request.headers.items()
        if name.lower() != "transfer-encoding"  # the length of `data` is known
    ]
    environ = EnvironBuilder(
        path=url.path or "/",
        query_string=url.query,
        method=request.method,
        headers=headers,
        data=data,
        base_url=f"{url.scheme}://{url.netloc}",
    ).get_environ()
    # as moto's request handler does: S3 metadata names with underscores kept as written
    dashed = {environ_key_for_header(name) for name, _ in headers if "_" not in name}
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = environ_key_for_header(name)
        if should_preserve_original_header_name(name) and key not in dashed:
            names.setdefault(key, name)
            values.setdefault(key, []).append(value.replace("\r\n", ""))
    environ.update({key: ",".join(found) for key, found in values.items()})
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names
    app_iter, status, response_headers = run_wsgi_app(_MOTO_APP[0], environ, buffered=True)
    content = b"".join(app_iter)
    answer: dict[str, str] = {}
    for name, value in response_headers.items():
        answer[name] = f"{answer[name]}, {value}" if name in answer else value
    return AWSResponse(request.url, int(status.split()[0]), answer, MockRawResponse(content))


# The DynamoDB item operations whose results moto already holds in the wire's JSON shape.
_ITEM_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
     "BatchWriteItem", "TransactGetItems", "TransactWriteItems"}
)  # fmt: skip


def _plain_dynamodb_responses() -> None:
    """moto 5.2 writes every response by walking botocore's model of the operation's output,
    member by member: for item operations, whose result moto already holds as the wire's
    JSON (`{"S": ...}` values), that walk was a fifth of moto's time in a campaign. Those
    results are written with `json.dumps`, keeping only the output's members and no nulls,
    blobs in base64, as the model-driven writer does (tests/integration/test_local_aws_dynamodb.py
    compares the two). Errors and every other operation keep moto's writer."""
    import base64

    from botocore.model import OperationNotFoundError
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler, DynamoResult

    if getattr(DynamoHandler, "_pecflow_plain", False):
        return
    model_driven = DynamoHandler.serialized
    members: dict[str, frozenset[str]] = {}

    def blob(value: object) -> str:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode()
        raise TypeError(f"{type(value).__name__} is not a DynamoDB wire value")

    def present(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: present(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [present(v) for v in value]
        return value

    def serialized(self: Any, action_result: Any) -> Any:
        action = self._get_action()
        result = action_result.result
        if action not in _ITEM_OPERATIONS or type(action_result) not in (DynamoResult, ActionResult):
            return model_driven(self, action_result)
        if not isinstance(result, dict):
            return model_driven(self, action_result)
        if action not in members:
            try:
                shape = self._service_model().operation_model(action).output_shape
            except OperationNotFoundError:
                return model_driven(self, action_result)
            members[action] = frozenset(shape.members) if shape is not None else frozenset()
        body = json.dumps(
            {k: present(v) for k, v in result.items() if k in members[action] and v is not None},
            default=blob,
        )
        return 200, {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}, body

    def service_model(self: Any) -> Any:
        from moto.core.utils import get_service_model

        return get_service_model(self.boto3_service_name)

    DynamoHandler._service_model = service_model
    DynamoHandler._pecflow_model_driven = model_driven
    DynamoHandler.serialized = serialized
    DynamoHandler._pecflow_plain = True


def _fast_dispatch() -> None:
    """moto's server lists its own package folder on disk for every request to find the
    backend (`list_of_moto_modules`): a listing that never changes. Read it once."""
    from moto import backends

    if getattr(backends, "_pecflow_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    backends._pecflow_cached = True


def _lazy_queue_attributes() -> None:
    """Two of moto's SQS costs that grow with the queue. `Queue.attributes` computes every attribute, message counts included (a pass over
    all messages, with date arithmetic per message), and moto reads it a few times per message
    sent to a FIFO queue just to look at ContentBasedDeduplication: sending grows O(n) with the
    queue, O(n^2) over a campaign. The same mapping, each value computed when read."""
    import json
    from collections.abc import Mapping

    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue

    if getattr(Queue, "_pecflow_lazy", False):
        return

    class Attributes(Mapping):
        __slots__ = ("queue", "names")

        def __init__(self, queue: Any):
            self.queue = queue
            names = list(queue.BASE_ATTRIBUTES)
            if queue.fifo_queue:
                names += queue.FIFO_ATTRIBUTES
            if queue.kms_master_key_id:
                names += queue.KMS_ATTRIBUTES
            if queue.policy:
                names.append("Policy")
            if queue.redrive_policy:
                names.append("RedrivePolicy")
            self.names = dict.fromkeys(names)

        def __getitem__(self, name: str) -> Any:
            if name not in self.names:
                raise KeyError(name)
            if name == "Policy":
                return self.queue.policy
            if name == "RedrivePolicy":
                return json.dumps(self.queue.redrive_policy)
            value = getattr(self.queue, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value

        def __iter__(self):
            return iter(self.names)

        def __len__(self) -> int:
            return len(self.names)

    Queue.attributes = property(Attributes)
    Queue._pecflow_lazy = True

    # FIFO deduplication: moto compares the new id with every message in the queue (O(n) a send);
    # an index of the ids seen in the last 5 minutes does it in O(1), and like SQS it also
    # remembers ids of messages already deleted
    from moto.sqs.models import DEDUPLICATION_TIME_IN_SECONDS

    original_add = Queue.add_message

    def add_message(self, message) -> None:
        if not self.fifo_queue or self.lambda_event_source_mappings:
            return original_add(self, message)
        if self.attributes.get("ContentBasedDeduplication") == "true" or message.deduplication_id:
            seen = self.__dict__.setdefault("_pecflow_dedup", {})
            then = seen.get(message.deduplication_id)
            if then is not None and (message.sent_timestamp - then) / 1000 < DEDUPLICATION_TIME_IN_SECONDS:
                return
            seen[message.deduplication_id] = message.sent_timestamp
            if len(seen) > self.__dict__.get("_pecflow_dedup_limit", 10_000):
                # forget what is older than the deduplication interval; next look when it doubled
                horizon = message.sent_timestamp - DEDUPLICATION_TIME_IN_SECONDS * 1000
                for key in [k for k, t in seen.items() if t < horizon]:
                    del seen[key]
                self._pecflow_dedup_limit = max(10_000, 2 * len(seen))
        with self._messages_lock:
            self._messages.append(message)
            self._messages_lock.notify_all()

    Queue.add_message = add_message


def _quiet_werkzeug() -> Callable[[], None]:
    """moto's server logs every request through werkzeug; keep warnings only."""
    logger = logging.getLogger("werkzeug")
    level = logger.level
    logger.setLevel(logging.WARNING)
    return lambda: logger.setLevel(level)


def _bool(value: Any) -> bool:
    return value.strip().lower() == "true" if isinstance(value, str) else bool(value)


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        raise TemplateError(f"environment values must be strings, got {value!r}")
    return str(value)


def _throughput(value: dict | None) -> dict[str, int]:
    value = value or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _bucket_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9.-]+", "-", text.lower())
    return re.sub(r"-{2,}", "-", name)[:63].strip("-.")


def _filter(cfn_filter: dict | None) -> dict | None:
    rules = ((cfn_filter or {}).get("S3Key") or {}).get("Rules")
    if not rules:
        return None
    return {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}


def _notification_configuration(cfn: dict) -> dict:
    """CloudFormation's NotificationConfiguration in the S3 API's shape. LambdaConfigurations
    are left out: functions run in-process, so only the runner's S3 events reach them."""
    api: dict[str, Any] = {}
    for key, target, api_target in (
        ("QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "Topic", "TopicArn"),
    ):
        entries = []
        for item in cfn.get(key, []):
            entry = {api_target: item[target], "Events": [item["Event"]]}
            if _filter(item.get("Filter")):
                entry["Filter"] = _filter(item.get("Filter"))
            entries.append(entry)
        if entries:
            api[key] = entries
    if "EventBridgeConfiguration" in cfn:
        api["EventBridgeConfiguration"] = {}
    return api


def _lifecycle_rule(rule: dict) -> dict:
    api: dict[str, Any] = {"Status": rule.get("Status", "Enabled")}
    if rule.get("Id"):
        api["ID"] = rule["Id"]
    api["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpirationInDays" in rule:
        api["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])
        }
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {
            k: int(v) for k, v in rule["NoncurrentVersionExpiration"].items()
        }
    if rule.get("Transitions"):
        api["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["Transitions"]
        ]
    if rule.get("NoncurrentVersionTransitions"):
        api["NoncurrentVersionTransitions"] = [
            {"NoncurrentDays": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["NoncurrentVersionTransitions"]
        ]
    if rule.get("AbortIncompleteMultipartUpload"):
        api["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return api


def _cors_rule(rule: dict) -> dict:
    names = {
        "AllowedHeaders": "AllowedHeaders",
        "AllowedMethods": "AllowedMethods",
        "AllowedOrigins": "AllowedOrigins",
        "ExposedHeaders": "ExposeHeaders",
        "Id": "ID",
        "MaxAge": "MaxAgeSeconds",
    }
    return {names[k]: (int(v) if k == "MaxAge" else v) for k, v in rule.items() if k in names}


def _generated_secret(secrets: Any, spec: dict) -> str:
    options = {
        k: spec[k]
        for k in (
            "ExcludeCharacters",
            "ExcludeLowercase",
            "ExcludeNumbers",
            "ExcludePunctuation",
            "ExcludeUppercase",
            "IncludeSpace",
            "RequireEachIncludedType",
        )
        if k in spec
    }
    if "PasswordLength" in spec:
        options["PasswordLength"] = int(spec["PasswordLength"])
    password = secrets.get_random_password(**options)["RandomPassword"]
    if spec.get("SecretStringTemplate") and spec.get("GenerateStringKey"):
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)
    return password


# --- developers' entry point ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the template's AWS resources from moto until Ctrl-C.")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--stack-name", default="pecflow-local")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="parameter override (repeatable)"
    )
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.param)
    aws = LocalAws.start(args.template, args.stack_name, overrides, port=args.port, set_environ=False)
    try:
        print(f"moto is serving {args.template} as stack {aws.stack_name} at {aws.endpoint_url}\n")
        for resource in aws.resources.values():
            where = resource.url or resource.arn or ""
            print(f"  {resource.logical_id:28} {resource.type:28} {resource.physical}  {where}")
        if aws.skipped:
            print("\nnot created:")
            for logical_id, why in aws.skipped.items():
                print(f"  {logical_id:28} {why}")
        print("\nto use it from another shell:")
        for name, value in aws.environment().items():
            print(f"  export {name}={value}")
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            # said only once a Ctrl-C is caught here: one sent right after it stops cleanly
            print("\nCtrl-C stops it.", flush=True)
            while not stopped.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        aws.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def item_size(item: dict | None) -> int:
    """A DynamoDB item's size (typed attribute values, as the low-level client gives them) as
    DynamoDB bills it: attribute names and values in UTF-8, numbers by their digits, 3 bytes per
    list or map and 1 per element."""
    return sum(len(k.encode()) + _value_size(v) for k, v in (item or {}).items())


def _value_size(value: dict) -> int:
    ((kind, x),) = value.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        return (len(x.lstrip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
    if kind == "B":
        return len(x)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(len(e.encode()) if isinstance(e, str) else len(e) for e in x)
    if kind == "L":
        return 3 + sum(1 + _value_size(e) for e in x)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(e) for k, e in x.items())
    return 0
