"""The monitoring lineage on real parts: the local endpoint serving a registered version,
real traffic through HTTP, labels written back to the capture store, Evidently reports, and
the retraining sensor reading the checks' history."""

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from penguins_platform.defs.event_log import CheckEvaluation
from penguins_platform.defs.jobs import (
    RETRAINING_REASON_TAG,
    RETRAINING_TAG,
    training_run_config,
)
from penguins_platform.defs.resources import LocalEndpoint, Monitoring
from penguins_platform.defs.sensors import RetrainingCursor, retraining_reason, retraining_sensor
from penguins_platform.serving import service
from penguins_platform_tests.conftest import (
    DATA_FILE,
    QUICK_TRAINING,
    check_descriptions,
    check_outcomes,
    definitions_with,
    materialized_assets,
    run_deployment,
    run_training,
)
from penguins_platform_tests.servers import endpoint_health, free_port

# A quick training that its accuracy threshold refuses.
UNREGISTRABLE = {**QUICK_TRAINING, "threshold": 0.99}
MONITORING_ASSETS = ("production_data", "ground_truth_labels", "monitoring_report")


@pytest.fixture(scope="module")
def endpoint(registry, tmp_path_factory):
    """The local endpoint serving the champion, with its capture store."""
    resource = LocalEndpoint(port=free_port(), state_dir=str(tmp_path_factory.mktemp("serving")))
    try:
        assert run_deployment(registry, "local_endpoint", {"local": resource}).success
        yield resource
    finally:
        service.stop(resource.paths)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return tmp_path_factory.mktemp("reports")


def send(endpoint: LocalEndpoint, requests: int, drift: bool = False, seed: int = 0) -> None:
    """Real traffic through HTTP, then wait until the endpoint's writer stored all of it."""
    from penguins_platform.traffic import sample_records, send_traffic, shipped_penguins

    before = endpoint_health(endpoint.url)["capture"]["written"]
    # The cleaned penguins, as the traffic tool sends them: the CSV's raw rows hold its "."
    # placeholder for an unknown sex, which a batch that draws it rightly reads as drift.
    records = sample_records(shipped_penguins(), requests, drift=drift, seed=seed)
    result = send_traffic(endpoint.target("penguins").invoke, records, batch_size=10)
    assert result.answered == requests
    wait_until_written(endpoint, before + requests)


def wait_until_written(endpoint: LocalEndpoint, rows: int) -> None:
    import time

    deadline = time.monotonic() + 30
    while endpoint_health(endpoint.url)["capture"]["written"] < rows:
        assert time.monotonic() < deadline, "the endpoint did not capture the traffic"
        time.sleep(0.05)


