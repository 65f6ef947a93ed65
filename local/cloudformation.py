"""template.yaml deployed as `sam deploy` deploys it, into moto's CloudFormation, in this process.

    with mock_aws():
        stack = deploy(TEMPLATE, "pecflow-cfn", {"AlarmEmail": "ops@example.test"})
        stack.resources                      # logical id -> (type, physical id), as CloudFormation lists them
        stack.function("SenderFunction").invoke(event)   # the handler, with the function's own environment

The steps: every function's CodeUri and layer's ContentUri folder is zipped into a code bucket
(`sam package`); SAM's own translator expands the template (local/sam_translate.py, run in the
SAM venv: aws-sam-cli pins its own boto3 and pydantic); moto's CloudFormation creates the stack;
then what moto's CloudFormation skips is completed through the services' APIs, with the
properties of the translated template resolved by moto against the stack (MOTO_GAPS below).

In-process moto (`mock_aws`), not the moto server: completing the stack needs moto's own view of
it (its resolved resource map), and the handlers run in this process anyway.

Functions are created in moto (from the zips of their real folders, without their dependencies:
nothing runs them there). `DeployedFunction.invoke` runs the handler in this process as Lambda
would: `functions/<name>/app.py` imported under a name of its own, with the environment moto's
Lambda holds for the function (GetFunctionConfiguration) and nothing else of pecflow's.
The stack's event source mappings are disabled once created (they stay listed): the caller plays
Lambda's SQS poller, since moto's would run the function in Docker.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import WaiterError

from local.runner import import_handler_module

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
REGION = "eu-south-1"
ACCOUNT_ID = "123456789012"  # moto's default account
SAM_VENV = Path(os.environ.get("PECFLOW_SAM_VENV", REPO / ".venv-sam"))
TRANSLATE_SCRIPT = REPO / "local" / "sam_translate.py"

_CODE_PROPERTY = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
_SKIP_IN_ZIP = {"__pycache__", ".pytest_cache", ".mypy_cache"}

# Types moto's CloudFormation (moto/cloudformation/parsing.py: no model registered for them)
# skips with a warning. Each is created here through its service's API from the resolved
# properties, so the stack is complete and a wrong property (a bad reference, an ARN that is not
# one) still fails; a type missing from this map fails `deploy` with its name.
MOTO_GAPS: dict[str, str] = {
    "AWS::CloudWatch::Alarm": "cloudwatch PutMetricAlarm",
    "AWS::S3::BucketPolicy": "s3 PutBucketPolicy, without conditional Deny statements (moto ignores Condition)",
    "AWS::SNS::Subscription": "sns Subscribe",
    "AWS::SNS::TopicPolicy": "sns SetTopicAttributes Policy, for each topic",
    "AWS::SQS::QueuePolicy": "sqs SetQueueAttributes Policy, for each queue",
    "AWS::Scheduler::Schedule": "scheduler CreateSchedule",
    "AWS::Lambda::EventInvokeConfig": "lambda PutFunctionEventInvokeConfig",
    # created first after the stack (FIRST_AFTER), the others' references to them replaced by their values
    "AWS::CloudFront::OriginAccessControl": "cloudfront CreateOriginAccessControl, first after the stack",
    "AWS::CloudFront::Distribution": "cloudfront CreateDistribution, first after the stack",
    # created BEFORE the stack (PRECREATED): the stack's other resources refer to them, and moto
    # would resolve those references to nothing; the references are replaced by their values
    "AWS::Cognito::UserPool": "cognito-idp CreateUserPool and SetUserPoolMfaConfig, before the stack",
    "AWS::Cognito::UserPoolClient": "cognito-idp CreateUserPoolClient, before the stack",
    "AWS::SecretsManager::Secret": "secretsmanager CreateSecret (a generated value), before the stack",
    "AWS::ApiGatewayV2::Api": "apigatewayv2 CreateApi and CreateAuthorizer (its JWT authorizer), before the stack",
    "AWS::ApiGatewayV2::Stage": "apigatewayv2 CreateStage, before the stack",
}
PRECREATED = (
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::SecretsManager::Secret",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
)
# Properties of supported types that moto's CloudFormation ignores (AWS::S3::Bucket: it applies
# only BucketName, BucketEncryption and Tags); applied through the S3 API after creation.
BUCKET_PROPERTIES_APPLIED = (
    "VersioningConfiguration",
    "ObjectLockEnabled",
    "ObjectLockConfiguration",
    "PublicAccessBlockConfiguration",
    "NotificationConfiguration",
    "LifecycleConfiguration",
)


class DeployError(RuntimeError):
    """The template could not be translated or its stack not created."""


# --- package and translate ------------------------------------------------------------------------


def sam_python() -> Path | None:
    """The SAM venv's interpreter (`make lint` creates the venv), or None when it is absent."""
    python = SAM_VENV / "bin" / "python"
    return python if python.exists() else None


