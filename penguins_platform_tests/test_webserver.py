"""`dagster dev` from workspace.yaml: the UI a user opens shows the lineage and its checks."""

import json
import os
import shutil
import urllib.request

import pytest

from penguins_platform_tests.conftest import LINEAGE_ASSETS, REPO_ROOT, VENV_BIN
from penguins_platform_tests.servers import (
    free_port,
    start_process,
    stop_process_group,
    wait_for_http,
)

QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    """One `dagster dev` for the module, on its own instance, stopped with its process group."""
    tmp_path = tmp_path_factory.mktemp("dagster-dev")
    isolated_home = tmp_path / "home"
    isolated_home.mkdir()
    shutil.copy(REPO_ROOT / "infra" / "dagster.yaml", isolated_home / "dagster.yaml")
    port = free_port()
    log = tmp_path / "dagster-dev.log"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(isolated_home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    command = [
        str(VENV_BIN / "dagster"), "dev",
        "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    process = start_process(command, log, env=env, cwd=REPO_ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/server_info", process, log, timeout=180)
        yield url
    finally:
        stop_process_group(process)
    assert process.poll() is not None, "dagster dev must be stopped"


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        payload = json.load(reply)
    assert "errors" not in payload, payload
    return payload["data"]


def test_dagster_dev_serves_the_lineage_and_its_blocking_checks(dagster_dev):
    nodes = _graphql(dagster_dev, QUERY)["assetNodes"]
    assets = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    deployments = {"local_endpoint", "sagemaker_endpoint", "azure_endpoint"}
    assert set(assets) == LINEAGE_ASSETS | deployments
    groups = {a: assets[a]["groupName"] for a in LINEAGE_ASSETS}
    assert groups == {
        a: "data" if a in ("raw_penguins", "penguins") else "training" for a in groups
    }
    assert {assets[a]["groupName"] for a in deployments} == {"deployment"}
    checks = {
        (asset, check["name"]): check["blocking"]
        for asset, node in assets.items()
        for check in node["assetChecksOrError"]["checks"]
    }
    assert checks == {
        ("raw_penguins", "required_columns"): True,
        ("raw_penguins", "measurements_are_numeric"): True,
        ("penguins", "species_are_known"): True,
        ("penguins", "categories_are_known"): True,
        ("penguins", "measurements_are_plausible"): True,
        ("penguins", "missing_values_are_bounded"): True,
        ("trained_model", "accuracy_threshold"): True,
        **{
            (target, check): True
            for target in deployments
            for check in (
                "serves_expected_version",
                "smoke_predictions_valid",
                "latency_under_bound",
            )
        },
    }


def test_dagster_dev_offers_the_jobs_and_runs_the_deployment_sensor(dagster_dev):
    data = _graphql(
        dagster_dev,
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } "
        "sensors { name minIntervalSeconds sensorState { status } } } } } }",
    )
    [repository] = data["repositoriesOrError"]["nodes"]
    assert {j["name"] for j in repository["jobs"]} >= {
        "training_job", "local_endpoint_job", "deployment_job",
    }  # fmt: skip
    [sensor] = repository["sensors"]
    assert sensor["name"] == "new_model_version_sensor"
    assert sensor["minIntervalSeconds"] == 30
    assert sensor["sensorState"]["status"] == "RUNNING"


def test_a_disabled_cloud_target_says_how_to_enable_it(dagster_dev):
    data = _graphql(
        dagster_dev,
        '{ assetNodeOrError(assetKey: {path: ["sagemaker_endpoint"]}) '
        "{ ... on AssetNode { description } } }",
    )
    assert (
        "set SAGEMAKER_EXECUTION_ROLE_ARN and SAGEMAKER_BUCKET"
        in (data["assetNodeOrError"]["description"])
    )
