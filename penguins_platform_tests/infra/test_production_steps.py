"""The README's "End to end on AWS", run as written, so its steps cannot rot.

Every bash block of that section runs, in the README's order, in one `bash -euo pipefail`
against moto: the real AWS CLI (the `dev` group's awscli), the real `mlflow sagemaker
build-and-push-container`, git and jq, and the first-run launch against a real
dagster-webserver. Docker is the one thing that cannot run here (no daemon), so it is
recorded (`NOT_RUN`) by a stand-in that keeps the images it "built" and pushes their
manifests into moto's ECR, which refuses a repository that does not exist.

Between blocks the test does only three kinds of thing, each said where it happens: it puts
in what is the user's own (their VPC and subnets; a new commit), it points the launch at the
local webserver (the stack's load balancer exists only in AWS), and it does what the platform
does by itself on AWS (the champion sensor's SageMaker deployment), so that the teardown has
something to remove. It records moto's state after the blocks, and the tests read that.

moto's CloudFormation lacks a few things that CloudFormation does; `cloudformation_as_aws`
adds each that the steps cross, with the gap it closes. It still skips, with a warning, the
bucket's TLS-only policy and the database secrets' attachments, which no step reads
(test_cloudformation.py checks the policy).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from penguins_platform_tests.conftest import CLOUD_VARIABLES, REPO_ROOT, VENV_BIN
from penguins_platform_tests.readme import README, shown
from penguins_platform_tests.servers import (
    free_port,
    start_process,
    stop_process_group,
    wait_for_http,
)

SECTION_START = "### End to end on AWS\n"
SECTION_END = "### ECS or Kubernetes?\n"
BLOCK_NAME = re.compile(r"<!-- command: (production-[\w-]+) -->\n```bash\n")

# Commands the blocks call that do not run here, each with the reason. Every call of one of
# these is recorded, and nothing else may be missing.
NOT_RUN = {
    "docker": "no Docker daemon on this machine: a stand-in records each call, keeps the "
    "images it built and tagged, and a push puts the image's manifest into moto's ECR "
    "(refused without a login to that registry or a repository of that name)",
}

# What is the user's own, and what the test puts in its place, after the block that sets it.
USER_NETWORK = ("VPC", "SUBNETS", "LB_SUBNETS")
FAKE = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DB_STACKS = ("dagster", "mlflow")


# What moto's CloudFormation lacks, added for the length of the walkthrough.


@dataclass
class Made:
    """A resource that one of the models below made, as moto's CloudFormation holds one."""

    physical_resource_id: str
    attributes: dict[str, str]
    remove: Callable[[], object]

    def get_cfn_attribute(self, attribute: str) -> str:
        return self.attributes[attribute]

    def is_created(self) -> bool:
        return True

    def delete(self, account_id: str, region_name: str) -> None:
        self.remove()


class AddedModel:
    """A resource type moto's CloudFormation skips with a warning, made in moto's own backend
    for that service, so that its Ref, attributes and outputs exist as on AWS."""

    resource_type = ""

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.resource_type

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return attribute in ("Id", "Arn")

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region_name: str, **_: Any
    ) -> Made:
        return cls.make(template["Properties"], name, account_id, region_name)

    @classmethod
    def make(cls, properties: dict[str, Any], name: str, account: str, region: str) -> Made:
        raise NotImplementedError

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Made, **_: Any) -> Made:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, *_: Any) -> None:
        """Each made resource deletes itself."""