def code_folders(template_path: Path) -> dict[str, Path]:
    """Logical id -> the folder of every function's CodeUri and layer's ContentUri."""
    resources = _sam_resources(template_path)
    folders = {}
    for logical_id, resource in resources.items():
        prop = _CODE_PROPERTY.get(resource.get("Type", ""))
        uri = (resource.get("Properties") or {}).get(prop) if prop else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            folders[logical_id] = (template_path.parent / uri).resolve()
    return folders


def package(folders: dict[str, Path], s3: Any, bucket: str) -> dict[str, str]:
    """Zip each folder into the bucket, as `sam package` uploads the code; logical id -> s3:// URI."""
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    locations = {}
    for logical_id, folder in folders.items():
        key = f"{logical_id}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=_zip(folder))
        locations[logical_id] = f"s3://{bucket}/{key}"
    return locations


def translate(template_path: Path, code: dict[str, str], parameters: dict[str, Any], region: str) -> dict:
    """The CloudFormation template SAM's translator makes of the SAM template (offline)."""
    python = sam_python()
    if python is None:
        raise DeployError(f"no SAM venv at {SAM_VENV} (`make lint` creates it)")
    command = [
        str(python),
        str(TRANSLATE_SCRIPT),
        str(template_path),
        "--region",
        region,
        "--code",
        json.dumps(code),
        "--parameters",
        json.dumps(parameters),
    ]
    # no AWS variables: the translation must not need credentials or reach AWS
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    if done.returncode != 0:
        raise DeployError(f"SAM translation failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


# --- the stack --------------------------------------------------------------------------------------


@dataclass
class Deployed:
    stack_name: str
    region: str
    template: dict  # the translated template, as created (after `for_moto`)
    resources: dict[str, tuple[str, str]]  # logical id -> (type, physical id), from ListStackResources
    completed: dict[str, str]  # logical id -> how it was created outside moto's CloudFormation
    not_created: dict[str, str]  # logical id -> why (a condition that is false)
    code: dict[str, Path]  # function logical id -> its CodeUri folder
    skipped_by_moto: int  # entries moto's ListStackResources shows blank: the resources it skipped
    notes: list[str] = field(default_factory=list)  # what was changed for moto, and why
    precreated: int = 0  # of `completed`, the resources made before the stack (PRECREATED)
    _functions: dict[str, DeployedFunction] = field(default_factory=dict, repr=False)

    def physical(self, logical_id: str) -> str:
        return self.resources[logical_id][1]

    def of_type(self, resource_type: str) -> list[str]:
        return sorted(k for k, (t, _) in self.resources.items() if t == resource_type)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region)

    def function(self, logical_id: str) -> DeployedFunction:
        """The function, warm after its first invocation (one module per function)."""
        if logical_id not in self.code:
            raise KeyError(f"{logical_id} is not a function of the stack")
        if logical_id not in self._functions:
            self._functions[logical_id] = DeployedFunction(
                self, logical_id, self.physical(logical_id), self.code[logical_id]
            )
        return self._functions[logical_id]

    def listing(self) -> str:
        """The resources, one a line, as the test prints them."""
        lines = []
        for logical_id, (kind, physical) in sorted(self.resources.items(), key=lambda i: (i[1][0], i[0])):
            how = f"  [{self.completed[logical_id]}]" if logical_id in self.completed else ""
            lines.append(f"{kind:34} {logical_id:44} {physical}{how}")
        lines += [f"{'(not created)':34} {k:44} {why}" for k, why in sorted(self.not_created.items())]
        return "\n".join(lines)


