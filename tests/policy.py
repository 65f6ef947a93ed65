"""Whether a resource policy (a KMS key policy, an SNS topic policy) lets a request through, as
IAM evaluates one policy: an explicit Deny wins, else some Allow must match the principal, the
action, the resource and every condition. Enough of IAM for the template's policies: Principal
`*` / AWS / Service, wildcards in actions and resources, the String*/Arn* condition operators
(and their IfExists forms) over single-valued keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class Request:
    principal: dict[str, str]  # {"Service": "cloudwatch.amazonaws.com"} or {"AWS": "arn:...:root"}
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)  # condition keys: aws:SourceArn, ...


def allows(policy: dict, request: Request) -> bool:
    statements = policy["Statement"]
    statements = statements if isinstance(statements, list) else [statements]
    matching = [s for s in statements if _matches(s, request)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _matches(statement: dict, request: Request) -> bool:
    return (
        _principal_matches(statement.get("Principal"), request.principal)
        and _pattern_matches(statement.get("Action"), request.action, case_sensitive=False)
        and _pattern_matches(statement.get("Resource"), request.resource, case_sensitive=True)
        and all(
            _condition_holds(operator, tests, request.context)
            for operator, tests in (statement.get("Condition") or {}).items()
        )
    )


def _principal_matches(principal: Any, caller: dict[str, str]) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for kind, who in caller.items():
        for allowed in _listed(principal.get(kind, [])):
            if allowed == "*" or allowed == who:
                return True
            # an account's root ARN (or its id) stands for every principal of that account
            if kind == "AWS" and str(allowed).endswith(":root") and _account(allowed) == _account(who):
                return True
            if kind == "AWS" and str(allowed).isdigit() and str(allowed) == _account(who):
                return True
    return False


def _account(arn: str) -> str:
    return arn.split(":")[4] if arn.startswith("arn:") else arn


def _pattern_matches(patterns: Any, value: str, *, case_sensitive: bool) -> bool:
    if patterns is None:
        return False
    for pattern in _listed(patterns):
        if case_sensitive and fnmatchcase(value, pattern):
            return True
        if not case_sensitive and fnmatchcase(value.lower(), str(pattern).lower()):
            return True
    return False


_OPERATORS = {
    "StringEquals": lambda actual, expected: actual == expected,
    "StringNotEquals": lambda actual, expected: actual != expected,
    "StringEqualsIgnoreCase": lambda actual, expected: actual.lower() == expected.lower(),
    "StringLike": lambda actual, expected: fnmatchcase(actual, expected),
    "StringNotLike": lambda actual, expected: not fnmatchcase(actual, expected),
    "ArnEquals": lambda actual, expected: actual == expected,
    "ArnLike": lambda actual, expected: fnmatchcase(actual, expected),
    "ArnNotEquals": lambda actual, expected: actual != expected,
    "ArnNotLike": lambda actual, expected: not fnmatchcase(actual, expected),
}


def _condition_holds(operator: str, tests: dict, context: dict[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _OPERATORS:
        raise ValueError(f"condition operator {operator} is not evaluated by this helper")
    compare = _OPERATORS[base]
    keys = {k.lower(): v for k, v in context.items()}
    for key, expected in tests.items():
        actual = keys.get(key.lower())
        if actual is None:
            if if_exists:
                continue
            return False
        negated = "Not" in base
        outcomes = [compare(actual, str(e)) for e in _listed(expected)]
        if not (all(outcomes) if negated else any(outcomes)):
            return False
    return True
