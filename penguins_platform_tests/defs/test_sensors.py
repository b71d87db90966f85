"""champion_sensor against a real MLflow registry (SQLite), tick by tick: it deploys the
champion, once per promotion, and never a challenger."""

import json

import dagster as dg
import pytest

from penguins_platform.defs.resources import (
    AzureMLEndpoint,
    LocalEndpoint,
    MlflowTracking,
    SageMakerEndpoint,
)
from penguins_platform.defs.sensors import champion_sensor
from penguins_platform.deploy.selection import describe_selection
from penguins_platform.tracking.contract import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    CHECKS_PASSED_TAG,
)
from penguins_platform.tracking.promotion import Promotion, PromotionKind
from penguins_platform_tests.servers import free_port

ENABLED_SAGEMAKER = SageMakerEndpoint(
    execution_role_arn="arn:aws:iam::123456789012:role/sm", artifact_bucket="models"
)
ENABLED_AZURE = AzureMLEndpoint(subscription_id="s", resource_group="g", workspace="w")


def register(tracking: MlflowTracking, trained, passed: bool = True) -> str:
    """A new registered version, as registration leaves it: the challenger, not serving."""
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
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version)
    return version


def crown(tracking: MlflowTracking, version: str, kind: PromotionKind = "automatic") -> Promotion:
    """Promote `version` as the champion asset does."""
    from penguins_platform.tracking import promotion

    client = tracking.client()
    current = promotion.champion(client, tracking.registered_model_name)
    made = Promotion(kind, "test", "tests", str(current.version) if current else None)
    promotion.promote(client, tracking.registered_model_name, version, made)
    return made


def tick(instance, tracking, cursor=None, sagemaker=None, azure=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "mlflow": tracking,
            "local": LocalEndpoint(),
            "sagemaker": sagemaker or SageMakerEndpoint(),
            "azure": azure or AzureMLEndpoint(),
        },
    )
    return champion_sensor.evaluate_tick(context)


def test_an_empty_registry_skips_with_a_reason(instance, mlflow_tracking):
    result = tick(instance, mlflow_tracking)
    assert result.run_requests == []
    name = mlflow_tracking.registered_model_name
    assert result.skip_message == f"{name!r} has no champion yet: run `make train`"


def test_a_challenger_alone_is_never_deployed(instance, mlflow_tracking, trained_model):
    register(mlflow_tracking, trained_model)
    result = tick(instance, mlflow_tracking)
    assert result.run_requests == []
    assert "has no champion yet" in result.skip_message


def test_a_new_champion_requests_one_deployment_run(instance, mlflow_tracking, trained_model):
    version = register(mlflow_tracking, trained_model)
    promotion = crown(mlflow_tracking, version, "first")
    result = tick(instance, mlflow_tracking)
    [request] = result.run_requests
    name = mlflow_tracking.registered_model_name
    assert request.run_key == f"{name}-v1-{promotion.promotion_id[:12]}"
    assert request.asset_selection == [dg.AssetKey("local_endpoint")]
    assert request.run_config == {"ops": {"local_endpoint": {"config": {"version": "1"}}}}
    assert request.tags["penguins/promotion"] == "first"
    assert json.loads(result.cursor)["deployed"] == f"v1-{promotion.promotion_id[:12]}"


def test_the_next_tick_requests_nothing(instance, mlflow_tracking, trained_model):
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    first = tick(instance, mlflow_tracking)
    second = tick(instance, mlflow_tracking, cursor=first.cursor)
    assert second.run_requests == []
    assert "version 1" in second.skip_message and "already deployed" in second.skip_message


def test_a_challenger_registered_after_the_champion_changes_nothing(
    instance, mlflow_tracking, trained_model
):
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    cursor = tick(instance, mlflow_tracking).cursor
    register(mlflow_tracking, trained_model)  # lost its gate: the alias did not move
    result = tick(instance, mlflow_tracking, cursor=cursor)
    assert result.run_requests == []


def test_a_rollback_is_deployed_although_that_version_was_deployed_before(
    instance, mlflow_tracking, trained_model
):
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    first = tick(instance, mlflow_tracking)
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    second = tick(instance, mlflow_tracking, cursor=first.cursor)
    back = crown(mlflow_tracking, "1", "rollback")
    [request] = tick(instance, mlflow_tracking, cursor=second.cursor).run_requests
    assert request.run_config == {"ops": {"local_endpoint": {"config": {"version": "1"}}}}
    assert request.tags["penguins/promotion"] == "rollback"
    assert request.run_key.endswith(back.promotion_id[:12])
    assert request.run_key != first.run_requests[0].run_key, "a new key: Dagster runs it"


