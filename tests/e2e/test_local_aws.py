"""LocalAws: moto as a real server, with resources created from the template itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from local.aws import LocalAws
from local.clock import VirtualClock
from local.template import Intrinsics, TemplateError, load, load_yaml, parameter_values

REPO = Path(__file__).resolve().parents[2]
APP_TEMPLATE = Path(__file__).parent / "runner_app" / "template.yaml"


@pytest.fixture(scope="module")
def app_aws():
    aws = LocalAws.start(APP_TEMPLATE, stack_name="app-test", set_environ=False)
    yield aws
    aws.stop()


def _attribute_set(definitions):
    return {(d["AttributeName"], d["AttributeType"]) for d in definitions}


def _index_shape(index):
    projection = {k: (sorted(v) if isinstance(v, list) else v) for k, v in index["Projection"].items()}
    return index["IndexName"], [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]], projection


def assert_tables_match(aws: LocalAws) -> int:
    """Every table of the template exists in moto with the template's keys and indexes."""
    checked = 0
    for resource in aws.template.of_type("AWS::DynamoDB::Table"):
        if resource.logical_id in aws.skipped:
            continue
        declared = aws.resolve(resource.properties)
        table = aws.client("dynamodb").describe_table(TableName=aws.physical(resource.logical_id))["Table"]
        assert _attribute_set(table["AttributeDefinitions"]) == _attribute_set(
            declared["AttributeDefinitions"]
        )
        assert table["KeySchema"] == declared["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == declared.get("BillingMode", "PROVISIONED")
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            assert sorted(map(_index_shape, table.get(kind, []))) == sorted(
                map(_index_shape, declared.get(kind, []))
            )
        checked += 1
    return checked


def assert_queues_match(aws: LocalAws) -> int:
    checked = 0
    for resource in aws.template.of_type("AWS::SQS::Queue"):
        if resource.logical_id in aws.skipped:
            continue
        declared = aws.resolve(resource.properties)
        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=aws.url(resource.logical_id), AttributeNames=["All"]
        )["Attributes"]
        assert attributes["QueueArn"] == aws.arn(resource.logical_id)
        for name in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds"):
            if name in declared:
                assert attributes[name] == str(declared[name]), name
        assert attributes.get("FifoQueue", "false") == str(declared.get("FifoQueue", False)).lower()
        if declared.get("FifoQueue"):
            assert aws.physical(resource.logical_id).endswith(".fifo")
            dedup = str(declared.get("ContentBasedDeduplication", False)).lower()
            assert attributes["ContentBasedDeduplication"] == dedup
        if "RedrivePolicy" in declared:
            redrive = json.loads(attributes["RedrivePolicy"])
            assert redrive == {
                "deadLetterTargetArn": declared["RedrivePolicy"]["deadLetterTargetArn"],
                "maxReceiveCount": int(declared["RedrivePolicy"]["maxReceiveCount"]),
            }
        checked += 1
    return checked


# --- the real template ----------------------------------------------------------------------------


def test_real_template_resources_match_the_template(local_aws):
    template = load(REPO / "template.yaml")
    assert assert_tables_match(local_aws) == len(template.of_type("AWS::DynamoDB::Table"))
    assert assert_queues_match(local_aws) >= 1

    s3 = local_aws.client("s3")
    bucket = local_aws.physical("ArchiveBucket")
    assert bucket == "pecflow-local-archivebucket"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    days = int(template.parameters["ArchiveRetentionDays"]["Default"])
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "GOVERNANCE"
    assert lock["Rule"]["DefaultRetention"]["Days"] == days
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())

    # what is not created is listed, with the reason
    for resource in template.resources.values():
        assert (resource.logical_id in local_aws.resources) != (resource.logical_id in local_aws.skipped)
    assert all(
        "alarms are not modelled" in local_aws.skipped[r.logical_id]
        for r in template.of_type("AWS::CloudWatch::Alarm")
    )
    assert "layers" in local_aws.skipped["CoreLayer"]


