"""Read template.yaml as CloudFormation and SAM do: short-form tags, parameters, conditions,
mappings, SAM Globals, and the intrinsic functions the local stack needs.

`Template` is the parsed file; `Intrinsics` resolves values against one stack (its name, region,
account, parameter values and a lookup for what `Ref`/`GetAtt` of a resource returns).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"  # moto's default account

# Ref of AWS::NoValue: the property is removed.
NO_VALUE = object()

_SHORT_TAGS = (
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Base64",
    "GetAZs",
    "ImportValue",
    "Cidr",
    "Transform",
    "ToJsonString",
    "Length",
)
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template cannot be read or resolved locally."""


# --- YAML with CloudFormation tags ------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag_constructor(fn_key: str) -> Callable[[yaml.Loader, yaml.Node], dict]:
    def construct(loader: yaml.Loader, node: yaml.Node) -> dict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if fn_key == "Fn::GetAtt":
                logical_id, _, attribute = str(value).partition(".")
                value = [logical_id, attribute]
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {fn_key: value}

    return construct


for _tag in _SHORT_TAGS:
    _fn_key = _tag if _tag in ("Ref", "Condition") else f"Fn::{_tag}"
    _CfnLoader.add_constructor(f"!{_tag}", _tag_constructor(_fn_key))


def load_yaml(text: str) -> dict:
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


# --- the template -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    properties: dict
    condition: str | None = None
    depends_on: tuple[str, ...] = ()


@dataclass
class Template:
    path: Path
    parameters: dict[str, dict]
    mappings: dict[str, dict]
    conditions: dict[str, Any]
    resources: dict[str, Resource]
    globals: dict[str, dict]
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The folder CodeUri and ContentUri are relative to."""
        return self.path.parent

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type in types]

    def function_properties(self, logical_id: str) -> dict:
        """A SAM function's properties with Globals.Function merged in, as SAM merges them:
        maps merge (the function wins), lists append (Globals first), scalars are overridden."""
        resource = self.resources[logical_id]
        if resource.type != "AWS::Serverless::Function":
            raise TemplateError(f"{logical_id} is a {resource.type}, not an AWS::Serverless::Function")
        return _merge_globals(self.globals.get("Function", {}), resource.properties)


def _merge_globals(defaults: Any, own: Any) -> Any:
    if isinstance(defaults, dict) and isinstance(own, dict) and not _is_intrinsic(own):
        merged = dict(defaults)
        for key, value in own.items():
            merged[key] = _merge_globals(defaults[key], value) if key in defaults else value
        return merged
    if isinstance(defaults, list) and isinstance(own, list):
        return defaults + own
    return own


def load(path: str | Path) -> Template:
    path = Path(path).resolve()
    document = load_yaml(path.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    resources = {}
    for logical_id, body in document["Resources"].items():
        depends_on = body.get("DependsOn", ())
        resources[logical_id] = Resource(
            logical_id=logical_id,
            type=body["Type"],
            properties=body.get("Properties") or {},
            condition=body.get("Condition"),
            depends_on=(depends_on,) if isinstance(depends_on, str) else tuple(depends_on),
        )
    return Template(
        path=path,
        parameters=document.get("Parameters") or {},
        mappings=document.get("Mappings") or {},
        conditions=document.get("Conditions") or {},
        resources=resources,
        globals=document.get("Globals") or {},
        outputs=document.get("Outputs") or {},
    )


# --- parameters -------------------------------------------------------------------------------


def parameter_values(template: Template, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults plus overrides, checked against AllowedValues/MinValue/MaxValue, typed as
    CloudFormation types them (Number -> int or float, lists -> list of str)."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(template.parameters)
    if unknown:
        raise TemplateError(f"unknown parameters: {', '.join(sorted(unknown))}")
    values = {}
    for name, spec in template.parameters.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default and no value was given")
        kind = spec.get("Type", "String")
        if kind == "Number":
            value: Any = float(raw)
            value = int(value) if value.is_integer() else value
            if "MinValue" in spec and value < float(spec["MinValue"]):
                raise TemplateError(f"parameter {name}={value} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and value > float(spec["MaxValue"]):
                raise TemplateError(f"parameter {name}={value} is above MaxValue {spec['MaxValue']}")
        elif kind.startswith("List<") or kind == "CommaDelimitedList":
            value = raw if isinstance(raw, list) else [item.strip() for item in str(raw).split(",")]
        else:
            value = str(raw).lower() if isinstance(raw, bool) else str(raw)
        allowed = spec.get("AllowedValues")
        if allowed is not None and str(value) not in {str(a) for a in allowed}:
            raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        values[name] = value
    return values


# --- intrinsic functions ----------------------------------------------------------------------


def _is_intrinsic(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and (next(iter(value)) in ("Ref", "Condition") or next(iter(value)).startswith("Fn::"))
    )


def references(value: Any) -> set[str]:
    """Logical ids (or parameter names) a value refers to through Ref, GetAtt and Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if _is_intrinsic(value):
            key, arg = next(iter(value.items()))
            if key == "Ref" and isinstance(arg, str) and not arg.startswith("AWS::"):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).partition(".")[0])
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                for name in _SUB_VARIABLE.findall(text):
                    name = name.partition(".")[0].strip()
                    if not name.startswith("AWS::") and name not in variables:
                        found.add(name)
                found |= references(variables)
                return found
        for item in value.values():
            found |= references(item)
    return found


