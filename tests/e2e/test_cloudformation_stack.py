"""template.yaml as CloudFormation deploys it: SAM's translator expands it, moto's CloudFormation
creates the whole stack (local/cloudformation.py), and pecflow works on exactly what was created:
the CLI finds the stack by its outputs, each handler runs with its function's own environment as
moto's Lambda holds it, events come from the stack's own wiring (bucket notification, schedule,
event source mappings). A variable, output, table, queue or bucket the code needs and the
template lacks (or names differently) fails here.

Where moto falls short (local/cloudformation.py says how each is handled): the types its
CloudFormation skips (MOTO_GAPS: alarms, bucket and topic policies, subscriptions, schedules,
event invoke configs) are created through their APIs from the resolved template; bucket
properties it ignores are applied through S3; FIFO queues get CloudFormation's kind of name;
conditional Deny statements of bucket policies are not put (moto ignores Condition). The event
source mappings are disabled after creation: the test plays Lambda's SQS poller.
"""

from __future__ import annotations

import json
import uuid
import warnings
from urllib.parse import quote_plus

import pytest

from local.cloudformation import MOTO_GAPS, TEMPLATE, Deployed, deploy, sam_python

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        sam_python() is None,
        reason="the SAM venv (.venv-sam, made by `make lint`) is missing: SAM's translator lives there",
    ),
]

REGION = "eu-south-1"
PARAMETERS = {"AlarmEmail": "allarmi@azienda.test"}  # the conditional subscription is created too


@pytest.fixture(scope="module")
def cfn_stack():
    from moto import mock_aws

    with mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto")
        yield deploy(TEMPLATE, "pecflow-cfn", PARAMETERS, REGION)


def test_every_resource_of_the_template_is_created(cfn_stack: Deployed):
    stack = cfn_stack
    print(f"\nstack {stack.stack_name}: {len(stack.resources)} resources\n{stack.listing()}")
    for note in stack.notes:
        print(f"  for moto: {note}")
    declared = {
        logical_id: resource["Type"]
        for logical_id, resource in stack.template["Resources"].items()
        if logical_id not in stack.not_created
    }
    missing = sorted(f"{k} ({t})" for k, t in declared.items() if k not in stack.resources)
    assert not missing, f"not created: {missing}\n{stack.listing()}"
    assert {k: t for k, (t, _) in stack.resources.items()} == declared, stack.listing()
    # what moto's CloudFormation skipped, the harness created: nothing else, and nothing silently
    assert {declared[k] for k in stack.completed} <= set(MOTO_GAPS)
    assert all(declared[k] not in MOTO_GAPS for k in set(declared) - set(stack.completed))
    assert stack.skipped_by_moto == len(stack.completed) - stack.precreated  # those made before the stack
    assert not stack.not_created  # with AlarmEmail given, every condition holds


