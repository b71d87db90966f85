"""The CloudFormation stacks of production mode: valid, least privilege, private, encrypted.

cfn-lint checks every template against the resource schemas. The other tests read the parsed
templates for what a reviewer would otherwise check by eye: every IAM policy grants named
actions on named resources, nothing admits the whole internet, every store is encrypted, and
the stacks agree on the names they pass to one another.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from penguins_platform.rehearsal.template import parse

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "infra" / "cloudformation"
TEMPLATE_NAMES = ("storage.yaml", "platform-access.yaml", "mlflow-server.yaml", "dagster.yaml")

# The stack-name parameters through which one template imports another's exports.
STACK_PARAMETERS = {
    "StorageStack": "storage.yaml",
    "AccessStack": "platform-access.yaml",
    "MlflowStack": "mlflow-server.yaml",
}

# The only actions a policy may grant on Resource "*", each with the reason AWS leaves no
# narrower choice. Anything else on "*" is a finding.
ANY_RESOURCE_ACTIONS = {
    # The registry login token is account-wide; ECR has no resource to scope it to.
    "ecr:GetAuthorizationToken",
    # EcsRunLauncher and the ECS executor copy their own task's subnets and security groups
    # to the tasks they start; EC2 Describe calls have no resource-level permissions.
    "ec2:DescribeNetworkInterfaces",
    # EcsRunLauncher compares a job's task definition with the registered one, and registers
    # a new revision when they differ; ECS has no resource-level permissions for either.
    "ecs:DescribeTaskDefinition",
    "ecs:RegisterTaskDefinition",
    # A SageMaker endpoint publishes its instance metrics with the execution role.
    # PutMetricData has no resource-level permissions; a cloudwatch:namespace condition
    # scopes it instead.
    "cloudwatch:PutMetricData",
}

MANAGED_POLICY_OWNERS = ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")
BROAD_MANAGED_POLICY = re.compile(
    r":iam::aws:policy/(?:.*/)?(?P<name>[\w-]*(?:FullAccess|AdministratorAccess|PowerUserAccess))"
)


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    return {name: parse((TEMPLATE_DIR / name).read_text()) for name in TEMPLATE_NAMES}


def branches(value: Any) -> Iterator[Any]:
    """Each value `value` can take: both sides of an `Fn::If`, never `AWS::NoValue`."""
    if isinstance(value, dict) and "Fn::If" in value:
        for side in value["Fn::If"][1:]:
            yield from branches(side)
    elif value != {"Ref": "AWS::NoValue"}:
        yield value


def as_list(value: Any) -> list[Any]:
    """A property that takes one item or a list of them, as a list, each `Fn::If` expanded."""
    items: list[Any] = []
    for branch in branches(value):
        for item in branch if isinstance(branch, list) else [branch]:
            items.extend(branches(item))
    return items


def resources_of(template: dict[str, Any], *types: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] in types
    ]


def strings(value: Any) -> Iterator[str]:
    """Every string inside a value, those inside intrinsic functions included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from strings(item)


# The policy walker.


@dataclass(frozen=True)
class Finding:
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


def sub_texts(value: Any) -> Iterator[str]:
    """Each text an `Fn::Sub` can produce from its own variables (each side of an `Fn::If`
    among them); parameters, pseudo parameters, attributes and imports stay `${...}`."""
    body = value["Fn::Sub"] if isinstance(value, dict) else value
    text, variables = (body, {}) if isinstance(body, str) else body
    choices = [
        [(name, choice) for branch in branches(item) for choice in sub_choices(branch, name)]
        for name, item in variables.items()
    ]
    for chosen in itertools.product(*choices):
        rendered = text
        for name, choice in chosen:
            rendered = rendered.replace(f"${{{name}}}", choice)
        yield rendered


def sub_choices(value: Any, name: str) -> Iterator[str]:
    """A variable's texts, or its placeholder where it is no text (an import, an attribute)."""
    if isinstance(value, str) or (isinstance(value, dict) and "Fn::Sub" in value):
        yield from sub_texts(value)
    else:
        yield f"${{{name}}}"