def monitor(registry, endpoint, reports, *, rows: int, quality: float = 1.0, **report_config):
    instance, tracking = registry
    defs = definitions_with(
        mlflow=tracking,
        local=endpoint,
        monitoring=Monitoring(ground_truth_quality=quality, report_dir=str(reports)),
    )
    return defs.resolve_job_def("monitoring_job").execute_in_process(
        run_config={
            "ops": {
                "production_data": {"config": {"rows": rows}},
                "monitoring_report": {"config": report_config},
            }
        },
        instance=instance,
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    materialization = event.step_materialization_data.materialization
    return {k: v.value for k, v in materialization.metadata.items()}


def copied_store(endpoint: LocalEndpoint, tmp_path: Path) -> tuple[LocalEndpoint, Path]:
    """A copy of the endpoint's capture store, and an endpoint resource (with no server)
    that reads it: a test may then damage or trim the copy."""
    store = tmp_path / "capture.db"
    with sqlite3.connect(endpoint.paths.state_dir / "capture.db") as source:
        source.execute(f"VACUUM INTO '{store}'")
    copy = LocalEndpoint(
        port=free_port(), state_dir=str(tmp_path / "serving"), capture_uri=f"sqlite:///{store}"
    )
    return copy, store


def capture_rows(endpoint: LocalEndpoint) -> list[tuple]:
    path = endpoint.paths.state_dir / "capture.db"
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT id, prediction, target FROM predictions").fetchall()


def test_clean_traffic_passes_every_check_and_links_the_report(registry, endpoint, reports):
    send(endpoint, 120)
    result = monitor(registry, endpoint, reports, rows=120)
    assert result.success
    assert check_outcomes(result) == {
        "capture_health": True,
        "feature_drift": True,
        "production_accuracy": True,
    }
    data = metadata_of(result, "production_data")
    assert (data["row_count"], data["corrupt_rows_skipped"]) == (120, 0)
    assert data["answered_by_versions"] == {"2": 120}
    report = metadata_of(result, "monitoring_report")
    assert report["row_count"] == report["labeled_count"] == 120
    assert (report["serving_now"], report["judged_version"]) == ("2", "2")
    assert report["reference"].startswith("training data of version 2 (")
    assert report["production_accuracy"] == 1.0  # quality 1.0: the label is the prediction
    assert report["drift_share"] <= 0.1
    html = report["report_file"]
    assert html.startswith(str(reports)) and html.endswith(".html")
    with open(html, encoding="utf-8") as page:
        assert "<html" in page.read(2000).lower()
    assert "/artifacts/monitoring/" in report["report_in_mlflow"]
    # Every row of this evaluation got its label in the capture store, exactly once.
    labeled = [row for row in capture_rows(endpoint) if row[2] is not None]
    assert len(labeled) >= 120 and all(prediction == target for _, prediction, target in labeled)


def test_the_report_is_an_artifact_of_the_served_versions_run(registry, endpoint, reports):
    send(endpoint, 30)
    result = monitor(registry, endpoint, reports, rows=30)
    _, tracking = registry
    client = tracking.client()
    run_id = client.get_model_version(tracking.registered_model_name, "2").run_id
    folders = [a.path for a in client.list_artifacts(run_id, "monitoring")]
    name = metadata_of(result, "monitoring_report")["report_file"].rsplit("/", 1)[1]
    assert f"monitoring/{name.removesuffix('.html')}" in folders


def shipped_csv_with(tmp_path: Path, change) -> Path:
    """The shipped CSV with `change` applied to its text table, saved beside the test."""
    import pandas as pd

    table = pd.read_csv(DATA_FILE, dtype=str)
    path = tmp_path / "changed.csv"
    change(table).to_csv(path, index=False)
    return path


def test_a_blocked_run_on_shifted_data_does_not_move_what_monitoring_compares_with(
    fresh_registry, endpoint, reports, tmp_path
):
    """Before, the reference was the newest `penguins`: here, data 600 g heavier that its
    accuracy check blocked. Now it is the data that trained the served version."""
    import pandas as pd

    instance, tracking = fresh_registry

    def heavier(table):
        mass = pd.to_numeric(table["body_mass_g"], errors="coerce") + 600
        return table.assign(body_mass_g=mass.map(lambda v: "" if pd.isna(v) else f"{v:g}"))

    shifted = shipped_csv_with(tmp_path, heavier)
    blocked = run_training(instance, tracking, data=str(shifted), **UNREGISTRABLE)
    assert not blocked.success
    assert check_outcomes(blocked)["accuracy_threshold"] is False
    assert "penguins" in materialized_assets(blocked), "the shifted data is the newest penguins"

    send(endpoint, 120, seed=13)
    result = monitor(fresh_registry, endpoint, reports, rows=120)
    assert result.success
    assert check_outcomes(result)["feature_drift"] is True, check_descriptions(result)
    # Against the blocked run's data, which monitoring read before, the same rows drift.
    from penguins_platform.ml.cleaning import clean_penguins
    from penguins_platform.monitoring.report import build_report
    from penguins_platform.traffic import sample_records, shipped_penguins

    batch = pd.DataFrame(sample_records(shipped_penguins(), 120, seed=13))
    batch = batch.assign(prediction="Adelie", target=None)
    blocked_data = clean_penguins(pd.read_csv(shifted, dtype=str), seed=42)
    before = build_report(blocked_data, batch, drift_share=0.1, html_path=None)
    assert "body_mass_g" in before.drifted_features
    report = metadata_of(result, "monitoring_report")
    tags = tracking.client().get_model_version(tracking.registered_model_name, "2").tags
    assert report["reference"] == (
        f"training data of version 2 ({tags['training_rows']} rows, "
        f"data version {tags['data_version']})"
    )


def test_a_blocked_run_on_data_with_an_empty_column_leaves_monitoring_working(
    fresh_registry, endpoint, reports, tmp_path
):
    instance, tracking = fresh_registry
    empty = shipped_csv_with(tmp_path, lambda table: table.assign(flipper_length_mm=""))
    blocked = run_training(instance, tracking, data=str(empty), **QUICK_TRAINING)
    assert not blocked.success
    assert check_outcomes(blocked)["missing_values_are_bounded"] is False
    send(endpoint, 60, seed=12)
    result = monitor(fresh_registry, endpoint, reports, rows=60)
    assert result.success, "Evidently never sees the empty column: the reference is v2's data"
    assert check_outcomes(result)["feature_drift"] is True


def test_rows_answered_by_two_versions_are_counted_and_the_newest_one_judged(
    registry, endpoint, reports, tmp_path
):
    send(endpoint, 60, seed=13)
    copy, store = copied_store(endpoint, tmp_path)
    with sqlite3.connect(store) as connection:
        total = connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        connection.execute(
            "UPDATE predictions SET model_version = '1' WHERE id IN "
            "(SELECT id FROM predictions ORDER BY id LIMIT 25)"
        )
    result = monitor(registry, copy, reports, rows=total)
    assert result.success
    report = metadata_of(result, "monitoring_report")
    assert report["answered_by_versions"] == {"1": 25, "2": total - 25}
    # No server answers for the copy, so the version of the newest row is judged.
    assert (report["serving_now"], report["judged_version"]) == ("unknown", "2")
    assert report["row_count"] == total - 25
    assert set(report["accuracy_by_version"]) == {"1", "2"}
    [drift] = [e for e in result.get_asset_check_evaluations() if e.check_name == "feature_drift"]
    assert drift.metadata["judged_version"].value == "2"


def test_production_labels_join_the_training_data_and_the_gate_decides(
    fresh_registry, endpoint, reports
):
    instance, tracking = fresh_registry
    send(endpoint, 60, seed=14)
    assert monitor(fresh_registry, endpoint, reports, rows=500).success  # labels them
    with sqlite3.connect(endpoint.paths.state_dir / "capture.db") as connection:
        labeled = connection.execute(
            "SELECT COUNT(*) FROM predictions WHERE target IS NOT NULL"
        ).fetchone()[0]
    assert labeled >= 60
    before = instance.get_latest_materialization_event(dg.AssetKey("raw_penguins"))
    assert before is not None and before.asset_materialization is not None
    result = run_training(
        instance, tracking, local=endpoint, with_production_labels=True, **QUICK_TRAINING
    )
    assert "beats_champion" in check_outcomes(result), "the gate decided"
    raw = metadata_of(result, "raw_penguins")
    assert raw["production_rows_added"] == labeled
    assert raw["dagster/row_count"] == 344 + labeled
    assert set(raw["production_versions"]) == {"2"}
    assert raw["production_rows"].startswith(f"{labeled} labeled production rows (version 2: ")
    data_version = instance.get_latest_materialization_event(dg.AssetKey("raw_penguins"))
    assert data_version is not None and data_version.asset_materialization is not None
    old_tags = before.asset_materialization.tags or {}
    new_tags = data_version.asset_materialization.tags or {}
    assert new_tags["dagster/data_version"] != old_tags["dagster/data_version"]
    registered = metadata_of(result, "registered_model_version")
    assert registered["training_rows"] + registered["holdout_rows"] == 344 + labeled
    assert registered["data_version"] == new_tags["dagster/data_version"]


def test_labeling_twice_changes_nothing(registry, endpoint, reports):
    send(endpoint, 40, seed=3)
    first = monitor(registry, endpoint, reports, rows=40, quality=0.5)
    before = capture_rows(endpoint)
    second = monitor(registry, endpoint, reports, rows=40, quality=0.0)
    assert capture_rows(endpoint) == before
    assert metadata_of(first, "ground_truth_labels")["labeled_now"] == 40
    labels = metadata_of(second, "ground_truth_labels")
    assert (labels["labeled_now"], labels["already_labeled"]) == (0, 40)


def test_drifted_traffic_fails_feature_drift(registry, endpoint, reports):
    send(endpoint, 150, drift=True, seed=1)
    result = monitor(registry, endpoint, reports, rows=150)
    assert result.success  # a WARN check: the run stays green
    outcomes = check_outcomes(result)
    assert outcomes["feature_drift"] is False and outcomes["production_accuracy"] is True
    assert "body_mass_g" in check_descriptions(result)["feature_drift"]
    assert "body_mass_g" in metadata_of(result, "monitoring_report")["drifted_features"]


def test_poor_labels_fail_accuracy_and_request_retraining_once(registry, endpoint, reports):
    instance, _ = registry
    send(endpoint, 150, seed=2)
    result = monitor(registry, endpoint, reports, rows=150, quality=0.5)
    assert check_outcomes(result)["production_accuracy"] is False
    assert "against a threshold of 0.9" in check_descriptions(result)["production_accuracy"]

    first = retraining_sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    [request] = first.run_requests or []
    assert request.tags[RETRAINING_TAG] == "requested"
    assert request.tags[RETRAINING_REASON_TAG].startswith("production_accuracy failed: accuracy")
    assert retraining_sensor.job_name == "training_job"

    # Production is still poor at the next evaluation: within the cool-down, no second request.
    send(endpoint, 150, seed=4)
    again = monitor(registry, endpoint, reports, rows=150, quality=0.5)
    assert check_outcomes(again)["production_accuracy"] is False, check_descriptions(again)
    second = retraining_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=first.cursor)
    )
    assert second.run_requests == []
    assert "cool-down" in (second.skip_message or "")
    assert RetrainingCursor.read(second.cursor).last_request_at is not None
    # Nothing new to judge: the next tick says so.
    third = retraining_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=second.cursor)
    )
    assert (third.run_requests, third.skip_message) == (
        [],
        "no monitoring evaluation since the last tick",
    )


