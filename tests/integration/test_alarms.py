"""Every alarm of template.yaml reaches whoever is subscribed to the alarms topic (moto).

moto's CloudWatch keeps alarm states but never runs alarm actions (`set_alarm_state` only
records the state), and moto's SNS and KMS never check policies. So the test plays CloudWatch's
part, with the stack's real resources: the key, the topic and its policy, created from the
template in moto; each alarm created from the template's definition and driven into ALARM.
As CloudWatch does, `deliver_alarm_actions` reads the alarm's actions, and for each topic asks
its key policy (from KMS) whether cloudwatch.amazonaws.com may GenerateDataKey and Decrypt for
this alarm, asks the topic policy whether it may Publish, then publishes the notification; a
queue subscribed to the topic must receive it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from local.template import load
from tests.integration.conftest import TEMPLATE as TEMPLATE_PATH
from tests.policy import Request, allows

TEMPLATE = load(TEMPLATE_PATH)
ALARMS = sorted(r.logical_id for r in TEMPLATE.of_type("AWS::CloudWatch::Alarm"))
CLOUDWATCH = {"Service": "cloudwatch.amazonaws.com"}

# the policy of the AWS-managed key alias/aws/sns (it cannot be changed): only callers of this
# account, through SNS, may use it; a service principal such as CloudWatch is neither
AWS_MANAGED_SNS_KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Allow access through SNS for all principals in the account that are authorized to use SNS",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": "123456789012", "kms:ViaService": "sns.eu-south-1.amazonaws.com"}
            },
        }
    ],
}  # fmt: skip


class Refused(PermissionError):
    """AWS would refuse CloudWatch's request: the notification never leaves."""


def deliver_alarm_actions(aws, alarm_name: str) -> int:
    """What CloudWatch does for an alarm in ALARM: publish to each action's topic, if the topic's
    key and policy let it. Returns the number of notifications published."""
    cloudwatch, sns, kms = aws.client("cloudwatch"), aws.client("sns"), aws.client("kms")
    alarm = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]
    if alarm["StateValue"] != "ALARM" or not alarm.get("ActionsEnabled", True):
        return 0
    context = {"aws:SourceAccount": aws.account_id, "aws:SourceArn": alarm["AlarmArn"]}
    published = 0
    for topic_arn in alarm["AlarmActions"]:
        attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
        key_id = attributes.get("KmsMasterKeyId")
        if key_id:
            key = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            if not key["Enabled"]:
                raise Refused(f"{key_id} is disabled")
            policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                if not allows(policy, Request(CLOUDWATCH, action, "*", context)):
                    raise Refused(f"the key policy of {key_id} refuses CloudWatch {action}")
            kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
        policy = json.loads(attributes["Policy"])
        if not allows(policy, Request(CLOUDWATCH, "sns:Publish", topic_arn, context)):
            raise Refused(f"the policy of {topic_arn} refuses CloudWatch sns:Publish")
        sns.publish(
            TopicArn=topic_arn,
            Subject=f'ALARM: "{alarm_name}" in {aws.region}'[:100],
            Message=json.dumps(
                {
                    "AlarmName": alarm_name,
                    "AlarmDescription": alarm.get("AlarmDescription"),
                    "AWSAccountId": aws.account_id,
                    "NewStateValue": alarm["StateValue"],
                    "NewStateReason": alarm["StateReason"],
                    "StateChangeTime": datetime.now(UTC).isoformat(),
                    "Region": aws.region,
                    "AlarmArn": alarm["AlarmArn"],
                    "Trigger": {
                        "MetricName": alarm.get("MetricName"),
                        "Namespace": alarm.get("Namespace"),
                        "Dimensions": alarm.get("Dimensions", []),
                    },
                }
            ),
        )
        published += 1
    return published


