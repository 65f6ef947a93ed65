"""The local stack writes DynamoDB item responses with json.dumps (local/aws.py,
_plain_dynamodb_responses): the same JSON as moto's model-driven writer, for every item
operation and value type the code uses."""

import json
import re

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from local.aws import _plain_dynamodb_responses

ITEM = {
    "pk": {"S": "a"},
    "sk": {"S": "1"},
    "g": {"S": "x"},
    "blob": {"B": b"\x00\x01bin\xff"},
    "n": {"N": "1.50"},
    "list": {"L": [{"S": "q"}, {"NULL": True}, {"BOOL": False}]},
    "map": {"M": {"ss": {"SS": ["a", "b"]}, "bs": {"BS": [b"1", b"2"]}, "ns": {"NS": ["1", "2"]}}},
    "text": {"S": 'àèìòù \u2013 "quoted" \\ \n'},
}
KEY = {"pk": {"S": "a"}, "sk": {"S": "1"}}


@pytest.fixture
def compared(monkeypatch):
    """Every item response written both ways; the differences found."""
    _plain_dynamodb_responses()
    plain, model_driven = DynamoHandler.serialized, DynamoHandler._pecflow_model_driven
    found: list[tuple[str, object, object]] = []
    actions: list[str] = []

    def both(self, action_result):
        status, headers, body = plain(self, action_result)
        expected = model_driven(self, action_result)
        actions.append(self._get_action())
        if (status, json.loads(body)) != (expected[0], json.loads(expected[2])):
            found.append((self._get_action(), body, expected[2]))
        if headers.get("Content-Type") != expected[1].get("Content-Type"):
            found.append((self._get_action(), headers, expected[1]))
        return status, headers, body

    monkeypatch.setattr(DynamoHandler, "serialized", both)
    with mock_aws():
        yield found, actions


def test_item_responses_are_the_model_driven_ones(compared):
    found, actions = compared
    c = boto3.client("dynamodb", region_name="eu-south-1")
    c.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByG",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],  # fmt: skip
    )
    c.put_item(TableName="t", Item=ITEM)
    c.put_item(TableName="t", Item={**ITEM, "sk": {"S": "2"}}, ReturnValues="ALL_OLD")
    old = c.put_item(TableName="t", Item=ITEM, ReturnValues="ALL_OLD", ReturnConsumedCapacity="TOTAL")
    assert old["Attributes"]["blob"] == {"B": b"\x00\x01bin\xff"}
    assert c.get_item(TableName="t", Key=KEY)["Item"] == ITEM
    assert "Item" not in c.get_item(TableName="t", Key={"pk": {"S": "none"}, "sk": {"S": "1"}})
    page = c.query(
        TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}}, Limit=1
    )
    assert page["Count"] == 1 and page["LastEvaluatedKey"] == {"pk": {"S": "a"}, "sk": {"S": "1"}}
    c.query(TableName="t", IndexName="ByG", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": "x"}}, Select="COUNT")  # fmt: skip
    c.scan(TableName="t", FilterExpression="n > :n", ExpressionAttributeValues={":n": {"N": "1"}})
    for returned in ("ALL_NEW", "UPDATED_OLD", "NONE"):
        c.update_item(TableName="t", Key=KEY, UpdateExpression="ADD c :one SET d = :d",
                      ExpressionAttributeValues={":one": {"N": "1"}, ":d": {"S": "y"}}, ReturnValues=returned)  # fmt: skip
    c.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "t", "Key": KEY, "UpdateExpression": "ADD c :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
        ]
    )  # fmt: skip
    c.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": KEY}}])
    c.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": {"pk": {"S": "c"}, "sk": {"S": str(i)}}}} for i in range(5)]})  # fmt: skip
    got = c.batch_get_item(
        RequestItems={"t": {"Keys": [{"pk": {"S": "c"}, "sk": {"S": str(i)}} for i in range(3)]}}
    )
    assert len(got["Responses"]["t"]) == 3
    c.delete_item(TableName="t", Key={"pk": {"S": "c"}, "sk": {"S": "1"}}, ReturnValues="ALL_OLD")
    with pytest.raises(c.exceptions.ConditionalCheckFailedException) as refused:
        c.put_item(TableName="t", Item=ITEM, ConditionExpression="attribute_not_exists(pk)",
                   ReturnValuesOnConditionCheckFailure="ALL_OLD")  # fmt: skip
    assert refused.value.response["Item"]["pk"] == {"S": "a"}

    assert found == []
    assert {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
            "BatchWriteItem", "TransactGetItems", "TransactWriteItems"} <= set(actions)  # fmt: skip


