"""Each function's IAM policy equals the calls its code makes, derived statically:
functions/<name>/app.py → the bootstrap builders it calls (bootstrap.py, followed builder to
builder) → the adapter classes and functions they wire (followed inside their modules and across
adapter modules) → every `x.method(...)` whose name is an operation of an AWS service the
builders make clients for (botocore's service models: `put_item` is DynamoDB's PutItem) → the IAM
action. Compared with the function's Policies in template.yaml: every call allowed; every action
of the function's own statements called. SAM's policy templates (DynamoDBCrudPolicy, ...) grant
a fixed set, of which the code uses a part: for those only the first half holds.

The derivation works by method name: an adapter method counts when the code the function's
wiring reaches (the classes and functions it names, followed definition by definition, not whole
modules) calls a method of that name, or takes it from a collaborator (`self.queue.send_batch`),
or an adapter it reaches does (an over-approximation: two classes' methods of one name are one);
a call made through a helper it does not know is missed (an under-approximation). What it finds
and the policy rightly does not follow is listed in UNSETTLED, exactly, each with its reason: a
new difference fails, and so does an entry that no longer differs (remove it)."""

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
# boto3's managed transfers and resource helpers, made on a client or resource of their service
HELPERS = {
    "upload_fileobj": ("s3", {"s3:PutObject", "s3:AbortMultipartUpload"}),
    "upload_file": ("s3", {"s3:PutObject", "s3:AbortMultipartUpload"}),
    "download_fileobj": ("s3", {"s3:GetObject"}),
    "batch_writer": ("dynamodb", {"dynamodb:BatchWriteItem"}),
}
# Powertools' parameters make their own client: counted wherever they are called, the builders too
# (the API's cursor secret is read in bootstrap.api_services)
POWERTOOLS = {"get_secret": {"secretsmanager:GetSecretValue"}}
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


def _walked(node: ast.AST) -> list[ast.AST]:
    """ast.walk(node), walked once (the parsed modules are cached: so are their nodes)."""
    if id(node) not in _WALKED:
        _WALKED[id(node)] = (node, list(ast.walk(node)))
    return _WALKED[id(node)][1]


_WALKED: dict[int, tuple[ast.AST, list[ast.AST]]] = {}  # the node kept: its id stays its own


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in _walked(node) if isinstance(n, ast.Name)}


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
        f"{node.module}.*" for node in ast.walk(app) if isinstance(node, ast.ImportFrom) and node.module
    }
    # the builders pass methods along (`mailbox_of=store.get`): every attribute counts there; in
    # the code they wire, calls and methods of a collaborator passed along, not a local's fields
    # (`person.enabled` is not CognitoDirectory.enabled, nor a manifest's `attachments` the package's)
    called = _attributes(callers) | _called(_caller_code(modules))
    while True:  # and what the adapters call on one another (a pack's writer aborting its upload)
        nodes = _adapter_nodes(adapters, called)
        more = _called(nodes) - called
        if not more:
            builders = [defs[name] for name in seen]
            return nodes + [_named(b, "bootstrap") for b in builders], services
        called |= more


def _attributes(nodes: list[ast.AST]) -> set[str]:
    return {n.attr for node in nodes for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _called(nodes: list[ast.AST]) -> set[str]:
    """The names of the methods called (`x.m(...)`) or taken from a collaborator
    (`send_batch=self.send_queue.send_batch`), not a local variable's attributes (`person.enabled`)."""
    out = set()
    for node in nodes:
        for n in _walked(node):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                out.add(n.func.attr)
            elif isinstance(n, ast.Attribute) and not isinstance(n.value, ast.Name):
                out.add(n.attr)
    return out


def _is_module(dotted: str) -> bool:
    base = PACKAGE.joinpath(*dotted.removeprefix("pecflow.").split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _top_level(module: ast.Module) -> dict[str, ast.AST]:
    """Name -> the module-level statement defining it (functions, classes, assignments)."""
    out: dict[str, ast.AST] = {}
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                out.update({n.id: node for n in ast.walk(target) if isinstance(n, ast.Name)})
    return out


def _registered(module: ast.Module) -> list[ast.AST]:
    """The definitions that run without being named: registered by a decorator such as
    `@router.get(...)` (not `@dataclass(...)`, a plain name)."""
    return [
        node
        for node in module.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) for d in node.decorator_list)
    ]