class SecretModel(AddedModel):
    """A secret generated as GenerateSecretString says: the MLflow stack's AdminSecretArn."""

    resource_type = "AWS::SecretsManager::Secret"

    @classmethod
    def make(cls, properties: dict[str, Any], name: str, account: str, region: str) -> Made:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[account][region]
        text = properties.get("SecretString")
        if "GenerateSecretString" in properties:
            spec = properties["GenerateSecretString"]
            generated = backend.get_random_password(
                password_length=int(spec.get("PasswordLength", 32)),
                exclude_characters=spec.get("ExcludeCharacters", ""), exclude_numbers=False,
                exclude_punctuation=bool(spec.get("ExcludePunctuation")),
                exclude_uppercase=False, exclude_lowercase=False, include_space=False,
                require_each_included_type=True,
            )  # fmt: skip
            text = json.loads(generated)["RandomPassword"]
            if "GenerateStringKey" in spec:
                value = json.loads(spec.get("SecretStringTemplate", "{}"))
                text = json.dumps({**value, spec["GenerateStringKey"]: text})
        created = backend.create_secret(
            name=properties.get("Name", name), secret_string=text, secret_binary=None,
            description=properties.get("Description"), tags=[], kms_key_id=None,
            client_request_token=None, replica_regions=[], force_overwrite=False,
        )  # fmt: skip
        arn = json.loads(created)["ARN"]
        return Made(arn, {"Id": arn}, lambda: backend.delete_secret(arn, None, True))


class NamespaceModel(AddedModel):
    """The Cloud Map namespace the code location's name lives in."""

    resource_type = "AWS::ServiceDiscovery::PrivateDnsNamespace"

    @classmethod
    def make(cls, properties: dict[str, Any], name: str, account: str, region: str) -> Made:
        from moto.servicediscovery.models import servicediscovery_backends

        backend = servicediscovery_backends[account][region]
        operation = backend.create_private_dns_namespace(
            name=properties["Name"], creator_request_id=name,
            description=properties.get("Description", ""), vpc=properties["Vpc"], tags=[],
            properties=properties.get("Properties", {}),
        )  # fmt: skip
        namespace = backend.namespaces[backend.get_operation(operation).targets["NAMESPACE"]]
        return Made(
            namespace.id, {"Id": namespace.id, "Arn": namespace.arn},
            lambda: backend.delete_namespace(namespace.id),
        )  # fmt: skip


class DiscoveryServiceModel(AddedModel):
    """The code location's Cloud Map service, whose ARN its ECS service names."""

    resource_type = "AWS::ServiceDiscovery::Service"

    @classmethod
    def make(cls, properties: dict[str, Any], name: str, account: str, region: str) -> Made:
        from moto.servicediscovery.models import servicediscovery_backends

        backend = servicediscovery_backends[account][region]
        service = backend.create_service(
            name=properties.get("Name", name), namespace_id=properties["NamespaceId"],
            creator_request_id=name, description=properties.get("Description", ""),
            dns_config=properties.get("DnsConfig", {}), health_check_config={},
            health_check_custom_config=properties.get("HealthCheckCustomConfig", {}), tags=[],
            service_type="DNS_HTTP",
        )  # fmt: skip
        return Made(
            service.id, {"Id": service.id, "Arn": service.arn},
            lambda: backend.delete_service(service.id),
        )  # fmt: skip


ADDED_MODELS = (SecretModel, NamespaceModel, DiscoveryServiceModel)