def test_a_mailbox_a_poll_and_a_one_row_campaign_on_the_stack(
    cfn_stack: Deployed, dovecot, pec_network, tmp_path, capsys
):
    stack = cfn_stack
    from local.pecbuild import builder
    from pecflow import cli
    from pecflow.config import Config
    from pecflow.domain.campaign.pdf import text_pdf

    # the CLI finds everything through the stack's outputs
    deployment = Config.from_stack(stack.stack_name, REGION)
    assert deployment.mailboxes_table == stack.physical("MailboxesTable")
    assert deployment.campaign_bucket == stack.physical("CampaignBucket")

    tag = uuid.uuid4().hex[:6]
    alfa = pec_network.add_provider(builder.Gestore("Alfa PEC S.p.A.", f"pec.alfa-{tag}.test"))
    beta = pec_network.add_provider(builder.Gestore("Beta PEC S.p.A.", f"pec.beta-{tag}.test"))
    office = alfa.add_mailbox(f"ufficio@pec.alfa-{tag}.test")
    client = beta.add_mailbox(f"cliente@pec.beta-{tag}.test")

    # a mailbox added, as an administrator adds it
    ca = tmp_path / "ca.pem"
    ca.write_bytes(dovecot.ca.pem)
    where = ["--stack", stack.stack_name, "--region", REGION]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PECFLOW_TEST_PASSWORD", office.password)
        added = cli.main(
            ["mailbox", "add", office.address, "--imap-host", dovecot.host, "--imap-port", str(dovecot.port)]
            + ["--smtp-host", alfa.host, "--smtp-port", str(alfa.port), "--ca-bundle", str(ca)]
            + ["--password-env", "PECFLOW_TEST_PASSWORD", *where]
        )
    assert added == 0

    # a one-row campaign, uploaded with the CLI: the bucket's notification starts the fan-out
    folder = tmp_path / f"sollecito-{tag}"
    (folder / "attachments").mkdir(parents=True)
    (folder / "attachments" / "avviso.pdf").write_bytes(text_pdf("Avviso di pagamento n. 1"))
    (folder / "recipients.csv").write_bytes(
        f"PEC;Ragione Sociale;Importo\r\n{client.address};Cliente S.r.l. – àèìòù;1.250,50\r\n".encode(
            "cp1252"
        )
    )
    manifest = {
        "mailbox": office.address,
        "subject": "Sollecito di pagamento – {{ ragione_sociale }}",
        "body_text": "Gentile {{ ragione_sociale }},\nle ricordiamo l'importo di {{ importo|importo }}.\n",
        "attachments": ["avviso.pdf"],
        "receipt_type": "completa",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    assert cli.main(["campaign", "upload", str(folder), *where]) == 0

    key = f"campaigns/{folder.name}/manifest.json"
    fanout = notified_function(stack, deployment.campaign_bucket, key)
    assert fanout == "CampaignFanoutFunction"
    result = stack.function(fanout).invoke(s3_event(stack, deployment.campaign_bucket, key))
    assert result["campaigns"][0]["queued"] == 1, result

    sent = drain(stack, "SenderFunction")
    assert len(sent) == 1
    pec_network.wait_idle(30)
    delivered = [d for d in pec_network.deliveries if d.mailbox == client.address and d.error is None]
    assert [d.kind for d in delivered] == ["posta-certificata"]

    # a poll: the schedule's target queues a request per mailbox, the poller reads the receipts
    scheduler = scheduled_function(stack)
    assert scheduler == "PollSchedulerFunction"
    queued = stack.function(scheduler).invoke(scheduled_event(stack))
    assert queued["queued"] == 1, queued
    assert len(drain(stack, "MailboxPollerFunction")) == 1

    capsys.readouterr()
    assert cli.main(["campaign", "stats", folder.name, "--json", *where]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["counters"]["delivered"] == 1, stats
    archived = stack.client("s3").list_objects_v2(Bucket=deployment.archive_bucket, Prefix="messages/")
    assert archived.get("KeyCount", 0) >= 3, "the sent message and its two receipts are archived"
    print(f"\ncampaign {folder.name}: {stats['counters']}; archived: {archived['KeyCount']} objects")


# --- driving the stack's wiring ---------------------------------------------------------------


def notified_function(stack: Deployed, bucket: str, key: str) -> str:
    """The function the bucket's notification configuration invokes for a new object `key`."""
    configuration = stack.client("s3").get_bucket_notification_configuration(Bucket=bucket)
    for entry in configuration.get("LambdaFunctionConfigurations", []):
        rules = {
            r["Name"].lower(): r["Value"]
            for r in entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        }
        created = any(e in ("s3:ObjectCreated:*", "s3:ObjectCreated:Put") for e in entry["Events"])
        if created and key.startswith(rules.get("prefix", "")) and key.endswith(rules.get("suffix", "")):
            return function_of(stack, entry["LambdaFunctionArn"])
    raise AssertionError(f"no function is notified of s3://{bucket}/{key}: {configuration}")


def scheduled_function(stack: Deployed) -> str:
    """The function the stack's (only) schedule targets."""
    (schedule,) = stack.of_type("AWS::Scheduler::Schedule")
    name = stack.physical(schedule).rsplit("/", 1)[-1]
    target = stack.client("scheduler").get_schedule(Name=name)["Target"]["Arn"]
    return function_of(stack, target)


def function_of(stack: Deployed, arn: str) -> str:
    name = arn.split(":function:", 1)[-1].split(":", 1)[0]
    (logical_id,) = [k for k in stack.of_type("AWS::Lambda::Function") if stack.physical(k) == name]
    return logical_id


def s3_event(stack: Deployed, bucket: str, key: str) -> dict:
    head = stack.client("s3").head_object(Bucket=bucket, Key=key)
    obj = {"key": quote_plus(key, safe="/"), "size": head["ContentLength"], "eTag": head["ETag"].strip('"')}
    if head.get("VersionId"):
        obj["versionId"] = head["VersionId"]
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": stack.region,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def scheduled_event(stack: Deployed) -> dict:
    """What the schedule's target sends: its Input, with Scheduler's context attributes filled in
    (with no Input, Scheduler would send no scheduled time at all)."""
    from datetime import UTC, datetime

    (schedule,) = stack.of_type("AWS::Scheduler::Schedule")
    name = stack.physical(schedule).rsplit("/", 1)[-1]
    target = stack.client("scheduler").get_schedule(Name=name)["Target"]
    assert "<aws.scheduler.scheduled-time>" in target.get("Input", ""), target
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.loads(target["Input"].replace("<aws.scheduler.scheduled-time>", now))


def drain(stack: Deployed, function: str, limit: int = 10) -> list:
    """Play Lambda's SQS poller for the function's event source mapping until its queue is empty:
    batches of the mapping's BatchSize, successes deleted, reported failures left."""
    from local.runner import _sqs_record

    (mapping,) = stack.function(function).event_sources()
    queue_arn = mapping["EventSourceArn"]
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
    results: list[dict] = []
    for _ in range(limit):
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, mapping["BatchSize"]),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return results
        event = {"Records": [_sqs_record(m, queue_arn, stack.region) for m in messages]}
        result = stack.function(function).invoke(event)
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        assert not failed, f"{function} failed on {failed}"
        for m in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        results.append(result)
    raise AssertionError(f"{function}'s queue did not empty in {limit} batches")


def test_the_api_function_answers_a_signed_in_person_on_the_stack(cfn_stack: Deployed):
    """The api function as deployed (its environment, the generated cursor key, the people and
    inbox tables, the user pool): a person added with the CLI's service sees their mailboxes."""
    import json
    from pathlib import Path

    from pecflow import bootstrap
    from pecflow.config import Config
    from pecflow.domain.access import Role

    stack = cfn_stack
    deployment = Config.from_stack(stack.stack_name, REGION)
    assert deployment.user_pool_id and deployment.people_table and deployment.inbox_table
    people = bootstrap.people_admin(deployment)
    people.add("cli:test", "otto", "otto@alfa.test", "Otto")
    people.set_role("cli:test", "otto", "ufficio@pec.alfa.test", Role.OPERATOR)
    assert stack.client("cognito-idp").admin_get_user(UserPoolId=deployment.user_pool_id, Username="otto")[
        "Enabled"
    ]
    event = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "api_take_in_charge.json").read_text()
    )
    me = {**event, "rawPath": "/me", "body": None}
    me["requestContext"] = {
        **event["requestContext"],
        "http": {**event["requestContext"]["http"], "method": "GET", "path": "/me"},
    }
    response = stack.function("ApiFunction").invoke(me)
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["mailboxes"] == [
        {"mailbox": "ufficio@pec.alfa.test", "role": "operator"}
    ]
    assert stack.client("apigatewayv2").get_api(ApiId=stack.physical("Api"))["ProtocolType"] == "HTTP"