def test_function_environment_merges_globals_and_resolves(local_aws):
    template = load(REPO / "template.yaml")
    for function in template.of_type("AWS::Serverless::Function"):
        environment = local_aws.function_environment(function.logical_id)
        for name in template.globals["Function"]["Environment"]["Variables"]:
            assert name in environment
        assert all(isinstance(v, str) for v in environment.values())
    poller = local_aws.function_environment("MailboxPollerFunction")
    assert poller["POLL_QUEUE_URL"] == local_aws.url("PollQueue")
    assert poller["POLL_QUEUE_URL"].startswith(local_aws.endpoint_url)
    assert poller["MAILBOXES_TABLE"] == local_aws.physical("MailboxesTable")
    assert poller["STACK_NAME"] == "pecflow-local"


def test_environ_points_boto3_at_the_server_for_the_block_only(local_aws_session):
    import boto3

    # the stack's resources, again: a test of moto's in-process mock (mock_aws) on this worker
    # before this one wiped them (moto's state is process-wide)
    local_aws_session.reset()
    before = os.environ.get("AWS_ENDPOINT_URL")
    with local_aws_session.environ() as environment:
        assert os.environ["AWS_ENDPOINT_URL"] == environment["AWS_ENDPOINT_URL"]
        assert environment["AWS_ENDPOINT_URL"] == local_aws_session.endpoint_url
        names = boto3.client("s3").list_buckets()["Buckets"]  # a plain client reaches moto
        assert local_aws_session.physical("ArchiveBucket") in {b["Name"] for b in names}
    assert os.environ.get("AWS_ENDPOINT_URL") == before