def cloudformation_as_aws(patch: pytest.MonkeyPatch) -> None:
    """Close the gaps between moto 5.2's CloudFormation and CloudFormation that the README's
    commands cross; each patch names its gap."""
    from moto.cloudformation import models, parsing, responses
    from moto.iam.models import InlinePolicy
    from moto.s3.models import FakeBucket, s3_backends

    # The resource types moto skips with a warning (above). Its own map is cached; keep it
    # as it was for everything else in this process.
    added = {model.cloudformation_type(): model for model in ADDED_MODELS}
    model_map = {**parsing.get_model_map(), **added}
    name_map = {**parsing.get_name_type_map(), **dict.fromkeys(added, "Name")}
    patch.setattr(parsing, "get_model_map", lambda: model_map)
    patch.setattr(parsing, "get_name_type_map", lambda: name_map)
    patch.setattr(parsing, "get_model_list", lambda: list(model_map.values()))

    # `!GetAtt Database.Endpoint.Address` is (Database, Endpoint.Address): CloudFormation
    # splits at the first dot, moto at every dot.
    tag_constructor = models.yaml_tag_constructor

    def short_tags(loader: Any, tag: str, node: Any) -> Any:
        if tag == "!GetAtt" and isinstance(node, yaml.ScalarNode):
            return {"Fn::GetAtt": node.value.split(".", 1)}
        return tag_constructor(loader, tag, node)

    patch.setattr(models, "yaml_tag_constructor", short_tags)
    patch.setattr(responses, "yaml_tag_constructor", short_tags)

    # `aws cloudformation deploy` creates a stack through a change set; moto executes one
    # without the stack's outputs, exports or imports. Create it as CreateStack does.
    execute = models.CloudFormationBackend.execute_change_set

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        if change_set.change_set_type != "CREATE":
            return execute(self, change_set_name, stack_name)
        del self.stacks[change_set.stack_id]  # the placeholder that CreateChangeSet made
        self.create_stack(
            name=change_set.stack_name, template=change_set.template,
            parameters=change_set.parameters, tags=change_set.tags, role_arn=change_set.role_arn,
        )  # fmt: skip
        change_set.execution_status = "EXECUTE_COMPLETE"

    patch.setattr(models.CloudFormationBackend, "execute_change_set", execute_change_set)

    # An update's previous values come back as moto holds them (a subnet list as a list);
    # a parameter is text, as CloudFormation passes it.
    change_set_init = models.ChangeSet.__init__

    def change_set(self: Any, **kwargs: Any) -> None:
        parameters = kwargs.pop("parameters")
        text = {k: ",".join(v) if isinstance(v, list) else v for k, v in parameters.items()}
        change_set_init(self, parameters=text, **kwargs)

    patch.setattr(models.ChangeSet, "__init__", change_set)

    # A resource moto cannot update (an RDS instance) stays as it was; moto drops it.
    update_resource = parsing.parse_and_update_resource

    def parse_and_update_resource(logical_id: str, resource_json: Any, resources: Any, **kw: Any):
        before = resources._parsed_resources.get(logical_id)
        after = update_resource(logical_id, resource_json, resources, **kw)
        return before if after is None else after

    patch.setattr(parsing, "parse_and_update_resource", parse_and_update_resource)

    # The bucket's VersioningConfiguration (moto ignores it): the teardown must delete every
    # version, as on AWS.
    create_bucket = FakeBucket.create_from_cloudformation_json

    def bucket(cls: Any, name: str, template: dict[str, Any], account: str, region: str, **kw: Any):
        made = create_bucket(name, template, account, region, **kw)
        status = template["Properties"].get("VersioningConfiguration", {}).get("Status")
        if status:
            s3_backends[account]["aws"].put_bucket_versioning(made.name, status)
        return made

    patch.setattr(FakeBucket, "create_from_cloudformation_json", classmethod(bucket))

    # A user's inline policy has no roles; moto keeps None, and deleting any role then fails.
    policy_update = InlinePolicy.update

    def inline_policy(self: Any, name: str, document: str, groups: Any, roles: Any, users: Any):
        policy_update(self, name, document, groups or [], roles or [], users or [])

    patch.setattr(InlinePolicy, "update", inline_policy)


# Docker, recorded.

DOCKER = '''#!{python}
"""docker, recorded: no daemon runs here. Keeps what a build or tag made; a push needs a
login to the image's registry and puts the image's manifest into (moto's) ECR."""
import hashlib, json, os, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["DOCKER_CALLS"], "a") as calls:
    calls.write(json.dumps({{"argv": args, "cwd": os.getcwd()}}) + "\\n")
state_file = Path(os.environ["DOCKER_STATE"])
state = {{"logins": [], "images": {{}}}}
if state_file.exists():
    state = json.loads(state_file.read_text())

def fail(message):
    sys.exit(print(message, file=sys.stderr) or 1)

command = args[0] if args else ""
if command == "login":
    if "--password-stdin" not in args or not sys.stdin.read().strip():
        fail("docker login: no password on stdin")
    state["logins"].append(args[-1])
elif command == "build":
    dockerfile = args[args.index("-f") + 1] if "-f" in args else "Dockerfile"
    if not Path(dockerfile).is_file() or not Path(args[-1]).is_dir():
        fail(f"docker build: no {{dockerfile}} or context {{args[-1]}} in {{os.getcwd()}}")
    image = hashlib.sha256(json.dumps([args, os.getcwd()]).encode()).hexdigest()
    state["images"][args[args.index("-t") + 1]] = image
elif command == "tag":
    if args[1] not in state["images"]:
        fail(f"Error response from daemon: No such image: {{args[1]}}")
    state["images"][args[2]] = state["images"][args[1]]
elif command == "push":
    name = args[1]
    if name not in state["images"]:
        fail(f"An image does not exist locally with the tag: {{name}}")
    registry, _, rest = name.partition("/")
    if registry not in state["logins"]:
        fail(f"no basic auth credentials ({{registry}})")
    repository, _, tag = rest.rpartition(":")
    region = registry.split(".")[3]
    import boto3
    ecr = boto3.client("ecr", region_name=region)
    manifest = {{"schemaVersion": 2, "layers": [],
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {{"digest": "sha256:" + state["images"][name]}}}}
    try:
        ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest))
    except ecr.exceptions.RepositoryNotFoundException:
        fail(f"name unknown: The repository with name '{{repository}}' does not exist")
else:
    fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
state_file.write_text(json.dumps(state))
'''

