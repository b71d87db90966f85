"""The seam between the ECS templates and the instance config they start, checked in seconds.

Each Dagster service's container in `infra/cloudformation/dagster.yaml` is read with the
rehearsal's template reader, and its environment (the task definition's variables and
secrets, plus what Fargate injects) is put through what the container runs first:
`check-instance`'s variable checks. Then a run task's environment is built the way
`EcsRunLauncher` builds it, by the launcher itself, from the daemon's environment, and the
run task must load the instance's run launcher from it, as `dagster api execute_run` and the
ECS step executor do. `test_rehearsal.py` starts the same files for real; this is its fast
half, and fails on the same old lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from penguins_platform.instance_check import (
    InstanceConfigError,
    check_variables,
    copied_to_runs,
    env_references,
)
from penguins_platform.project import PRODUCTION_INSTANCE
from penguins_platform.rehearsal.template import Stack, parse

INFRA = Path(__file__).resolve().parents[2] / "infra"
DAGSTER_TEMPLATE = INFRA / "cloudformation" / "dagster.yaml"
WORKSPACE = INFRA / "dagster" / "workspace.yaml"
# What Fargate puts in every container (the rehearsal's ecs.py gives the same).
INJECTED = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
    "ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/task",
}
SERVICES = ("webserver", "daemon", "code")
# The stack's required parameters, as a user would give them.
PARAMETERS = {
    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/penguins:1.0.0",
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
    "LoadBalancerSubnetIds": "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
    "AllowedCidr": "10.0.0.0/16",
}


class Imported(dict):
    """Every other stack's export, as a made-up value named after it."""

    def __missing__(self, name: str) -> str:
        return f"imported-{name.rsplit('-', 1)[-1].lower()}"


def made_up(logical_id: str, attribute: str | None) -> str:
    """A resource's name or attribute, as CloudFormation would give it shaped."""
    if attribute == "Endpoint.Port":
        return "5432"
    if attribute == "Arn":
        return f"arn:aws:iam::123456789012:role/{logical_id}"
    if attribute:
        return f"{logical_id.lower()}.internal"
    return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{logical_id}-AbCdEf"


def service_environments(template_text: str) -> dict[str, dict[str, str]]:
    """Each Dagster service container's environment: its variables, its secrets (a stand-in
    value; ECS injects the real one) and what Fargate adds."""
    template = parse(template_text)
    stack = Stack(
        template, dict(PARAMETERS), "us-east-1", "123456789012", "penguins-dagster",
        exports=Imported(), lookup=made_up,
    )  # fmt: skip
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::ECS::TaskDefinition":
            continue
        for container in resource["Properties"]["ContainerDefinitions"]:
            if container["Name"] not in SERVICES:
                continue
            environment = {
                item["Name"]: str(stack.resolve(item["Value"]))
                for item in container.get("Environment", [])
            }
            secrets = {
                item["Name"]: "from-secrets-manager" for item in container.get("Secrets", [])
            }
            found[container["Name"]] = {**INJECTED, **environment, **secrets}
    return found


def instance_config(text: str | None = None) -> dict[str, Any]:
    return yaml.safe_load(text if text is not None else PRODUCTION_INSTANCE.read_text())


def workspace_variables() -> set[str]:
    return {ref.variable for ref in env_references(yaml.safe_load(WORKSPACE.read_text()))}


