"""CloudFormation templates read as CloudFormation reads them: short tags, and the intrinsic
functions evaluated against a stack's parameters, its resources' names and the exports of
the stacks it imports from.

The rehearsal takes each Dagster service's task definition from `infra/cloudformation/
dagster.yaml` itself, so what it starts is what the stack would start. The template tests
read the same files through `parse`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (`!Ref`, `!Sub`, `!GetAtt`, ...) read as their
    long form, so `!Sub "x"` and `Fn::Sub: x` look the same to every reader."""


def _short_tag(loader: CloudFormationLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode), "YAML has three kinds of node"
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _short_tag)


def parse(text: str) -> dict[str, Any]:
    return yaml.load(text, Loader=CloudFormationLoader)


class TemplateError(ValueError):
    """A template names something the stack cannot resolve; the message says what and where."""


NO_VALUE = object()  # AWS::NoValue: the property is left out
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass
class Stack:
    """One stack of a template: its parameters and what its resources and imports resolve to.

    `refs` holds what `!Ref` gives for a resource (a name or an ARN), `attributes` what
    `!GetAtt Resource.Attribute` gives, and `exports` the other stacks' exports by name.
    `lookup` is asked for a resource's Ref or attribute that is not in those tables, so a
    caller can create the resource when it is first needed.
    """

    template: dict[str, Any]
    parameters: dict[str, str]
    region: str
    account: str
    name: str
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    exports: Mapping[str, str] = field(default_factory=dict)
    lookup: Callable[[str, str | None], str] | None = None

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise TemplateError(f"{self.name}: no such parameters {sorted(unknown)}")
        for name, spec in declared.items():
            if name in self.parameters:
                continue
            if "Default" not in spec:
                raise TemplateError(f"{self.name}: parameter {name} has no default; give one")
            self.parameters[name] = str(spec["Default"])

    @property
    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::StackName": self.name,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.template["Resources"][logical_id]
        except KeyError:
            raise TemplateError(f"{self.name}: no resource {logical_id}") from None

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            kind = self.template["Parameters"][name].get("Type", "String")
            return value.split(",") if kind.startswith("List<") else value
        if name not in self.refs and self.lookup is not None:
            self.refs[name] = self.lookup(name, None)
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"{self.name}: nothing to resolve !Ref {name} to")

    def get_att(self, logical_id: str, attribute: str) -> str:
        key = (logical_id, attribute)
        if key not in self.attributes and self.lookup is not None:
            self.attributes[key] = self.lookup(logical_id, attribute)
        if key in self.attributes:
            return self.attributes[key]
        raise TemplateError(f"{self.name}: nothing to resolve !GetAtt {logical_id}.{attribute}")

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function evaluated; `AWS::NoValue` drops the key or
        the list item it stands in."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {name: self.resolve(item) for name, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def import_value(self, argument: Any) -> str:
        name = self.resolve(argument)
        try:
            return self.exports[name]
        except KeyError:
            raise TemplateError(
                f"{self.name}: imports {name}, which no stack exports (deploy it first)"
            ) from None


_FUNCTIONS: dict[str, Callable[[Stack, Any], Any]] = {
    "Ref": lambda stack, name: stack.ref(name),
    "Fn::Sub": Stack.sub,
    "Fn::GetAtt": lambda stack, target: stack.get_att(*target),
    "Fn::ImportValue": Stack.import_value,
    "Fn::If": lambda stack, args: stack.resolve(args[1] if stack.condition(args[0]) else args[2]),
    "Fn::Equals": lambda stack, args: stack.resolve(args[0]) == stack.resolve(args[1]),
    "Fn::Not": lambda stack, args: not stack.resolve(args[0]),
    "Fn::And": lambda stack, args: all(stack.resolve(arg) for arg in args),
    "Fn::Or": lambda stack, args: any(stack.resolve(arg) for arg in args),
    "Condition": lambda stack, name: stack.condition(name),
    "Fn::Join": lambda stack, args: args[0].join(str(x) for x in stack.resolve(args[1])),
    "Fn::Select": lambda stack, args: stack.resolve(args[1])[int(stack.resolve(args[0]))],
    "Fn::Split": lambda stack, args: stack.resolve(args[1]).split(args[0]),
}