# The stand-ins put first on the shell's PATH; NOT_RUN says why each cannot run here.
STAND_INS = {"docker": DOCKER}


# The shell.


class Shell:
    """One `bash -euo pipefail`, fed one script at a time: the README's blocks and the test's
    own lines, each with its name, run in the shell's own variables."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.log = workdir / "shell.log"
        self.count = 0
        # A session of its own, so that a block that hangs goes with all its children.
        self.process = subprocess.Popen(
            ["bash", "-euo", "pipefail"], stdin=subprocess.PIPE, text=True, cwd=REPO_ROOT,
            env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def run(self, name: str, script: str, timeout: float = 300.0) -> dict[str, str]:
        """Run `script`; the shell's variables after it."""
        assert self.process.stdin is not None
        self.count += 1
        slug = re.sub(r"[^\w-]+", "-", name)
        path = self.workdir / f"{self.count:02d}-{slug}.sh"
        path.write_text(script + "\n")
        variables = path.with_suffix(".vars")
        done = path.with_suffix(".done")
        self.process.stdin.write(
            f"echo {shlex.quote('>>> ' + name)}\nsource {path} </dev/null\n"
            # Every variable, NUL-separated, then a mark that the block ended.
            f'for _v in $(compgen -v); do printf \'%s=%s\\0\' "$_v" "${{!_v-}}"; done'
            f" > {variables}\n: > {done}\n"
        )
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while not done.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"block {name!r} failed or hung (exit {self.process.poll()}):\n"
                    + self.log.read_text()[-6000:]
                )
            time.sleep(0.1)
        pairs = variables.read_text().split("\0")
        return dict(pair.split("=", 1) for pair in pairs if "=" in pair)

    def close(self) -> None:
        """End of input ends the shell; one still busy (a block that hung) is stopped."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_process_group(self.process)


def section_blocks() -> list[str]:
    """The names of the section's bash blocks, in order; each must be named."""
    text = README.read_text()
    section = text[text.index(SECTION_START) : text.index(SECTION_END)]
    names = BLOCK_NAME.findall(section)
    assert section.count("```bash\n") == len(names), (
        "every bash block of 'End to end on AWS' needs a '<!-- command: production-... -->' "
        "line before it, so that this test runs it"
    )
    return names


# What the test records.


@dataclass
class Walkthrough:
    """What ran, what the shell held after each block, and moto's state at named moments."""

    blocks: list[str] = field(default_factory=list)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    stand_ins: list[str] = field(default_factory=list)
    docker: list[list[str]] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)
    deployed_image: str = ""
    log: str = ""