@contextmanager
def environment_of(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> Iterator[None]:
    """This process's environment is exactly `environ` inside the block."""
    with monkeypatch.context() as patch:
        import os

        for name in list(os.environ):
            patch.delenv(name)
        for name, value in environ.items():
            patch.setenv(name, value)
        yield


def load_run_launcher(config: dict[str, Any]) -> Any:
    """The instance's run launcher, built as loading the instance builds it, from this
    process's environment; DagsterInvalidConfigError names a variable that is not set."""
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster_aws.ecs import EcsRunLauncher

    section = config["run_launcher"]
    result = process_config(resolve_to_config_type(EcsRunLauncher.config_type()), section["config"])
    if not result.success:
        raise DagsterInvalidConfigError(
            "Errors whilst loading configuration for run_launcher", result.errors, section
        )
    assert result.value is not None, "a config that processed has a value"
    return EcsRunLauncher(**result.value)


def run_task_environment(
    daemon: dict[str, str], config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """What a run task's container gets, computed by EcsRunLauncher's own code in the
    daemon's environment: the variables it copies (env_vars), its secrets and the job name."""
    from dagster_aws.ecs.container_context import EcsContainerContext

    with environment_of(monkeypatch, daemon):
        launcher = load_run_launcher(config)
        context = EcsContainerContext(secrets=launcher.secrets, env_vars=launcher.env_vars)
        copied = dict(context.get_environment_dict())
    secrets = {secret["name"]: "from-secrets-manager" for secret in launcher.secrets}
    return {**INJECTED, **copied, **secrets, "DAGSTER_RUN_JOB_NAME": "training_job"}


def test_every_service_has_every_variable_its_instance_check_reads() -> None:
    config = instance_config()
    environments = service_environments(DAGSTER_TEMPLATE.read_text())

    assert set(environments) == set(SERVICES)
    for name, environ in environments.items():
        check_variables(config, environ, f"dagster.yaml in the {name} container")
        if name in ("webserver", "daemon"):
            assert workspace_variables() <= environ.keys(), name


def test_every_service_gets_the_same_platform_settings() -> None:
    environments = service_environments(DAGSTER_TEMPLATE.read_text())
    for name in copied_to_runs(instance_config()):
        values = {service: environ.get(name) for service, environ in environments.items()}
        assert len(set(values.values())) == 1, f"{name} differs between services: {values}"
    assert {environ["PENGUINS_TARGETS"] for environ in environments.values()} == {"sagemaker"}


def test_a_run_task_loads_the_run_launcher_from_what_the_launcher_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = instance_config()
    daemon = service_environments(DAGSTER_TEMPLATE.read_text())["daemon"]
    run = run_task_environment(daemon, config, monkeypatch)

    check_variables(config, run, "dagster.yaml in a run task")
    with environment_of(monkeypatch, run):
        launcher = load_run_launcher(config)
    assert launcher._task_definition_prefix == daemon["DAGSTER_ECS_TASK_DEFINITION_PREFIX"]
    assert "DAGSTER_PG_PASSWORD" not in copied_to_runs(config), "secrets come from ECS"


# Today's two defects, put back: each check above must fail on its own.
def _webserver_without_platform_variables(text: str) -> str:
    template = parse(text)
    webserver = template["Resources"]["WebserverTaskDefinition"]["Properties"]
    [container] = webserver["ContainerDefinitions"]
    container["Environment"] = [
        item for item in container["Environment"]
        if not item["Name"].startswith(("PENGUINS_", "MLFLOW_TRACKING_URI", "SAGEMAKER_"))
    ]  # fmt: skip
    container["Secrets"] = [s for s in container["Secrets"] if s["Name"] == "DAGSTER_PG_PASSWORD"]
    # parse() gives intrinsic functions in their long form, which it reads back as well.
    return yaml.safe_dump(template)


def test_the_old_webserver_environment_fails_the_instance_check() -> None:
    broken = _webserver_without_platform_variables(DAGSTER_TEMPLATE.read_text())
    webserver = service_environments(broken)["webserver"]

    with pytest.raises(InstanceConfigError, match="not set here: PENGUINS_EXECUTOR"):
        check_variables(instance_config(), webserver, "dagster.yaml")


def test_a_run_launcher_that_does_not_copy_its_prefix_fails_in_the_run_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagster._core.errors import DagsterInvalidConfigError

    config = instance_config()
    config["run_launcher"]["config"]["env_vars"].remove("DAGSTER_ECS_TASK_DEFINITION_PREFIX")
    daemon = service_environments(DAGSTER_TEMPLATE.read_text())["daemon"]
    run = run_task_environment(daemon, config, monkeypatch)

    with environment_of(monkeypatch, run), pytest.raises(DagsterInvalidConfigError) as raised:
        load_run_launcher(config)
    assert "DAGSTER_ECS_TASK_DEFINITION_PREFIX" in str(raised.value)


def test_the_code_location_never_answers_with_two_versions_during_a_deployment() -> None:
    """One Cloud Map name, one gRPC server: the old task stops before the new one starts (as
    the daemon's service does), so no webserver or daemon reaches a mix of two images."""
    resources = parse(DAGSTER_TEMPLATE.read_text())["Resources"]
    for service in ("CodeServerService", "DaemonService"):
        deployment = resources[service]["Properties"]["DeploymentConfiguration"]
        assert (deployment["MaximumPercent"], deployment["MinimumHealthyPercent"]) == (100, 0)
        assert resources[service]["Properties"]["DesiredCount"] == 1
