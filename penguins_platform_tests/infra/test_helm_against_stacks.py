"""The Helm values (infra/helm/values.yaml) against what the CloudFormation stacks create.

On Kubernetes the stacks still create the bucket and the roles, and the values name them by
hand. So each test here renders a stack's outputs, with its default parameters and the
account and region the values' placeholders stand for, and compares: the image repository,
every bucket, the service account's role, the platform role's trust, and the settings that
the ECS code location gets from the same stacks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from penguins_platform.settings import ExecutionSettings, variable, variables
from penguins_platform_tests.infra.test_cloudformation import (
    STACK_PARAMETERS,
    TEMPLATE_DIR,
    TEMPLATE_NAMES,
    containers,
    parse,
)
from penguins_platform_tests.infra.test_helm import (
    CHART_DIR,
    OVERRIDES,
    RELEASE_NAMESPACE,
    chart_fullname,
    deep_merge,
    k8s_run_launcher_config,
)

# What the values' placeholders stand for: the account id and region in the stacks' outputs.
ACCOUNT = "REPLACE-ACCOUNT"
REGION = "REPLACE-REGION"
ISSUER = f"oidc.eks.{REGION}.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


class Unresolved(LookupError):
    """A value only a deployed stack knows, such as a load balancer's DNS name."""


def no_imports(export: str) -> Any:
    raise Unresolved(f"no stack exports {export}")


# Where each resource type keeps the name that `Ref` returns, and its ARN's shape.
NAMED_RESOURCES = {
    "AWS::S3::Bucket": ("BucketName", "arn:aws:s3:::{name}"),
    "AWS::IAM::Role": ("RoleName", "arn:aws:iam::{account}:role/{name}"),
    "AWS::IAM::User": ("UserName", "arn:aws:iam::{account}:user/{name}"),
}


@dataclass
class Stack:
    """One template deployed under `name`: its parameters (the defaults, with `parameters`
    over them) and what its intrinsic functions evaluate to."""

    name: str
    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    imports: Callable[[str], Any] = no_imports
    account: str = ACCOUNT
    region: str = REGION

    def parameter(self, name: str) -> str:
        pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::StackName": self.name,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        declared = self.template["Parameters"][name]
        if "Default" not in declared:
            raise Unresolved(f"parameter {name} has no default")
        return str(declared["Default"])

    def condition(self, name: str) -> bool:
        return self.holds(self.template["Conditions"][name])

    def holds(self, expression: Any) -> bool:
        [(function, argument)] = expression.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            return self.resolve(argument[0]) == self.resolve(argument[1])
        if function == "Fn::Not":
            return not self.holds(argument[0])
        if function == "Fn::And":
            return all(self.holds(item) for item in argument)
        if function == "Fn::Or":
            return any(self.holds(item) for item in argument)
        raise AssertionError(f"no evaluation for the condition function {function}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            name = value["Ref"]
            if name in self.template["Resources"]:
                return self.resource_name(name)
            return self.parameter(name)
        if "Fn::Sub" in value:
            body = value["Fn::Sub"]
            text, local = (body, {}) if isinstance(body, str) else body
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self.sub_value(m[1], local), text)
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self.condition(condition) else when_false)
        if "Fn::GetAtt" in value:
            return self.attribute(*value["Fn::GetAtt"])
        if "Fn::ImportValue" in value:
            return self.imports(self.resolve(value["Fn::ImportValue"]))
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(self.resolve(items))
        return {key: self.resolve(item) for key, item in value.items()}

    def sub_value(self, name: str, local: dict[str, Any]) -> str:
        if name in local:
            return str(self.resolve(local[name]))
        if "." in name:
            return self.attribute(*name.split(".", 1))
        return str(self.resolve({"Ref": name}))

    def resource_name(self, logical_id: str) -> str:
        resource = self.template["Resources"][logical_id]
        if resource["Type"] not in NAMED_RESOURCES:
            raise Unresolved(f"{logical_id} is named by AWS")
        key, _ = NAMED_RESOURCES[resource["Type"]]
        return self.resolve(resource["Properties"][key])

    def attribute(self, logical_id: str, attribute: str) -> str:
        resource = self.template["Resources"][logical_id]
        if attribute != "Arn" or resource["Type"] not in NAMED_RESOURCES:
            raise Unresolved(f"{logical_id}.{attribute} is known once deployed")
        _, arn = NAMED_RESOURCES[resource["Type"]]
        return arn.format(account=self.account, name=self.resource_name(logical_id))

    def output(self, name: str) -> Any:
        output = self.template["Outputs"][name]
        if "Condition" in output and not self.condition(output["Condition"]):
            raise Unresolved(f"output {name} is not created (condition {output['Condition']})")
        return self.resolve(output["Value"])

    def exports(self) -> dict[str, str]:
        """Export name → output name."""
        return {
            self.resolve(output["Export"]["Name"]): name
            for name, output in self.template.get("Outputs", {}).items()
            if "Export" in output
        }