# --- updates: parsed once, copied by pickle, walked with remembered type tests -------------------
# (local/aws.py, _parsed_update_expressions): the same items and the same errors as moto's own code

UPDATES = [
    ("SET a = :s, #n = :n, m = :m, l = :l", {}),
    ("SET m.part = :s, l = list_append(if_not_exists(l, :empty), :l)", {}),
    ("SET l[0] = :n, n2 = :n + :n, n3 = if_not_exists(n3, :n) - :n", {}),
    ("ADD #n :n, ss :ss REMOVE a", {}),
    ("DELETE ss :ss SET a = :s", {}),
    ("REMOVE l[0], m.part", {}),
    ("SET a = :s", {"ConditionExpression": "attribute_not_exists(nothing)"}),
    ("SET a = :s", {"ConditionExpression": "a = :n"}),  # fails: ConditionalCheckFailed
    ("SET a = :s, a = :n", {}),  # overlapping paths
    ("SET pk = :s", {}),  # the key
    ("SET a = nothere.deep", {}),  # no such attribute
    ("ADD a :n", {}),  # a string, not a number
    ("SET a = :undefined", {}),
    ("SET a = :s ADD", {}),  # not an expression
]
VALUES = {":s": {"S": "x"}, ":n": {"N": "2"}, ":l": {"L": [{"S": "q"}]}, ":empty": {"L": []},
          ":ss": {"SS": ["a", "b"]}, ":m": {"M": {}}}  # fmt: skip


def _apply_updates() -> list:
    outcomes = []
    with mock_aws():
        c = boto3.client("dynamodb", region_name="eu-south-1")
        c.create_table(
            TableName="u",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for twice in range(2):  # the second time from the parsed expressions kept
            for expression, extra in UPDATES:
                key = {"pk": {"S": str(twice)}}  # one item, changed by each update in turn
                names = {"#n": "count"} if "#n" in expression else {}
                text = expression + " " + extra.get("ConditionExpression", "")
                used = {k: v for k, v in VALUES.items() if re.search(re.escape(k) + r"\b", text)}
                try:
                    c.update_item(
                        TableName="u", Key=key, UpdateExpression=expression, ReturnValues="ALL_NEW",
                        **({"ExpressionAttributeNames": names} if names else {}),
                        **({"ExpressionAttributeValues": used} if used else {}), **extra,
                    )  # fmt: skip
                    outcomes.append(("ok", c.get_item(TableName="u", Key=key, ConsistentRead=True)["Item"]))
                except c.exceptions.ClientError as error:
                    outcomes.append((error.response["Error"]["Code"], error.response["Error"]["Message"]))
            c.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": "u",
                            "Key": {"pk": {"S": str(twice)}},
                            "UpdateExpression": "ADD #n :n",
                            "ExpressionAttributeNames": {"#n": "t"},
                            "ExpressionAttributeValues": {":n": {"N": "1"}},
                        }
                    }
                ]  # fmt: skip
            )
        outcomes.append(sorted(map(str, c.scan(TableName="u")["Items"])))
    return outcomes


def test_updates_apply_and_fail_as_moto_s_own_do(monkeypatch):
    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from local.aws import _parsed_update_expressions

    _parsed_update_expressions()
    ours = _apply_updates()
    monkeypatch.setattr(UpdateExpressionParser, "make", UpdateExpressionParser._pecflow_moto_make)
    monkeypatch.setattr(validators, "deepcopy", validators._pecflow_moto_deepcopy)
    monkeypatch.setattr(
        DepthFirstTraverser, "traverse_node_recursively", DepthFirstTraverser._pecflow_moto_traverse
    )
    assert _apply_updates() == ours
    codes = [outcome[0] for outcome in ours[: len(UPDATES)]]
    assert codes.count("ok") >= 6 and {"ConditionalCheckFailedException", "ValidationException"} <= set(codes)
