"""`dagster dev` from workspace.yaml: the UI a user opens shows the lineage and its checks."""

import json
import os
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


@pytest.fixture
def dagster_dev(isolated_home, tmp_path):
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
    assert set(assets) == LINEAGE_ASSETS | {"local_endpoint"}
    assert {n["groupName"] for n in nodes if n["assetKey"]["path"] != ["local_endpoint"]} == {
        "training"
    }
    assert assets["local_endpoint"]["groupName"] == "deployment"
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
        ("local_endpoint", "serves_expected_version"): True,
        ("local_endpoint", "smoke_predictions_valid"): True,
        ("local_endpoint", "latency_under_bound"): True,
    }


def test_dagster_dev_offers_the_training_job(dagster_dev):
    data = _graphql(
        dagster_dev,
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }",
    )
    jobs = {j["name"] for r in data["repositoriesOrError"]["nodes"] for j in r["jobs"]}
    assert {"training_job", "local_endpoint_job"} <= jobs
