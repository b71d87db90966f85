"""Train, tick, run: new champions reach the local endpoint and the emulated SageMaker one;
a challenger that lost its gate reaches neither."""

import dagster as dg

from penguins_platform.defs.resources import AzureMLEndpoint, LocalEndpoint
from penguins_platform.defs.sensors import champion_sensor
from penguins_platform.serving import service
from penguins_platform_tests.conftest import QUICK_TRAINING, WEAK_TRAINING, definitions_with
from penguins_platform_tests.deploy.conftest import target
from penguins_platform_tests.deploy.test_sagemaker import deployer
from penguins_platform_tests.servers import endpoint_health, free_port


def test_champions_deploy_themselves_once_and_a_worse_challenger_never(
    emulator, moto_server, instance, mlflow_tracking, tmp_path, train_lineage
):
    endpoint = LocalEndpoint(port=free_port(), state_dir=str(tmp_path / "serving"))
    sagemaker = target(moto_server)
    resources = {"mlflow": mlflow_tracking, "local": endpoint, "sagemaker": sagemaker,
                 "azure": AzureMLEndpoint()}  # fmt: skip
    defs = definitions_with(**resources)
    cursor = None

    def tick():
        nonlocal cursor
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        result = champion_sensor.evaluate_tick(context)
        cursor = result.cursor or cursor
        return result

    def run(request) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def("deployment_job").execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags,
            asset_selection=request.asset_selection, raise_on_error=False,
        )  # fmt: skip

    try:
        assert train_lineage(instance, mlflow_tracking, **WEAK_TRAINING).success  # version 1
        [request] = tick().run_requests
        assert set(request.asset_selection) == {
            dg.AssetKey("local_endpoint"), dg.AssetKey("sagemaker_endpoint"),
        }  # fmt: skip
        assert run(request).success
        assert endpoint_health(endpoint.url)["model_version"] == "1"
        assert deployer(sagemaker).served_version() == "1"
        assert tick().run_requests == [], "a version is deployed once"

        # Version 2 beats version 1 and is deployed; version 3 loses to it and is not.
        assert train_lineage(instance, mlflow_tracking, **QUICK_TRAINING).success
        [request] = tick().run_requests
        assert request.tags["penguins/model_version"] == "2"
        assert run(request).success
        assert not train_lineage(instance, mlflow_tracking, **WEAK_TRAINING).success
        assert tick().run_requests == [], "a challenger that lost is never deployed"
        assert endpoint_health(endpoint.url)["model_version"] == "2"
        assert deployer(sagemaker).served_version() == "2"
    finally:
        service.stop(endpoint.paths)
