"""The Azure ML target: the real azure-ai-ml client against the fake service at the HTTP layer."""

import os

import dagster as dg
import pytest

from penguins_platform.defs.resources import AzureMLEndpoint
from penguins_platform.deploy.azure import AzureDeployError
from penguins_platform.deploy.target import Deployment
from penguins_platform_tests.conftest import (
    check_outcomes,
    materialization_metadata,
    run_deployment,
    run_log,
    step_error,
)


def deploy(registry, azure_target, **config) -> dg.ExecuteInProcessResult:
    return run_deployment(registry, "azure_endpoint", {"azure": azure_target}, **config)


def _traffic(fake) -> dict:
    return fake.endpoints["penguins"]["properties"].get("traffic", {})


def test_creates_the_endpoint_and_moves_all_traffic_to_the_version(
    registry, azure_target, azure_service
):
    fake, _ = azure_service
    result = deploy(registry, azure_target, version="2")
    assert result.success
    assert check_outcomes(result) == dict.fromkeys(
        ("serves_expected_version", "smoke_predictions_valid", "latency_under_bound"), True
    )
    meta = materialization_metadata(result)
    assert (meta["action"], meta["serving_version"]) == ("created", "2")
    assert meta["smoke_accuracy"] >= 0.8
    assert _traffic(fake) == {"penguins-2": 100}
    assert {i["deployment"] for i in fake.invocations} == {"penguins-2"}


def test_a_new_version_takes_the_traffic_and_the_old_deployment_goes(
    registry, azure_target, azure_service
):
    fake, _ = azure_service
    assert deploy(registry, azure_target, version="1").success
    result = deploy(registry, azure_target, version="2")
    assert result.success
    assert materialization_metadata(result)["previous_deployment"] == "penguins-1"
    assert _traffic(fake) == {"penguins-2": 100}
    assert set(fake.deployments["penguins"]) == {"penguins-2"}


def test_the_live_version_is_skipped(registry, azure_target, azure_service):
    fake, _ = azure_service
    assert deploy(registry, azure_target, version="2").success
    puts = sum(1 for method, path in fake.calls if method == "PUT" and "/deployments/" in path)
    result = deploy(registry, azure_target, version="2")
    assert result.success and materialization_metadata(result)["action"] == "unchanged"
    assert puts == sum(1 for m, p in fake.calls if m == "PUT" and "/deployments/" in p)


def test_a_failed_smoke_test_leaves_the_traffic_where_it_was(registry, azure_target, azure_service):
    fake, _ = azure_service
    assert deploy(registry, azure_target, version="2").success
    result = deploy(registry, azure_target, version="3")  # NaN weights
    assert not result.success
    assert check_outcomes(result)["smoke_predictions_valid"] is False
    assert _traffic(fake) == {"penguins-2": 100}
    assert set(fake.deployments["penguins"]) == {"penguins-2"}, "the half-made one is removed"


def test_failed_provisioning_keeps_the_old_deployment_and_removes_the_new(
    registry, azure_target, azure_service
):
    fake, _ = azure_service
    assert deploy(registry, azure_target, version="1").success
    fake.fail_deployment_provisioning("penguins-2", "quota exceeded for Standard_DS3_v2")
    result = deploy(registry, azure_target, version="2")
    assert not result.success
    error = step_error(result, "azure_endpoint")
    assert "quota exceeded" in str(error.cause)
    assert "deployment penguins-1 keeps all traffic" in str(error.cause)
    assert _traffic(fake) == {"penguins-1": 100}
    assert set(fake.deployments["penguins"]) == {"penguins-1"}


def test_promoting_to_a_deleted_endpoint_says_what_to_do(azure_target):
    target = azure_target.target("penguins")
    with pytest.raises(AzureDeployError, match=r"penguins was deleted .* deploy version 2 again"):
        target.promote(Deployment("2", "created", name="penguins-2"))


def test_rolling_back_to_a_chosen_version(registry, azure_target, azure_service):
    fake, _ = azure_service
    assert deploy(registry, azure_target, version="2").success
    assert deploy(registry, azure_target, version="1").success
    assert _traffic(fake) == {"penguins-1": 100}


def test_an_unconfigured_target_is_skipped_with_how_to_enable_it(registry):
    result = deploy(registry, AzureMLEndpoint(), version="2")
    assert result.success, "a target nobody configured must not fail the run"
    assert result.get_asset_materialization_events() == []
    assert check_outcomes(result) == {}
    logged = run_log(registry[0], result)
    assert "azure_endpoint skipped" in logged
    assert "set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_WORKSPACE" in logged


LIVE = all(os.environ.get(v) for v in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP",
                                        "AZURE_WORKSPACE", "PENGUINS_AZURE_LIVE_TEST"))  # fmt: skip


@pytest.mark.skipif(
    not LIVE,
    reason="live Azure test: set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_WORKSPACE "
    "and PENGUINS_AZURE_LIVE_TEST=1, with credentials for DefaultAzureCredential",
)
def test_live_workspace_deploys_and_serves(registry):
    target = AzureMLEndpoint(
        subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"],
        resource_group=os.environ["AZURE_RESOURCE_GROUP"],
        workspace=os.environ["AZURE_WORKSPACE"],
        endpoint_name=os.environ.get("AZURE_ENDPOINT", "penguins-live-test"),
    )
    result = deploy(registry, target, version="2")
    assert result.success, check_outcomes(result)
