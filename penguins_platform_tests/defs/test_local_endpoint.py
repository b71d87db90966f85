"""The `local_endpoint` asset: deploy, swap, roll back and refuse, through Dagster."""

from typing import cast

import dagster as dg
import pytest

from penguins_platform.defs.resources import LocalEndpoint
from penguins_platform.serving import service
from penguins_platform_tests.conftest import (
    check_descriptions,
    check_outcomes,
    definitions_with,
    materialization_metadata,
    run_deployment,
    run_log,
    step_error,
)
from penguins_platform_tests.servers import endpoint_health, free_port


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    resource = LocalEndpoint(port=free_port(), state_dir=str(tmp_path_factory.mktemp("serving")))
    yield resource
    service.stop(resource.paths)


def deploy(registry, endpoint, **config) -> dg.ExecuteInProcessResult:
    return run_deployment(registry, "local_endpoint", {"local": endpoint}, **config)


def test_deploys_the_champion_and_records_the_smoke_test(registry, endpoint):
    result = deploy(registry, endpoint)
    assert result.success
    meta = materialization_metadata(result)
    assert meta["serving_version"] == meta["attempted_version"] == "2"
    assert meta["url"] == endpoint.url
    assert check_outcomes(result) == {
        "serves_expected_version": True,
        "smoke_predictions_valid": True,
        "latency_under_bound": True,
    }
    assert meta["smoke_accuracy"] >= 0.8
    assert 0 < meta["latency_p50_ms"] <= meta["latency_p99_ms"]
    assert len(meta["smoke_predictions"].records) == 5
    # The store as a path, not as `sqlite:////…`, its URI's four slashes.
    assert meta["capture"] == str(endpoint.paths.state_dir / "capture.db")
    assert endpoint_health(endpoint.url)["model_version"] == "2"


def test_a_chosen_version_swaps_in_without_a_restart(registry, endpoint):
    assert deploy(registry, endpoint, version="2").success
    pid = service.read_pid(endpoint.paths)
    result = deploy(registry, endpoint, version="1")
    assert result.success
    meta = materialization_metadata(result)
    assert (meta["action"], meta["previous_version"]) == ("swapped", "2")
    assert service.read_pid(endpoint.paths) == pid
    assert endpoint_health(endpoint.url)["model_version"] == "1"


def test_redeploying_the_serving_version_changes_nothing(registry, endpoint):
    assert deploy(registry, endpoint, version="1").success
    result = deploy(registry, endpoint, version="1")
    assert materialization_metadata(result)["action"] == "unchanged"


def test_a_version_failing_its_smoke_test_leaves_the_old_one_serving(registry, endpoint):
    assert deploy(registry, endpoint, version="2").success
    result = deploy(registry, endpoint, version="3")
    assert not result.success
    assert check_outcomes(result)["serves_expected_version"] is False
    reason = check_descriptions(result)["serves_expected_version"]
    assert "refused version 3" in reason and "no valid probabilities" in reason
    assert "version 2 serves" in reason
    assert endpoint_health(endpoint.url)["model_version"] == "2"


def test_a_failed_latency_check_puts_the_previous_version_back(registry, endpoint):
    assert deploy(registry, endpoint, version="1").success
    result = deploy(registry, endpoint, version="2", latency_bound_ms=0.001)
    assert not result.success
    assert check_outcomes(result) == {
        "serves_expected_version": True,
        "smoke_predictions_valid": True,
        "latency_under_bound": False,
    }
    assert materialization_metadata(result)["serving_version"] == "1"
    assert endpoint_health(endpoint.url)["model_version"] == "1"


def test_an_unknown_version_fails_before_touching_the_endpoint(registry, endpoint):
    assert deploy(registry, endpoint, version="2").success
    result = deploy(registry, endpoint, version="42")
    assert not result.success
    error = step_error(result, "local_endpoint")
    assert "has no version 42" in str(error.cause or error)
    assert endpoint_health(endpoint.url)["model_version"] == "2"


def _checks_only(registry, endpoint, **config) -> dg.ExecuteInProcessResult:
    """Run local_endpoint's checks alone, as the Checks tab's "Execute all" does."""
    instance, tracking = registry
    defs = definitions_with(mlflow=tracking, local=endpoint)
    # The platform defines no cacheable assets, which `materialize` would not take.
    assets = cast("list[dg.AssetsDefinition]", list(defs.assets or []))
    return dg.materialize(
        assets,
        selection=dg.AssetSelection.checks_for_assets(dg.AssetKey("local_endpoint")),
        resources=defs.resources,
        run_config={"ops": {"local_endpoint": {"config": config}}},
        instance=instance,
        raise_on_error=False,
    )


def test_the_checks_alone_verify_what_serves_without_deploying(registry, endpoint):
    assert deploy(registry, endpoint, version="1").success
    pid = service.read_pid(endpoint.paths)
    stale = _checks_only(registry, endpoint)  # the champion is version 2
    assert check_outcomes(stale) == {
        "serves_expected_version": False,
        "smoke_predictions_valid": True,
        "latency_under_bound": True,
    }
    assert (
        "serves version 1, expected version 2"
        in check_descriptions(stale)["serves_expected_version"]
    )
    assert stale.get_asset_materialization_events() == [], "nothing was deployed"
    assert endpoint_health(endpoint.url)["model_version"] == "1"
    assert service.read_pid(endpoint.paths) == pid
    assert _checks_only(registry, endpoint, version="1").success


def test_a_rollback_that_fails_is_reported_with_the_checks(registry, endpoint):
    import shutil

    assert deploy(registry, endpoint, version="1").success
    shutil.rmtree(endpoint.paths.models_dir / "1")  # the previous version's files are gone
    result = deploy(registry, endpoint, version="2", latency_bound_ms=0.001)
    assert not result.success
    assert check_outcomes(result)["latency_under_bound"] is False
    error = step_error(result, "local_endpoint")
    message = str(error.cause or error)
    assert "failed its deployment checks, and rolling the local endpoint" in message
    assert "back failed too" in message and "refused version 1" in message


@pytest.fixture
def unstarted(tmp_path):
    """A local endpoint that no test means to start, stopped afterwards should one start."""
    resource = LocalEndpoint(port=free_port(), state_dir=str(tmp_path / "serving"))
    yield resource
    service.stop(resource.paths)


def test_by_default_inside_a_pod_the_local_endpoint_is_skipped_and_says_why(
    registry, unstarted, monkeypatch
):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    instance, _ = registry
    endpoint = unstarted
    result = deploy(registry, endpoint)
    assert result.success
    assert result.get_asset_materialization_events() == []
    assert (
        "local_endpoint skipped: the local endpoint is no default target inside a Kubernetes pod"
        in run_log(instance, result)
    )
    assert not endpoint.paths.pid_file.exists(), "no server was started"


def test_named_inside_an_ecs_task_the_local_endpoint_refuses_to_start_a_server(
    registry, unstarted, monkeypatch
):
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/task")
    monkeypatch.setenv("PENGUINS_TARGETS", "local")
    endpoint = unstarted
    result = deploy(registry, endpoint)
    assert not result.success
    error = step_error(result, "local_endpoint")
    message = str(error.cause or error)
    assert (
        "not starting the local endpoint inside an ECS task: its server would die when the task "
        "ends. Leave local out of PENGUINS_TARGETS, or run `make serve` on a machine that stays "
        "up" in message
    )
    assert check_outcomes(result)["serves_expected_version"] is False
    assert not endpoint.paths.pid_file.exists(), "no server was started"