def test_a_requested_retraining_that_is_worse_leaves_the_champion_serving(
    fresh_registry, endpoint, reports
):
    """The loop's run passes through the same gate: a retrain worse than the champion is
    registered, not promoted, not deployed."""
    from penguins_platform.defs.registry import CHAMPION_CHANGED_TAG
    from penguins_platform.defs.resources import AzureMLEndpoint, SageMakerEndpoint
    from penguins_platform.defs.sensors import champion_sensor

    instance, tracking = fresh_registry
    send(endpoint, 150, seed=15)
    assert not check_outcomes(monitor(fresh_registry, endpoint, reports, rows=150, quality=0.5))[
        "production_accuracy"
    ]
    [request] = (
        retraining_sensor.evaluate_tick(dg.build_sensor_context(instance=instance)).run_requests
        or []
    )
    # The request's own tags; a quicker recipe than the champion's (v1's, which v2 beat).
    defs = definitions_with(mlflow=tracking)
    retrained = defs.resolve_job_def("training_job").execute_in_process(
        run_config=training_run_config(**QUICK_TRAINING),
        tags=request.tags,
        instance=instance,
        raise_on_error=False,
    )
    assert check_outcomes(retrained)["beats_champion"] is False
    stored = instance.get_run_by_id(retrained.run_id)
    assert stored is not None
    assert (stored.tags[RETRAINING_TAG], stored.tags[CHAMPION_CHANGED_TAG]) == (
        "requested",
        "false",
    )
    client = tracking.client()
    name = tracking.registered_model_name
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "4"
    resources = {
        "mlflow": tracking,
        "local": endpoint,
        "sagemaker": SageMakerEndpoint(),
        "azure": AzureMLEndpoint(),
    }
    ticked = champion_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources=resources)
    )
    assert [r.tags["penguins/model_version"] for r in ticked.run_requests or []] == ["2"], (
        "the champion it would deploy is still version 2"
    )
    assert endpoint_health(endpoint.url)["model_version"] == "2"