Lookup = Callable[[str, "str | None"], Any]  # (logical_id, attribute or None for Ref) -> value


class Intrinsics:
    """Resolves intrinsic functions for one stack."""

    def __init__(
        self,
        template: Template,
        *,
        stack_name: str,
        region: str,
        parameters: dict[str, Any],
        lookup: Lookup,
        account_id: str = ACCOUNT_ID,
    ):
        self.template = template
        self.parameters = parameters
        self.lookup = lookup
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            # CloudFormation gives each stack creation its own UUID (and names from it must differ
            # between stacks): here one per stack name, the same on every run
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/"
            f"{uuid.uuid5(uuid.NAMESPACE_URL, f'pecflow-local:{region}:{account_id}:{stack_name}')}",
            "AWS::NotificationARNs": [],
        }
        self._conditions: dict[str, bool] = {}

    # conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.template.conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self._truth(self.template.conditions[name]))
        return self._conditions[name]

    def _truth(self, value: Any) -> bool:
        if isinstance(value, dict) and "Condition" in value and len(value) == 1:
            return self.condition(value["Condition"])
        resolved = self.resolve(value)
        if isinstance(resolved, str):
            return resolved.lower() == "true"
        return bool(resolved)

    # values
    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function applied; AWS::NoValue entries removed."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if _is_intrinsic(value):
            key, arg = next(iter(value.items()))
            return self._function(key, arg)
        resolved = {}
        for key, item in value.items():
            item = self.resolve(item)
            if item is not NO_VALUE:
                resolved[key] = item
        return resolved

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.resources:
            return self.lookup(name, None)
        raise TemplateError(f"Ref to unknown name {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.template.resources:
            raise TemplateError(f"GetAtt of unknown resource {logical_id}")
        return self.lookup(logical_id, attribute)

    def _function(self, key: str, arg: Any) -> Any:  # noqa: C901 - one branch per function
        if key == "Ref":
            return self.ref(self.resolve(arg))
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(logical_id, self.resolve(attribute))
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(_text(i) for i in self.resolve(items))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = self.resolve(arg)
            return str(text).split(delimiter)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return _text(left) == _text(right)
        if key == "Fn::Not":
            return not self._truth(arg[0])
        if key == "Fn::And":
            return all(self._truth(item) for item in arg)
        if key == "Fn::Or":
            return any(self._truth(item) for item in arg)
        if key == "Fn::FindInMap":
            name, top, second = (self.resolve(a) for a in arg[:3])
            try:
                return self.template.mappings[name][top][second]
            except KeyError as missing:
                raise TemplateError(f"FindInMap {name}/{top}/{second}: no {missing}") from None
        if key == "Fn::Base64":
            return base64.b64encode(_text(self.resolve(arg)).encode()).decode()
        if key == "Fn::GetAZs":
            region = self.resolve(arg) or self.pseudo["AWS::Region"]
            return [f"{region}{zone}" for zone in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self.resolve(arg))
        raise TemplateError(f"{key} is not supported locally")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg[0], self.resolve(arg[1])) if isinstance(arg, list) else (arg, {})

        def replace(match: re.Match) -> str:
            name = match.group(1).strip()
            if name in variables:
                return _text(variables[name])
            if name in self.pseudo or name in self.parameters:
                return _text(self.ref(name))
            logical_id, dot, attribute = name.partition(".")
            if dot:
                return _text(self.get_att(logical_id, attribute))
            return _text(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