def test_a_champion_promoted_before_promotions_were_recorded_keeps_its_old_key(
    instance, mlflow_tracking, trained_model
):
    version = register(mlflow_tracking, trained_model)
    mlflow_tracking.client().set_registered_model_alias(
        mlflow_tracking.registered_model_name, CHAMPION_ALIAS, version
    )
    old_cursor = json.dumps({"model": mlflow_tracking.registered_model_name, "last_version": 1})
    result = tick(instance, mlflow_tracking, cursor=old_cursor)
    assert result.run_requests == [], "the old sensor deployed it already"
    [request] = tick(instance, mlflow_tracking).run_requests
    assert request.run_key == f"{mlflow_tracking.registered_model_name}-v1"


def test_an_unreachable_mlflow_skips_and_keeps_the_cursor(instance):
    dead = MlflowTracking(tracking_uri=f"http://127.0.0.1:{free_port()}")
    cursor = json.dumps({"model": "penguins", "deployed": "v4-0123456789ab"})
    result = tick(instance, dead, cursor=cursor)
    assert result.run_requests == []
    assert "is unreachable" in result.skip_message
    assert "last deployed: v4-0123456789ab" in result.skip_message
    assert result.cursor in (None, cursor), "the cursor must not move"


def test_configured_cloud_targets_are_deployed_too(instance, mlflow_tracking, trained_model):
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    [request] = tick(
        instance, mlflow_tracking, sagemaker=ENABLED_SAGEMAKER, azure=ENABLED_AZURE
    ).run_requests
    assert request.asset_selection == [
        dg.AssetKey("local_endpoint"),
        dg.AssetKey("sagemaker_endpoint"),
        dg.AssetKey("azure_endpoint"),
    ]
    assert set(request.run_config["ops"]) == {
        "local_endpoint", "sagemaker_endpoint", "azure_endpoint",
    }  # fmt: skip


def test_only_the_targets_that_penguins_targets_names_are_requested(
    instance, mlflow_tracking, trained_model, monkeypatch
):
    monkeypatch.setenv("PENGUINS_TARGETS", "sagemaker")
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    [request] = tick(
        instance, mlflow_tracking, sagemaker=ENABLED_SAGEMAKER, azure=ENABLED_AZURE
    ).run_requests
    assert request.asset_selection == [dg.AssetKey("sagemaker_endpoint")]
    assert request.run_config == {"ops": {"sagemaker_endpoint": {"config": {"version": "1"}}}}


def test_inside_an_ecs_task_the_local_endpoint_is_not_requested(
    instance, mlflow_tracking, trained_model, monkeypatch
):
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", "http://169.254.170.2/v4/task")
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    [request] = tick(instance, mlflow_tracking, sagemaker=ENABLED_SAGEMAKER).run_requests
    assert request.asset_selection == [dg.AssetKey("sagemaker_endpoint")]


def test_with_no_target_enabled_the_sensor_skips_and_deploys_once_one_is(
    instance, mlflow_tracking, trained_model, monkeypatch
):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    cursor = json.dumps({"model": mlflow_tracking.registered_model_name, "deployed": "v0-x"})
    skipped = tick(instance, mlflow_tracking, cursor=cursor)
    assert skipped.run_requests == []
    assert "version 1 of" in skipped.skip_message
    assert "is not deployed: no deployment target is enabled (local: " in skipped.skip_message
    assert "inside a Kubernetes pod" in skipped.skip_message
    assert "sagemaker: Disabled until configured" in skipped.skip_message
    assert skipped.cursor in (None, cursor), "the cursor must not move"
    [request] = tick(instance, mlflow_tracking, cursor=cursor, azure=ENABLED_AZURE).run_requests
    assert request.asset_selection == [dg.AssetKey("azure_endpoint")]


def test_a_named_target_that_is_not_configured_holds_the_deployment_and_says_what_to_set(
    instance, mlflow_tracking, trained_model, monkeypatch
):
    monkeypatch.setenv("PENGUINS_TARGETS", "local,sagemaker")
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    result = tick(instance, mlflow_tracking)
    assert result.run_requests == []
    assert "PENGUINS_TARGETS names sagemaker, which is not configured: set " in (
        result.skip_message
    )
    assert "SAGEMAKER_BUCKET" in result.skip_message
    assert result.cursor is None, "the champion deploys once SageMaker is configured"


def test_the_description_names_the_targets_it_deploys_to():
    description = champion_sensor.description or ""
    assert f"every enabled target ({describe_selection()})" in description


def test_a_lost_cursor_yields_the_same_run_key_so_dagster_deduplicates_it(
    instance, mlflow_tracking, trained_model
):
    crown(mlflow_tracking, register(mlflow_tracking, trained_model))
    first = tick(instance, mlflow_tracking).run_requests[0]
    again = tick(instance, mlflow_tracking, cursor=None).run_requests[0]
    assert first.run_key == again.run_key


@pytest.mark.parametrize("interval", ["30"])
def test_the_default_interval_is_thirty_seconds(interval):
    assert champion_sensor.minimum_interval_seconds == int(interval)