def test_an_empty_capture_store_says_no_production_data(registry, reports, tmp_path):
    quiet = LocalEndpoint(port=free_port(), state_dir=str(tmp_path / "serving"))
    result = monitor(registry, quiet, reports, rows=500)
    assert result.success
    for asset in MONITORING_ASSETS:
        assert metadata_of(result, asset)["status"].startswith("no production data")
    # Nothing to judge drift or accuracy on: only capture health is evaluated, and fails.
    assert check_outcomes(result) == {"capture_health": False}
    assert "no request was ever captured" in check_descriptions(result)["capture_health"]


def test_a_corrupt_row_is_skipped_and_counted(registry, endpoint, reports, tmp_path):
    send(endpoint, 20, seed=5)
    copy, store = copied_store(endpoint, tmp_path)
    with sqlite3.connect(store) as connection:
        connection.execute(
            "UPDATE predictions SET body_mass_g = 'heavy' "
            "WHERE id = (SELECT max(id) FROM predictions)"
        )
    result = monitor(registry, copy, reports, rows=20)
    assert result.success
    data = metadata_of(result, "production_data")
    assert (data["row_count"], data["corrupt_rows_skipped"]) == (19, 1)
    assert check_outcomes(result)["capture_health"] is False
    assert "1 corrupt rows skipped" in check_descriptions(result)["capture_health"]


