"""PENGUINS_TARGETS and its default: which deployment targets a deployment uses, read from the
environment as the sensor and the steps read it."""

import pydantic
import pytest

from penguins_platform.defs.resources import LocalEndpoint, SageMakerEndpoint
from penguins_platform.deploy import azure, sagemaker
from penguins_platform.deploy.selection import (
    TASK_MARKERS,
    TargetSettings,
    describe_selection,
    never_skipped,
    target_status,
)
from penguins_platform.serving import service
from penguins_platform_tests.conftest import (
    definitions_with,
    materialized_assets,
    run_deployment,
    run_log,
    step_error,
)
from penguins_platform_tests.deploy.conftest import target
from penguins_platform_tests.deploy.test_sagemaker import deployer
from penguins_platform_tests.servers import free_port

ECS_MARKER = "ECS_CONTAINER_METADATA_URI_V4"


def status(name, configured=True, hint=""):
    return target_status(name, configured, hint)


def test_names_forgive_spaces_and_case(monkeypatch):
    monkeypatch.setenv("PENGUINS_TARGETS", " SageMaker ,LOCAL,, azure ")
    assert TargetSettings().targets == ("local", "sagemaker", "azure")


@pytest.mark.parametrize(
    ("value", "unknown"), [("sagemakr", "'sagemakr'"), ("local, Endpoint", "'endpoint'")]
)
def test_an_unknown_name_fails_naming_the_variable_and_the_choices(monkeypatch, value, unknown):
    monkeypatch.setenv("PENGUINS_TARGETS", value)
    with pytest.raises(pydantic.ValidationError) as raised:
        TargetSettings()
    message = str(raised.value)
    assert f"PENGUINS_TARGETS={value!r} names {unknown}, which is no target" in message
    assert "name one or more of local, sagemaker, azure, comma-separated" in message


def test_a_value_that_names_no_target_fails_rather_than_disabling_every_target(monkeypatch):
    monkeypatch.setenv("PENGUINS_TARGETS", " , ")
    with pytest.raises(pydantic.ValidationError, match="PENGUINS_TARGETS=' , ' names nothing"):
        TargetSettings()


def test_unset_outside_a_task_enables_the_local_endpoint_and_every_configured_cloud_target():
    assert status("local").enabled
    assert status("sagemaker").enabled
    unconfigured = status("azure", configured=False, hint=azure.ENABLE_HINT)
    assert (unconfigured.enabled, unconfigured.unmet) == (False, False), "skipped, not failed"
    assert unconfigured.reason == azure.ENABLE_HINT


@pytest.mark.parametrize("marker", TASK_MARKERS)
def test_unset_inside_a_task_or_pod_leaves_the_local_endpoint_out(monkeypatch, marker):
    monkeypatch.setenv(marker, "set by the platform")
    local = status("local")
    assert not local.enabled and not local.unmet
    assert f"no default target inside {TASK_MARKERS[marker]}" in local.reason
    assert "would die with the task" in local.reason and "`make serve`" in local.reason
    assert status("sagemaker").enabled, "a configured cloud target stays a default"
    assert never_skipped() == ()


def test_set_enables_exactly_the_named_targets(monkeypatch):
    monkeypatch.setenv("PENGUINS_TARGETS", "sagemaker")
    assert status("sagemaker").enabled
    for name in ("local", "azure"):
        left_out = status(name)
        assert not left_out.enabled and not left_out.unmet
        assert (
            left_out.reason == f"PENGUINS_TARGETS=sagemaker leaves {name} out; add it to enable it"
        )
    assert never_skipped() == ("sagemaker",)


def test_a_named_cloud_target_that_is_not_configured_is_unmet_and_says_what_to_set(monkeypatch):
    monkeypatch.setenv("PENGUINS_TARGETS", "local,sagemaker")
    unmet = status("sagemaker", configured=False, hint=sagemaker.ENABLE_HINT)
    assert unmet.unmet
    assert unmet.reason.startswith(
        "PENGUINS_TARGETS names sagemaker, which is not configured: set "
        "SAGEMAKER_EXECUTION_ROLE_ARN and SAGEMAKER_BUCKET"
    )


def test_naming_local_inside_a_task_enables_it_for_the_endpoint_to_refuse(monkeypatch):
    monkeypatch.setenv(ECS_MARKER, "set by the platform")
    monkeypatch.setenv("PENGUINS_TARGETS", "local")
    assert status("local").enabled


def test_the_description_says_what_is_selected_where_it_runs(monkeypatch):
    assert describe_selection() == (
        "PENGUINS_TARGETS unset: the local endpoint and every configured cloud target"
    )
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert "inside a Kubernetes pod: every configured cloud target, and not the local" in (
        describe_selection()
    )
    monkeypatch.setenv("PENGUINS_TARGETS", "azure, SAGEMAKER")
    assert describe_selection() == "PENGUINS_TARGETS=sagemaker,azure"


# Through Dagster: a deployment run uses the selected targets only.


def test_a_deployment_run_with_penguins_targets_sagemaker_starts_no_local_endpoint(
    emulator, moto_server, registry, tmp_path, monkeypatch
):
    monkeypatch.setenv("PENGUINS_TARGETS", "sagemaker")
    instance, tracking = registry
    endpoint = LocalEndpoint(port=free_port(), state_dir=str(tmp_path / "serving"))
    defs = definitions_with(mlflow=tracking, local=endpoint, sagemaker=target(moto_server))
    try:
        result = defs.resolve_job_def("deployment_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        started = endpoint.paths.pid_file.exists()
    finally:
        service.stop(endpoint.paths)  # should one have started after all
    assert not started, "no local endpoint was started"
    assert result.success
    assert materialized_assets(result) == {"sagemaker_endpoint"}
    assert deployer(target(moto_server)).served_version() == "2"
    assert "local_endpoint skipped: PENGUINS_TARGETS=sagemaker leaves local out" in run_log(
        instance, result
    )


def test_a_named_target_that_is_not_configured_fails_its_deployment_saying_what_to_set(
    registry, monkeypatch
):
    monkeypatch.setenv("PENGUINS_TARGETS", "sagemaker")
    result = run_deployment(registry, "sagemaker_endpoint", {"sagemaker": SageMakerEndpoint()})
    assert not result.success
    error = step_error(result, "sagemaker_endpoint")
    assert "sagemaker_endpoint cannot deploy: PENGUINS_TARGETS names sagemaker, which is not " in (
        error.message
    )
    assert "configured: set SAGEMAKER_EXECUTION_ROLE_ARN and SAGEMAKER_BUCKET" in error.message
