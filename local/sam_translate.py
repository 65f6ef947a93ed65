"""Expand a SAM template into CloudFormation with SAM's own translator, offline.

Runs in the SAM venv (aws-sam-translator pins its own boto3 and pydantic), as a script:

    .venv-sam/bin/python local/sam_translate.py template.yaml --region eu-south-1 \
        --code '{"CoreLayer": "s3://bucket/core.zip", ...}' --parameters '{"PollSchedule": "rate(5 minutes)"}'

`--code` gives the S3 location of every function's CodeUri and layer's ContentUri, as
`sam package` would write them; a function or layer without one is an error. Prints the
CloudFormation template as JSON on stdout. Needs no AWS credentials and no network: the
region is given (SAM would ask boto3 for it), and AWS managed policies are looked up in the
map SAM bundles; a policy name it does not know is an error instead of a call to IAM.
Imports only the standard library, PyYAML and the SAM packages (not pecflow).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CODE_PROPERTY = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


class OfflineManagedPolicies:
    """The `managed_policy_loader` SAM calls only for a policy name missing from its bundled
    map (the real loader lists IAM policies over the network)."""

    def load(self) -> dict[str, str]:
        raise SystemExit(
            "the template names an AWS managed policy that SAM's bundled map does not know: "
            "translating it would need IAM (write its ARN instead)"
        )


def with_code_locations(template: dict, code: dict[str, str]) -> dict:
    missing = []
    for logical_id, resource in template.get("Resources", {}).items():
        prop = CODE_PROPERTY.get(resource.get("Type"))
        if prop is None or prop not in resource.get("Properties", {}):
            continue
        if logical_id in code:
            resource["Properties"][prop] = code[logical_id]
        else:
            missing.append(f"{logical_id}.{prop}")
    if missing:
        raise SystemExit(f"no S3 location given for {', '.join(missing)}")
    return template


def translate(template_path: Path, region: str, code: dict[str, str], parameters: dict) -> dict:
    import boto3
    from samcli.yamlhelper import yaml_parse
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = with_code_locations(yaml_parse(template_path.read_text(encoding="utf-8")), code)
    # what samtranslator.translator.transform.transform does, with a session for the region
    # (pseudo parameters, partition) instead of boto3's default one
    session = boto3.session.Session(region_name=region)
    translator = Translator(None, Parser(), boto_session=session)
    return translator.translate(
        template, parameter_values=parameters, get_managed_policy_map=OfflineManagedPolicies().load
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("--region", required=True)
    parser.add_argument("--code", default="{}", help="JSON: logical id -> s3://bucket/key")
    parser.add_argument("--parameters", default="{}", help="JSON: parameter name -> value")
    args = parser.parse_args(argv)
    from samtranslator.model.exceptions import InvalidDocumentException

    try:
        translated = translate(args.template, args.region, json.loads(args.code), json.loads(args.parameters))
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        print(f"SAM cannot translate {args.template}: {causes}", file=sys.stderr)
        return 1
    json.dump(translated, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
