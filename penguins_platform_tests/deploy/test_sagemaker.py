"""The SageMaker target against moto in server mode, through the normal boto3 code path."""

from importlib.metadata import version as installed_version

import boto3
import dagster as dg
import pytest

from penguins_platform.defs.resources import SageMakerEndpoint
from penguins_platform.deploy.sagemaker import (
    SageMakerConfigError,
    SageMakerDeployError,
    SageMakerTarget,
    SageMakerTimeoutError,
)
from penguins_platform.tracking.contract import VERSION_TAG
from penguins_platform_tests.conftest import (
    check_outcomes,
    export_inference_model,
    fit_model,
    materialization_metadata,
    run_deployment,
)
from penguins_platform_tests.deploy.conftest import BUCKET, SECRET, target
from penguins_platform_tests.servers import free_port


def deployer(resource: SageMakerEndpoint, model_name: str = "penguins") -> SageMakerTarget:
    """The deployer the resource builds, without the waits between status polls."""
    target = resource.target(model_name)
    target.sleep = lambda seconds: None
    return target


@pytest.fixture(scope="module")
def mlflow_models(trained_model, tmp_path_factory):
    """Two good versions and a broken one, laid out as downloaded MLflow model folders."""
    import numpy as np

    from penguins_platform.ml.inference import InferenceModel

    folders = {}
    for version, trained in (("1", trained_model), ("2", fit_model(seed=3, epochs=30))):
        root = tmp_path_factory.mktemp(f"model-{version}")
        export_inference_model(trained, root / "artifacts" / "inference")
        (root / "MLmodel").write_text("flavors: {python_function: {}}\n")
        folders[version] = root
    broken = tmp_path_factory.mktemp("model-9")
    model = InferenceModel.load(folders["1"] / "artifacts" / "inference")
    model.weights = [(np.full_like(k, np.nan), b) for k, b in model.weights]
    model.save(broken / "artifacts" / "inference")
    folders["9"] = broken
    return folders


def _endpoint(emulator):
    return emulator.backend.endpoints["penguins"]


def test_wrong_region_is_a_configuration_error_before_any_aws_call():
    dead = f"http://127.0.0.1:{free_port()}"  # any AWS call would fail to connect instead
    with pytest.raises(SageMakerConfigError, match="region 'us-moon-1' has no SageMaker"):
        target(dead, region="us-moon-1").target("penguins")


def test_a_missing_role_is_a_configuration_error_before_any_aws_call():
    dead = f"http://127.0.0.1:{free_port()}"
    resource = target(dead, execution_role_arn="penguins-role")
    with pytest.raises(SageMakerConfigError, match="not an IAM role ARN"):
        resource.target("penguins")
    assert not target(dead, execution_role_arn=None).enabled


def test_creates_a_tagged_endpoint_that_serves_the_version(emulator, moto_server, mlflow_models):
    sagemaker = deployer(target(moto_server, data_capture_uri="s3://penguins-capture/sm"))
    done = sagemaker.deploy("1", mlflow_models["1"])
    assert done.action == "created"
    assert sagemaker.served_version() == "1"
    config = emulator.backend.describe_endpoint_config(done.name)
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 100
    model = sagemaker.sagemaker.describe_model(ModelName=done.name)
    tags = sagemaker.sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    assert {"Key": VERSION_TAG, "Value": "1"} in tags
    assert model["PrimaryContainer"]["Image"].endswith(
        f"mlflow-pyfunc:{installed_version('mlflow')}"
    )
    s3 = boto3.client("s3", endpoint_url=moto_server)
    assert s3.head_object(Bucket=BUCKET, Key="penguins/models/1/model.tar.gz")
    answer = sagemaker.invoke([{"island": "Biscoe", "body_mass_g": 5800.0, "sex": "MALE"}])
    assert isinstance(answer, dict)
    assert answer["predictions"][0]["prediction"] == "Gentoo"


def test_a_new_version_updates_the_endpoint_in_place(emulator, moto_server, mlflow_models):
    sagemaker = deployer(target(moto_server))
    first = sagemaker.deploy("1", mlflow_models["1"])
    second = sagemaker.deploy("2", mlflow_models["2"])
    assert (second.action, second.previous) == ("updated", first.name)
    assert _endpoint(emulator).endpoint_config_name == second.name
    assert sagemaker.served_version() == "2"
    assert emulator.calls["UpdateEndpoint"] == 1


