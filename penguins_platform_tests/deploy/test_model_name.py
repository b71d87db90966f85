"""The registered model's name reaches every target, whatever PENGUINS_MODEL_NAME says.

The `registry` fixture registers under "penguins-deploy", not the default "penguins". Each
deployment asset must fetch that model and label what it deploys with it.
"""

import json
import os
import subprocess
import sys

import boto3

from penguins_platform import defaults
from penguins_platform.defs.resources import LocalEndpoint
from penguins_platform.serving import service
from penguins_platform.tracking.contract import MODEL_NAME_TAG, VERSION_TAG
from penguins_platform_tests.conftest import REPO_ROOT, run_deployment
from penguins_platform_tests.deploy.conftest import target
from penguins_platform_tests.servers import endpoint_health, free_port


def test_the_model_name_setting_reaches_the_mlflow_resource():
    probe = (
        "from penguins_platform.definitions import defs; "
        "print(defs.resources['mlflow'].process_config_and_initialize().registered_model_name)"
    )
    env = {**os.environ, "PENGUINS_MODEL_NAME": "adelie-detector"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.strip() == "adelie-detector"
    assert defaults.MODEL_NAME != "adelie-detector"


def test_a_non_default_model_name_reaches_every_target(
    registry, emulator, moto_server, azure_target, azure_service, tmp_path
):
    _, tracking = registry
    assert tracking.registered_model_name == "penguins-deploy" != defaults.MODEL_NAME
    endpoint = LocalEndpoint(port=free_port(), state_dir=str(tmp_path / "serving"))
    resources = {"local": endpoint, "sagemaker": target(moto_server), "azure": azure_target}
    try:
        for asset in ("local_endpoint", "sagemaker_endpoint", "azure_endpoint"):
            result = run_deployment(registry, asset, resources, version="2")
            assert result.success, asset
        assert endpoint_health(endpoint.url)["model_name"] == "penguins-deploy"
    finally:
        service.stop(endpoint.paths)

    sagemaker = boto3.client("sagemaker", endpoint_url=moto_server, region_name="us-east-1")
    [model] = sagemaker.list_models()["Models"]
    tags = {
        t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    }
    assert (tags[MODEL_NAME_TAG], tags[VERSION_TAG]) == ("penguins-deploy", "2")

    fake, registrar = azure_service
    assert registrar.names == ["penguins-deploy"]
    [deployment] = fake.deployments["penguins"].values()
    assert json.dumps(deployment).count("penguins-deploy") >= 1
