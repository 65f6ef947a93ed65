"""The alerts in template.yaml: the functions that publish them may publish to the alarms topic
and use its key, and nothing more of either; the webhook URL is a secret, never a parameter;
the alerts table is transient; every metric an alerting function counts is alarmed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local.template import load

PATH = Path(__file__).resolve().parents[2] / "template.yaml"
TEMPLATE = load(PATH)
PUBLISHERS = ("MailboxPollerFunction", "PollSchedulerFunction")


def statements(function: str) -> list[dict[str, Any]]:
    found = []
    for policy in TEMPLATE.resources[function].properties.get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
    return found


def granted(function: str, action: str) -> list[Any]:
    return [
        s["Resource"]
        for s in statements(function)
        if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]


@pytest.mark.parametrize("function", PUBLISHERS)
def test_the_publishers_may_publish_to_the_alarms_topic_and_use_its_key_only(function):
    assert granted(function, "sns:Publish") == [{"Ref": "AlarmsTopic"}]
    assert granted(function, "kms:GenerateDataKey") == [{"Fn::GetAtt": ["AlarmsKey", "Arn"]}]
    assert granted(function, "kms:Decrypt") == [{"Fn::GetAtt": ["AlarmsKey", "Arn"]}]
    assert {"Ref": "AlertsWebhookSecret"} in granted(function, "secretsmanager:GetSecretValue")
    variables = TEMPLATE.resources[function].properties["Environment"]["Variables"]
    assert variables["ALERTS_TOPIC"] == {"Ref": "AlarmsTopic"}
    assert variables["ALERTS_TABLE"] == {"Ref": "AlertsTable"}
    assert variables["ALERTS_WEBHOOK_SECRET"] == {"Ref": "AlertsWebhookSecret"}


def test_only_the_publishers_may_publish_or_read_the_webhook():
    for function in (r.logical_id for r in TEMPLATE.of_type("AWS::Serverless::Function")):
        if function not in PUBLISHERS:
            assert not granted(function, "sns:Publish"), function
            assert {"Ref": "AlertsWebhookSecret"} not in granted(function, "secretsmanager:GetSecretValue")


def test_the_poller_only_counts_and_claims_groups_the_scheduler_also_reads_them():
    assert (
        granted("MailboxPollerFunction", "dynamodb:UpdateItem").count({"Fn::GetAtt": ["AlertsTable", "Arn"]})
        == 1
    )
    assert not granted("MailboxPollerFunction", "dynamodb:Scan")
    scheduler = {"Fn::GetAtt": ["AlertsTable", "Arn"]}
    for action in ("dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Scan"):
        assert granted("PollSchedulerFunction", action) == [scheduler]
    [indexes] = granted("PollSchedulerFunction", "dynamodb:Query")
    assert indexes == [
        {"Fn::Sub": "${MessagesTable.Arn}/index/Unmatched"},
        {"Fn::Sub": "${InboxTable.Arn}/index/ByList"},
    ]


def test_the_webhook_url_is_a_secret_not_a_parameter():
    secret = TEMPLATE.resources["AlertsWebhookSecret"].properties
    assert not str(secret.get("SecretString", "")).startswith("https://")  # a placeholder: no webhook
    parameters = PATH.read_text(encoding="utf-8").split("\nConditions:")[0]
    assert "webhook" not in parameters.lower()


def test_the_alerts_table_is_transient():
    table = TEMPLATE.resources["AlertsTable"]
    assert table.properties["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert table.properties["KeySchema"] == [{"AttributeName": "group", "KeyType": "HASH"}]


@pytest.mark.parametrize(
    "metric",
    ["AlertsNotSent", "JobsFailed", "MailboxPollErrorsTotal", "ProviderSignaturesInvalid",
     "MailboxUsagePercent", "MessagesQuarantined", "JobsDeadLettered"],
)  # fmt: skip
def test_every_metric_based_cause_has_an_alarm_that_says_what_to_do(metric):
    [alarm] = [
        r for r in TEMPLATE.of_type("AWS::CloudWatch::Alarm") if r.properties.get("MetricName") == metric
    ]
    assert alarm.properties["AlarmActions"] == [{"Ref": "AlarmsTopic"}]
    assert "Cosa fare:" in str(alarm.properties["AlarmDescription"])
