"""What template.yaml promises the person who runs it: every function's log kept LogRetentionDays,
Errors and Throttles alarmed, no asynchronous failure lost without an alarm, every alarm on the
alarms topic, a topic key CloudWatch may use, and names valid for any stack name and new for
every stack creation."""

from __future__ import annotations

import ipaddress
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.template import Intrinsics, load, load_yaml, parameter_values
from tests.policy import Request, allows

PATH = Path(__file__).resolve().parents[2] / "template.yaml"
TEMPLATE = load(PATH)
RAW = load_yaml(PATH.read_text(encoding="utf-8"))
ACCOUNT, REGION = "210987654321", "eu-south-1"

FUNCTIONS = sorted(r.logical_id for r in TEMPLATE.of_type("AWS::Serverless::Function"))
ALARMS = {r.logical_id: r.properties for r in TEMPLATE.of_type("AWS::CloudWatch::Alarm")}
QUEUES = sorted(r.logical_id for r in TEMPLATE.of_type("AWS::SQS::Queue"))

# Lambda invokes these asynchronously (failures after its retries need a destination or a DLQ);
# the others are polled or synchronous. An event type in neither list fails the test.
ASYNC_EVENTS = {
    "S3",
    "SNS",
    "Schedule",
    "ScheduleV2",
    "EventBridgeRule",
    "CloudWatchEvent",
    "CloudWatchLogs",
    "IoTRule",
    "Cognito",
}
POLLED_OR_SYNC_EVENTS = {
    "SQS",
    "Kinesis",
    "DynamoDB",
    "MSK",
    "MQ",
    "SelfManagedKafka",
    "DocumentDB",
    "Api",
    "HttpApi",
}
# the schedulers deliver through a target that has a dead-letter queue of its own
TARGET_DLQ_EVENTS = {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent"}

CLOUDWATCH_RETENTION_DAYS = {
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
}


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None


def _get_att(value: Any, attribute: str) -> str | None:
    if not isinstance(value, dict) or "Fn::GetAtt" not in value:
        return None
    target = value["Fn::GetAtt"]
    logical_id, attr = target if isinstance(target, list) else target.split(".", 1)
    return logical_id if attr == attribute else None


# --- a stack's values, as CloudFormation would give them ---------------------------------------

_GENERATED_SUFFIX = "ABCDEFGHIJKLM"  # CloudFormation's 13-character suffix of generated names


def stack(stack_name: str = "pecflow", stack_uuid: str | None = None) -> Intrinsics:
    """Intrinsics for one stack creation: generated names as CloudFormation makes them (with the
    longest suffix), the template's own names where it gives one."""

    def lookup(logical_id: str, attribute: str | None) -> Any:
        resource = TEMPLATE.resources[logical_id]
        kind = resource.type
        generated = f"{stack_name}-{logical_id}-{_GENERATED_SUFFIX}"
        if kind == "AWS::S3::Bucket":
            own = resource.properties.get("BucketName")
            name = intrinsics.resolve(own) if own else generated.lower()[:63]
            return f"arn:aws:s3:::{name}" if attribute == "Arn" else name
        if kind == "AWS::SQS::Queue":
            name = generated[:80]
            if attribute == "QueueName":
                return name
            if attribute == "Arn":
                return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if kind == "AWS::Serverless::Function":
            name = generated[:64]
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}" if attribute == "Arn" else name
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{generated[:256]}"
        if kind == "AWS::Logs::LogGroup":
            return generated[:512]
        if kind == "AWS::KMS::Key":
            return "1234abcd-12ab-34cd-56ef-1234567890ab"
        return (
            f"arn:aws:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{generated}"
            if attribute
            else generated
        )

    intrinsics = Intrinsics(
        TEMPLATE,
        stack_name=stack_name,
        region=REGION,
        parameters=parameter_values(TEMPLATE),
        lookup=lookup,
        account_id=ACCOUNT,
    )
    intrinsics.pseudo["AWS::StackId"] = (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/{stack_uuid or uuid.uuid4()}"
    )
    return intrinsics