def aws(moto: str, region: str, service: str) -> Any:
    """A client of moto, for what the test itself looks at or does."""
    session = boto3.session.Session(
        region_name=region,
        aws_access_key_id=FAKE["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE["AWS_SECRET_ACCESS_KEY"],
    )
    return session.client(service, endpoint_url=moto)


def moto_state(moto: str, region: str, prefix: str) -> dict[str, Any]:
    """What the walkthrough's resources look like in moto now."""
    cloudformation = aws(moto, region, "cloudformation")
    ecr = aws(moto, region, "ecr")
    sagemaker = aws(moto, region, "sagemaker")
    stacks = {
        summary["StackName"]: summary
        for summary in cloudformation.list_stacks()["StackSummaries"]
        if summary["StackStatus"] != "DELETE_COMPLETE"
    }
    parameters = {
        name: {
            p["ParameterKey"]: p["ParameterValue"]
            for p in cloudformation.describe_stacks(StackName=name)["Stacks"][0]["Parameters"]
        }
        for name in stacks
    }
    images = {
        repository["repositoryName"]: sorted(
            image["imageTag"]
            for image in ecr.list_images(repositoryName=repository["repositoryName"])["imageIds"]
        )
        for repository in ecr.describe_repositories()["repositories"]
    }
    return {
        "stacks": {name: summary["StackStatus"] for name, summary in stacks.items()},
        "parameters": parameters,
        "images": images,
        "buckets": [b["Name"] for b in aws(moto, region, "s3").list_buckets()["Buckets"]],
        "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]],
        "endpoint_configs": [
            c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
        ],
        "models": [m["ModelName"] for m in sagemaker.list_models()["Models"]],
        "log_groups": [
            g["logGroupName"]
            for g in aws(moto, region, "logs").describe_log_groups(
                logGroupNamePrefix=f"/aws/sagemaker/Endpoints/{prefix}"
            )["logGroups"]
        ],
    }


def user_network(moto: str, region: str) -> dict[str, str]:
    """The user's VPC and subnets: moto's default VPC in the region and two of its subnets
    (the README's example IDs exist nowhere)."""
    ec2 = aws(moto, region, "ec2")
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    two = ",".join(subnet["SubnetId"] for subnet in subnets["Subnets"][:2])
    return {"VPC": vpc["VpcId"], "SUBNETS": two, "LB_SUBNETS": two}


def deploy_as_the_platform(moto: str, region: str, prefix: str, workdir: Path) -> str:
    """What the champion sensor does on AWS after a training run: the SageMaker target, with
    the code location's own environment (its task definition in the Dagster stack), deploys
    a version. Returns the serving image the endpoint's model runs."""
    from penguins_platform.deploy.sagemaker import SageMakerSettings, SageMakerTarget
    from penguins_platform.settings import variables

    definition = aws(moto, region, "ecs").describe_task_definition(
        taskDefinition=f"{prefix}-dagster-code"
    )["taskDefinition"]
    [container] = definition["containerDefinitions"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    names = variables(SageMakerSettings).values()
    settings = SageMakerSettings.model_validate(
        {name: environment[name] for name in names if name in environment}
        | {"endpoint_url": moto, "wait_timeout_seconds": 5.0, "poll_interval_seconds": 0.1}
    )
    model_dir = workdir / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {python_function: {}}\n")
    target = SageMakerTarget(settings.session(), settings, "penguins")
    deployment = target.deploy("1", model_dir)
    # SageMaker writes the endpoint's container logs here; moto's SageMaker does not.
    aws(moto, region, "logs").create_log_group(
        logGroupName=f"/aws/sagemaker/Endpoints/{settings.endpoint_name}"
    )
    model = aws(moto, region, "sagemaker").describe_model(ModelName=str(deployment.name))
    return model["PrimaryContainer"]["Image"]


def next_commit(workdir: Path) -> Path:
    """A repository whose HEAD is a commit this one has not seen: the user's next commit,
    made elsewhere because the test must not commit here. Its GIT_DIR, for the block."""
    repository = workdir / "next-commit"
    git = ["git", "-c", "user.name=penguins", "-c", "user.email=penguins@example.com"]
    subprocess.run(["git", "init", "-q", str(repository)], check=True)
    subprocess.run(
        [*git, "-C", str(repository), "commit", "-q", "--allow-empty", "-m", "next"], check=True
    )
    return repository / ".git"


def start_queued_webserver(home: Path, log: Path) -> tuple[str, subprocess.Popen]:
    """dagster-webserver on the workspace, with the production instance's run queue and no
    daemon: a launched run waits in the queue, as it does on ECS until the daemon takes it."""
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry: {enabled: false}\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLOUD_VARIABLES}
    command = [
        str(VENV_BIN / "dagster-webserver"), "-w", str(REPO_ROOT / "workspace.yaml"),
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    process = start_process(command, log, env={**env, "DAGSTER_HOME": str(home)}, cwd=REPO_ROOT)
    return f"http://127.0.0.1:{port}", process


def stack_outputs(moto: str, region: str, stack: str) -> dict[str, str]:
    described = aws(moto, region, "cloudformation").describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0]["Outputs"]}