def test_reset_gives_fresh_resources(local_aws):
    table = local_aws.physical("MailboxesTable")
    dynamodb = local_aws.client("dynamodb")
    dynamodb.put_item(TableName=table, Item={"address": {"S": "a@pec.example"}, "item": {"S": "config"}})
    local_aws.client("sqs").send_message(
        QueueUrl=local_aws.url("PollQueue"), MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d"
    )
    local_aws.reset()
    assert dynamodb.scan(TableName=table)["Count"] == 0
    attributes = local_aws.client("sqs").get_queue_attributes(
        QueueUrl=local_aws.url("PollQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert_tables_match(local_aws)


# --- a richer template ------------------------------------------------------------------------------


def test_rich_template_table_queue_bucket_secret_topic_key(app_aws):
    aws = app_aws
    assert assert_tables_match(aws) == 1
    assert assert_queues_match(aws) == 11

    dynamodb = aws.client("dynamodb")
    table = dynamodb.describe_table(TableName="app-test-SeenTable")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert aws.resources["SeenTable"].attributes["StreamArn"] == table["LatestStreamArn"]
    ttl = dynamodb.describe_time_to_live(TableName="app-test-SeenTable")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    # FIFO queue with its dead-letter queue, maxReceiveCount from a mapping
    redrive = json.loads(
        aws.client("sqs").get_queue_attributes(
            QueueUrl=aws.url("JobsQueue"), AttributeNames=["RedrivePolicy"]
        )["Attributes"]["RedrivePolicy"]
    )
    assert redrive == {"deadLetterTargetArn": aws.arn("JobsDeadLetters"), "maxReceiveCount": 3}
    assert aws.physical("JobsDeadLetters") == "app-test-JobsDeadLetters.fifo"
    assert aws.physical("AuditQueue") == "app-test-audit"  # an explicit !Sub name

    # bucket: explicit name, versioning, its own notification (suffix filter) to a queue
    bucket = aws.physical("UploadBucket")
    assert bucket == "app-test-uploads-123456789012"
    s3, sqs = aws.client("s3"), aws.client("sqs")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    sqs.purge_queue(QueueUrl=aws.url("AuditQueue"))
    s3.put_object(Bucket=bucket, Key="docs/contract.pdf", Body=b"%PDF")
    s3.put_object(Bucket=bucket, Key="docs/notes.txt", Body=b"no")
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=aws.url("AuditQueue"), MaxNumberOfMessages=10).get(
            "Messages", []
        )
    ]
    keys = [record["s3"]["object"]["key"] for body in bodies for record in body.get("Records", [])]
    assert keys == ["docs%2Fcontract.pdf"]  # moto's encoding; the runner hands real S3's

    secret = aws.client("secretsmanager").get_secret_value(SecretId=aws.arn("ApiSecret"))
    secret = json.loads(secret["SecretString"])
    assert secret["username"] == "box@pec.example" and len(secret["password"]) == 24
    assert secret["password"].isalnum()

    subscriptions = aws.client("sns").list_subscriptions_by_topic(TopicArn=aws.arn("AlertsTopic"))
    subscriptions = subscriptions["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("sqs", aws.arn("AuditQueue"))]

    kms = aws.client("kms")
    assert kms.get_key_rotation_status(KeyId=aws.physical("DataKey"))["KeyRotationEnabled"] is True
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases["alias/app-test-data"] == aws.physical("DataKey")

    assert "condition IsProd is false" in aws.skipped["ProdOnlyQueue"]
    assert "alarms" in aws.skipped["BacklogAlarm"]


def test_physical_arn_url_of_functions_and_queues(app_aws):
    assert app_aws.physical("Ticker") == "app-test-Ticker"
    assert app_aws.arn("Ticker") == "arn:aws:lambda:eu-south-1:123456789012:function:app-test-Ticker"
    assert app_aws.url("WorkQueue") == f"{app_aws.endpoint_url}/123456789012/app-test-WorkQueue"
    with pytest.raises(KeyError):
        app_aws.url("SeenTable")
    environment = app_aws.function_environment("Ticker")
    assert environment["SEEN_TABLE"] == "app-test-SeenTable"  # from Globals
    assert environment["SECRET_ARN"] == app_aws.arn("ApiSecret")  # its own, resolved
    assert environment["KEY_ARN"] == app_aws.arn("DataKey")


def test_virtual_clock_drives_sqs_visibility_and_delays(app_aws):
    import moto.core.utils
    import moto.sqs.models

    sqs, url = app_aws.client("sqs"), app_aws.url("StrictQueue")
    sqs.purge_queue(QueueUrl=url)
    clock = VirtualClock()
    app_aws.follow_clock(clock)
    try:
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
        assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
        clock.advance(600)
        message = sqs.receive_message(
            QueueUrl=url, VisibilityTimeout=1200, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
        )["Messages"][0]
        assert int(message["Attributes"]["SentTimestamp"]) == int((clock.now() - 600) * 1000)
        clock.advance(1199)
        started = time.monotonic()
        assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)  # no real wait
        assert time.monotonic() - started < 2
        clock.advance(1)
        again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"][0]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
        assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"][0]["Body"] == "later"
    finally:
        app_aws.follow_clock(None)
    assert moto.sqs.models.unix_time is moto.core.utils.unix_time
    assert moto.sqs.models.unix_time_millis is moto.core.utils.unix_time_millis


