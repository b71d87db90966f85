"""The production instance (infra/dagster/dagster.yaml) and `check-instance`.

Each class section validates against its own class's schema with every variable set; the run
launcher is built and launches a run against moto's ECS; and `check-instance` runs as the
containers run it, against a real PostgreSQL, next to Dagster's own start-up
(`dagster instance info`) on the same broken files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pytest
import yaml

from penguins_platform.instance_check import env_references
from penguins_platform.project import PRODUCTION_INSTANCE
from penguins_platform_tests.conftest import REPO_ROOT, VENV_BIN
from penguins_platform_tests.readme import assert_shows
from penguins_platform_tests.servers import free_port

if TYPE_CHECKING:
    from botocore.client import BaseClient

# What infra/cloudformation/dagster.yaml gives the services, with made-up account values. The
# DAGSTER_PG_* variables come from the `postgres_database` fixture, or PG_VALUES offline.
PRODUCTION_VALUES = {
    "DAGSTER_ECS_TASK_DEFINITION_PREFIX": "penguins-run",
    "DAGSTER_RUN_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/penguins-platform",
    "DAGSTER_RUN_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/penguins-execution",
    "DAGSTER_RUN_LOG_GROUP": "/penguins/dagster",
    "DAGSTER_PG_PASSWORD_SECRET_ARN": (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:penguins-db-AbCdEf:password::"
    ),
    "MLFLOW_TRACKING_PASSWORD_SECRET_ARN": (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:penguins-mlflow-AbCdEf:password::"
    ),
    "DAGSTER_S3_BUCKET": "penguins-storage",
    "DAGSTER_S3_PREFIX": "dagster/compute-logs",
}
PG_VALUES = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "dagster",
}
REGION = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/penguins:1.0.0"


def production_config() -> dict:
    return yaml.safe_load(PRODUCTION_INSTANCE.read_text())


def value_at(config: Any, path: str) -> Any:
    """The value at a dotted path with list indexes, as env_references writes them."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        config = config[int(part[1:-1])] if part.startswith("[") else config[part]
    return config


# ---------------------------------------------------------------------------------------------
# Offline: each section against its class's schema


@pytest.fixture
def production_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {**PRODUCTION_VALUES, **PG_VALUES}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_the_values_here_cover_every_variable_the_file_reads():
    read = {ref.variable for ref in env_references(production_config())}
    assert read == set(PRODUCTION_VALUES) | set(PG_VALUES)


SECTIONS = [
    pytest.param("storage.postgres", "dagster_postgres", "DagsterPostgresStorage", id="storage"),
    pytest.param("run_launcher", "dagster_aws.ecs", "EcsRunLauncher", id="run_launcher"),
    pytest.param(
        "run_coordinator", "dagster.core.run_coordinator", "QueuedRunCoordinator", id="coordinator"
    ),
    pytest.param(
        "compute_logs", "dagster_aws.s3.compute_log_manager", "S3ComputeLogManager", id="logs"
    ),
]


@pytest.mark.parametrize(("section", "module", "class_name"), SECTIONS)
def test_each_section_validates_against_its_class(
    section, module, class_name, production_environment
):
    import importlib

    from dagster._config import process_config, resolve_to_config_type

    config = production_config()
    block = value_at(config, section)
    if section == "storage.postgres":
        values, where = block, section
    else:
        assert (block["module"], block["class"]) == (module, class_name)
        values, where = block["config"], f"{section}.config"
    module = module.replace("dagster.core.", "dagster._core.", 1)
    klass = getattr(importlib.import_module(module), class_name)
    result = process_config(resolve_to_config_type(klass.config_type()), values)
    assert result.success, [error.message for error in result.errors or []]

    references = [r for r in env_references(config) if r.path.startswith(f"{where}.")]
    assert references or section == "run_coordinator"
    for ref in references:
        resolved = value_at(result.value, ref.path.removeprefix(f"{where}."))
        expected = production_environment[ref.variable]
        assert str(resolved) == expected, (ref.path, resolved)


def test_the_whole_file_passes_dagsters_instance_schema(production_environment):
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config_schema

    result = process_config(
        resolve_to_config_type(dagster_instance_config_schema()), production_config()
    )
    assert result.success, [error.message for error in result.errors or []]


# ---------------------------------------------------------------------------------------------
# The run launcher against moto's ECS


@dataclass(frozen=True)
class EcsCluster:
    client: BaseClient  # boto3's ECS client
    cluster_arn: str
    subnet: str
    security_group: str

    @property
    def run_task_kwargs(self) -> dict:
        """What the daemon's own task gives its runs on ECS (use_current_ecs_task_config)."""
        return {
            "cluster": self.cluster_arn,
            "launchType": "FARGATE",
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": [self.subnet],
                    "securityGroups": [self.security_group],
                    "assignPublicIp": "DISABLED",
                }
            },
        }

    def register(self, family: str, container: str) -> str:
        """A Fargate task definition with one container; its ARN. moto's RunTask needs a
        container-level memory, which real Fargate does not."""
        return self.client.register_task_definition(
            family=family,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="4096",
            containerDefinitions=[{"name": container, "image": IMAGE, "memory": 4096}],
        )["taskDefinition"]["taskDefinitionArn"]