def test_the_serving_version_is_skipped(emulator, moto_server, mlflow_models):
    sagemaker = deployer(target(moto_server))
    sagemaker.deploy("1", mlflow_models["1"])
    models_before = len(emulator.backend._models)
    again = sagemaker.deploy("1", mlflow_models["1"])
    assert again.action == "unchanged"
    assert len(emulator.backend._models) == models_before


def test_a_failed_update_keeps_the_old_config_and_cleans_up(emulator, moto_server, mlflow_models):
    sagemaker = deployer(target(moto_server))
    first = sagemaker.deploy("1", mlflow_models["1"])
    emulator.failing_update = "ResourceLimitExceeded: no ml.m4.xlarge capacity"
    with pytest.raises(SageMakerDeployError, match=r"no ml\.m4\.xlarge capacity") as raised:
        sagemaker.deploy("2", mlflow_models["2"])
    assert f"config {first.name} keeps serving" in str(raised.value)
    assert _endpoint(emulator).endpoint_config_name == first.name
    assert list(emulator.backend.endpoint_configs) == [first.name]
    assert list(emulator.backend._models) == [first.name]
    assert sagemaker.served_version() == "1"


def test_an_endpoint_that_never_reaches_in_service_times_out(emulator, moto_server, mlflow_models):
    sagemaker = deployer(target(moto_server, wait_timeout_seconds=0.3))
    first = sagemaker.deploy("1", mlflow_models["1"])
    emulator.stuck_updates = True
    with pytest.raises(
        SageMakerTimeoutError, match=r"did not reach InService within 0\.3s.*keeps serving"
    ):
        sagemaker.deploy("2", mlflow_models["2"])
    assert _endpoint(emulator).endpoint_config_name == first.name
    assert list(emulator.backend.endpoint_configs) == [first.name]


def test_throttling_is_retried(emulator, moto_server, mlflow_models):
    emulator.throttle("CreateModel", times=2)
    done = deployer(target(moto_server)).deploy("1", mlflow_models["1"])
    assert done.action == "created"
    assert emulator.calls["CreateModel"] == 3


def test_without_the_image_in_ecr_the_error_says_how_to_push_it(
    emulator, moto_server, mlflow_models
):
    boto3.client("ecr", endpoint_url=moto_server).delete_repository(
        repositoryName="mlflow-pyfunc", force=True
    )
    with pytest.raises(SageMakerDeployError, match="build-and-push-container"):
        deployer(target(moto_server)).deploy("1", mlflow_models["1"])
    assert "penguins" not in emulator.backend.endpoints


# Through Dagster: the asset, its checks, rollback, retries and secrets.


def _deploy_asset(registry, resource, **config) -> dg.ExecuteInProcessResult:
    return run_deployment(registry, "sagemaker_endpoint", {"sagemaker": resource}, **config)


def test_asset_deploys_and_passes_its_checks(emulator, moto_server, registry, capsys):
    result = _deploy_asset(registry, target(moto_server), version="2")
    assert result.success
    assert check_outcomes(result) == dict.fromkeys(
        ("serves_expected_version", "smoke_predictions_valid", "latency_under_bound"), True
    )
    meta = materialization_metadata(result)
    assert meta["serving_version"] == "2" and meta["smoke_accuracy"] >= 0.8
    assert meta["console"].startswith("https://us-east-1.console.aws.amazon.com/sagemaker/")
    logged = capsys.readouterr()
    events = " ".join(f"{e.message} {e.event_specific_data}" for e in result.all_events)
    everything = logged.out + logged.err + repr(meta) + events
    assert SECRET not in everything, "credentials must never reach logs or metadata"


def test_asset_rolls_back_a_version_that_fails_its_smoke_test(emulator, moto_server, registry):
    assert _deploy_asset(registry, target(moto_server), version="2").success
    result = _deploy_asset(registry, target(moto_server), version="3")
    assert not result.success
    assert check_outcomes(result)["smoke_predictions_valid"] is False
    assert deployer(target(moto_server)).served_version() == "2"


def test_asset_retries_throttling_that_outlasts_boto3(emulator, moto_server, registry, monkeypatch):
    from penguins_platform import defaults

    monkeypatch.setattr(defaults, "DEPLOY_RETRY_WAIT_SECONDS", 0.01)
    emulator.throttle("CreateModel", times=3)  # boto3 makes 2 attempts a call here
    result = _deploy_asset(registry, target(moto_server, api_attempts=2), version="2")
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    assert result.success