def deploy(
    template_path: Path = TEMPLATE,
    stack_name: str = "pecflow-cfn",
    parameters: dict[str, Any] | None = None,
    region: str = REGION,
) -> Deployed:
    """Package, translate and create the whole stack in moto (inside `mock_aws`)."""
    parameters = {k: str(v) for k, v in (parameters or {}).items()}
    folders = code_folders(template_path)
    s3 = boto3.client("s3", region_name=region)
    code_bucket = f"{stack_name}-code-{uuid.uuid4().hex[:8]}"
    translated = translate(template_path, package(folders, s3, code_bucket), parameters, region)
    unknown = sorted(
        {r["Type"] for r in translated["Resources"].values() if not _moto_creates(r["Type"])} - set(MOTO_GAPS)
    )
    if unknown:
        raise DeployError(f"moto's CloudFormation cannot create {', '.join(unknown)}: add it to MOTO_GAPS")
    template, notes = for_moto(translated, stack_name)
    precreated, moto_template = _precreate(template, parameters, stack_name, region)
    held = _hold_outputs(moto_template)

    cfn = boto3.client("cloudformation", region_name=region)
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(moto_template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    try:
        cfn.get_waiter("stack_create_complete").wait(StackName=stack_name, WaiterConfig={"Delay": 1})
    except WaiterError:
        failed = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}"
            for e in cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
            if e["ResourceStatus"].endswith("FAILED")
        ]
        raise DeployError(
            f"stack {stack_name} not created: {'; '.join(failed) or 'no reason given'}"
        ) from None

    created_here, not_created, made_after = _complete(stack_name, region, moto_template)
    _add_outputs(stack_name, region, held, made_after)
    listed = _stack_resources(cfn, stack_name)
    resources = {
        r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
        for r in listed
        if r["ResourceStatus"] == "CREATE_COMPLETE" and r["LogicalResourceId"]
    }
    # moto lists each resource it skipped as an entry with no id and no type
    blank = sum(1 for r in listed if not r["LogicalResourceId"])
    resources.update(created_here)
    resources.update({k: (kind, physical) for k, (kind, physical, _) in precreated.items()})
    completed = {k: f"created by the harness: {MOTO_GAPS[kind]}" for k, (kind, _) in created_here.items()}
    completed.update(
        {k: f"created by the harness: {MOTO_GAPS[kind]}" for k, (kind, _, _) in precreated.items()}
    )
    functions = {
        k: folder
        for k, folder in folders.items()
        if template["Resources"].get(k, {}).get("Type") == "AWS::Lambda::Function"
    }
    stack = Deployed(
        stack_name,
        region,
        template,
        resources,
        completed,
        not_created,
        functions,
        blank,
        notes,
        len(precreated),
    )
    _disable_event_source_mappings(stack)
    return stack


def for_moto(template: dict, stack_name: str) -> tuple[dict, list[str]]:
    """The translated template with what moto needs to create it as CloudFormation does."""
    template = json.loads(json.dumps(template))
    notes = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        # CloudFormation names a FIFO queue <stack>-<LogicalId>-<suffix>.fifo; moto leaves out
        # ".fifo" and then refuses its own name
        if (
            resource["Type"] == "AWS::SQS::Queue"
            and _true(props.get("FifoQueue"))
            and "QueueName" not in props
        ):
            suffix = uuid.uuid4().hex[:12].upper()
            props["QueueName"] = f"{stack_name}-{logical_id}"[: 80 - len(suffix) - 6] + f"-{suffix}.fifo"
            notes.append(f"{logical_id}: FIFO queue named {props['QueueName']} (moto omits .fifo)")
    return template, notes


# --- what moto's CloudFormation skips -----------------------------------------------------------------


def _moto_creates(resource_type: str) -> bool:
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    return resource_type not in NULL_MODELS and resource_type in get_model_map()


