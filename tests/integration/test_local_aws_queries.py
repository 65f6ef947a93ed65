"""The local stack's moto answers DynamoDB queries without sorting the whole table (local/aws.py,
_keyed_table_queries, _quick_key_values): the same items, in the same order, pages and counts
as moto's own code, for queries on the key and on an index (sparse, ranged, paged, counted), and
for scans."""

import random

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from moto import mock_aws
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from local.aws import _keyed_table_queries, _quick_key_values


def _requests(ddb) -> dict[str, list[dict]]:
    """A table with a range key (strings and numbers) and an index, one with a hash key only;
    what the code asks of them: a partition, a range of it, pages, backwards, filtered, by index."""
    jobs = ddb.create_table(
        TableName="jobs",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "campaign", "AttributeType": "S"},
            {"AttributeName": "holder", "AttributeType": "S"},
            {"AttributeName": "at", "AttributeType": "N"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByCampaign",
                "KeySchema": [{"AttributeName": "campaign", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
            {  # sparse (not every item has a holder), with a range key, keys only
                "IndexName": "ByHolder",
                "KeySchema": [
                    {"AttributeName": "holder", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {  # a number for key: moto's own comparison, not the strings' shortcut
                "IndexName": "ByNumber",
                "KeySchema": [{"AttributeName": "n", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    marks = ddb.create_table(
        TableName="marks",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rng = random.Random(7)
    for i in range(400):
        holder = {"holder": f"h{rng.randrange(3)}", "at": rng.randrange(40)} if rng.random() < 0.6 else {}
        jobs.put_item(
            Item={"pk": f"p{rng.randrange(15)}", "sk": rng.randrange(-50, 500), "campaign": f"c{rng.randrange(4)}",
                  "state": rng.choice(["sent", "delivered"]), "n": i, **holder}
        )  # fmt: skip
        marks.put_item(Item={"pk": f"p{rng.randrange(200)}", "n": i})
    jobs.delete_item(
        Key={"pk": "p3", "sk": jobs.query(KeyConditionExpression=Key("pk").eq("p3"))["Items"][0]["sk"]}
    )
    answers = []
    for p in [f"p{i}" for i in range(17)]:
        key = Key("pk").eq(p)
        answers.append(jobs.query(KeyConditionExpression=key))
        answers.append(
            jobs.query(KeyConditionExpression=key & Key("sk").between(0, 300), ScanIndexForward=False)
        )
        answers.append(jobs.query(KeyConditionExpression=key, FilterExpression=Attr("state").eq("sent")))
        page = jobs.query(KeyConditionExpression=key, Limit=4)
        answers.append(page)
        if "LastEvaluatedKey" in page:
            answers.append(
                jobs.query(KeyConditionExpression=key, Limit=4, ExclusiveStartKey=page["LastEvaluatedKey"])
            )
        answers.append(marks.query(KeyConditionExpression=key))
    by_index = []
    for c in ["c0", "c1", "c2", "c3", "c9"]:
        by_index.append(jobs.query(IndexName="ByCampaign", KeyConditionExpression=Key("campaign").eq(c)))
        page = jobs.query(IndexName="ByCampaign", KeyConditionExpression=Key("campaign").eq(c), Limit=7)
        by_index.append(page)
        if "LastEvaluatedKey" in page:
            by_index.append(
                jobs.query(IndexName="ByCampaign", KeyConditionExpression=Key("campaign").eq(c), Limit=7,
                           ExclusiveStartKey=page["LastEvaluatedKey"])
            )  # fmt: skip
    for n in [0, 7, 399, 400]:
        by_index.append(jobs.query(IndexName="ByNumber", KeyConditionExpression=Key("n").eq(n)))
    for h in ["h0", "h1", "h2", "h7"]:
        key = Key("holder").eq(h)
        by_index.append(jobs.query(IndexName="ByHolder", KeyConditionExpression=key, ScanIndexForward=False))
        by_index.append(
            jobs.query(IndexName="ByHolder", KeyConditionExpression=key & Key("at").between(5, 20))
        )
        by_index.append(jobs.query(IndexName="ByHolder", KeyConditionExpression=key, Select="COUNT"))
        page = jobs.query(IndexName="ByHolder", KeyConditionExpression=key, Limit=5, ScanIndexForward=False)
        by_index.append(page)
        if "LastEvaluatedKey" in page:
            by_index.append(
                jobs.query(IndexName="ByHolder", KeyConditionExpression=key, Limit=5, ScanIndexForward=False,
                           ExclusiveStartKey=page["LastEvaluatedKey"])
            )  # fmt: skip
    answers += [jobs.scan(), marks.scan(), jobs.scan(Limit=30)]
    for answer in answers + by_index:
        answer.pop("ResponseMetadata")
    return {"key and scan": answers, "index": by_index}


def _answers() -> dict[str, list[dict]]:
    with mock_aws():
        return _requests(boto3.resource("dynamodb", region_name="eu-south-1"))


def test_queries_answer_as_moto_does(monkeypatch):
    _keyed_table_queries()
    _quick_key_values()
    ours = _answers()
    all_items, query = Table._pecflow_moto
    monkeypatch.setattr(Table, "all_items", all_items)
    monkeypatch.setattr(Table, "query", query)
    monkeypatch.setattr(DynamoType, "cast_value", DynamoType._pecflow_moto_cast_value)
    motos = _answers()
    assert sum(len(a.get("Items", [])) for a in motos["key and scan"]) > 1000
    assert sum(len(a.get("Items", [])) for a in motos["index"]) > 300  # the index queries answer items
    assert ours == motos


@pytest.mark.parametrize("value", [{"S": "à"}, {"N": "-1.50"}, {"N": "3"}, {"B": b"\x00"}, {"BOOL": True},
                                   {"NULL": True}, {"SS": ["a"]}, {"NS": ["1", "2.5"]}, {"L": [{"N": "1"}]},
                                   {"M": {"a": {"S": "b"}}}])  # fmt: skip
def test_every_type_casts_as_moto_casts_it(value):
    _quick_key_values()
    assert DynamoType(value).cast_value == DynamoType._pecflow_moto_cast_value.fget(DynamoType(value))