def json_documents(value: Any) -> Iterator[dict[str, Any]]:
    """A policy written as JSON text in an `Fn::Sub` (needed where a condition key holds a
    parameter), parsed once for each text it can produce."""
    for text in sub_texts(value):
        if '"Statement"' in text:
            yield json.loads(text)


def policy_documents(value: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy document under `value`: any mapping that holds a `Statement`, wherever a
    resource keeps it (role and user policies, trust policies, bucket and key policies), as
    YAML or as JSON text."""
    if isinstance(value, dict):
        if "Statement" in value:
            yield where, value
            return
        if "Fn::Sub" in value:
            for index, document in enumerate(json_documents(value)):
                yield f"{where}<{index}>", document
            return
        for key, item in value.items():
            yield from policy_documents(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from policy_documents(item, f"{where}[{index}]")


def statement_findings(statement: dict[str, Any], where: str) -> Iterator[Finding]:
    """What is too broad in one statement. Deny statements take rights away, so their
    breadth is harmless (a TLS-only bucket policy denies "s3:*" to "*" on purpose)."""
    if statement.get("Effect") != "Allow":
        return
    where = f"{where}[{statement['Sid']}]" if "Sid" in statement else where
    for key in ("NotAction", "NotResource"):
        if key in statement:
            yield Finding(where, f"Allow with {key} grants everything it does not name")
    principal = statement.get("Principal")
    if (principal == "*" or principal == {"AWS": "*"}) and "Condition" not in statement:
        yield Finding(where, 'Principal "*" without a condition')
    actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
    for action in actions:
        if action == "*":
            yield Finding(where, 'Action "*"')
        elif action.endswith(":*"):
            yield Finding(where, f'service-wide action "{action}"')
        elif "*" in action:
            yield Finding(where, f'wildcard action "{action}"')
    if "*" in as_list(statement.get("Resource", [])):
        for action in actions:
            if action not in ANY_RESOURCE_ACTIONS:
                yield Finding(where, f'Resource "*" for {action}')


def policy_findings(template: dict[str, Any], name: str = "template") -> list[Finding]:
    """Every IAM problem in a template: broad statements in any policy document, and
    AWS-managed FullAccess, Administrator or PowerUser policies attached to an identity."""
    findings: list[Finding] = []
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for where, document in policy_documents(properties, f"{name}:{logical_id}"):
            for statement in as_list(document["Statement"]):
                findings.extend(statement_findings(statement, where))
        if resource["Type"] in MANAGED_POLICY_OWNERS:
            for arn in strings(properties.get("ManagedPolicyArns", [])):
                if match := BROAD_MANAGED_POLICY.search(arn):
                    findings.append(
                        Finding(f"{name}:{logical_id}", f"AWS-managed policy {match['name']}")
                    )
    return findings


RECKLESS_ROLE = """
Resources:
  Reckless:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: ecs-tasks.amazonaws.com}
            Action: sts:AssumeRole
      ManagedPolicyArns:
        - !Sub "arn:${AWS::Partition}:iam::aws:policy/AmazonSageMakerFullAccess"
      Policies:
        - PolicyName: reckless
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Sid: Everything
                Effect: Allow
                Action: "*"
                Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket"
              - Sid: AllOfS3
                Effect: Allow
                Action: s3:*
                Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket"
              - Sid: WriteAnywhere
                Effect: Allow
                Action: [s3:GetObject, s3:PutObject]
                Resource: "*"
  Loose:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: s3:Put*
            Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket/*"
  PublicBucket:
    Type: AWS::S3::BucketPolicy
    Properties:
      Bucket: some-bucket
      PolicyDocument:
        Statement:
          - Effect: Allow
            Principal: "*"
            Action: s3:GetObject
            Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket/*"
"""

CAREFUL_ROLE = """
Resources:
  Careful:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: ecs-tasks.amazonaws.com}
            Action: sts:AssumeRole
      Policies:
        - PolicyName: careful
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: s3:PutObject
                Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket/prefix/*"
              - Effect: Allow
                Action: ecr:GetAuthorizationToken
                Resource: "*"
              - Effect: Deny
                Principal: "*"
                Action: "s3:*"
                Resource: "*"
"""


def test_policy_walker_reports_each_broad_grant() -> None:
    problems = {finding.problem for finding in policy_findings(parse(RECKLESS_ROLE))}

    assert {
        'Action "*"',
        'service-wide action "s3:*"',
        'Resource "*" for s3:GetObject',
        'Resource "*" for s3:PutObject',
        "AWS-managed policy AmazonSageMakerFullAccess",
        'wildcard action "s3:Put*"',
        'Principal "*" without a condition',
    } <= problems, problems


def test_policy_walker_accepts_scoped_grants_and_deny_statements() -> None:
    assert policy_findings(parse(CAREFUL_ROLE)) == []


JSON_TEXT_TRUST = """
Conditions:
  Open: !Equals [a, b]
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: !Sub
        - >-
          {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
          "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}${More}]}
        - More: !If
            - Open
            - ', {"Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}'
            - ""
"""


def test_policy_walker_reads_each_text_a_json_policy_can_take() -> None:
    """A trust policy written as JSON text (platform-access.yaml's, for IRSA) is judged too,
    with each side of its conditions."""
    template = parse(JSON_TEXT_TRUST)
    documents = list(policy_documents(template["Resources"], "t"))
    findings = [str(finding) for finding in policy_findings(template)]

    assert [len(document["Statement"]) for _, document in documents] == [2, 1]
    assert findings == [
        'template:Role.AssumeRolePolicyDocument<0>[Anyone]: Principal "*" without a condition'
    ]


def test_loader_reads_the_short_tags_as_their_long_form() -> None:
    value = parse("a: !GetAtt Bucket.Arn\nb: !Sub [x, {y: !Ref Z}]\nc: !If [C, 1, 2]")

    assert value == {
        "a": {"Fn::GetAtt": ["Bucket", "Arn"]},
        "b": {"Fn::Sub": ["x", {"y": {"Ref": "Z"}}]},
        "c": {"Fn::If": ["C", 1, 2]},
    }


# The templates.


def test_templates_pass_cfn_lint() -> None:
    from cfnlint.api import ManualArgs, lint_by_config

    paths = [str(TEMPLATE_DIR / name) for name in TEMPLATE_NAMES]
    matches = lint_by_config(ManualArgs(templates=paths, regions=["us-east-1"]))
    problems = [m for m in matches if m.rule.severity in ("error", "warning")]

    assert not problems, "cfn-lint:\n" + "\n".join(map(str, problems))


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_iam_policies_grant_named_actions_on_named_resources(
    templates: dict[str, dict[str, Any]], name: str
) -> None:
    findings = policy_findings(templates[name], name)

    assert not findings, "\n".join(map(str, findings))


def test_every_allow_listed_action_is_one_a_template_needs(
    templates: dict[str, dict[str, Any]],
) -> None:
    """An entry no template grants on "*" any more is stale and should go."""
    granted = set()
    for name, template in templates.items():
        for _, resource in template["Resources"].items():
            for _, document in policy_documents(resource.get("Properties", {}), name):
                for statement in as_list(document["Statement"]):
                    if "*" in as_list(statement.get("Resource", [])):
                        granted.update(as_list(statement.get("Action", [])))
    stale = ANY_RESOURCE_ACTIONS - granted

    assert not stale, f"allow-listed, yet no template grants them on any resource: {stale}"


def test_bucket_is_encrypted_versioned_private_and_tls_only(
    templates: dict[str, dict[str, Any]],
) -> None:
    storage = templates["storage.yaml"]
    [(_, bucket)] = resources_of(storage, "AWS::S3::Bucket")
    properties = bucket["Properties"]
    [encryption] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    [(_, policy)] = resources_of(storage, "AWS::S3::BucketPolicy")
    tls_only = [
        statement
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement["Principal"] == "*"
        and str(statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower()
        == "false"
    ]

    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")
    assert encryption["BucketKeyEnabled"] is True
    assert properties["VersioningConfiguration"]["Status"] == "Enabled"
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert tls_only, "no statement denies requests without TLS"
    assert policy["Properties"]["Bucket"] == {"Ref": "Bucket"}
    assert {"Fn::GetAtt": ["Bucket", "Arn"]} in tls_only[0]["Resource"]
    assert {"Fn::Sub": "${Bucket.Arn}/*"} in tls_only[0]["Resource"]


def test_every_database_is_encrypted_and_private(templates: dict[str, dict[str, Any]]) -> None:
    databases = {
        f"{name}:{logical_id}": resource["Properties"]
        for name, template in templates.items()
        for logical_id, resource in resources_of(
            template, "AWS::RDS::DBInstance", "AWS::RDS::DBCluster"
        )
    }
    unencrypted = [where for where, p in databases.items() if p.get("StorageEncrypted") is not True]
    public = [where for where, p in databases.items() if p.get("PubliclyAccessible", False)]

    assert len(databases) == 2, f"expected MLflow's and Dagster's databases, found {databases}"
    assert not unencrypted, f"StorageEncrypted is not true: {unencrypted}"
    assert not public, f"publicly accessible: {public}"


def ingress_rules(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ingress rule with the security group it admits to: inline in the group, or a
    SecurityGroupIngress resource of its own (a conditional one among them) that names the
    group in GroupId."""
    for logical_id, resource in resources_of(template, "AWS::EC2::SecurityGroup"):
        for rule in as_list(resource["Properties"].get("SecurityGroupIngress", [])):
            yield logical_id, rule
    for logical_id, resource in resources_of(template, "AWS::EC2::SecurityGroupIngress"):
        rule = dict(resource["Properties"])
        group = rule.pop("GroupId", None)
        yield (group["Ref"] if isinstance(group, dict) and "Ref" in group else logical_id), rule


STANDALONE_INGRESS = """
Resources:
  Group:
    Type: AWS::EC2::SecurityGroup
    Properties:
      SecurityGroupIngress:
        - {IpProtocol: tcp, FromPort: 80, ToPort: 80, CidrIp: 10.0.0.0/16}
  Https:
    Type: AWS::EC2::SecurityGroupIngress
    Condition: HasCertificate
    Properties:
      GroupId: !Ref Group
      IpProtocol: tcp
      FromPort: 443
      ToPort: 443
      CidrIp: 0.0.0.0/0
"""


def test_ingress_rules_count_a_standalone_rule_for_the_group_it_names() -> None:
    rules = list(ingress_rules(parse(STANDALONE_INGRESS)))

    assert [(group, rule["FromPort"]) for group, rule in rules] == [("Group", 80), ("Group", 443)]
    assert rules[1][1]["CidrIp"] == "0.0.0.0/0"


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_no_ingress_admits_the_whole_internet(
    templates: dict[str, dict[str, Any]], name: str
) -> None:
    template = templates[name]
    parameters = template.get("Parameters", {})

    def values(value: Any) -> list[Any]:
        # A parameter counts with its default: a rule is only as tight as what it gets.
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
            return [value, parameters[value["Ref"]].get("Default")]
        return list(branches(value))

    open_rules = [
        f"{logical_id}: {rule}"
        for logical_id, rule in ingress_rules(template)
        if "0.0.0.0/0" in values(rule.get("CidrIp")) or "::/0" in values(rule.get("CidrIpv6"))
    ]

    assert not open_rules, "\n".join(open_rules)


@pytest.mark.parametrize("name", ["mlflow-server.yaml", "dagster.yaml"])
def test_load_balancer_admits_only_allowed_cidr(
    templates: dict[str, dict[str, Any]], name: str
) -> None:
    template = templates[name]
    [(_, balancer)] = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    groups = {group["Ref"] for group in balancer["Properties"]["SecurityGroups"]}
    rules = [rule for logical_id, rule in ingress_rules(template) if logical_id in groups]
    cidrs = [rule["CidrIp"] for rule in rules if "CidrIp" in rule]
    allowed_cidr = template["Parameters"]["AllowedCidr"]
    pattern = re.compile(allowed_cidr["AllowedPattern"])
    ports = {rule["FromPort"] for rule in rules if "CidrIp" in rule}

    assert cidrs, "the load balancer admits no CIDR at all"
    assert all(cidr == {"Ref": "AllowedCidr"} for cidr in cidrs), cidrs
    # HTTP, and HTTPS with a certificate: the rule of its own is counted too.
    assert ports == {80, 443}, ports
    assert not any("CidrIpv6" in rule for rule in rules)
    assert "Default" not in allowed_cidr
    assert pattern.fullmatch("10.0.0.0/16") and pattern.fullmatch("203.0.113.7/32")
    assert not pattern.fullmatch("0.0.0.0/0") and not pattern.fullmatch("10.0.0.0/0")


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_parameter_and_output_has_a_description(
    templates: dict[str, dict[str, Any]], name: str
) -> None:
    template = templates[name]
    undescribed = [
        f"{section} {key}"
        for section in ("Parameters", "Outputs")
        for key, value in template.get(section, {}).items()
        if not value.get("Description")
    ]

    assert template.get("Description"), f"{name} has no Description"
    assert not undescribed, undescribed


def test_every_import_names_an_export_of_the_stack_it_imports_from(
    templates: dict[str, dict[str, Any]],
) -> None:
    exports = {
        name: {
            output["Export"]["Name"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
            for output in template.get("Outputs", {}).values()
            if "Export" in output
        }
        for name, template in templates.items()
    }
    imports = [
        (name, text)
        for name, template in templates.items()
        for text in import_names(template["Resources"])
    ]
    unmatched = []
    for name, text in imports:
        parameter, _, export = text.removeprefix("${").partition("}-")
        source = STACK_PARAMETERS.get(parameter)
        if source is None or export not in exports[source]:
            unmatched.append(f"{name} imports {text!r}")

    assert imports, "no template imports anything"
    assert not unmatched, "\n".join(unmatched)


def import_names(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "Fn::ImportValue" in value:
            yield value["Fn::ImportValue"]["Fn::Sub"]
        for item in value.values():
            yield from import_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from import_names(item)


def test_stack_name_parameters_default_to_the_same_stacks(
    templates: dict[str, dict[str, Any]],
) -> None:
    defaults: dict[str, set[str]] = {}
    for template in templates.values():
        for parameter in STACK_PARAMETERS.keys() | {"ProjectPrefix"}:
            if parameter in template.get("Parameters", {}):
                defaults.setdefault(parameter, set()).add(
                    template["Parameters"][parameter]["Default"]
                )

    assert all(len(values) == 1 for values in defaults.values()), defaults


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_log_group_has_a_retention(templates: dict[str, dict[str, Any]], name: str) -> None:
    forever = [
        logical_id
        for logical_id, resource in resources_of(templates[name], "AWS::Logs::LogGroup")
        if "RetentionInDays" not in resource["Properties"]
    ]

    assert not forever, f"log groups that keep events forever: {forever}"


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_arns_take_the_partition_from_the_stack(
    templates: dict[str, dict[str, Any]], name: str
) -> None:
    template = templates[name]
    hard_coded = [
        text
        for section in ("Resources", "Outputs")
        for text in strings(template.get(section, {}))
        if "arn:aws:" in text
    ]

    assert not hard_coded, hard_coded


def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        container["Name"]: container
        for _, definition in resources_of(template, "AWS::ECS::TaskDefinition")
        for container in definition["Properties"]["ContainerDefinitions"]
    }


# What the Dagster processes read: the instance (every process loads infra/dagster/dagster.yaml),
# the workspace (the webserver and the daemon load infra/dagster/workspace.yaml), and the
# platform's own code (the code location; runs take these from the daemon, see env_vars). The
# names agreed for the stacks come first; the files add whatever else they read.
DAGSTER_CONFIG_DIR = TEMPLATE_DIR.parent / "dagster"
INSTANCE_VARIABLES = {
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
    "DAGSTER_S3_BUCKET",
    "DAGSTER_S3_PREFIX",
    "DAGSTER_RUN_TASK_ROLE_ARN",
    "DAGSTER_RUN_EXECUTION_ROLE_ARN",
    "DAGSTER_ECS_CONTAINER",
    "AWS_REGION",
}
PLATFORM_VARIABLES = {
    "PENGUINS_IO_BUCKET",
    "PENGUINS_EXECUTOR",
    "PENGUINS_SCHEDULES",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "SAGEMAKER_EXECUTION_ROLE_ARN",
    "SAGEMAKER_BUCKET",
}
SECRET_VARIABLES = {"DAGSTER_PG_PASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}


def variables_read(config: Any) -> set[str]:
    """The environment variables a Dagster config file reads (`{env: NAME}`)."""
    if isinstance(config, dict):
        found = {config["env"]} if isinstance(config.get("env"), str) else set()
        return found.union(*(variables_read(value) for value in config.values()))
    if isinstance(config, list):
        return set().union(*(variables_read(item) for item in config))
    return set()


def container_variables(container: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    environment = {item["Name"]: item["Value"] for item in container.get("Environment", [])}
    return environment, {item["Name"] for item in container.get("Secrets", [])}


def test_dagster_containers_carry_the_variables_the_instance_and_the_code_read(
    templates: dict[str, dict[str, Any]],
) -> None:
    instance = parse((DAGSTER_CONFIG_DIR / "dagster.yaml").read_text())
    workspace = parse((DAGSTER_CONFIG_DIR / "workspace.yaml").read_text())
    copied_to_runs = {
        item.split("=", 1)[0] for item in instance["run_launcher"]["config"].get("env_vars", [])
    }
    needs = {
        # check-instance refuses to start a service without what env_vars copies into runs.
        "webserver": INSTANCE_VARIABLES
        | variables_read(instance)
        | variables_read(workspace)
        | PLATFORM_VARIABLES
        | copied_to_runs,
        "daemon": INSTANCE_VARIABLES
        | variables_read(instance)
        | variables_read(workspace)
        | PLATFORM_VARIABLES
        | copied_to_runs,
        "code": INSTANCE_VARIABLES | variables_read(instance) | PLATFORM_VARIABLES | copied_to_runs,
    }
    found = containers(templates["dagster.yaml"])

    assert set(found) == set(needs)
    for name, container in found.items():
        environment, secrets = container_variables(container)
        missing = needs[name] - environment.keys() - secrets
        assert not missing, f"the {name} container lacks {sorted(missing)}"
        assert not SECRET_VARIABLES & environment.keys(), f"{name} has a secret in clear"
    for name in found:
        environment, _ = container_variables(found[name])
        assert environment["PENGUINS_EXECUTOR"] == "ecs"
        assert environment["PENGUINS_SCHEDULES"] == "on"
        assert environment["DAGSTER_ECS_CONTAINER"] == "run"


def test_mlflow_server_runs_basic_auth_on_postgres_and_s3(
    templates: dict[str, dict[str, Any]],
) -> None:
    server = containers(templates["mlflow-server.yaml"])["mlflow"]
    [command] = server["Command"]
    script = command["Fn::Sub"][0]
    environment = {item["Name"]: item["Value"] for item in server["Environment"]}

    assert "mlflow server --app-name basic-auth" in script
    assert '--backend-store-uri "$uri"' in script and 'uri="postgresql+psycopg2://' in script
    assert "--artifacts-destination s3://${BucketName}/mlflow" in script
    assert "--host 0.0.0.0" in script
    assert environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert {"MLFLOW_AUTH_ADMIN_PASSWORD", "DB_PASSWORD"} <= {s["Name"] for s in server["Secrets"]}


def test_mlflow_task_role_reaches_only_the_mlflow_prefix(
    templates: dict[str, dict[str, Any]],
) -> None:
    template = templates["mlflow-server.yaml"]
    task_role = template["Resources"]["TaskRole"]["Properties"]
    statements = [
        statement
        for policy in task_role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    object_resources = [
        text
        for statement in statements
        if statement["Action"] != "s3:ListBucket"
        for text in strings(statement["Resource"])
        if text.startswith("${BucketArn}")
    ]
    [listing] = [statement for statement in statements if statement["Action"] == "s3:ListBucket"]

    assert object_resources == ["${BucketArn}/mlflow/*"]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["mlflow", "mlflow/*"]