def _resource_map(stack_name: str, region: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends[ACCOUNT_ID][region].get_stack(stack_name).resource_map


def _hold_outputs(template: dict) -> dict[str, Any]:
    """The outputs naming a FIRST_AFTER resource, taken out of the template moto gets (it would
    refuse the stack: the resource is not in it); `_add_outputs` puts them back once it exists."""
    first_after = {k for k, r in template["Resources"].items() if r["Type"] in FIRST_AFTER}
    held = {
        key: output
        for key, output in (template.get("Outputs") or {}).items()
        if any(re.search(rf"\b{k}\b", json.dumps(output)) for k in first_after)
    }
    for key in held:
        del template["Outputs"][key]
    return held


def _add_outputs(stack_name: str, region: str, held: dict[str, Any], made: dict) -> None:
    from moto.cloudformation.models import cloudformation_backends

    outputs = cloudformation_backends[ACCOUNT_ID][region].get_stack(stack_name).output_map
    for key, output in held.items():
        outputs._output_json_map[key] = _substitute(output, made)


def _complete(
    stack_name: str, region: str, template: dict
) -> tuple[dict[str, tuple[str, str]], dict[str, str], dict[str, tuple[str, str, dict[str, str]]]]:
    """Create the resources moto skipped and apply the bucket properties it ignored.
    Returns (logical id -> (type, physical id) created here, logical id -> why not created, the
    FIRST_AFTER resources' attributes)."""
    from moto.cloudformation.parsing import clean_json

    resource_map = _resource_map(stack_name, region)
    completed: dict[str, tuple[str, str]] = {}
    not_created: dict[str, str] = {}
    made: dict[str, tuple[str, str, dict[str, str]]] = {}  # FIRST_AFTER: their attributes
    resources = template["Resources"]
    order = sorted(
        resources,
        key=lambda k: (
            FIRST_AFTER.index(t) if (t := resources[k]["Type"]) in FIRST_AFTER else len(FIRST_AFTER)
        ),
    )
    for logical_id in order:
        resource = resources[logical_id]
        condition = resource.get("Condition")
        if condition and not resource_map.lazy_condition_map[condition]:
            not_created[logical_id] = f"condition {condition} is false"
            continue
        kind = resource["Type"]
        if kind in FIRST_AFTER:
            props = clean_json(_substitute(resource.get("Properties") or {}, made), resource_map)
            attributes = _AFTER_CREATORS[kind](region, f"{stack_name}-{logical_id}", props)
            made[logical_id] = (kind, attributes["Ref"], attributes)
            completed[logical_id] = (kind, attributes["Ref"])
            continue
        resource = {**resource, "Properties": _substitute(resource.get("Properties") or {}, made)}
        if kind == "AWS::S3::Bucket":
            props = clean_json(resource.get("Properties") or {}, resource_map)
            _apply_bucket_properties(region, resource_map[logical_id].name, props)
        elif kind in MOTO_GAPS:
            props = clean_json(resource.get("Properties") or {}, resource_map)
            completed[logical_id] = (kind, _CREATORS[kind](region, f"{stack_name}-{logical_id}", props))
    return completed, not_created, made


# --- made before the stack, the stack's references to them replaced by their values ---------------
class _Unresolved(Exception):
    pass


def _precreate(
    template: dict, parameters: dict[str, str], stack_name: str, region: str
) -> tuple[dict[str, tuple[str, str, dict[str, str]]], dict]:
    """Create the PRECREATED resources (in the order their references need) and return them,
    (logical id -> (type, physical id, attributes incl. "Ref")), with the template moto gets:
    without them, every Ref, GetAtt and ${} to them replaced by its value."""
    values = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::StackName": stack_name,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }
    for name, spec in (template.get("Parameters") or {}).items():
        if name in parameters:
            values[name] = parameters[name]
        elif "Default" in spec:
            values[name] = str(spec["Default"])
    pending = {k: r for k, r in template["Resources"].items() if r["Type"] in PRECREATED}
    made: dict[str, tuple[str, str, dict[str, str]]] = {}
    while pending:
        progress = False
        for logical_id, resource in list(pending.items()):
            kind = resource["Type"]
            props = resource.get("Properties") or {}
            if kind == "AWS::ApiGatewayV2::Api":  # its authorizers only: the routes name the function
                props = {"Body": {"components": (props.get("Body") or {}).get("components", {})}}
            try:
                resolved = _resolve(props, values, made)
            except _Unresolved:
                continue
            attributes = _PRECREATORS[kind](region, f"{stack_name}-{logical_id}", resolved)
            made[logical_id] = (kind, attributes["Ref"], attributes)
            del pending[logical_id]
            progress = True
        if not progress:
            raise DeployError(
                f"cannot create {', '.join(pending)} before the stack: they refer to its resources"
            )
    moto_template = json.loads(json.dumps(template))
    for logical_id in made:
        del moto_template["Resources"][logical_id]
    for resource in moto_template["Resources"].values():
        if isinstance(resource.get("DependsOn"), list):
            resource["DependsOn"] = [d for d in resource["DependsOn"] if d not in made]
        elif resource.get("DependsOn") in made:
            del resource["DependsOn"]
    for section in ("Resources", "Outputs"):
        if section in moto_template:
            moto_template[section] = _substitute(moto_template[section], made)
    return made, moto_template


_SUB = re.compile(r"\$\{([^}!]+)\}")


def _value(name: str, values: dict[str, str], made: dict) -> str:
    logical, _, attribute = name.partition(".")
    if logical in made:
        attributes = made[logical][2]
        return attributes[attribute or "Ref"]
    if not attribute and name in values:
        return values[name]
    raise _Unresolved(name)


def _resolve(value: Any, values: dict[str, str], made: dict) -> Any:
    if isinstance(value, list):
        return [_resolve(v, values, made) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _value(arg, values, made)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return _value(f"{logical}.{attribute}", values, made)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            local = {k: str(_resolve(v, values, made)) for k, v in variables.items()}
            return _SUB.sub(
                lambda m: local[m.group(1)] if m.group(1) in local else _value(m.group(1), values, made), text
            )
    return {k: _resolve(v, values, made) for k, v in value.items()}


def _substitute(value: Any, made: dict) -> Any:
    """Replace references to the resources made before the stack, leave all others to moto."""
    if isinstance(value, list):
        return [_substitute(v, made) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in made:
            return made[arg][2]["Ref"]
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            if logical in made:
                return made[logical][2][attribute]
        if key == "Fn::Sub":
            text, variables = (arg, None) if isinstance(arg, str) else (arg[0], arg[1])
            names = set(variables or {})

            def replace(match: re.Match) -> str:
                name = match.group(1)
                logical, _, attribute = name.partition(".")
                if name not in names and logical in made:
                    return made[logical][2][attribute or "Ref"]
                return match.group(0)

            text = _SUB.sub(replace, text)
            return {"Fn::Sub": text if variables is None else [text, _substitute(variables, made)]}
    return {k: _substitute(v, made) for k, v in value.items()}


def _user_pool(region: str, name: str, p: dict) -> dict[str, str]:
    cognito = boto3.client("cognito-idp", region_name=region)
    request = {k: p[k] for k in ("Policies", "AutoVerifiedAttributes", "AdminCreateUserConfig",
                                 "UsernameConfiguration", "AccountRecoverySetting", "DeletionProtection") if k in p}  # fmt: skip
    pool = cognito.create_user_pool(PoolName=p.get("UserPoolName", name), **request)["UserPool"]
    if p.get("MfaConfiguration", "OFF") != "OFF":
        cognito.set_user_pool_mfa_config(
            UserPoolId=pool["Id"],
            SoftwareTokenMfaConfiguration={"Enabled": "SOFTWARE_TOKEN_MFA" in p.get("EnabledMfas", [])},
            MfaConfiguration=p["MfaConfiguration"],
        )
    provider = f"cognito-idp.{region}.amazonaws.com/{pool['Id']}"
    return {
        "Ref": pool["Id"],
        "Arn": pool["Arn"],
        "ProviderName": provider,
        "ProviderURL": f"https://{provider}",
    }


def _user_pool_client(region: str, name: str, p: dict) -> dict[str, str]:
    keys = ("ClientName", "ExplicitAuthFlows", "GenerateSecret", "PreventUserExistenceErrors",
            "AccessTokenValidity", "IdTokenValidity", "RefreshTokenValidity", "TokenValidityUnits")  # fmt: skip
    request = {k: p[k] for k in keys if k in p}
    for key in ("AccessTokenValidity", "IdTokenValidity", "RefreshTokenValidity"):
        if key in request:
            request[key] = int(request[key])
    if "GenerateSecret" in request:
        request["GenerateSecret"] = _true(request["GenerateSecret"])
    client = boto3.client("cognito-idp", region_name=region).create_user_pool_client(
        UserPoolId=p["UserPoolId"], **request
    )["UserPoolClient"]
    return {"Ref": client["ClientId"], "Name": client["ClientName"]}


def _secret(region: str, name: str, p: dict) -> dict[str, str]:
    import secrets as random

    generate = p.get("GenerateSecretString") or {}
    value = p.get("SecretString") or random.token_urlsafe(int(generate.get("PasswordLength", 32)))
    created = boto3.client("secretsmanager", region_name=region).create_secret(
        Name=p.get("Name", f"{name}-{uuid.uuid4().hex[:6]}"),
        Description=p.get("Description", ""),
        SecretString=value,
    )
    return {"Ref": created["ARN"], "Id": created["ARN"]}


def _http_api(region: str, name: str, p: dict) -> dict[str, str]:
    client = boto3.client("apigatewayv2", region_name=region)
    api = client.create_api(Name=name, ProtocolType="HTTP")
    schemes = ((p.get("Body") or {}).get("components") or {}).get("securitySchemes") or {}
    for scheme_name, scheme in schemes.items():
        authorizer = scheme.get("x-amazon-apigateway-authorizer") or {}
        if authorizer.get("type") == "jwt":
            jwt = authorizer["jwtConfiguration"]
            client.create_authorizer(
                ApiId=api["ApiId"],
                AuthorizerType="JWT",
                IdentitySource=[authorizer["identitySource"]],
                JwtConfiguration={"Audience": list(jwt.get("audience", [])), "Issuer": jwt["issuer"]},
                Name=scheme_name,
            )
    return {"Ref": api["ApiId"], "ApiEndpoint": api["ApiEndpoint"], "ApiId": api["ApiId"]}


def _http_stage(region: str, name: str, p: dict) -> dict[str, str]:
    boto3.client("apigatewayv2", region_name=region).create_stage(
        ApiId=p["ApiId"], StageName=p["StageName"], AutoDeploy=_true(p.get("AutoDeploy", False))
    )
    return {"Ref": p["StageName"]}


_PRECREATORS: dict[str, Callable[[str, str, dict], dict[str, str]]] = {
    "AWS::Cognito::UserPool": _user_pool,
    "AWS::Cognito::UserPoolClient": _user_pool_client,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::ApiGatewayV2::Api": _http_api,
    "AWS::ApiGatewayV2::Stage": _http_stage,
}


def _alarm(region: str, name: str, p: dict) -> str:
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    request = {k: v for k, v in p.items() if k not in ("AlarmName",)}
    request["AlarmName"] = p.get("AlarmName", name)
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in request:
            request[key] = int(request[key])
    if "Threshold" in request:
        request["Threshold"] = float(request["Threshold"])
    if "Metrics" in request:
        request["Metrics"] = [_metric_query(m) for m in request["Metrics"]]
    cloudwatch.put_metric_alarm(**request)
    return request["AlarmName"]


def _metric_query(query: dict) -> dict:
    query = dict(query)
    stat = query.get("MetricStat")
    if stat and "Period" in stat:
        query["MetricStat"] = {**stat, "Period": int(stat["Period"])}
    if "Period" in query:
        query["Period"] = int(query["Period"])
    return query


def _bucket_policy(region: str, name: str, p: dict) -> str:
    """moto evaluates bucket policies without their Condition: a conditional Deny (TLS only)
    would refuse every request. Those statements are checked (on this bucket), not put."""
    s3 = boto3.client("s3", region_name=region)
    s3.head_bucket(Bucket=p["Bucket"])
    document = json.loads(_json(p["PolicyDocument"]))
    statements = document.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    for statement in statements:
        resources = statement.get("Resource", [])
        for resource in resources if isinstance(resources, list) else [resources]:
            if not resource.startswith(f"arn:aws:s3:::{p['Bucket']}"):
                raise DeployError(
                    f"{name}: statement {statement.get('Sid')} names {resource}, not the bucket"
                )
    kept = [st for st in statements if not (st.get("Effect") == "Deny" and st.get("Condition"))]
    if kept:
        s3.put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps({**document, "Statement": kept}))
    return p["Bucket"]


def _subscription(region: str, name: str, p: dict) -> str:
    extra = {k: _json(v) for k, v in p.items() if k in ("FilterPolicy", "RedrivePolicy")}
    if "RawMessageDelivery" in p:
        extra["RawMessageDelivery"] = str(p["RawMessageDelivery"]).lower()
    return boto3.client("sns", region_name=region).subscribe(
        TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"], Attributes=extra
    )["SubscriptionArn"]


def _topic_policy(region: str, name: str, p: dict) -> str:
    sns = boto3.client("sns", region_name=region)
    for topic in p["Topics"]:
        sns.set_topic_attributes(
            TopicArn=topic, AttributeName="Policy", AttributeValue=_json(p["PolicyDocument"])
        )
    return name


def _queue_policy(region: str, name: str, p: dict) -> str:
    sqs = boto3.client("sqs", region_name=region)
    for queue in p["Queues"]:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": _json(p["PolicyDocument"])})
    return name


def _schedule(region: str, name: str, p: dict) -> str:
    request = {k: v for k, v in p.items() if k != "Name"}
    request["Name"] = p.get("Name", name)[:64]
    window = request.get("FlexibleTimeWindow", {})
    if "MaximumWindowInMinutes" in window:
        request["FlexibleTimeWindow"] = {
            **window,
            "MaximumWindowInMinutes": int(window["MaximumWindowInMinutes"]),
        }
    return boto3.client("scheduler", region_name=region).create_schedule(**request)["ScheduleArn"]


def _event_invoke_config(region: str, name: str, p: dict) -> str:
    request = {k: v for k, v in p.items() if k != "Qualifier"}
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in request:
            request[key] = int(request[key])
    boto3.client("lambda", region_name=region).put_function_event_invoke_config(
        Qualifier=p.get("Qualifier", "$LATEST"), **request
    )
    return f"{p['FunctionName']}:{p.get('Qualifier', '$LATEST')}"


def _origin_access_control(region: str, name: str, p: dict) -> dict[str, str]:
    config = dict(p["OriginAccessControlConfig"])
    created = boto3.client("cloudfront", region_name=region).create_origin_access_control(
        OriginAccessControlConfig={"Description": "", **config}
    )
    return {"Ref": created["OriginAccessControl"]["Id"], "Id": created["OriginAccessControl"]["Id"]}


def _distribution(region: str, name: str, p: dict) -> dict[str, str]:
    """The distribution with its origins and default behaviour (what moto models of it); the
    origin's bucket must exist, its access control too."""
    config = p["DistributionConfig"]
    client = boto3.client("cloudfront", region_name=region)
    origins = []
    for origin in config["Origins"]:
        bucket = origin["DomainName"].split(".s3.", 1)[0]
        boto3.client("s3", region_name=region).head_bucket(Bucket=bucket)
        if origin.get("OriginAccessControlId"):
            client.get_origin_access_control(Id=origin["OriginAccessControlId"])
        origins.append({"Id": origin["Id"], "DomainName": origin["DomainName"],
                        "S3OriginConfig": {"OriginAccessIdentity": ""}})  # fmt: skip
    behaviour = config["DefaultCacheBehavior"]
    created = client.create_distribution(
        DistributionConfig={
            "CallerReference": name,
            "Comment": config.get("Comment", ""),
            "Enabled": _true(config["Enabled"]),
            "DefaultRootObject": config.get("DefaultRootObject", ""),
            "Origins": {"Quantity": len(origins), "Items": origins},
            "DefaultCacheBehavior": {
                "TargetOriginId": behaviour["TargetOriginId"],
                "ViewerProtocolPolicy": behaviour["ViewerProtocolPolicy"],
                "CachePolicyId": behaviour["CachePolicyId"],
            },
        }
    )["Distribution"]
    return {"Ref": created["Id"], "Id": created["Id"], "DomainName": created["DomainName"]}


FIRST_AFTER = ("AWS::CloudFront::OriginAccessControl", "AWS::CloudFront::Distribution")
_AFTER_CREATORS: dict[str, Callable[[str, str, dict], dict[str, str]]] = {
    "AWS::CloudFront::OriginAccessControl": _origin_access_control,
    "AWS::CloudFront::Distribution": _distribution,
}

_CREATORS: dict[str, Callable[[str, str, dict], str]] = {
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::SNS::Subscription": _subscription,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::Scheduler::Schedule": _schedule,
    "AWS::Lambda::EventInvokeConfig": _event_invoke_config,
}


def _apply_bucket_properties(region: str, bucket: str, p: dict) -> None:
    s3 = boto3.client("s3", region_name=region)
    lock = p.get("ObjectLockConfiguration")
    versioning = (p.get("VersioningConfiguration") or {}).get("Status")
    if versioning or _true(p.get("ObjectLockEnabled")):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning or "Enabled"})
    if _true(p.get("ObjectLockEnabled")):
        configuration: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
        retention = ((lock or {}).get("Rule") or {}).get("DefaultRetention")
        if retention:
            configuration["Rule"] = {
                "DefaultRetention": {
                    k: (int(v) if k in ("Days", "Years") else v) for k, v in retention.items()
                }
            }
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=configuration)
    if p.get("PublicAccessBlockConfiguration"):
        block = {k: _true(v) for k, v in p["PublicAccessBlockConfiguration"].items()}
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    if p.get("LifecycleConfiguration"):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=_lifecycle(p["LifecycleConfiguration"])
        )
    if p.get("NotificationConfiguration"):
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=_notifications(p["NotificationConfiguration"])
        )