@pytest.fixture(scope="module")
def walkthrough(module_moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Walkthrough:
    """The section run once, start to end; its tests read what it recorded."""
    import dagster as dg

    moto = module_moto_server
    workdir = tmp_path_factory.mktemp("production-steps")
    stubs = workdir / "bin"
    stubs.mkdir()
    for command, script in STAND_INS.items():
        (stubs / command).write_text(script.format(python=sys.executable))
        (stubs / command).chmod(0o755)
    home = workdir / "home"
    home.mkdir()
    env = {
        "PATH": f"{stubs}:{VENV_BIN}:{os.environ['PATH']}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": moto,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "DOCKER_CALLS": str(workdir / "docker-calls.jsonl"),
        "DOCKER_STATE": str(workdir / "docker-state.json"),
        **FAKE,
    }
    result = Walkthrough(blocks=section_blocks(), stand_ins=sorted(p.name for p in stubs.iterdir()))
    dagster_home = workdir / "dagster-home"
    with pytest.MonkeyPatch.context() as patch:
        cloudformation_as_aws(patch)
        for name, value in FAKE.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", *CLOUD_VARIABLES):
            patch.delenv(name, raising=False)
        url, webserver = start_queued_webserver(dagster_home, workdir / "webserver.log")
        shell = Shell(workdir, env)
        try:
            for name in result.blocks:
                if name == "production-new-image":
                    shell.run("test: the next commit", f"export GIT_DIR={next_commit(workdir)}")
                if name == "production-first-run":
                    wait_for_http(f"{url}/server_info", webserver, workdir / "webserver.log", 180)
                variables = shell.run(name, shown("command", name))
                result.variables[name] = variables
                region, prefix = variables["AWS_DEFAULT_REGION"], variables["PREFIX"]
                if name == "production-variables":
                    network = user_network(moto, region)
                    missing = set(USER_NETWORK) - set(variables)
                    assert not missing, f"the README no longer sets {missing}; update the test"
                    shell.run(
                        "test: the user's VPC and subnets",
                        "\n".join(f"{k}={shlex.quote(v)}" for k, v in network.items()),
                    )
                    result.variables[name] |= network
                elif name == "production-outputs":
                    result.state["outputs"] = {
                        **stack_outputs(moto, region, f"{prefix}-dagster"),
                        **stack_outputs(moto, region, f"{prefix}-mlflow"),
                    }
                    admin = aws(moto, region, "secretsmanager").get_secret_value(
                        SecretId=result.state["outputs"]["AdminSecretArn"]
                    )
                    result.state["admin"] = json.loads(admin["SecretString"])
                    # The stack's load balancer is in AWS only: launch on this machine's.
                    shell.run("test: the webserver on this machine", f"WEBSERVER_URL={url}")
                elif name == "production-first-run":
                    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
                        result.runs = [(r.job_name, r.status.value) for r in instance.get_runs()]
                    result.deployed_image = deploy_as_the_platform(moto, region, prefix, workdir)
                elif name == "production-new-image":
                    shell.run("test: back to this repository", "unset GIT_DIR")
                elif name == "production-teardown-stacks":
                    versions = aws(moto, region, "s3").list_object_versions(
                        Bucket=variables["BUCKET"]
                    )
                    result.state["kept_versions"] = {"count": len(versions.get("Versions", []))}
                result.state[name] = moto_state(moto, region, prefix)
        finally:
            shell.close()
            stop_process_group(webserver)
            result.log = shell.log.read_text()
    calls = workdir / "docker-calls.jsonl"
    if calls.exists():
        result.docker = [json.loads(line)["argv"] for line in calls.read_text().splitlines()]
    return result


def values(walkthrough: Walkthrough, block: str = "production-variables") -> dict[str, str]:
    return walkthrough.variables[block]


# The tests.


def test_every_bash_block_of_the_section_runs_in_order(walkthrough: Walkthrough) -> None:
    acted_on = {"production-variables", "production-outputs", "production-first-run",
                "production-new-image", "production-teardown-stacks"}  # fmt: skip

    assert list(walkthrough.variables) == walkthrough.blocks == section_blocks()
    assert acted_on <= set(walkthrough.blocks), "a block this test acts on was renamed"


def test_only_the_listed_commands_are_recorded_instead_of_run(walkthrough: Walkthrough) -> None:
    """Every other command ran for real under `set -e`; the stand-ins on PATH are exactly
    the ones NOT_RUN gives a reason for, and Docker's was called for the README's login,
    build and push, and for MLflow's own build, tag and push."""
    verbs = [call[0] for call in walkthrough.docker]
    registry = values(walkthrough)["REGISTRY"]

    assert walkthrough.stand_ins == sorted(NOT_RUN)
    assert {"login", "build", "push", "tag"} <= set(verbs), verbs
    assert ["login", "--username", "AWS", "--password-stdin", registry] in walkthrough.docker


def test_the_image_pushed_is_the_image_the_dagster_stack_runs(walkthrough: Walkthrough) -> None:
    first = values(walkthrough)
    image = f"{first['REGISTRY']}/{first['PREFIX']}:{first['TAG']}"
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{first['TAG']}^{{commit}}"], cwd=REPO_ROOT
    )
    pushed = walkthrough.state["production-images"]["images"]
    dagster = walkthrough.state["production-dagster"]["parameters"][f"{first['PREFIX']}-dagster"]

    assert re.fullmatch(r"[0-9a-f]{12}", first["TAG"]) and commit.returncode == 0, first["TAG"]
    assert ["push", image] in walkthrough.docker
    assert pushed[first["PREFIX"]] == [first["TAG"]]
    assert dagster["Image"] == image


