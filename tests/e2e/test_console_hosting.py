"""`make deploy-console` (tools/deploy_console.py) against the stack as CloudFormation creates it
(local/cloudformation.py, in moto): it reads the stack's outputs, puts the built console into the
console bucket with the right types and caching, writes config.json naming the stack's API and
user pool client, and asks CloudFront to forget the old index.html and config.json."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import boto3
import pytest

from local.cloudformation import TEMPLATE, deploy, sam_python

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        sam_python() is None, reason="the SAM venv (.venv-sam) is missing: SAM's translator lives there"
    ),
]
REGION = "eu-south-1"
TOOL = Path(__file__).resolve().parents[2] / "tools" / "deploy_console.py"


def tool():
    spec = importlib.util.spec_from_file_location("deploy_console", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_console_deployed_from_the_stack_outputs(tmp_path, capsys):
    from moto import mock_aws

    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(
        '<!doctype html><script type="module" src="/assets/index-a1b2.js"></script>'
    )
    (dist / "assets" / "index-a1b2.js").write_text("console.log('pecflow')")
    (dist / "assets" / "index-c3d4.css").write_text("body{}")
    deploy_console = tool()
    with mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto")
        stack = deploy(TEMPLATE, "pecflow-console", {}, REGION)
        session = boto3.session.Session(region_name=REGION)
        outputs = deploy_console.stack_outputs(session.client("cloudformation"), stack.stack_name)
        assert outputs["ConsoleUrl"].startswith("https://") and outputs["ConsoleUrl"].endswith(
            ".cloudfront.net/"
        )

        assert (
            deploy_console.main(["--stack", stack.stack_name, "--region", REGION, "--dist", str(dist)]) == 0
        )
        said = capsys.readouterr().out
        assert "4 files in place" in said and outputs["ConsoleUrl"] in said

        s3 = session.client("s3")
        bucket = outputs["ConsoleBucketName"]
        assert bucket == stack.resources["ConsoleBucket"][1]

        def head(key):
            found = s3.head_object(Bucket=bucket, Key=key)
            return found["ContentType"], found["CacheControl"]

        assert head("index.html") == ("text/html; charset=utf-8", "no-cache")
        assert head("assets/index-a1b2.js") == ("text/javascript; charset=utf-8", deploy_console.IMMUTABLE)
        assert head("assets/index-c3d4.css")[0] == "text/css; charset=utf-8"
        assert head("config.json") == ("application/json; charset=utf-8", "no-store")
        config = json.loads(s3.get_object(Bucket=bucket, Key="config.json")["Body"].read())
        client_id = stack.resources["UserPoolClient"][1]
        assert config == {
            "api": outputs["ApiUrl"].rstrip("/"),
            "signIn": {"endpoint": f"https://cognito-idp.{REGION}.amazonaws.com/", "clientId": client_id,
                       "issuerName": "pecflow"},
        }  # fmt: skip
        invalidations = session.client("cloudfront").list_invalidations(
            DistributionId=outputs["ConsoleDistributionId"]
        )["InvalidationList"]
        assert invalidations["Quantity"] == 1

        # a stack without the console's outputs, or no build: said plainly, nothing put
        assert deploy_console.main(["--stack", "no-such-stack", "--region", REGION, "--dist", str(dist)]) == 1
        assert "cannot read the stack 'no-such-stack'" in capsys.readouterr().err
        empty = tmp_path / "empty"
        empty.mkdir()
        assert (
            deploy_console.main(["--stack", stack.stack_name, "--region", REGION, "--dist", str(empty)]) == 1
        )
        assert "build the console first (make console)" in capsys.readouterr().err
