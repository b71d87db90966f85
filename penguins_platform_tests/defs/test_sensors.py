"""new_model_version_sensor against a real MLflow registry (SQLite), tick by tick."""

import json

import dagster as dg
import pytest

from penguins_platform.defs.resources import AzureMLEndpoint, MlflowTracking, SageMakerEndpoint
from penguins_platform.defs.sensors import new_model_version_sensor
from penguins_platform.tracking.contract import CHAMPION_ALIAS, CHECKS_PASSED_TAG
from penguins_platform_tests.servers import free_port

ENABLED_SAGEMAKER = SageMakerEndpoint(
    execution_role_arn="arn:aws:iam::123456789012:role/sm", artifact_bucket="models"
)


def register(tracking: MlflowTracking, trained, passed: bool = True, champion: bool = False):
    """A new registered version, as registration leaves it (or without its checks tag)."""
    import mlflow

    from penguins_platform.ml import packaging, schema

    mlflow.set_tracking_uri(tracking.uri)
    mlflow.set_registry_uri(tracking.uri)
    client = tracking.client()
    run = client.create_run(tracking.experiment_id()).info.run_id
    example = trained.penguins[list(schema.FEATURES)].head(2)
    name = tracking.registered_model_name
    version = packaging.log_pyfunc_model(
        run, trained.keras_model, trained.transformers, example, name
    )
    if passed:
        client.set_model_version_tag(name, version, CHECKS_PASSED_TAG, "true")
    if champion:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return version


def tick(instance, tracking, cursor=None, sagemaker=None, azure=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "mlflow": tracking,
            "sagemaker": sagemaker or SageMakerEndpoint(),
            "azure": azure or AzureMLEndpoint(),
        },
    )
    return new_model_version_sensor.evaluate_tick(context)


def test_an_empty_registry_skips_with_a_reason(instance, mlflow_tracking):
    result = tick(instance, mlflow_tracking)
    assert result.run_requests == []
    assert (
        result.skip_message
        == f"no new qualifying version of {mlflow_tracking.registered_model_name!r} after version 0"
    )


def test_a_new_version_requests_one_deployment_run(instance, mlflow_tracking, trained_model):
    register(mlflow_tracking, trained_model)
    result = tick(instance, mlflow_tracking)
    [request] = result.run_requests
    assert request.run_key == f"{mlflow_tracking.registered_model_name}-v1"
    assert request.asset_selection == [dg.AssetKey("local_endpoint")]
    assert request.run_config == {"ops": {"local_endpoint": {"config": {"version": "1"}}}}
    assert "penguins/superseded" not in request.tags
    assert json.loads(result.cursor)["last_version"] == 1


def test_the_next_tick_requests_nothing(instance, mlflow_tracking, trained_model):
    register(mlflow_tracking, trained_model)
    first = tick(instance, mlflow_tracking)
    second = tick(instance, mlflow_tracking, cursor=first.cursor)
    assert second.run_requests == []
    assert "after version 1" in second.skip_message


def test_only_the_newest_of_several_new_versions_is_deployed(
    instance, mlflow_tracking, trained_model
):
    register(mlflow_tracking, trained_model)
    cursor = tick(instance, mlflow_tracking).cursor
    register(mlflow_tracking, trained_model)
    register(mlflow_tracking, trained_model)
    result = tick(instance, mlflow_tracking, cursor=cursor)
    [request] = result.run_requests
    assert request.run_key.endswith("-v3")
    assert request.tags["penguins/superseded"] == "2"
    assert json.loads(result.cursor)["last_version"] == 3


def test_versions_that_did_not_pass_the_checks_are_ignored(
    instance, mlflow_tracking, trained_model
):
    register(mlflow_tracking, trained_model, passed=False)
    assert tick(instance, mlflow_tracking).run_requests == []
    register(mlflow_tracking, trained_model, passed=False, champion=True)
    [request] = tick(instance, mlflow_tracking).run_requests
    assert request.run_key.endswith("-v2"), "the champion alias also qualifies"


def test_an_unreachable_mlflow_skips_and_keeps_the_cursor(instance):
    dead = MlflowTracking(tracking_uri=f"http://127.0.0.1:{free_port()}")
    cursor = json.dumps({"model": "penguins", "last_version": 4})
    result = tick(instance, dead, cursor=cursor)
    assert result.run_requests == []
    assert "is unreachable" in result.skip_message and "after version 4" in result.skip_message
    assert result.cursor in (None, cursor), "the cursor must not move"


def test_configured_cloud_targets_are_deployed_too(instance, mlflow_tracking, trained_model):
    register(mlflow_tracking, trained_model)
    azure = AzureMLEndpoint(subscription_id="s", resource_group="g", workspace="w")
    [request] = tick(
        instance, mlflow_tracking, sagemaker=ENABLED_SAGEMAKER, azure=azure
    ).run_requests
    assert request.asset_selection == [
        dg.AssetKey("local_endpoint"),
        dg.AssetKey("sagemaker_endpoint"),
        dg.AssetKey("azure_endpoint"),
    ]
    assert set(request.run_config["ops"]) == {
        "local_endpoint", "sagemaker_endpoint", "azure_endpoint",
    }  # fmt: skip


def test_a_lost_cursor_yields_the_same_run_key_so_dagster_deduplicates_it(
    instance, mlflow_tracking, trained_model
):
    register(mlflow_tracking, trained_model)
    first = tick(instance, mlflow_tracking).run_requests[0]
    again = tick(instance, mlflow_tracking, cursor=None).run_requests[0]
    assert first.run_key == again.run_key


@pytest.mark.parametrize("interval", ["30"])
def test_the_default_interval_is_thirty_seconds(interval):
    assert new_model_version_sensor.minimum_interval_seconds == int(interval)