def test_the_serving_image_is_pushed_under_the_mlflow_version_the_target_deploys(
    walkthrough: Walkthrough,
) -> None:
    """`mlflow sagemaker build-and-push-container` (the real one, with .venv's MLflow) pushes
    the tag the SageMaker target then finds and deploys."""
    first = values(walkthrough)
    serving = f"{first['REGISTRY']}/mlflow-pyfunc:{installed_version('mlflow')}"

    assert walkthrough.state["production-images"]["images"]["mlflow-pyfunc"] == [
        installed_version("mlflow")
    ]
    assert ["push", serving] in walkthrough.docker
    assert walkthrough.deployed_image == serving


def test_the_stacks_are_created_with_the_readme_parameters(walkthrough: Walkthrough) -> None:
    first = values(walkthrough)
    prefix = first["PREFIX"]
    after_three = walkthrough.state["production-stacks"]["stacks"]
    after_four = walkthrough.state["production-dagster"]
    mlflow = after_four["parameters"][f"{prefix}-mlflow"]

    assert after_three == {
        f"{prefix}-{s}": "CREATE_COMPLETE" for s in ("storage", "access", "mlflow")
    }
    assert set(after_four["stacks"].values()) == {"CREATE_COMPLETE"}
    assert len(after_four["stacks"]) == 4
    for stack in ("mlflow", "dagster"):
        parameters = after_four["parameters"][f"{prefix}-{stack}"]
        assert parameters["VpcId"] == first["VPC"]
        assert parameters["AllowedCidr"] == first["CIDR"]
        assert parameters["ProjectPrefix"] == prefix
    assert mlflow["StorageStack"] == f"{prefix}-storage"