def test_retention_removes_rows_and_counts_them(registry, endpoint, reports, tmp_path):
    send(endpoint, 20, seed=6)
    copy, store = copied_store(endpoint, tmp_path)
    with sqlite3.connect(store) as connection:
        total = connection.execute("SELECT count(*) FROM predictions").fetchone()[0]
    instance, tracking = registry
    defs = definitions_with(
        mlflow=tracking,
        local=copy,
        monitoring=Monitoring(retention_rows=15, report_dir=str(reports)),
    )
    result = defs.resolve_job_def("monitoring_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert result.success
    data = metadata_of(result, "production_data")
    assert data["retention"] == "keep at most 15 rows"
    assert (data["retention_removed_rows"], data["row_count"]) == (total - 15, 15)
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT count(*) FROM predictions").fetchone()[0] == 15


def evaluation(storage_id: int, passed: bool, description: str = "") -> CheckEvaluation:
    return CheckEvaluation(storage_id, passed, description, f"run-{storage_id}", 0.0)


def test_drift_requests_retraining_only_when_it_persists():
    drifted = [evaluation(i, False, f"drift {i}") for i in (9, 8, 7)]
    assert retraining_reason([], drifted[:2], persistence=3) is None
    assert retraining_reason([], [drifted[0], evaluation(8, True), drifted[2]], 3) is None
    requested = retraining_reason([evaluation(10, True)], drifted, persistence=3)
    assert requested is not None
    reason, run = requested
    assert reason == "feature_drift failed in the last 3 evaluations: drift 9"
    assert run == "run-9"


def test_failed_accuracy_requests_retraining_at_once():
    found = retraining_reason([evaluation(4, False, "accuracy 0.5")], [], persistence=3)
    assert found == ("production_accuracy failed: accuracy 0.5", "run-4")
    assert retraining_reason([evaluation(4, True)], [evaluation(3, True)], 3) is None


def test_a_deployments_smoke_test_is_not_production_data(endpoint):
    """The deployment's smoke test repeats the same few rows; captured, they read as drift."""
    capture = endpoint_health(endpoint.url)["capture"]
    assert capture["smoke_test_requests"] >= 1 + 20  # the deployment: smoke + latency requests
    answer = endpoint.target("penguins").invoke([{"island": "Dream"}], smoke_test=True)
    assert len(answer["predictions"]) == 1
    after = endpoint_health(endpoint.url)["capture"]
    assert after["submitted"] == capture["submitted"]
    assert after["smoke_test_requests"] == capture["smoke_test_requests"] + 1


def test_the_monitoring_settings_come_from_the_environment(monkeypatch):
    from penguins_platform.defs.resources import from_env

    monkeypatch.setenv("PENGUINS_GROUND_TRUTH_QUALITY", "0.65")
    monkeypatch.setenv("PENGUINS_CAPTURE_RETENTION_ROWS", "1000")
    monkeypatch.setenv("PENGUINS_LABELER", "csv")
    values = from_env(Monitoring)
    settings = Monitoring(**values).process_config_and_initialize()
    assert (settings.ground_truth_quality, settings.retention_rows) == (0.65, 1000)
    assert settings.retention().enabled
    # The CSV labeler without its file says which variable is missing.
    with pytest.raises(ValueError, match="PENGUINS_LABELS_CSV"):
        settings.make_labeler()
    monkeypatch.setenv("PENGUINS_GROUND_TRUTH_QUALITY", "most")
    with pytest.raises(ValueError, match="PENGUINS_GROUND_TRUTH_QUALITY='most' is not a number"):
        from_env(Monitoring)


def test_retention_is_off_by_default():
    assert not Monitoring().retention().enabled


@pytest.mark.parametrize("settings", [{"retention_rows": 0}, {"retention_days": 0.0}])
def test_a_retention_that_would_delete_everything_is_refused(settings):
    with pytest.raises(ValueError, match=r"would delete every row.*PENGUINS_CAPTURE_RETENTION"):
        Monitoring(**settings).retention()


def test_the_traffic_job_sends_real_requests_that_are_captured(registry, endpoint):
    instance, tracking = registry
    before = endpoint_health(endpoint.url)["capture"]["written"]
    defs = definitions_with(mlflow=tracking, local=endpoint)
    result = defs.resolve_job_def("traffic_job").execute_in_process(
        run_config={"ops": {"send_sample_traffic": {"config": {"requests": 25, "batch_size": 10}}}},
        instance=instance,
    )
    assert result.success
    assert result.output_for_node("send_sample_traffic") == 25
    wait_until_written(endpoint, before + 25)


def test_the_traffic_job_fails_and_says_so_when_nothing_answers(registry, tmp_path):
    instance, tracking = registry
    nobody = LocalEndpoint(port=free_port(), state_dir=str(tmp_path / "serving"))
    defs = definitions_with(mlflow=tracking, local=nobody)
    result = defs.resolve_job_def("traffic_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "requests in a row failed" in str(failure.step_failure_data.error)


def test_the_traffic_job_refuses_a_target_that_is_not_enabled(registry, endpoint, monkeypatch):
    monkeypatch.setenv("PENGUINS_TARGETS", "sagemaker")
    instance, tracking = registry
    before = endpoint_health(endpoint.url)["capture"]["written"]
    defs = definitions_with(mlflow=tracking, local=endpoint)
    result = defs.resolve_job_def("traffic_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert (
        "the local target is not enabled here: PENGUINS_TARGETS=sagemaker leaves local out"
        in str(failure.step_failure_data.error)
    )
    assert endpoint_health(endpoint.url)["capture"]["written"] == before, "nothing was sent"


def test_monitoring_reads_no_capture_of_a_target_that_is_not_enabled(
    registry, endpoint, reports, tmp_path, monkeypatch
):
    send(endpoint, 10, seed=8)
    copy, _ = copied_store(endpoint, tmp_path)
    monkeypatch.setenv("PENGUINS_TARGETS", "azure")
    result = monitor(registry, copy, reports, rows=10)
    data = metadata_of(result, "production_data")
    assert (data["sources"], data["row_count"]) == ({}, 0)


def test_check_descriptions_name_the_launchpad_field_of_their_bound():
    """The UI's check descriptions name the config field that sets each bound and its default,
    from the config class, not a number written into the text; each evaluation's own
    description says the bound it was judged against."""
    from penguins_platform.defs.monitoring import (
        MonitoringReportConfig,
        ProductionDataConfig,
        monitoring_report,
        production_data,
    )

    specs = {
        spec.name: spec.description or ""
        for asset in (production_data, monitoring_report)
        for spec in asset.check_specs
    }
    bounds: dict[str, tuple[type[dg.Config], str]] = {
        "capture_health": (ProductionDataConfig, "recent_hours"),
        "feature_drift": (MonitoringReportConfig, "drift_share"),
        "production_accuracy": (MonitoringReportConfig, "accuracy_threshold"),
    }
    for check, (config, field) in bounds.items():
        default = config.model_fields[field].default
        assert f"`{field}` ({default:g} unless the launchpad says)" in specs[check], specs[check]