@pytest.fixture(scope="module")
def stack(moto_stack):
    """The stack in moto, with what LocalAws leaves out created from the template too: the
    alarms topic's policy and every alarm."""
    aws = moto_stack
    sns = aws.client("sns")
    for policy in TEMPLATE.of_type("AWS::SNS::TopicPolicy"):
        properties = aws.resolve(policy.properties)
        for topic_arn in properties["Topics"]:
            sns.set_topic_attributes(
                TopicArn=topic_arn,
                AttributeName="Policy",
                AttributeValue=json.dumps(properties["PolicyDocument"]),
            )
    for logical_id in ALARMS:
        properties = aws.resolve(TEMPLATE.resources[logical_id].properties)
        aws.client("cloudwatch").put_metric_alarm(AlarmName=f"{aws.stack_name}-{logical_id}", **properties)
    return aws


@pytest.fixture
def inbox(stack):
    """A queue subscribed to the alarms topic, as the e-mail subscription is."""
    sqs, sns = stack.client("sqs"), stack.client("sns")
    url = sqs.create_queue(QueueName=f"alarm-inbox-{len(sqs.list_queues().get('QueueUrls', []))}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=stack.arn("AlarmsTopic"), Protocol="sqs", Endpoint=arn)[
        "SubscriptionArn"
    ]
    yield url
    sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=url)


def _received(stack, url: str) -> list[dict]:
    messages = stack.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]


def test_the_alarms_topic_is_encrypted_with_the_stacks_own_key(stack):
    attributes = stack.client("sns").get_topic_attributes(TopicArn=stack.arn("AlarmsTopic"))["Attributes"]
    key = stack.client("kms").describe_key(KeyId=attributes["KmsMasterKeyId"])["KeyMetadata"]
    assert key["KeyId"] == stack.physical("AlarmsKey") and key["KeyManager"] == "CUSTOMER"
    assert stack.client("kms").get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]


@pytest.mark.parametrize("logical_id", ALARMS)
def test_an_alarm_in_alarm_state_reaches_the_topics_subscribers(stack, inbox, logical_id):
    name = f"{stack.stack_name}-{logical_id}"
    cloudwatch = stack.client("cloudwatch")
    assert deliver_alarm_actions(stack, name) == 0, "an alarm in OK notifies nobody"
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: test")
    try:
        assert deliver_alarm_actions(stack, name) == 1
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test over")
    [notification] = _received(stack, inbox)
    assert notification["AlarmName"] == name and notification["NewStateValue"] == "ALARM"
    expected = stack.resolve(TEMPLATE.resources[logical_id].properties["AlarmDescription"])
    assert notification["AlarmDescription"] == expected


def test_a_topic_on_the_aws_managed_sns_key_would_never_notify(stack, inbox):
    """The same alarm, its topic encrypted as before (alias/aws/sns, whose policy only admits
    callers of the account through SNS): CloudWatch is refused, nothing arrives."""
    kms, sns, cloudwatch = stack.client("kms"), stack.client("sns"), stack.client("cloudwatch")
    managed = kms.create_key(Policy=json.dumps(AWS_MANAGED_SNS_KEY_POLICY))["KeyMetadata"]["KeyId"]
    topic = stack.arn("AlarmsTopic")
    sns.set_topic_attributes(TopicArn=topic, AttributeName="KmsMasterKeyId", AttributeValue=managed)
    name = f"{stack.stack_name}-SenderErrorsAlarm"
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: test")
    try:
        with pytest.raises(Refused, match="refuses CloudWatch kms:GenerateDataKey"):
            deliver_alarm_actions(stack, name)
    finally:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test over")
        sns.set_topic_attributes(
            TopicArn=topic, AttributeName="KmsMasterKeyId", AttributeValue=stack.physical("AlarmsKey")
        )
    assert _received(stack, inbox) == []


def test_an_alarm_of_another_account_may_not_use_the_topic(stack):
    """The key policy's conditions are not decoration: the same request from an alarm of another
    account is refused."""
    kms = stack.client("kms")
    policy = json.loads(kms.get_key_policy(KeyId=stack.physical("AlarmsKey"), PolicyName="default")["Policy"])
    alarm = f"arn:aws:cloudwatch:{stack.region}:111122223333:alarm:theirs"
    request = Request(
        CLOUDWATCH, "kms:GenerateDataKey", "*", {"aws:SourceAccount": "111122223333", "aws:SourceArn": alarm}
    )
    assert not allows(policy, request)