def test_the_outputs_and_the_admin_password_come_from_the_stacks(
    walkthrough: Walkthrough,
) -> None:
    shell = walkthrough.variables["production-outputs"]
    outputs = walkthrough.state["outputs"]

    assert shell["WEBSERVER_URL"] == outputs["WebserverUrl"]
    assert shell["MLFLOW_TRACKING_URI"] == outputs["TrackingUri"]
    assert shell["ADMIN_SECRET_ARN"] == outputs["AdminSecretArn"]
    assert shell["MLFLOW_TRACKING_USERNAME"] == walkthrough.state["admin"]["username"] == "admin"
    assert shell["MLFLOW_TRACKING_PASSWORD"] == walkthrough.state["admin"]["password"]
    assert len(shell["MLFLOW_TRACKING_PASSWORD"]) == 32


def test_the_first_run_is_launched_through_the_webserver(walkthrough: Walkthrough) -> None:
    """The README's launch reached a real webserver, whose queue holds the run for the
    daemon."""
    assert walkthrough.runs == [("training_job", "QUEUED")]
    assert re.search(r"training_job: run [0-9a-f-]{36}, under Runs at ", walkthrough.log)


def test_a_new_image_changes_only_the_image_of_the_dagster_stack(walkthrough: Walkthrough) -> None:
    first = values(walkthrough)
    prefix = first["PREFIX"]
    tag = walkthrough.variables["production-new-image"]["TAG"]
    before = walkthrough.state["production-dagster"]["parameters"][f"{prefix}-dagster"]
    after = walkthrough.state["production-new-image"]["parameters"][f"{prefix}-dagster"]

    assert tag != first["TAG"]
    assert walkthrough.state["production-new-image"]["images"][prefix] == sorted(
        [first["TAG"], tag]
    )
    assert after["Image"] == f"{first['REGISTRY']}/{prefix}:{tag}"
    assert {k: v for k, v in after.items() if k != "Image"} == {
        k: v for k, v in before.items() if k != "Image"
    }


def test_the_teardown_removes_what_the_platform_made_at_run_time(walkthrough: Walkthrough) -> None:
    made = walkthrough.state["production-first-run"]
    left = walkthrough.state["production-teardown-sagemaker"]
    prefix = values(walkthrough)["PREFIX"]

    assert made["endpoints"] == [prefix]
    assert len(made["endpoint_configs"]) == len(made["models"]) == 1
    assert made["log_groups"] == [f"/aws/sagemaker/Endpoints/{prefix}"]
    for kind in ("endpoints", "endpoint_configs", "models", "log_groups"):
        assert left[kind] == [], f"the teardown left SageMaker {kind}: {left[kind]}"


def test_the_databases_lose_their_deletion_protection_before_their_stacks_go(
    walkthrough: Walkthrough,
) -> None:
    """moto deletes a protected RDS instance anyway: the stacks' parameter is the check."""
    prefix = values(walkthrough)["PREFIX"]
    before = walkthrough.state["production-dagster"]["parameters"]
    after = walkthrough.state["production-teardown-protection"]["parameters"]
    order = walkthrough.blocks

    assert order.index("production-teardown-protection") < order.index("production-teardown-stacks")
    for stack in (f"{prefix}-{name}" for name in DB_STACKS):
        assert before[stack]["DBDeletionProtection"] == "true", stack
        assert after[stack]["DBDeletionProtection"] == "false", stack
        assert {k: v for k, v in after[stack].items() if k != "DBDeletionProtection"} == {
            k: v
            for k, v in walkthrough.state["production-new-image"]["parameters"][stack].items()
            if k != "DBDeletionProtection"
        }


def test_the_teardown_leaves_nothing(walkthrough: Walkthrough) -> None:
    """The stacks go, the storage stack keeps its bucket (with object versions) until the
    README empties and deletes it, and the repositories go with their images."""
    bucket = walkthrough.variables["production-teardown-stacks"]["BUCKET"]
    after_stacks = walkthrough.state["production-teardown-stacks"]
    after_all = walkthrough.state["production-teardown-bucket"]

    assert after_stacks["stacks"] == {}
    assert bucket in after_stacks["buckets"]
    assert walkthrough.state["kept_versions"]["count"] > 0
    assert after_all["buckets"] == []
    assert after_all["images"] == {}