# CloudFormation stack names: a letter, then letters, digits and hyphens, at most 128 characters
STACK_NAMES = ["pecflow", "PecFlow-PROD", "a", "X--1", "P" + "ec-Flow" * 18 + "x"]


def test_the_stack_names_tried_are_valid_stack_names():
    for name in STACK_NAMES:
        assert re.fullmatch(r"[A-Za-z][-A-Za-z0-9]{0,127}", name), name
    assert max(len(n) for n in STACK_NAMES) == 128


# --- logs -----------------------------------------------------------------------------------------


def test_log_retention_is_a_parameter_of_cloudwatch_values():
    spec = TEMPLATE.parameters["LogRetentionDays"]
    assert {int(v) for v in spec["AllowedValues"]} == CLOUDWATCH_RETENTION_DAYS
    assert int(spec["Default"]) in CLOUDWATCH_RETENTION_DAYS and int(spec["Default"]) <= 365


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_logs_to_its_own_log_group_with_the_retention(function):
    properties = TEMPLATE.function_properties(function)
    group = _ref((properties.get("LoggingConfig") or {}).get("LogGroup"))
    assert group, f"{function}: no LoggingConfig.LogGroup (Lambda would create a group kept forever)"
    assert TEMPLATE.resources[group].type == "AWS::Logs::LogGroup"
    assert TEMPLATE.resources[group].properties.get("RetentionInDays") == {"Ref": "LogRetentionDays"}
    assert "LogGroupName" not in TEMPLATE.resources[group].properties, "generated name: no collision"
    users = [
        f
        for f in FUNCTIONS
        if _ref((TEMPLATE.function_properties(f).get("LoggingConfig") or {}).get("LogGroup")) == group
    ]
    assert users == [function], f"{group} is shared by {users}"
    # retained on deletion (the logs outlive the stack for at most their retention)
    assert RAW["Resources"][group].get("DeletionPolicy") == "Retain"
    assert RAW["Resources"][group].get("UpdateReplacePolicy") == "Retain"


# --- alarms ---------------------------------------------------------------------------------------


def _lambda_alarm(function: str, metric: str) -> list[str]:
    return [
        name
        for name, p in ALARMS.items()
        if p.get("Namespace") == "AWS/Lambda"
        and p.get("MetricName") == metric
        and p.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        and p.get("Statistic") == "Sum"
        and p.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold"
        and float(p.get("Threshold")) == 1
    ]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_errors_and_throttles_alarms(function, metric):
    assert _lambda_alarm(function, metric), f"{function}: no alarm on AWS/Lambda {metric} >= 1"


def _queue_alarms(queue: str) -> list[str]:
    return [
        name
        for name, p in ALARMS.items()
        if p.get("Namespace") == "AWS/SQS"
        and p.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and len(p.get("Dimensions", [])) == 1
        and p["Dimensions"][0]["Name"] == "QueueName"
        and _get_att(p["Dimensions"][0]["Value"], "QueueName") == queue
        and p.get("ComparisonOperator") == "GreaterThanThreshold"
        and float(p.get("Threshold")) == 0
    ]


def _consumers(queue: str) -> list[str]:
    return [
        function
        for function in FUNCTIONS
        for event in (TEMPLATE.function_properties(function).get("Events") or {}).values()
        if event["Type"] == "SQS" and _get_att(event["Properties"]["Queue"], "Arn") == queue
    ]


UNREAD_QUEUES = [queue for queue in QUEUES if not _consumers(queue)]


def test_the_queues_nobody_reads_are_the_dead_letter_and_failure_queues():
    assert set(UNREAD_QUEUES) >= {
        "PollDeadLetterQueue",
        "FanoutDeadLetterQueue",
        "PollScheduleFailuresQueue",
        "FanoutInvocationFailuresQueue",
    }


@pytest.mark.parametrize("queue", UNREAD_QUEUES)
def test_every_queue_no_function_reads_is_alarmed(queue):
    assert _queue_alarms(queue), f"{queue}: messages nobody processes, and no alarm when one arrives"


