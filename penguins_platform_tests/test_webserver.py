"""`dagster dev` from workspace.yaml: the UI a user opens shows the lineage and its checks."""

import time

import dagster as dg

from penguins_platform_tests.conftest import DAGSTER_DEV_SENSOR_INTERVAL, LINEAGE_ASSETS

QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""


def test_dagster_dev_serves_the_lineage_and_its_blocking_checks(dagster_dev):
    nodes = dagster_dev.graphql(QUERY)["assetNodes"]
    assets = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    deployments = {"local_endpoint", "sagemaker_endpoint", "azure_endpoint"}
    monitoring = {"production_data", "ground_truth_labels", "monitoring_report"}
    assert set(assets) == LINEAGE_ASSETS | deployments | monitoring
    groups = {a: assets[a]["groupName"] for a in LINEAGE_ASSETS}
    assert groups == {
        a: "data" if a in ("raw_penguins", "penguins") else "training" for a in groups
    }
    assert {assets[a]["groupName"] for a in deployments} == {"deployment"}
    assert {assets[a]["groupName"] for a in monitoring} == {"monitoring"}
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
        ("registered_model_version", "beats_champion"): True,
        **{
            (target, check): True
            for target in deployments
            for check in (
                "serves_expected_version",
                "smoke_predictions_valid",
                "latency_under_bound",
            )
        },
        # Monitoring judges production after the fact: nothing downstream to hold back.
        ("production_data", "capture_health"): False,
        ("monitoring_report", "feature_drift"): False,
        ("monitoring_report", "production_accuracy"): False,
    }


def test_dagster_dev_offers_the_jobs_and_runs_the_deployment_sensor_only(dagster_dev):
    data = dagster_dev.graphql(
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } "
        "sensors { name minIntervalSeconds sensorState { status } } } } } }",
    )
    [repository] = data["repositoriesOrError"]["nodes"]
    assert {j["name"] for j in repository["jobs"]} >= {
        "training_job", "local_endpoint_job", "deployment_job", "monitoring_job", "traffic_job",
    }  # fmt: skip
    sensors = {s["name"]: s for s in repository["sensors"]}
    assert set(sensors) == {"champion_sensor", "retraining_sensor"}
    deployment = sensors["champion_sensor"]
    # The fixture's PENGUINS_SENSOR_INTERVAL reached the code location (30 s by default).
    assert deployment["minIntervalSeconds"] == DAGSTER_DEV_SENSOR_INTERVAL
    assert deployment["sensorState"]["status"] == "RUNNING"
    # Locally nothing retrains behind the user's back: PENGUINS_SCHEDULES=on starts it.
    assert sensors["retraining_sensor"]["sensorState"]["status"] == "STOPPED"


def test_a_disabled_cloud_target_says_how_to_enable_it(dagster_dev):
    data = dagster_dev.graphql(
        '{ assetNodeOrError(assetKey: {path: ["sagemaker_endpoint"]}) '
        "{ ... on AssetNode { description } } }",
    )
    assert (
        "set SAGEMAKER_EXECUTION_ROLE_ARN and SAGEMAKER_BUCKET"
        in (data["assetNodeOrError"]["description"])
    )


LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def test_a_run_over_its_max_runtime_is_stopped_and_says_so(dagster_dev):
    """Run monitoring is on in infra/dagster/local.yaml: the daemon stops a run past its limit.

    Dagster's monitor marks the run canceling, interrupts it, then marks it failed; the
    interrupted run worker records its own cancellation meanwhile. Whichever lands last sets
    the final status, FAILURE or CANCELED, so the test waits for the monitor's message and
    accepts either: the run stopped, and its log says why.
    """
    params = {
        "selector": {
            "repositoryLocationName": "penguins_platform",
            "repositoryName": "__repository__",
            "jobName": "training_job",
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/max_runtime", "value": "1"}]},
    }
    launched = dagster_dev.graphql(LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    query = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
    deadline = time.monotonic() + 120
    messages: list[str] = []
    while True:
        status = dagster_dev.graphql(query, {"id": run_id})["runOrError"]["status"]
        with dg.DagsterInstance.from_config(str(dagster_dev.home)) as instance:
            messages = [entry.message for entry in instance.all_logs(run_id)]
        told = any("Exceeded maximum runtime of 1 seconds" in m for m in messages)
        if status in ("FAILURE", "CANCELED", "SUCCESS") and told:
            break
        assert time.monotonic() < deadline, f"still {status}: {messages[-5:]}"
        time.sleep(1)
    assert status in ("FAILURE", "CANCELED"), status
    assert any("Canceling due to exceeding maximum runtime of 1 seconds" in m for m in messages)