@pytest.fixture
def ecs(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> EcsCluster:
    """An ECS cluster and a VPC subnet in moto, with boto3 pointed at it."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    for name, value in REGION.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("ecs")
    ec2 = boto3.client("ec2")
    cluster = client.create_cluster(clusterName="penguins")["cluster"]["clusterArn"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto names a task's network interface only in a VPC with DNS hostnames.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="runs", Description="runs", VpcId=vpc)["GroupId"]
    return EcsCluster(client, cluster, subnet, group)


def test_the_launcher_resolves_its_task_definition(ecs):
    from dagster_aws.ecs import EcsRunLauncher

    arn = ecs.register("penguins-run", "run")
    launcher = EcsRunLauncher(
        task_definition="penguins-run",
        container_name="run",
        use_current_ecs_task_config=False,
        run_task_kwargs=ecs.run_task_kwargs,
    )
    # A family name becomes the ARN only through DescribeTaskDefinition.
    assert launcher.task_definition == arn


def test_a_task_definition_without_the_run_container_is_rejected(ecs):
    from dagster._check import CheckError
    from dagster_aws.ecs import EcsRunLauncher

    arn = ecs.register("penguins-other", "app")
    with pytest.raises(CheckError) as raised:
        EcsRunLauncher(task_definition=arn, container_name="run", use_current_ecs_task_config=False)
    assert "Cannot override container 'run'" in str(raised.value)
    assert arn in str(raised.value)


def _launch_training_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """Launch `training_job` through the instance's run launcher, as the daemon does, from the
    code location with the image that the gRPC server reports."""
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from penguins_platform.definitions import defs

    origin = LoadableTargetOrigin(
        module_name="penguins_platform.definitions",
        attribute="defs",
        working_directory=str(REPO_ROOT),
    )
    with in_process_test_workspace(instance, origin, container_image=IMAGE) as workspace:
        location = workspace.get_code_location(workspace.code_location_names[0])
        [repository] = location.get_repositories().values()
        remote = repository.get_full_job("training_job")
        run = instance.create_run_for_job(
            defs.resolve_job_def("training_job"),
            remote_job_origin=remote.get_remote_origin(),
            job_code_origin=remote.get_python_origin(),
        )
        instance.launch_run(run.run_id, workspace)
    launched = instance.get_run_by_id(run.run_id)
    assert launched is not None
    return launched


def _command(overrides: dict) -> list[str]:
    [container] = overrides["containerOverrides"]
    assert container["name"] == "run"
    return container["command"]


def test_a_launched_run_becomes_an_ecs_task_that_executes_it(ecs):
    arn = ecs.register("penguins-run", "run")
    launcher = {
        "module": "dagster_aws.ecs",
        "class": "EcsRunLauncher",
        "config": {
            "task_definition": arn,
            "container_name": "run",
            "use_current_ecs_task_config": False,
            "run_task_kwargs": ecs.run_task_kwargs,
            "secrets_tag": None,  # as in production: no Secrets Manager listing
        },
    }
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        run = _launch_training_run(instance)
    task_arn = run.tags["ecs/task_arn"]
    [task] = ecs.client.describe_tasks(cluster=ecs.cluster_arn, tasks=[task_arn])["tasks"]
    assert task["taskDefinitionArn"] == arn
    assert task["launchType"] == "FARGATE"
    command = _command(task["overrides"])
    assert command[:3] == ["dagster", "api", "execute_run"]
    args = json.loads(command[3])
    assert args["pipeline_run_id"] == run.run_id
    assert args["pipeline_origin"]["pipeline_name"] == "training_job"
    [attachment] = task["attachments"]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    assert details["subnetId"] == ecs.subnet


def test_the_production_launcher_registers_the_run_task_definition(ecs, monkeypatch):
    """The production block as it is, but for the daemon's own task: on ECS the cluster and
    network come from it (use_current_ecs_task_config), here from run_task_kwargs.

    moto 5.2's RunTask fails on a Fargate task definition without a container-level memory,
    which is what the launcher registers (and what AWS accepts), so RunTask is recorded here;
    the test above runs a real one."""
    from dagster_aws.ecs import EcsRunLauncher

    for name, value in {**PRODUCTION_VALUES, **PG_VALUES}.items():
        monkeypatch.setenv(name, value)
    block = production_config()["run_launcher"]
    for name in block["config"]["env_vars"]:  # the daemon passes on its own values
        monkeypatch.setenv(name, os.environ.get(name) or f"value-of-{name.lower()}")
    block["config"]["use_current_ecs_task_config"] = False
    block["config"]["run_task_kwargs"] = ecs.run_task_kwargs
    started: list[dict] = []

    def run_task(**kwargs):
        started.append(kwargs)
        task = f"arn:aws:ecs:us-east-1:123456789012:task/penguins/{len(started)}"
        return {"tasks": [{"taskArn": task, "clusterArn": ecs.cluster_arn}], "failures": []}

    with dg.instance_for_test(overrides={"run_launcher": block}) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        monkeypatch.setattr(launcher.ecs, "run_task", run_task)
        run = _launch_training_run(instance)

    [kwargs] = started
    prefix = PRODUCTION_VALUES["DAGSTER_ECS_TASK_DEFINITION_PREFIX"]
    assert kwargs["taskDefinition"].startswith(f"{prefix}_")
    assert _command(kwargs["overrides"])[:3] == ["dagster", "api", "execute_run"]
    assert {"key": "dagster/job_name", "value": "training_job"} in kwargs["tags"]
    assert run.tags["ecs/task_arn"].endswith("/penguins/1")

    definition = ecs.client.describe_task_definition(taskDefinition=kwargs["taskDefinition"])
    definition = definition["taskDefinition"]
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert (definition["cpu"], definition["memory"]) == ("1024", "4096")
    assert definition["taskRoleArn"] == PRODUCTION_VALUES["DAGSTER_RUN_TASK_ROLE_ARN"]
    assert definition["executionRoleArn"] == PRODUCTION_VALUES["DAGSTER_RUN_EXECUTION_ROLE_ARN"]
    [container] = definition["containerDefinitions"]
    assert (container["name"], container["image"]) == ("run", IMAGE)
    logs = container["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == PRODUCTION_VALUES["DAGSTER_RUN_LOG_GROUP"]
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets == {
        "DAGSTER_PG_PASSWORD": PRODUCTION_VALUES["DAGSTER_PG_PASSWORD_SECRET_ARN"],
        "MLFLOW_TRACKING_PASSWORD": PRODUCTION_VALUES["MLFLOW_TRACKING_PASSWORD_SECRET_ARN"],
    }
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert set(block["config"]["env_vars"]) <= set(environment)
    assert "DAGSTER_PG_PASSWORD" not in environment, "the password comes from Secrets Manager"


# ---------------------------------------------------------------------------------------------
# check-instance and Dagster's start-up, as subprocesses on a copy of the production file

CHECK_INSTANCE = [str(VENV_BIN / "python"), "-m", "penguins_platform", "check-instance"]
DAGSTER_INSTANCE_INFO = [str(VENV_BIN / "dagster"), "instance", "info"]


@pytest.fixture
def production_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_INSTANCE, home / "dagster.yaml")
    return home


def _run(command: list[str], home: Path, **variables: str | None) -> subprocess.CompletedProcess:
    """`command` with DAGSTER_HOME at `home`, the production variables set, the DAGSTER_PG_*
    ones from the environment (postgres_database), and `variables` changed (None: unset)."""
    copied = production_config()["run_launcher"]["config"]["env_vars"]
    env = {name: "" for name in copied}  # optional ones (SAGEMAKER_*) may be set but empty
    env.update({**os.environ, **PRODUCTION_VALUES, **REGION, "DAGSTER_HOME": str(home)})
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_good_production_config_passes_with_a_summary(
    postgres, postgres_database, aws_credentials, production_home
):
    done = _run(CHECK_INSTANCE, production_home)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = done.stdout.strip().splitlines()
    assert line.startswith(f"instance {production_home}: ")
    assert f"storage postgres ({postgres.host}:{postgres.port}/{postgres_database} as " in line
    assert "run launcher EcsRunLauncher" in line
    assert "run coordinator QueuedRunCoordinator" in line
    assert "compute logs S3ComputeLogManager" in line
    assert line.endswith(": OK")


def test_a_variable_the_launcher_copies_into_runs_must_be_set(
    postgres, postgres_database, aws_credentials, production_home
):
    """EcsRunLauncher copies `env_vars` from the daemon into every run; one that is not set
    would fail every launch, so the check fails the service's start instead."""
    done = _run(CHECK_INSTANCE, production_home, SAGEMAKER_BUCKET=None)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "check-instance: run_launcher.config.env_vars copies variables into every run that "
        "are not set here: SAGEMAKER_BUCKET"
    )


