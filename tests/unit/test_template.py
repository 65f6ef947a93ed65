"""What template.yaml promises beyond what cfn-lint checks: TLS-only buckets, a dead-letter path
that ends somewhere a person looks."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.template import load

TEMPLATE = load(Path(__file__).resolve().parents[2] / "template.yaml")


def _refers_to(value, logical_id: str) -> bool:
    return value in (
        {"Ref": logical_id},
        {"Fn::GetAtt": [logical_id, "Arn"]},
        {"Fn::GetAtt": f"{logical_id}.Arn"},
    )


@pytest.mark.parametrize("bucket", [r.logical_id for r in TEMPLATE.of_type("AWS::S3::Bucket")])
def test_every_bucket_refuses_requests_without_tls(bucket):
    policies = [
        r for r in TEMPLATE.of_type("AWS::S3::BucketPolicy") if _refers_to(r.properties["Bucket"], bucket)
    ]
    assert policies, f"{bucket} has no bucket policy"
    statements = [s for p in policies for s in p.properties["PolicyDocument"]["Statement"]]
    tls = [
        s
        for s in statements
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert tls, f"{bucket}: no Deny on aws:SecureTransport false"
    statement = tls[0]
    assert statement["Principal"] == "*" and statement["Action"] == "s3:*"
    resources = statement["Resource"]
    assert any(_refers_to(r, bucket) for r in resources), "the bucket itself"
    assert any(isinstance(r, dict) and "Fn::Sub" in r and r["Fn::Sub"].endswith("/*") for r in resources), (
        "and every object in it"
    )