def _notifications(cfn: dict) -> dict:
    """CloudFormation's NotificationConfiguration in the S3 API's shape."""
    api: dict[str, list] = {}
    for cfn_key, api_key, target, api_target in (
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
    ):
        for item in cfn.get(cfn_key, []):
            entry: dict[str, Any] = {api_target: item[target], "Events": [item["Event"]]}
            rules = ((item.get("Filter") or {}).get("S3Key") or {}).get("Rules")
            if rules:
                entry["Filter"] = {
                    "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
                }
            api.setdefault(api_key, []).append(entry)
    return api


def _lifecycle(cfn: dict) -> dict:
    rules: list[dict] = []
    for rule in cfn.get("Rules", []):
        api: dict[str, Any] = {"ID": rule.get("Id", f"rule-{len(rules)}"), "Status": rule["Status"]}
        api["Filter"] = {"Prefix": rule.get("Prefix", "")}
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            days = rule["NoncurrentVersionExpiration"].get("NoncurrentDays")
            api["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(days)}
        if "AbortIncompleteMultipartUpload" in rule:
            days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
        rules.append(api)
    return {"Rules": rules}


def _disable_event_source_mappings(stack: Deployed) -> None:
    aws_lambda = stack.client("lambda")
    for logical_id in stack.of_type("AWS::Lambda::EventSourceMapping"):
        aws_lambda.update_event_source_mapping(UUID=stack.physical(logical_id), Enabled=False)


# --- the functions ------------------------------------------------------------------------------------------

# pecflow's settings and the local stack's own variables: removed from the environment while a
# handler runs, so it sees only what its function's configuration gives it
_PECFLOW_PREFIXES = ("POWERTOOLS_", "PECFLOW_", "AWS_ENDPOINT_URL")


@dataclass
class DeployedFunction:
    stack: Deployed
    logical_id: str
    name: str
    code: Path
    _handler: Callable | None = field(default=None, repr=False)

    def configuration(self) -> dict:
        return self.stack.client("lambda").get_function_configuration(FunctionName=self.name)

    def environment(self) -> dict[str, str]:
        """What the Lambda runtime gives the handler: the function's variables, its region and
        (fake) credentials."""
        variables = self.configuration().get("Environment", {}).get("Variables", {})
        return {
            "AWS_REGION": self.stack.region,
            "AWS_DEFAULT_REGION": self.stack.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            # a Number parameter's Ref is text for CloudFormation and Lambda; moto keeps the number
            **{name: str(value) for name, value in variables.items()},
        }

    def invoke(self, event: dict, timeout: float | None = None) -> Any:
        configuration = self.configuration()
        with self._environ(self.environment()):
            handler = self._load(configuration["Handler"])
            return handler(event, LambdaContext.of(configuration, timeout))

    def event_sources(self) -> list[dict]:
        """The function's event source mappings (disabled: the caller drives them)."""
        return self.stack.client("lambda").list_event_source_mappings(FunctionName=self.name)[
            "EventSourceMappings"
        ]

    def _load(self, handler: str) -> Callable:
        if self._handler is None:
            module_path, _, attribute = handler.rpartition(".")
            file = self.code / (module_path.replace(".", "/") + ".py")
            name = f"_pecflow_cfn_{self.stack.stack_name.replace('-', '_')}_{self.logical_id}"
            module = import_handler_module(name, file, module_path)
            self._handler = getattr(module, attribute)
        return self._handler

    @staticmethod
    @contextmanager
    def _environ(variables: dict[str, str]) -> Iterator[None]:
        from pecflow.config import Config

        settings = {name.upper() for name in Config.__dataclass_fields__}
        saved = dict(os.environ)
        for key in list(os.environ):
            if key in settings or key.startswith(_PECFLOW_PREFIXES) or key.startswith("AWS_"):
                del os.environ[key]
        os.environ.update(variables)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


@dataclass
class LambdaContext:
    """The context the Python runtime passes, for a function's configuration."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float
    function_version: str = "$LATEST"

    @classmethod
    def of(cls, configuration: dict, timeout: float | None = None) -> LambdaContext:
        import time

        name = configuration["FunctionName"]
        return cls(
            function_name=name,
            invoked_function_arn=configuration["FunctionArn"],
            memory_limit_in_mb=str(configuration["MemorySize"]),
            aws_request_id=str(uuid.uuid4()),
            log_group_name=configuration.get("LoggingConfig", {}).get("LogGroup", f"/aws/lambda/{name}"),
            log_stream_name=f"cfn/[$LATEST]{uuid.uuid4().hex}",
            deadline=time.monotonic() + (timeout or configuration["Timeout"]),
        )

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self.deadline - time.monotonic()) * 1000))


# --- helpers ------------------------------------------------------------------------------------------------


def _sam_resources(template_path: Path) -> dict:
    from local.template import load_yaml

    return load_yaml(template_path.read_text(encoding="utf-8")).get("Resources", {})


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not _SKIP_IN_ZIP.intersection(path.relative_to(folder).parts):
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _stack_resources(cfn: Any, stack_name: str) -> list[dict]:
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
    return [r for page in pages for r in page["StackResourceSummaries"]]


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