def _add_unknown_launcher_key(home: Path) -> None:
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    config["run_launcher"]["config"]["task_role"] = "arn:aws:iam::123456789012:role/typo"
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


@dataclass(frozen=True)
class Broken:
    """One wrong setting and what check-instance's one line must say about it. `{port}`
    stands for a port that nothing listens on."""

    variables: dict[str, str | None]  # None: unset
    says: tuple[str, ...]
    unknown_launcher_key: bool = False
    readme_line: int | None = None  # the line of the README's example that shows this case


BROKEN = {
    "missing-variable": Broken(
        {"DAGSTER_RUN_LOG_GROUP": None},
        ("DAGSTER_RUN_LOG_GROUP (at run_launcher.config.task_definition.log_group)",),
        readme_line=0,
    ),
    "port-not-a-number": Broken(
        {"DAGSTER_PG_PORT": "abc"}, ("storage.postgres", "DAGSTER_PG_PORT"), readme_line=1
    ),
    "closed-port": Broken(
        {"DAGSTER_PG_PORT": "{port}"}, ("Connection refused", "127.0.0.1:{port}")
    ),
    "wrong-password": Broken(
        {"DAGSTER_PG_PASSWORD": "not-the-password"},
        ("password authentication failed",),
        readme_line=3,
    ),
    "unknown-launcher-key": Broken(
        {}, ("run_launcher.config", 'unexpected config entry "task_role"'), True, readme_line=2
    ),
}


