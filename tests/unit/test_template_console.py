"""What template.yaml promises of the web console's hosting and of the API's mailbox routes: a
private bucket only the console's CloudFront distribution reads (Origin Access Control), HTTPS
only, the API answering browsers from that distribution's address only, the outputs
`make deploy-console` reads; and the API function allowed the mailbox writes and reads its routes
do and nothing wider."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from local.template import Intrinsics, load, parameter_values
from tests.policy import Request, allows

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = load(REPO / "template.yaml")
TOOL = REPO / "tools" / "deploy_console.py"
ACCOUNT, REGION, STACK = "210987654321", "eu-south-1", "pecflow"
DISTRIBUTION, DOMAIN = "E2CONSOLE", "d1234abcd.cloudfront.net"
OTHER = "arn:aws:cloudfront::210987654321:distribution/E9OTHER"


def lookup(logical_id: str, attribute: str | None) -> Any:
    kind = TEMPLATE.resources[logical_id].type
    if kind == "AWS::S3::Bucket":
        name = f"{STACK}-{logical_id}-abc".lower()
        return {"Arn": f"arn:aws:s3:::{name}", "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com"}.get(
            attribute or "", name
        )
    if kind == "AWS::CloudFront::Distribution":
        return DOMAIN if attribute == "DomainName" else DISTRIBUTION
    if kind == "AWS::DynamoDB::Table":
        name = f"{STACK}-{logical_id}-abc"
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}" if attribute == "Arn" else name
    return f"{logical_id}.{attribute}" if attribute else f"{logical_id}-id"


STACK_OF = Intrinsics(
    TEMPLATE, stack_name=STACK, region=REGION, parameters=parameter_values(TEMPLATE), lookup=lookup,
    account_id=ACCOUNT,
)  # fmt: skip


def resolved(logical_id: str) -> dict:
    return STACK_OF.resolve(TEMPLATE.resources[logical_id].properties)


def test_the_console_bucket_is_private_and_read_by_its_distribution_only():
    bucket = resolved("ConsoleBucket")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    document = resolved("ConsoleBucketPolicy")["PolicyDocument"]
    # the TLS-only Deny is test_template.py's; here who may read, over TLS
    policy = {"Statement": [s for s in document["Statement"] if s.get("Sid") != "TlsOnly"]}
    name = lookup("ConsoleBucket", None)
    cloudfront = {"Service": "cloudfront.amazonaws.com"}
    own = {"AWS:SourceArn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{DISTRIBUTION}"}
    tls: dict[str, str] = {}
    assert allows(policy, Request(cloudfront, "s3:GetObject", f"arn:aws:s3:::{name}/index.html", own | tls))
    assert not allows(policy, Request(cloudfront, "s3:GetObject", f"arn:aws:s3:::{name}/index.html",
                                      {"AWS:SourceArn": OTHER} | tls))  # fmt: skip
    assert not allows(
        policy, Request(cloudfront, "s3:PutObject", f"arn:aws:s3:::{name}/index.html", own | tls)
    )
    assert not allows(policy, Request({"AWS": "*"}, "s3:GetObject", f"arn:aws:s3:::{name}/index.html", tls))


def test_the_distribution_serves_the_bucket_signed_and_over_https_only():
    config = resolved("ConsoleDistribution")["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == lookup("ConsoleBucket", "RegionalDomainName")
    assert origin["OriginAccessControlId"] == "ConsoleOriginAccessControl.Id"
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no legacy identity beside OAC
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https" and behaviour["AllowedMethods"] == [
        "GET",
        "HEAD",
    ]
    assert config["DefaultRootObject"] == "index.html"
    access = resolved("ConsoleOriginAccessControl")["OriginAccessControlConfig"]
    assert (access["OriginAccessControlOriginType"], access["SigningBehavior"]) == ("s3", "always")


def test_the_api_answers_browsers_from_the_console_address_only():
    cors = resolved("Api")["CorsConfiguration"]
    assert cors["AllowOrigins"] == [f"https://{DOMAIN}"]
    assert {"authorization", "content-type"} <= set(cors["AllowHeaders"])


def test_the_outputs_make_deploy_console_reads():
    spec = importlib.util.spec_from_file_location("deploy_console", TOOL)
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    outputs = STACK_OF.resolve(TEMPLATE.outputs)
    assert set(tool.NEEDED) <= set(outputs)
    assert outputs["ConsoleUrl"]["Value"] == f"https://{DOMAIN}/"
    assert outputs["ConsoleBucketName"]["Value"] == lookup("ConsoleBucket", None)


ROLE = f"arn:aws:iam::{ACCOUNT}:role/api"


def api_policy() -> dict:
    """The function role's own statements, as a policy whose principal is the role."""
    policies = TEMPLATE.function_properties("ApiFunction")["Policies"]
    statements = [s for p in STACK_OF.resolve(policies) if isinstance(p, dict) for s in p["Statement"]]
    return {"Statement": [{**s, "Principal": {"AWS": ROLE}} for s in statements]}


def test_the_api_function_may_keep_mailbox_passwords_of_its_own_stack_only():
    policy = api_policy()
    role = {"AWS": ROLE}
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{STACK}/mailbox/ufficio@pec.alfa.test-AbCdEf"
    assert allows(policy, Request(role, "secretsmanager:CreateSecret", secret))
    assert allows(policy, Request(role, "secretsmanager:PutSecretValue", secret))
    assert not allows(policy, Request(role, "secretsmanager:GetSecretValue", secret))  # written, never read
    assert not allows(policy, Request(role, "secretsmanager:DeleteSecret", secret))
    for elsewhere in (secret.replace(f"{STACK}/", "altro/"), secret.replace("/mailbox/", "/other/")):
        assert not allows(policy, Request(role, "secretsmanager:CreateSecret", elsewhere))


def test_the_api_function_writes_mailboxes_and_only_reads_the_quota():
    policy = api_policy()
    role = {"AWS": ROLE}
    mailboxes = lookup("MailboxesTable", "Arn")
    quota = lookup("QuotaTable", "Arn")
    assert allows(policy, Request(role, "dynamodb:UpdateItem", mailboxes))
    assert allows(policy, Request(role, "dynamodb:GetItem", quota))
    for action in ("dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:PutItem"):
        assert not allows(policy, Request(role, action, mailboxes)), action
    for action in ("dynamodb:UpdateItem", "dynamodb:PutItem"):
        assert not allows(policy, Request(role, action, quota)), action
