"""Put the built web console (console/dist, `make console`) into the stack's console bucket, with
its config.json written from the stack's outputs (the API's URL, the user pool's client), then
have CloudFront forget the old index.html and config.json. `make deploy-console` runs it:

    python tools/deploy_console.py --stack pecflow --region eu-south-1

Without --stack, the stack name and region of samconfig.toml's environment (--config-env, as
`make deploy` uses it). Hashed assets go first, config.json next, index.html last: a browser never
gets a page naming files that are not there yet. Older assets stay (pages already open use them).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "console" / "dist"
NEEDED = ("ApiUrl", "UserPoolClientId", "ConsoleBucketName", "ConsoleDistributionId", "ConsoleUrl")
IMMUTABLE = "public, max-age=31536000, immutable"  # assets/: their names change with their content


class DeployError(RuntimeError):
    """Said to the person deploying, without a traceback."""


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        found = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        raise DeployError(f"cannot read the stack {stack!r}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs") or []}
    missing = [name for name in NEEDED if name not in outputs]
    if missing:
        raise DeployError(
            f"the stack {stack!r} has no {', '.join(missing)} output: deploy the template first (make deploy)"
        )
    return outputs


def console_config(outputs: dict[str, str], region: str) -> dict[str, Any]:
    """What the console reads at start (console/src/api.js): the API, how to sign in to Cognito."""
    return {
        "api": outputs["ApiUrl"].rstrip("/"),
        "signIn": {
            "endpoint": f"https://cognito-idp.{region}.amazonaws.com/",
            "clientId": outputs["UserPoolClientId"],
            "issuerName": "pecflow",  # the name people see in their authenticator app
        },
    }


def _kind(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json", "image/svg+xml"):
        kind += "; charset=utf-8"
    return kind


def upload(s3: Any, bucket: str, dist: Path, config: dict[str, Any]) -> list[str]:
    """Every file of the build, then config.json, then index.html; the keys in the order put."""
    if not (dist / "index.html").is_file():
        raise DeployError(f"{dist / 'index.html'} is missing: build the console first (make console)")
    files = sorted(p for p in dist.rglob("*") if p.is_file() and p.name not in ("index.html", "config.json"))
    put = []
    for path in files:
        key = path.relative_to(dist).as_posix()
        cache = IMMUTABLE if key.startswith("assets/") else "no-cache"
        s3.put_object(
            Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=_kind(path), CacheControl=cache
        )
        put.append(key)
    s3.put_object(
        Bucket=bucket, Key="config.json", Body=json.dumps(config, indent=2).encode(),
        ContentType="application/json; charset=utf-8", CacheControl="no-store",
    )  # fmt: skip
    s3.put_object(
        Bucket=bucket, Key="index.html", Body=(dist / "index.html").read_bytes(),
        ContentType="text/html; charset=utf-8", CacheControl="no-cache",
    )  # fmt: skip
    return [*put, "config.json", "index.html"]


def invalidate(cloudfront: Any, distribution_id: str, reference: str) -> str:
    answer = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": 3, "Items": ["/", "/index.html", "/config.json"]},
            "CallerReference": reference,
        },
    )
    return str(answer["Invalidation"]["Id"])


def deploy(session: Any, stack: str, dist: Path = DIST) -> dict[str, Any]:
    region = session.region_name
    if not region:
        raise DeployError("no AWS region: pass --region (or set AWS_REGION)")
    outputs = stack_outputs(session.client("cloudformation"), stack)
    config = console_config(outputs, region)
    keys = upload(session.client("s3"), outputs["ConsoleBucketName"], dist, config)
    import uuid

    invalidation = invalidate(
        session.client("cloudfront"), outputs["ConsoleDistributionId"], uuid.uuid4().hex
    )
    return {"url": outputs["ConsoleUrl"], "files": keys, "config": config, "invalidation": invalidation}


def from_samconfig(env: str, path: Path = REPO / "samconfig.toml") -> tuple[str | None, str | None]:
    """The stack name and region `make deploy` saved for this environment, if any."""
    if not path.exists():
        return None, None
    config = tomllib.loads(path.read_text()).get(env, {})
    for part in ("deploy", "global"):
        values = config.get(part, {}).get("parameters", {})
        if values.get("stack_name"):
            return values["stack_name"], values.get("region")
    return None, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="the pecflow stack (default: samconfig.toml's)")
    parser.add_argument("--region", help="its region (default: samconfig.toml's, or the AWS configuration's)")
    parser.add_argument(
        "--config-env", default="default", help="samconfig.toml's environment (default: default)"
    )
    parser.add_argument("--dist", type=Path, default=DIST, help="the built console (default: console/dist)")
    args = parser.parse_args(argv)
    stack, region = args.stack, args.region
    if not stack:
        stack, saved_region = from_samconfig(args.config_env)
        region = region or saved_region
    if not stack:
        print("deploy-console: which stack? --stack NAME (or deploy once with make deploy)", file=sys.stderr)
        return 2
    import boto3

    try:
        done = deploy(boto3.session.Session(region_name=region), stack, args.dist)
    except DeployError as exc:
        print(f"deploy-console: {exc}", file=sys.stderr)
        return 1
    print(f"console: {len(done['files'])} files in place, config.json names {done['config']['api']}")
    print(
        f"CloudFront invalidation {done['invalidation']} under way (a minute or two); then open {done['url']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