def _caller_code(start: set[str]) -> list[ast.AST]:
    """The code outside the adapters and bootstrap that the wiring reaches: each class or function
    it imports, and the definitions those name, followed within and across modules (a class whole,
    with all its methods); a module imported as a module (`from pecflow.api import messages`), or by
    app.py (`pkg.*`), whole. Definitions, not modules: one service module holds the parts of
    several functions (sending.py's JobDelivery, the sender's, changes a queue message's
    visibility; its MailboxDirectory is the API's too), and taking the module whole gave every
    function that imports one part the calls of all the others."""
    out: list[ast.AST] = []
    seen, done, pending = set(), set(), list(start)
    while pending:
        dotted = pending.pop()
        if dotted in seen or not dotted.startswith("pecflow"):
            continue
        seen.add(dotted)
        module_name, name = dotted.rsplit(".", 1)
        if name == "*" or _is_module(dotted):
            path = _module_path(module_name if name == "*" else dotted)
            whole = True
        else:
            path = _module_path(module_name)
            whole = False
        if path is None or "adapters" in path.parts or path.name == "bootstrap.py":
            continue
        module = parsed(path)
        own = "pecflow." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        imports, defs = _imports(module), _top_level(module)
        if whole:
            parts: list[ast.AST] = [module]
        elif name in defs:
            parts = [defs[name], *_registered(module)]
        else:  # a name the module imports (a package's __init__ re-exporting it)
            pending += [imports[name]] if name in imports else []
            continue
        parts = [part for part in parts if id(part) not in done]
        done |= {id(part) for part in parts}
        for part in parts:
            imports_here = imports | {
                alias.asname or alias.name: f"{n.module}.{alias.name}"
                for n in _walked(part)
                if isinstance(n, ast.ImportFrom) and n.module
                for alias in n.names
            }
            # a module taken whole re-exports what it imports (a package's __init__)
            for used in _names(part) | (set(imports_here) if part is module else set()):
                if used in imports_here:
                    pending.append(imports_here[used])
                elif used in defs:
                    pending.append(f"{own}.{used}")
        out += parts
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
            if method in POWERTOOLS:
                add(POWERTOOLS[method], where)
                continue
            if where.startswith("bootstrap."):
                continue  # the builders make clients and adapters, and call AWS only through Powertools
            if method in HELPERS and HELPERS[method][0] in services:
                add(HELPERS[method][1], where)
                continue
            for service, operation in by_method.get(method, ()):
                prefix = iam_prefix(service)
                if service == "s3":
                    actions = S3_ACTIONS.get(operation, {f"s3:{operation}"})
                    if operation in ("GetObject", "HeadObject") and _versioned(keywords, node):
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


def _versioned(keywords: list[ast.keyword], where: ast.AST) -> bool:
    """Given a VersionId: as a keyword, or in the `**kwargs` the method builds."""
    if any(k.arg == "VersionId" for k in keywords):
        return True
    return any(k.arg is None for k in keywords) and any(
        isinstance(c, ast.Constant) and c.value == "VersionId" for c in ast.walk(where)
    )


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


# (function, "called" | "granted", action): what the derivation finds and the policy rightly does
# not follow, each with its reason (see above)
UNSETTLED = {
    # a name shared by two classes: MailboxStore.list (a Scan: the poll scheduler's, the CLI's) and
    # Inbox.list, which the API's message list calls (`services.inbox.list`); no API route reads
    # MailboxesTable but by key (MailboxDesk.administered: GetItem per mailbox of the person's roles)
    ("ApiFunction", "called", "dynamodb:Scan"),
    # CampaignPackage.read takes an optional pin: the fan-out and the API's preview pass one (a
    # VersionId: granted to them); the sender reads the campaign's attachments by name, unpinned
    ("SenderFunction", "called", "s3:GetObjectVersion"),
}


# what a call needs besides its own action: the alarms topic is encrypted with our key (AlarmsKey),
# so a publisher makes SNS use the key on its behalf
IMPLIED = {"sns:Publish": {"kms:GenerateDataKey", "kms:Decrypt"}}
# what a call needs where its code relies on an answer the permission changes: S3 answers 403, not
# 404 (NoSuchKey), for a missing key to a role that may not list the bucket; a campaign's files are
# read knowing a missing one from a refusal (a pinned file deleted is PackageChanged, the sender's
# missing attachment is said as missing, not as "Access Denied")
IMPLIED_AT = {"CampaignPackage._get": {"s3:ListBucket"}}


def differences(function: str) -> set[tuple[str, str, str]]:
    every, own = allowed(function)
    found = calls(function)
    made = set(found)
    assert made, f"{function}: no AWS call found: the derivation lost its way"
    for action in list(made):
        made |= IMPLIED.get(action, set())
    made |= {a for where in set().union(*found.values()) for a in IMPLIED_AT.get(where, ())}
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
    # a pack's upload aborted by its writer; the cursor secret read by the builder (Powertools)
    assert {"s3:AbortMultipartUpload", "secretsmanager:GetSecretValue"} <= set(calls("ApiFunction"))
    assert "s3:GetObjectVersion" in calls("CampaignFanoutFunction"), "a pinned read: VersionId in **kwargs"


def test_the_derivation_follows_definitions_not_whole_modules():
    # services/sending.py holds the sender's JobDelivery (which changes a message's visibility)
    # and the API's MailboxDirectory: importing one is not calling the other
    assert "sqs:ChangeMessageVisibility" in calls("SenderFunction")
    assert "sqs:ChangeMessageVisibility" not in calls("ApiFunction")
    assert "dynamodb:PutItem" not in calls("CampaignDeadLettersFunction")
    # a field read (`person.enabled`) is not a call of CognitoDirectory.enabled
    assert "cognito-idp:AdminGetUser" not in calls("ApiFunction")
