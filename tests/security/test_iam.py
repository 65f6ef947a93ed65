"""Each function's IAM policy equals the calls its code makes, derived statically:
functions/<name>/app.py → the bootstrap builders it calls (bootstrap.py, followed builder to
builder) → the adapter classes and functions they wire (followed inside their modules and across
adapter modules) → every `x.method(...)` whose name is an operation of an AWS service the
builders make clients for (botocore's service models: `put_item` is DynamoDB's PutItem) → the IAM
action. Compared with the function's Policies in template.yaml: every call allowed; every action
of the function's own statements called. SAM's policy templates (DynamoDBCrudPolicy, ...) grant
a fixed set, of which the code uses a part: for those only the first half holds.

The derivation works by method name: an adapter method counts when a method of that name is
used anywhere in the modules the function's wiring imports (an over-approximation), and a call
made through **kwargs or a helper it does not know is missed (an under-approximation). What it
finds today and has not been settled is listed in UNSETTLED, exactly: a new difference fails, and
so does an entry that no longer differs (remove it)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import botocore.session
import pytest

from local.template import load

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "shared" / "pecflow"
TEMPLATE = load(REPO / "template.yaml")
FUNCTIONS = {
    logical_id: resource.properties
    for logical_id, resource in TEMPLATE.resources.items()
    if resource.type == "AWS::Serverless::Function"
}

# SAM policy templates (samtranslator's policy_templates.json) used by template.yaml
SAM_TEMPLATES = {
    "DynamoDBReadPolicy": {"dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem",
                           "dynamodb:DescribeTable"},
    "DynamoDBCrudPolicy": {"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan",
                           "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
                           "dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"},
    "SQSSendMessagePolicy": {"sqs:SendMessage*"},
}  # fmt: skip
# operations whose IAM action is not named after them
S3_ACTIONS = {
    "HeadObject": {"s3:GetObject"},
    "ListObjectsV2": {"s3:ListBucket"},
    "ListObjects": {"s3:ListBucket"},
    "ListObjectVersions": {"s3:ListBucketVersions"},
    "HeadBucket": {"s3:ListBucket"},
    "CreateMultipartUpload": {"s3:PutObject"},
    "UploadPart": {"s3:PutObject"},
    "CompleteMultipartUpload": {"s3:PutObject"},
    "CopyObject": {"s3:GetObject", "s3:PutObject"},
    "DeleteObjects": {"s3:DeleteObject"},
}
SQS_ACTIONS = {"SendMessageBatch": {"sqs:SendMessage"}, "DeleteMessageBatch": {"sqs:DeleteMessage"}}
# boto3's managed transfers and resource helpers
HELPERS = {
    "upload_fileobj": {"s3:PutObject"},
    "upload_file": {"s3:PutObject"},
    "download_fileobj": {"s3:GetObject"},
    "batch_writer": {"dynamodb:BatchWriteItem"},
    "get_secret": {"secretsmanager:GetSecretValue"},  # Powertools' parameters.get_secret
}
TRANSACTION_ITEMS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
                     "ConditionCheck": "dynamodb:ConditionCheckItem"}  # fmt: skip


SESSION = botocore.session.get_session()


@cache
def operations(service: str) -> dict[str, str]:
    """snake_case method name -> operation name."""
    from botocore import xform_name

    return {xform_name(name): name for name in SESSION.get_service_model(service).operation_names}


@cache
def iam_prefix(service: str) -> str:
    return SESSION.get_service_model(service).signing_name or service


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _imports(module: ast.Module) -> dict[str, str]:
    """Imported name -> its module (from pecflow.x import y)."""
    out = {}
    for node in module.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return out


def _definitions(module: ast.Module) -> dict[str, ast.AST]:
    return {n.name: n for n in module.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _module_path(dotted: str) -> Path | None:
    parts = dotted.removeprefix("pecflow.").split(".")
    package = PACKAGE.joinpath(*parts) / "__init__.py"
    if package.is_file():
        return package
    for cut in range(len(parts), 0, -1):
        base = PACKAGE.joinpath(*parts[:cut])
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
        if (base / "__init__.py").is_file() and cut < len(parts):
            init = parsed(base / "__init__.py")
            target = _imports(init).get(parts[cut])
            if target:
                return _module_path(target)
    return None


def reached(function: str) -> tuple[list[ast.AST], set[str]]:
    """The AST nodes of the adapter code the function's bootstrap wiring reaches, and the AWS
    services its builders make clients or resources for."""
    code_uri = str(FUNCTIONS[function]["CodeUri"]).rstrip("/")
    app = parsed(REPO / code_uri / "app.py")
    builders = {n.attr for n in ast.walk(app)
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "bootstrap"}  # fmt: skip
    boot = parsed(PACKAGE / "bootstrap.py")
    defs, imports = _definitions(boot), _imports(boot)
    seen, pending, services, adapters = set(), list(builders), set(), []
    while pending:
        name = pending.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        node = defs[name]
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in ("client", "resource")
            ):
                if call.args and isinstance(call.args[0], ast.Constant):
                    services.add(call.args[0].value)
        for used in _names(node):
            if used in defs:
                pending.append(used)
            elif imports.get(used, "").startswith("pecflow.adapters"):
                adapters.append(imports[used])
    callers = [app, *(defs[name] for name in seen)]
    modules = {imports[n] for node in callers for n in _names(node) if n in imports}
    modules |= {
        f"{node.module}.x" for node in ast.walk(app) if isinstance(node, ast.ImportFrom) and node.module
    }
    called = _attributes(callers) | _attributes(_caller_modules(modules))
    return _adapter_nodes(adapters, called), services


def _attributes(nodes: list[ast.AST]) -> set[str]:
    return {n.attr for node in nodes for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _caller_modules(start: set[str]) -> list[ast.AST]:
    """The modules (outside the adapters and bootstrap) the wiring imports, and those they import."""
    out, seen, pending = [], set(), [d.rsplit(".", 1)[0] for d in start]
    while pending:
        dotted = pending.pop()
        path = _module_path(dotted) if dotted.startswith("pecflow") else None
        if path is None or path in seen or "adapters" in path.parts or path.name == "bootstrap.py":
            continue
        seen.add(path)
        module = parsed(path)
        out.append(module)
        pending += [d.rsplit(".", 1)[0] for d in _imports(module).values()] + list(_imports(module).values())
    return out


def _methods(cls: ast.ClassDef, called: set[str]) -> list[ast.AST]:
    """The class's methods its callers use (or that run by themselves: dunders, properties), and
    the methods those call on self."""
    methods = {n.name: n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    wanted = [m for m in methods if m in called or m.startswith("__")]
    taken: dict[str, ast.AST] = {}
    while wanted:
        name = wanted.pop()
        if name in taken:
            continue
        taken[name] = methods[name]
        for n in ast.walk(methods[name]):
            if (
                isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id == "self"
                and n.attr in methods
            ):
                wanted.append(n.attr)
    return [
        *taken.values(),
        *(n for n in cls.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))),
    ]


def _adapter_nodes(start: list[str], called: set[str]) -> list[ast.AST]:
    nodes, seen, pending = [], set(), list(start)
    while pending:
        dotted = pending.pop()
        if dotted in seen:
            continue
        seen.add(dotted)
        path = _module_path(dotted.rsplit(".", 1)[0]) if "." in dotted else None
        if path is None:
            continue
        module = parsed(path)
        defs, imports = _definitions(module), _imports(module)
        name = dotted.rsplit(".", 1)[1]
        if name not in defs:
            target = imports.get(name)
            if target:
                pending.append(target)
            continue
        node = defs[name]
        parts = _methods(node, called) if isinstance(node, ast.ClassDef) else [node]
        nodes += [_named(part, name) for part in parts]
        modname = "pecflow." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for used in set().union(*(_names(part) for part in parts)):
            if used in defs:
                pending.append(f"{modname}.{used}")
            elif imports.get(used, "").startswith("pecflow.adapters"):
                pending.append(imports[used])
    return nodes


def _named(node: ast.AST, owner: str) -> ast.AST:
    node.owner = owner  # type: ignore[attr-defined] - for the failure message
    return node


def calls(function: str) -> dict[str, set[str]]:
    """IAM action -> where the code calls it (for the failure message)."""
    nodes, services = reached(function)
    found: dict[str, set[str]] = {}
    by_method: dict[str, set[tuple[str, str]]] = {}
    for service in services:
        for method, operation in operations(service).items():
            by_method.setdefault(method, set()).add((service, operation))

    def add(actions: set[str], where: str) -> None:
        for action in actions:
            found.setdefault(action, set()).add(where)

    for node in nodes:
        where = f"{getattr(node, 'owner', '?')}.{getattr(node, 'name', '')}".rstrip(".")
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                attribute, args, keywords = call.func, call.args, call.keywords
            elif isinstance(
                call, ast.Attribute
            ):  # a method taken without a call: `f = client.x if ... else client.y`
                attribute, args, keywords = call, [], []
            else:
                continue
            method = attribute.attr
            if isinstance(attribute.value, ast.Name) and attribute.value.id == "self":
                continue  # the adapter's own method
            if method in ("get_paginator", "generate_presigned_url") and args:
                first = args[0]
                method = first.value if isinstance(first, ast.Constant) else method
            if method in HELPERS and "s3" in services | {"dynamodb"}:
                add(HELPERS[method], where)
                continue
            for service, operation in by_method.get(method, ()):
                prefix = iam_prefix(service)
                if service == "s3":
                    actions = S3_ACTIONS.get(operation, {f"s3:{operation}"})
                    if operation == "GetObject" and any(k.arg == "VersionId" for k in keywords):
                        actions = actions | {"s3:GetObjectVersion"}
                elif service == "sqs":
                    actions = SQS_ACTIONS.get(operation, {f"sqs:{operation}"})
                elif operation == "TransactWriteItems":  # the items' own actions, as built anywhere reached
                    keys = {
                        c.value
                        for n in nodes
                        for c in ast.walk(n)
                        if isinstance(c, ast.Constant) and c.value in TRANSACTION_ITEMS
                    }
                    actions = {TRANSACTION_ITEMS[k] for k in keys}
                else:
                    actions = {f"{prefix}:{operation}"}
                add(actions, where)
    return found


def allowed(function: str) -> tuple[set[str], set[str]]:
    """(every action the Policies allow, the actions of its own statements)."""
    every, own = set(), set()
    for policy in FUNCTIONS[function].get("Policies") or []:
        if not isinstance(policy, dict):
            continue
        for name, value in policy.items():
            if name == "Statement":
                for statement in value if isinstance(value, list) else [value]:
                    if statement.get("Effect") != "Allow":
                        continue
                    actions = statement["Action"]
                    for action in actions if isinstance(actions, list) else [actions]:
                        every.add(action)
                        own.add(action)
            else:
                assert name in SAM_TEMPLATES, (
                    f"{function}: policy template {name}: add its actions to SAM_TEMPLATES"
                )
                every |= SAM_TEMPLATES[name]
    return every, own


def _allows(patterns: set[str], action: str) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(action.lower(), p.lower()) for p in patterns)


# (function, "called" | "granted", action): found by the derivation, not settled yet (see above)
UNSETTLED = {
    # a method of that name is used by another function's services (sending.py's change_visibility,
    # the poller's save_cursor, ...): the derivation cannot tell the instances apart
    ("ApiFunction", "called", "sqs:ChangeMessageVisibility"),
    ("CampaignFanoutFunction", "called", "sqs:ChangeMessageVisibility"),
    ("MailboxPollerFunction", "called", "sqs:ChangeMessageVisibility"),
    ("PollSchedulerFunction", "called", "sqs:ChangeMessageVisibility"),
    ("CampaignDeadLettersFunction", "called", "dynamodb:PutItem"),
    # to check: MailboxStore.list (Scan) and CognitoDirectory.enabled (AdminGetUser) reached from
    # the API's services; CampaignPackage.exists/attachments (ListBucket) from the sender's
    ("ApiFunction", "called", "dynamodb:Scan"),
    ("ApiFunction", "called", "cognito-idp:AdminGetUser"),
    ("SenderFunction", "called", "s3:ListBucket"),
    # calls the derivation misses: a transaction's ConditionCheck, a multipart upload's abort and
    # Powertools' get_secret reached through the API's mailbox checks, a pinned GetObject's VersionId
    ("ApiFunction", "granted", "dynamodb:ConditionCheckItem"),
    ("ApiFunction", "granted", "s3:AbortMultipartUpload"),
    ("ApiFunction", "granted", "secretsmanager:GetSecretValue"),
    ("CampaignFanoutFunction", "granted", "s3:GetObjectVersion"),
}


# what a call needs besides its own action: the alarms topic is encrypted with our key (AlarmsKey),
# so a publisher makes SNS use the key on its behalf
IMPLIED = {"sns:Publish": {"kms:GenerateDataKey", "kms:Decrypt"}}


def differences(function: str) -> set[tuple[str, str, str]]:
    every, own = allowed(function)
    made = set(calls(function))
    assert made, f"{function}: no AWS call found: the derivation lost its way"
    for action in list(made):
        made |= IMPLIED.get(action, set())
    missing = {(function, "called", a) for a in made if not _allows(every, a)}
    unused = {(function, "granted", a) for a in own if not any(_allows({a}, m) for m in made)}
    return missing | unused


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_functions_policy_is_the_calls_its_code_makes(function):
    found = differences(function)
    expected = {u for u in UNSETTLED if u[0] == function}
    assert found - expected == set(), (
        f"calls without permission, or permissions never called: {found - expected}"
    )
    assert expected - found == set(), f"settled since (remove from UNSETTLED): {expected - found}"


def test_the_derivation_finds_the_calls_we_know():
    assert {"s3:PutObject", "secretsmanager:GetSecretValue", "dynamodb:PutItem"} <= set(
        calls("MailboxPollerFunction")
    )
    assert {"cognito-idp:AdminCreateUser", "cognito-idp:AdminDisableUser"} <= set(calls("ApiFunction"))
    assert "sqs:SendMessage" in calls("PollSchedulerFunction")