def deployment(
    parameters: dict[str, dict[str, str]] | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> dict[str, Stack]:
    """Every stack, each under the name the others import it by (the default of their
    StorageStack, AccessStack, MlflowStack parameters), importing from one another."""
    templates = {name: parse((TEMPLATE_DIR / name).read_text()) for name in TEMPLATE_NAMES}
    stack_names = {
        template_name: str(template["Parameters"][parameter]["Default"])
        for parameter, template_name in STACK_PARAMETERS.items()
        for template in templates.values()
        if parameter in template.get("Parameters", {})
    }
    stacks = {
        name: Stack(
            stack_names.get(name, name),
            template,
            (parameters or {}).get(name, {}),
            account=account,
            region=region,
        )
        for name, template in templates.items()
    }

    def imports(export: str) -> Any:
        for stack in stacks.values():
            if export in stack.exports():
                return stack.output(stack.exports()[export])
        raise Unresolved(f"no stack exports {export}")

    for stack in stacks.values():
        stack.imports = imports
    return stacks


def trust_policy(stack: Stack) -> dict[str, Any]:
    """The platform role's trust policy as IAM receives it."""
    properties = stack.template["Resources"]["PlatformRole"]["Properties"]
    trust = stack.resolve(properties["AssumeRolePolicyDocument"])
    return json.loads(trust) if isinstance(trust, str) else trust


def federated_statements(trust: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for statement in trust["Statement"]
        if "Federated" in statement.get("Principal", {})
        or "sts:AssumeRoleWithWebIdentity" in statement.get("Action", [])
    ]


@pytest.fixture(scope="module")
def stacks() -> dict[str, Stack]:
    return deployment()


@pytest.fixture(scope="module")
def overrides() -> dict[str, Any]:
    return yaml.safe_load(OVERRIDES.read_text())


@pytest.fixture(scope="module")
def values(overrides: dict[str, Any]) -> dict[str, Any]:
    """What Helm hands the chart's templates: its defaults with our file over them."""
    return deep_merge(yaml.safe_load((CHART_DIR / "values.yaml").read_text()), overrides)


def code_location(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def pod_service_accounts(values: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The namespace and service account each kind of pod runs as, as the chart's helpers
    name them (dagster.serviceAccountName, dagsterUserDeployments.serviceAccountName, and the
    run launcher's service_account_name, which step pods inherit)."""
    main = (
        values["global"]["serviceAccountName"]
        or values["serviceAccount"]["name"]
        or chart_fullname()
    )
    subchart = values["dagster-user-deployments"].get("serviceAccount", {})
    code = (
        code_location(values).get("serviceAccount", {}).get("name")
        or values["global"]["serviceAccountName"]
        or subchart.get("name")
        or f"{chart_fullname()}-user-deployments"
    )
    launcher = k8s_run_launcher_config(values)
    return {
        "webserver and daemon": (RELEASE_NAMESPACE, main),
        "code location": (RELEASE_NAMESPACE, code),
        "runs and steps": (launcher["job_namespace"], launcher["service_account_name"]),
    }


def named_buckets(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every bucket the values name: a key or variable called *bucket, and the bucket of
    every s3:// URI, wherever they are."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and key.lower().endswith("bucket"):
                yield f"{where}.{key}", item
            else:
                yield from named_buckets(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from named_buckets(item, f"{where}[{index}]")
    elif isinstance(value, str):
        name, _, setting = value.partition("=")
        if setting and name.lower().endswith("bucket"):
            yield f"{where} {name}", setting
        for bucket in re.findall(r"s3://([^/\s]+)", value):
            yield f"{where} (URI)", bucket


def test_the_image_is_in_the_repository_named_after_the_prefix(
    stacks: dict[str, Stack], values: dict[str, Any]
) -> None:
    """The README pushes to, and dagster.yaml's Image names, the ECR repository called
    ProjectPrefix; the platform role pulls from exactly that repository."""
    access = stacks["platform-access.yaml"]
    repository = code_location(values)["image"]["repository"]
    match = re.fullmatch(
        r"(?P<account>[^.]+)\.dkr\.ecr\.(?P<region>[^.]+)\.amazonaws\.com/(?P<name>.+)", repository
    )
    [platform] = access.template["Resources"]["PlatformRole"]["Properties"]["Policies"]
    [pulls] = [
        access.resolve(statement["Resource"])
        for statement in platform["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "EcrPull"
    ]

    assert match, f"{repository} is no ECR repository"
    assert (match["account"], match["region"]) == (ACCOUNT, REGION)
    assert match["name"] == access.parameter("ProjectPrefix")
    assert f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{match['name']}" in pulls


def test_every_bucket_in_the_values_is_the_storage_stacks_bucket(
    stacks: dict[str, Stack], overrides: dict[str, Any]
) -> None:
    bucket = stacks["storage.yaml"].output("BucketName")
    named = dict(named_buckets(overrides))
    others = {where: name for where, name in named.items() if name != bucket}

    assert len(named) >= 4, f"the values name fewer buckets than the platform uses: {named}"
    assert not others, f"not the storage stack's bucket {bucket}: {others}"


def test_every_pod_runs_as_the_one_service_account_annotated_with_the_platform_role(
    stacks: dict[str, Stack], values: dict[str, Any]
) -> None:
    role = stacks["platform-access.yaml"].output("PlatformRoleArn")
    accounts = pod_service_accounts(values)
    created = values["serviceAccount"]

    assert created["create"], "the chart must create the service account it annotates"
    assert created["annotations"].get(ROLE_ANNOTATION) == role
    assert {name for _, name in accounts.values()} == {values["global"]["serviceAccountName"]}, (
        accounts
    )


def test_with_an_oidc_issuer_the_platform_role_trusts_exactly_the_releases_service_account(
    values: dict[str, Any],
) -> None:
    access = deployment({"platform-access.yaml": {"OidcIssuer": ISSUER}})["platform-access.yaml"]
    [statement] = federated_statements(trust_policy(access))
    conditions = statement["Condition"]
    subjects = conditions["StringEquals"][f"{ISSUER}:sub"]
    used = {
        f"system:serviceaccount:{namespace}:{name}"
        for namespace, name in pod_service_accounts(values).values()
    }

    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert list(conditions) == ["StringEquals"], "no wildcard may widen the subjects"
    assert conditions["StringEquals"][f"{ISSUER}:aud"] == "sts.amazonaws.com"
    assert set([subjects] if isinstance(subjects, str) else subjects) == used
    assert {access.output("KubernetesSubject")} == used


def test_without_an_oidc_issuer_the_platform_role_trusts_no_federated_principal(
    stacks: dict[str, Stack],
) -> None:
    access = stacks["platform-access.yaml"]
    trust = trust_policy(access)

    assert federated_statements(trust) == []
    assert [statement["Sid"] for statement in trust["Statement"]] == [
        "PlatformUser",
        "DagsterRunTasks",
    ]
    with pytest.raises(Unresolved, match="not created"):
        access.output("KubernetesSubject")


def test_the_kubernetes_code_location_gets_the_ecs_code_locations_settings(
    stacks: dict[str, Stack], values: dict[str, Any]
) -> None:
    """Every platform setting the ECS code location gets (dagster.yaml), the Kubernetes one
    gets too, with the same value wherever the stacks decide it; only the step executor
    differs by design."""
    from penguins_platform.definitions import SETTINGS

    platform = {name for model in SETTINGS for name in variables(model).values()}
    ecs_container = containers(stacks["dagster.yaml"].template)["code"]
    ecs = {
        item["Name"]: item["Value"]
        for item in ecs_container["Environment"]
        if item["Name"] in platform
    }
    kubernetes = code_location(values)["env"]
    different = {}
    for name, value in ecs.items():
        try:
            expected = stacks["dagster.yaml"].resolve(value)
        except Unresolved:  # known once deployed, such as the MLflow load balancer's name
            continue
        if name != variable(ExecutionSettings, "executor") and kubernetes.get(name) != expected:
            different[name] = (kubernetes.get(name), expected)

    assert {"AWS_REGION", "SAGEMAKER_BUCKET", "SAGEMAKER_EXECUTION_ROLE_ARN"} <= ecs.keys()
    assert not ecs.keys() - kubernetes.keys(), "missing on Kubernetes"
    assert not different, f"Kubernetes value, ECS value: {different}"


# moto's CloudFormation skips the bucket policy and the secret, which this test does not read.
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.* not supported:UserWarning")
def test_cloudformation_creates_the_trust_policy_rendered_here(moto_server: str) -> None:
    """cfn-lint reads no JSON text, so moto's CloudFormation creates the stacks: the role it
    makes trusts what `Stack` renders, and the tests above judge the policy AWS would get."""
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID

    parameters = {"platform-access.yaml": {"OidcIssuer": ISSUER}}
    rendered = deployment(parameters, account=DEFAULT_ACCOUNT_ID, region="us-east-1")
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_server)
    for name in ("storage.yaml", "platform-access.yaml"):
        stack = rendered[name]
        cloudformation.create_stack(
            StackName=stack.name,
            TemplateBody=(TEMPLATE_DIR / name).read_text(),
            Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[
                {"ParameterKey": key, "ParameterValue": value}
                for key, value in stack.parameters.items()
            ],
        )
    role = rendered["platform-access.yaml"].resolve({"Ref": "PlatformRole"})
    created = boto3.client("iam", endpoint_url=moto_server).get_role(RoleName=role)["Role"]

    assert created["AssumeRolePolicyDocument"] == trust_policy(rendered["platform-access.yaml"])