def _break(case: str, home: Path) -> tuple[dict[str, str | None], list[str]]:
    """The variables that break `home` as `case` says (editing its file if need be), and the
    texts the failure must hold."""
    broken = BROKEN[case]
    port = str(free_port())
    if broken.unknown_launcher_key:
        _add_unknown_launcher_key(home)
    variables = {k: v.format(port=port) if v else v for k, v in broken.variables.items()}
    return variables, [text.format(port=port) for text in broken.says]


@pytest.mark.parametrize("case", list(BROKEN))
def test_check_instance_names_the_wrong_setting_in_one_line(
    case, postgres, postgres_database, aws_credentials, production_home
):
    variables, expected = _break(case, production_home)
    done = _run(CHECK_INSTANCE, production_home, **variables)
    assert done.returncode == 2, (done.stdout, done.stderr[-3000:])
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("check-instance: ")
    for text in expected:
        assert text in line, line
    if BROKEN[case].readme_line is not None:
        # The README's example is a database at db.internal:5432/dagster.
        here = {"db.internal": postgres.host, "5432": str(postgres.port)}
        here["/dagster as"] = f"/{postgres_database} as"
        assert_shows("check-instance", line, replace=here, line=BROKEN[case].readme_line)


@pytest.mark.parametrize(
    ("case", "named"),
    [("missing-variable", "DAGSTER_RUN_LOG_GROUP"), ("unknown-launcher-key", "task_role")],
)
def test_dagster_itself_refuses_the_same_file_at_start_up(
    case, named, postgres_database, aws_credentials, production_home
):
    variables, _ = _break(case, production_home)
    done = _run(DAGSTER_INSTANCE_INFO, production_home, **variables)
    assert done.returncode != 0, done.stdout[-3000:]
    assert named in done.stderr, done.stderr[-3000:]