def test_stacks_of_one_process_share_moto_so_a_reset_recreates_them_all(local_aws, app_aws):
    local_aws.client("sqs").send_message(QueueUrl=app_aws.url("WorkQueue"), MessageBody="x")
    local_aws.reset()  # the session stack's reset...
    assert (
        app_aws.client("sqs").get_queue_attributes(  # ...leaves the other stack whole and empty
            QueueUrl=app_aws.url("WorkQueue"),
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    tables = len(load(REPO / "template.yaml").of_type("AWS::DynamoDB::Table"))
    assert assert_queues_match(app_aws) == 11 and assert_tables_match(local_aws) == tables
    with pytest.raises(ValueError, match="already running"):
        LocalAws.start(APP_TEMPLATE, stack_name="app-test")
    app_aws.follow_clock(VirtualClock())
    try:
        with pytest.raises(RuntimeError, match="already follows"):
            local_aws.follow_clock(VirtualClock())
    finally:
        app_aws.follow_clock(None)


EXTRAS = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Simple:
    Type: AWS::Serverless::SimpleTable
    Properties: {PrimaryKey: {Name: id, Type: Number}, Tags: {team: pec}}
  Global:
    Type: AWS::DynamoDB::GlobalTable
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      Replicas: [{Region: eu-south-1}]
  Provisioned:
    Type: AWS::DynamoDB::Table
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}, {AttributeName: g, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      ProvisionedThroughput: {ReadCapacityUnits: 2, WriteCapacityUnits: "3"}
      GlobalSecondaryIndexes:
        - IndexName: by-g
          KeySchema: [{AttributeName: g, KeyType: HASH}]
          Projection: {ProjectionType: ALL}
          ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
  Setting:
    Type: AWS::SSM::Parameter
    Properties: {Name: /pecflow/extras/mode, Type: String, Value: local}
  Lifecycled:
    Type: AWS::S3::Bucket
    Properties:
      LifecycleConfiguration:
        Rules:
          - {Id: expire-reports, Status: Enabled, Prefix: reports/, ExpirationInDays: 30,
             NoncurrentVersionExpiration: {NoncurrentDays: 7},
             AbortIncompleteMultipartUpload: {DaysAfterInitiation: 1}}
      CorsConfiguration:
        CorsRules: [{AllowedMethods: [GET], AllowedOrigins: ["*"], MaxAge: 600, Id: console}]
      Tags: [{Key: team, Value: pec}]
  Tagged:
    Type: AWS::SQS::Queue
    Properties: {Tags: [{Key: team, Value: pec}]}
  Events:
    Type: AWS::SNS::Topic
    Properties: {FifoTopic: true, ContentBasedDeduplication: true}
  Plain:
    Type: AWS::SecretsManager::Secret
    Properties: {Name: extras/plain, SecretString: s3cret}
"""


def test_the_less_common_resources(tmp_path):
    path = tmp_path / "extras.yaml"
    path.write_text(EXTRAS)
    with LocalAws.start(path, stack_name="extras", set_environ=False) as aws:
        assert not aws.skipped
        dynamodb = aws.client("dynamodb")
        simple = dynamodb.describe_table(TableName="extras-Simple")["Table"]
        assert simple["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
        assert simple["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "N"}]
        assert dynamodb.describe_table(TableName="extras-Global")["Table"]["TableStatus"] == "ACTIVE"
        provisioned = dynamodb.describe_table(TableName="extras-Provisioned")["Table"]
        assert provisioned["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
        assert provisioned["GlobalSecondaryIndexes"][0]["IndexName"] == "by-g"
        assert aws.physical("Setting") == "/pecflow/extras/mode"
        assert aws.client("ssm").get_parameter(Name="/pecflow/extras/mode")["Parameter"]["Value"] == "local"
        s3, bucket = aws.client("s3"), aws.physical("Lifecycled")
        [rule] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert (
            rule["ID"],
            rule["Expiration"]["Days"],
            rule["NoncurrentVersionExpiration"]["NoncurrentDays"],
        ) == ("expire-reports", 30, 7)
        [cors] = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
        assert (cors["AllowedMethods"], cors["MaxAgeSeconds"], cors["ID"]) == (["GET"], 600, "console")
        assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "pec"}]
        assert aws.client("sqs").list_queue_tags(QueueUrl=aws.url("Tagged"))["Tags"] == {"team": "pec"}
        assert aws.physical("Events") == "extras-Events.fifo"
        attributes = aws.client("sns").get_topic_attributes(TopicArn=aws.arn("Events"))["Attributes"]
        assert attributes["FifoTopic"] == "true"
        plain = aws.client("secretsmanager").get_secret_value(SecretId=aws.arn("Plain"))
        assert (plain["Name"], plain["SecretString"]) == ("extras/plain", "s3cret")


# --- the template reader ------------------------------------------------------------------------------

INTRINSICS = """
Parameters:
  Stage: {Type: String, Default: test, AllowedValues: [test, prod]}
  Size: {Type: Number, Default: 3, MaxValue: 10}
  Zones: {Type: CommaDelimitedList, Default: "a,b"}
Mappings:
  Limits: {test: {Max: 5}, prod: {Max: 50}}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  IsTest: !Not [{Condition: IsProd}]
  Both: {"Fn::And": [{Condition: IsTest}, !Equals [!Ref Size, 3]]}
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Values:
    Type: Custom::Values
    Properties:
      sub: !Sub "${AWS::StackName}-${Queue}-${Queue.Arn}-${AWS::AccountId}-${AWS::Region}-${!Literal}"
      sub_vars: !Sub ["${A}/${Stage}", {A: !Ref Size}]
      long_sub: {"Fn::Sub": "${Stage}-x"}
      join: !Join ["-", [a, !Ref Stage, !Select [1, !Ref Zones]]]
      split: !Select [2, !Split [",", "x,y,z"]]
      when: !If [IsProd, big, small]
      gone: !If [IsProd, x, !Ref AWS::NoValue]
      list: [1, !If [IsProd, 2, !Ref AWS::NoValue], 3]
      map: !FindInMap [Limits, !Ref Stage, Max]
      getatt_long: {"Fn::GetAtt": [Queue, Arn]}
      azs: !Select [0, !GetAZs ""]
      both: !If [Both, yes-both, "no"]
"""


def _values(tmp_path, **overrides):
    path = tmp_path / "t.yaml"
    path.write_text(INTRINSICS)
    template = load(path)

    def lookup(logical_id, attribute):
        return f"arn:{logical_id}" if attribute == "Arn" else f"url:{logical_id}"

    intrinsics = Intrinsics(
        template,
        stack_name="s",
        region="eu-south-1",
        parameters=parameter_values(template, overrides),
        lookup=lookup,
    )
    return intrinsics.resolve(template.resources["Values"].properties)


def test_intrinsics_short_and_long_forms(tmp_path):
    values = _values(tmp_path)
    assert values == {
        "sub": "s-url:Queue-arn:Queue-123456789012-eu-south-1-${Literal}",
        "sub_vars": "3/test",
        "long_sub": "test-x",
        "join": "a-test-b",
        "split": "z",
        "when": "small",
        "list": [1, 3],
        "map": 5,
        "getatt_long": "arn:Queue",
        "azs": "eu-south-1a",
        "both": "yes-both",
    }
    prod = _values(tmp_path, Stage="prod")
    assert (prod["when"], prod["gone"], prod["list"], prod["map"], prod["both"]) == (
        "big",
        "x",
        [1, 2, 3],
        50,
        "no",
    )


def test_parameters_are_checked(tmp_path):
    with pytest.raises(TemplateError, match="not one of"):
        _values(tmp_path, Stage="dev")
    with pytest.raises(TemplateError, match="above MaxValue"):
        _values(tmp_path, Size=11)
    with pytest.raises(TemplateError, match="unknown parameters"):
        _values(tmp_path, Nope=1)


def test_yaml_tags_become_long_forms():
    assert load_yaml("a: !GetAtt Q.Arn\nb: !Ref X\nc: !Condition C\n") == {
        "a": {"Fn::GetAtt": ["Q", "Arn"]},
        "b": {"Ref": "X"},
        "c": {"Condition": "C"},
    }


# --- life cycle: nothing left behind ------------------------------------------------------------------


def test_start_and_stop_leave_no_thread_server_or_environment_behind():
    threads_before = set(threading.enumerate())
    environment_before = dict(os.environ)
    aws = LocalAws.start(APP_TEMPLATE, stack_name="leak-test")  # set_environ=True
    assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint_url
    host, port = aws.endpoint_url.removeprefix("http://").split(":")
    aws.follow_clock(VirtualClock())
    aws.stop()
    assert dict(os.environ) == environment_before
    assert set(threading.enumerate()) == threads_before
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    import moto.core.utils
    import moto.sqs.models

    assert moto.sqs.models.unix_time is moto.core.utils.unix_time


def test_cli_serves_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, "-m", "local.aws", "--template", "template.yaml"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "moto is serving" in output and "http://127.0.0.1:" in output
        assert "ArchiveBucket" in output and "MailboxPollErrorsAlarm" in output  # created / not created
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0  # a loaded CI machine: stopping moto took over 20 s once
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_direct_calls_answer_as_the_server_does(local_aws, monkeypatch):
    """The suite's boto3 calls skip the socket (local/aws.py, _direct_calls): the same calls over
    HTTP and directly get the same answers, errors, metadata, odd keys and streams included."""
    from local import aws as local_aws_module

    netloc = local_aws.endpoint_url.removeprefix("http://")
    assert netloc in local_aws_module._DIRECT_ENDPOINTS
    direct = []
    call = local_aws_module._call_moto_app
    monkeypatch.setattr(local_aws_module, "_call_moto_app", lambda *a: direct.append(1) or call(*a))
    s3, ddb, sqs = (local_aws.client(name) for name in ("s3", "dynamodb", "sqs"))
    bucket, table = local_aws.physical("CampaignBucket"), local_aws.physical("MailboxesTable")
    queue = local_aws.url("PollQueue")

    def calls(tag: str) -> list:
        key = f"{tag}/fattura àè +1 %20 #.pdf"
        s3.put_object(Bucket=bucket, Key=key, Body=b"%PDF" * 5000, Metadata={"my_key": "1", "other-key": "2"})
        got = s3.get_object(Bucket=bucket, Key=key)
        head = s3.head_object(Bucket=bucket, Key=key)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{tag}/")["Contents"]
        out = [got["Body"].read() == b"%PDF" * 5000, got["Metadata"], got["ContentLength"], head["ETag"]]
        out += [[o["Key"].removeprefix(tag) for o in listed]]
        for failing in (
            lambda: s3.get_object(Bucket=bucket, Key=f"{tag}/none"),
            lambda: ddb.get_item(TableName="none", Key={"address": {"S": "x"}}),
            lambda: sqs.send_message(QueueUrl=queue, MessageBody="x"),  # FIFO: a group id is needed
        ):
            with pytest.raises(ClientError) as refused:
                failing()
            out.append((refused.value.response["Error"]["Code"], refused.value.response["ResponseMetadata"]["HTTPStatusCode"]))  # fmt: skip
        item = {"address": {"S": f"{tag}@pec.example"}, "item": {"S": "config"}, "n": {"N": "1.50"}}
        ddb.put_item(TableName=table, Item=item)
        out.append(ddb.get_item(TableName=table, Key={k: item[k] for k in ("address", "item")})["Item"]["n"])
        sqs.send_message(QueueUrl=queue, MessageBody=f"à {tag}", MessageGroupId="g", MessageDeduplicationId=tag,
                         MessageAttributes={"kind": {"DataType": "String", "StringValue": "poll"}})  # fmt: skip
        received = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"][0]
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=received["ReceiptHandle"])
        out.append((received["Body"].removesuffix(tag), received["MessageAttributes"]))
        return out

    directly = calls("direct")
    went_direct = len(direct)
    assert went_direct >= 10, "the calls went to moto's application directly"
    monkeypatch.setattr(local_aws_module, "_DIRECT_ENDPOINTS", set())  # the same calls over HTTP
    over_http = calls("http")
    assert len(direct) == went_direct, "these went over HTTP"
    assert directly == over_http
    assert directly[1] == {"my_key": "1", "other-key": "2"}