def _failure_queues(function: str) -> tuple[list[str], list[str]]:
    """(queues the function's asynchronous failures go to, problems)."""
    properties = TEMPLATE.function_properties(function)
    problems, queues = [], []
    on_failure = (
        ((properties.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get("OnFailure")
    ) or {}
    if on_failure:
        if on_failure.get("Type") != "SQS" or not _get_att(on_failure.get("Destination"), "Arn"):
            problems.append(f"{function}: on-failure destination is not a queue of the template")
        else:
            queues.append(_get_att(on_failure["Destination"], "Arn"))
    dead_letter = properties.get("DeadLetterQueue") or {}
    if dead_letter:
        if dead_letter.get("Type") != "SQS" or not _get_att(dead_letter.get("TargetArn"), "Arn"):
            problems.append(f"{function}: DeadLetterQueue is not a queue of the template")
        else:
            queues.append(_get_att(dead_letter["TargetArn"], "Arn"))
    return queues, problems


def _event_kinds(function: str) -> dict[str, str]:
    events = TEMPLATE.function_properties(function).get("Events") or {}
    return {name: event["Type"] for name, event in events.items()}


ASYNC_FUNCTIONS = [f for f in FUNCTIONS if set(_event_kinds(f).values()) & ASYNC_EVENTS]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_event_type_is_known_to_be_asynchronous_or_not(function):
    unknown = set(_event_kinds(function).values()) - ASYNC_EVENTS - POLLED_OR_SYNC_EVENTS
    assert not unknown, f"{function}: classify the event type(s) {unknown} in this test"


def test_the_asynchronous_invocations_are_the_schedule_and_the_campaign_upload():
    assert set(ASYNC_FUNCTIONS) >= {"PollSchedulerFunction", "CampaignFanoutFunction"}


@pytest.mark.parametrize("function", ASYNC_FUNCTIONS)
def test_every_asynchronous_invocation_fails_onto_an_alarmed_queue(function):
    events = TEMPLATE.function_properties(function).get("Events") or {}
    kinds = _event_kinds(function)
    asynchronous = [name for name, kind in kinds.items() if kind in ASYNC_EVENTS]
    queues, problems = _failure_queues(function)
    assert not problems, problems
    assert queues, f"{function} ({', '.join(asynchronous)}): no on-failure destination nor DeadLetterQueue"
    for name in asynchronous:
        if kinds[name] in TARGET_DLQ_EVENTS:
            target_dlq = _get_att(
                (events[name]["Properties"].get("DeadLetterConfig") or {}).get("Arn"), "Arn"
            )
            assert target_dlq, (
                f"{function}.{name}: what the scheduler cannot deliver is lost (no DeadLetterConfig)"
            )
            queues.append(target_dlq)
    for queue in queues:
        assert TEMPLATE.resources[queue].type == "AWS::SQS::Queue"
        assert not TEMPLATE.resources[queue].properties.get("FifoQueue"), (
            f"{queue}: destinations cannot be FIFO"
        )
        assert _queue_alarms(queue), f"{queue} receives {function}'s failures but has no alarm"
        assert not _consumers(queue), (
            f"{queue} is read by a function: the failures would be retried, not seen"
        )


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_every_alarm_notifies_the_alarms_topic(alarm):
    properties = ALARMS[alarm]
    assert properties.get("AlarmActions") == [{"Ref": "AlarmsTopic"}]
    for other in ("OKActions", "InsufficientDataActions"):
        assert properties.get(other) in (None, [{"Ref": "AlarmsTopic"}])
    assert properties.get("ActionsEnabled", True) is True
    assert properties.get("TreatMissingData") == "notBreaching"


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_every_alarm_tells_the_reader_what_happened_within_cloudwatchs_limit(alarm):
    # a long stack name makes the generated names in the text long too
    for name in ("pecflow", "pecflow-" + "x" * 56):
        text = stack(name).resolve(ALARMS[alarm].get("AlarmDescription", ""))
        assert len(text) >= 40, f"{alarm}: say what happened and what to do"
        assert len(text) <= 1024, f"{alarm}: {len(text)} characters with stack {name} (CloudWatch keeps 1024)"


# --- the alarms topic's key -------------------------------------------------------------------------


def _topic_key() -> str:
    key = TEMPLATE.resources["AlarmsTopic"].properties.get("KmsMasterKeyId")
    logical_id = _ref(key) or _get_att(key, "Arn")
    assert logical_id and TEMPLATE.resources[logical_id].type == "AWS::KMS::Key", (
        f"AlarmsTopic is encrypted with {key!r}: CloudWatch can only publish to a topic whose key "
        "policy lets it (the AWS-managed alias/aws/sns cannot)"
    )
    return logical_id


def _alarm_publishes(context: dict[str, str]) -> list[Request]:
    return [
        Request({"Service": "cloudwatch.amazonaws.com"}, action, "*", context)
        for action in ("kms:GenerateDataKey", "kms:Decrypt")
    ]


def test_the_alarms_topic_key_lets_this_accounts_alarms_encrypt():
    key = TEMPLATE.resources[_topic_key()]
    assert key.properties.get("EnableKeyRotation") is True
    policy = stack().resolve(key.properties["KeyPolicy"])
    alarm_arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:pecflow-SenderErrorsAlarm-ABC"
    own = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm_arn}
    assert all(allows(policy, r) for r in _alarm_publishes(own))
    # the conditions hold together: another account's alarm, or no alarm at all, may not use it
    other = {"aws:SourceAccount": "111122223333", "aws:SourceArn": alarm_arn.replace(ACCOUNT, "111122223333")}
    assert not any(allows(policy, r) for r in _alarm_publishes(other))
    assert not any(allows(policy, r) for r in _alarm_publishes({}))
    not_an_alarm = {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/x",
    }
    assert not any(allows(policy, r) for r in _alarm_publishes(not_an_alarm))
    # the account administers it (a key nobody may administer cannot be changed or deleted)
    root = Request({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "kms:PutKeyPolicy", "*")
    assert allows(policy, root)


def test_no_function_is_given_the_alarms_key_it_does_not_use():
    """The functions that publish alerts use the key through their IAM policies (the account
    statement lets IAM decide): none is named in the key's policy."""
    policy = stack().resolve(TEMPLATE.resources[_topic_key()].properties["KeyPolicy"])
    principals = [s.get("Principal") for s in policy["Statement"]]
    assert principals == [{"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, {"Service": "cloudwatch.amazonaws.com"}]


def test_the_alarms_topic_policy_lets_this_accounts_alarms_publish():
    policies = [
        r
        for r in TEMPLATE.of_type("AWS::SNS::TopicPolicy")
        if {"Ref": "AlarmsTopic"} in r.properties["Topics"]
    ]
    assert len(policies) == 1
    intrinsics = stack()
    policy = intrinsics.resolve(policies[0].properties["PolicyDocument"])
    topic = intrinsics.resolve({"Ref": "AlarmsTopic"})
    alarm_arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:pecflow-SenderErrorsAlarm-ABC"
    publish = Request(
        {"Service": "cloudwatch.amazonaws.com"},
        "sns:Publish",
        topic,
        {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": alarm_arn},
    )
    assert allows(policy, publish)
    assert not allows(
        policy, Request(publish.principal, publish.action, topic, {"aws:SourceAccount": "111122223333"})
    )
    assert not allows(
        policy, Request({"Service": "events.amazonaws.com"}, "sns:Publish", topic, publish.context)
    )


# --- names --------------------------------------------------------------------------------------


def _valid_bucket_name(name: str) -> bool:
    """S3's rules for general purpose bucket names."""
    if not 3 <= len(name) <= 63 or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name) or ".." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
        return False
    except ValueError:
        pass
    reserved_prefixes = ("xn--", "sthree-", "amzn-s3-demo-")
    reserved_suffixes = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
    return not name.startswith(reserved_prefixes) and not name.endswith(reserved_suffixes)


# (resource type, name property) -> what the service accepts; an explicit name elsewhere fails
_NAME_RULES = {
    ("AWS::S3::Bucket", "BucketName"): _valid_bucket_name,
    ("AWS::Serverless::LayerVersion", "LayerName"): lambda n: re.fullmatch(r"[A-Za-z0-9_-]{1,140}", n),
    ("AWS::KMS::Alias", "AliasName"): lambda n: (
        re.fullmatch(r"alias/[A-Za-z0-9/_-]{1,250}", n) and not n.startswith("alias/aws/")
    ),
    ("ScheduleV2", "Name"): lambda n: re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", n),
}
_NAME_PROPERTIES = {
    "BucketName", "TableName", "QueueName", "TopicName", "LayerName", "AliasName", "FunctionName",
    "RoleName", "LogGroupName", "AlarmName", "Name", "KeyName", "ScheduleName",
}  # fmt: skip


def _explicit_names() -> list[tuple[str, tuple[str, str], Any]]:
    found = []
    for resource in TEMPLATE.resources.values():
        for prop in _NAME_PROPERTIES & set(resource.properties):
            found.append((resource.logical_id, (resource.type, prop), resource.properties[prop]))
        for event_name, event in (resource.properties.get("Events") or {}).items():
            for prop in _NAME_PROPERTIES & set(event.get("Properties") or {}):
                found.append(
                    (f"{resource.logical_id}.{event_name}", (event["Type"], prop), event["Properties"][prop])
                )
    return found


def test_every_explicit_name_is_checked():
    unchecked = [(where, rule) for where, rule, _ in _explicit_names() if rule not in _NAME_RULES]
    assert not unchecked, f"explicit names without a validity rule in this test: {unchecked}"


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_every_explicit_name_is_valid_for_any_stack_name(stack_name):
    for stack_uuid in (
        str(uuid.uuid4()),
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ):
        intrinsics = stack(stack_name, stack_uuid)
        for where, rule, value in _explicit_names():
            name = intrinsics.resolve(value)
            assert _NAME_RULES[rule](name), f"{where}: {name!r} is not a valid {rule[1]} (stack {stack_name})"


def test_names_that_must_be_unique_are_new_for_every_stack_creation():
    """Deleted and created again, a stack must not meet the bucket it retained; two stacks in one
    account must not share a bucket or a schedule."""
    must_differ = [
        (w, r, v)
        for w, r, v in _explicit_names()
        if r in {("AWS::S3::Bucket", "BucketName"), ("ScheduleV2", "Name")}
    ]
    assert {w for w, _, _ in must_differ} >= {"CampaignBucket", "PollSchedulerFunction.Tick"}
    for where, _, value in must_differ:
        first, again = stack("pecflow").resolve(value), stack("pecflow").resolve(value)
        assert first != again, f"{where}: {first} again when the stack is created again"
        assert stack("a").resolve(value) != stack("b").resolve(value)


def _bucket_names(intrinsics: Intrinsics) -> set[str]:
    return {intrinsics.resolve({"Ref": r.logical_id}) for r in TEMPLATE.of_type("AWS::S3::Bucket")}


def _s3_arns(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith("arn:aws:s3:::") else []
    if isinstance(value, list):
        return [a for item in value for a in _s3_arns(item)]
    if isinstance(value, dict):
        return [a for item in value.values() for a in _s3_arns(item)]
    return []


@pytest.mark.parametrize("stack_name", ["pecflow", "PecFlow-PROD"])
def test_every_bucket_a_function_names_is_a_bucket_of_the_stack(stack_name):
    """The campaign bucket's name is repeated as text (not a Ref) in the functions' environment
    and policies: each copy must give the name the bucket gets."""
    intrinsics = stack(stack_name)
    buckets = _bucket_names(intrinsics)
    seen = 0
    for function in FUNCTIONS:
        properties = TEMPLATE.function_properties(function)
        variables = intrinsics.resolve((properties.get("Environment") or {}).get("Variables") or {})
        for name, value in variables.items():
            if name.endswith("_BUCKET"):
                assert value in buckets, f"{function} {name}={value} is no bucket of the stack"
                seen += 1
        for arn in _s3_arns(intrinsics.resolve(properties.get("Policies") or [])):
            assert arn.removeprefix("arn:aws:s3:::").split("/")[0] in buckets, f"{function}: {arn}"
            seen += 1
    assert seen >= 6
