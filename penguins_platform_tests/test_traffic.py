"""Sampled traffic: records drawn from the penguins data, sent to a real endpoint and captured."""

import json
import sqlite3
import time

import pytest

from penguins_platform import cli, defaults
from penguins_platform.deploy.local import LocalTarget
from penguins_platform.ml import schema
from penguins_platform.serving import service
from penguins_platform.serving.settings import LocalEndpointSettings
from penguins_platform.traffic import (
    DRIFT_STANDARD_DEVIATIONS,
    GIVE_UP_AFTER,
    TrafficError,
    sample_records,
    send_traffic,
)
from penguins_platform_tests.servers import endpoint_health, free_port
from penguins_platform_tests.serving.conftest import launch_endpoint


@pytest.fixture(scope="module")
def endpoint(model_dir, tmp_path_factory):
    running = launch_endpoint(tmp_path_factory.mktemp("traffic"), model_dir)
    try:
        yield running
    finally:
        service.stop(running.paths)


def target_at(url: str) -> LocalTarget:
    host, port = cli.endpoint_address(url)
    return LocalTarget(LocalEndpointSettings(host=host, port=port), defaults.MODEL_NAME)


def captured_count(endpoint) -> int:
    """Rows the endpoint's capture writer has appended to its store so far."""
    return endpoint_health(endpoint.url)["capture"]["written"]


def newest_captured(endpoint, expected_total: int, count: int) -> list[dict]:
    """The newest `count` captured rows, oldest first, once the store holds `expected_total`:
    the endpoint's writer appends in the background."""
    deadline = time.monotonic() + 15
    while captured_count(endpoint) < expected_total and time.monotonic() < deadline:
        time.sleep(0.1)
    with sqlite3.connect(endpoint.capture_db) as connection:
        connection.row_factory = sqlite3.Row
        total = connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        assert total == expected_total, f"the capture store holds {total} rows"
        rows = connection.execute(
            "SELECT * FROM predictions ORDER BY id DESC LIMIT ?", (count,)
        ).fetchall()
    return [dict(row) for row in reversed(rows)]


def test_sampled_records_are_the_six_features_with_missing_values_as_null(cleaned):
    records = sample_records(cleaned, 2000, seed=1)
    assert len(records) == 2000
    assert all(list(record) == list(schema.FEATURES) for record in records)
    assert any(record["sex"] is None for record in records), "the data's gaps are kept"
    assert not any(value != value for record in records for value in record.values()), "no NaN"
    json.dumps(records, allow_nan=False)
    assert records == sample_records(cleaned, 2000, seed=1)
    assert records != sample_records(cleaned, 2000, seed=2)


def added_mass(plain: list[dict], drifted: list[dict]) -> list[float]:
    """What drift added to each penguin's body mass, where it had one."""
    return [
        d["body_mass_g"] - p["body_mass_g"]
        for p, d in zip(plain, drifted, strict=True)
        if p["body_mass_g"] is not None
    ]


def test_drift_adds_up_to_three_standard_deviations_to_body_mass_only(cleaned):
    plain = sample_records(cleaned, 2000, seed=1)
    drifted = sample_records(cleaned, 2000, drift=True, seed=1)
    spread = DRIFT_STANDARD_DEVIATIONS * cleaned["body_mass_g"].std()
    added = added_mass(plain, drifted)
    assert all(1.0 <= noise < spread for noise in added)
    assert sum(added) / len(added) == pytest.approx(spread / 2, rel=0.05)
    others = [name for name in schema.FEATURES if name != "body_mass_g"]
    assert [[p[n] for n in others] for p in plain] == [[d[n] for n in others] for d in drifted]


def test_traffic_is_answered_and_captured_row_for_row(endpoint, cleaned):
    before = captured_count(endpoint)
    records = sample_records(cleaned, 30, seed=3)
    progress = []
    result = send_traffic(
        target_at(endpoint.url).invoke,
        records,
        batch_size=10,
        progress=lambda *p: progress.append(p),
    )
    assert (result.sent, result.answered, result.requests, result.failed_requests) == (30, 30, 3, 0)
    assert progress == [(10, 30), (20, 30), (30, 30)]
    captured = newest_captured(endpoint, before + 30, 30)
    assert len({row["request_id"] for row in captured}) == 3
    assert [row["row"] for row in captured] == list(range(10)) * 3
    assert [{name: row[name] for name in schema.FEATURES} for row in captured] == records


def test_drifted_traffic_is_answered_and_captured_heavier(endpoint, cleaned):
    before = captured_count(endpoint)
    target = target_at(endpoint.url)
    for drift in (False, True):
        result = send_traffic(target.invoke, sample_records(cleaned, 30, drift=drift, seed=4))
        assert (result.answered, result.failed_requests) == (30, 0)
    captured = newest_captured(endpoint, before + 60, 60)
    plain, drifted = captured[:30], captured[30:]
    spread = DRIFT_STANDARD_DEVIATIONS * cleaned["body_mass_g"].std()
    added = added_mass(plain, drifted)
    assert all(1.0 <= noise < spread for noise in added)
    assert sum(added) / len(added) > spread / 4, "drifted penguins are heavier on average"
    assert any("body_mass_g" in flag for row in drifted for flag in json.loads(row["flags"])), (
        "implausible masses are flagged, and still answered"
    )


def test_a_refused_request_is_counted_and_the_rest_still_sent(endpoint, cleaned):
    records = sample_records(cleaned, 30, seed=5)
    records[14] = {**records[14], "body_mass_g": "heavy"}  # the endpoint answers 400
    result = send_traffic(target_at(endpoint.url).invoke, records, batch_size=10)
    assert (result.sent, result.answered, result.requests, result.failed_requests) == (30, 20, 3, 1)
    assert "answered 400" in result.errors[0] and "row 4, field 'body_mass_g'" in result.errors[0]


def test_an_unreachable_endpoint_stops_the_traffic_after_a_few_requests(cleaned):
    dead = target_at(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrafficError, match="3 requests in a row failed") as raised:
        send_traffic(dead.invoke, sample_records(cleaned, 100, seed=6), batch_size=10)
    result = raised.value.result
    assert (result.requests, result.sent, result.answered) == (GIVE_UP_AFTER, 30, 0)
    assert "70 of 100 rows were not sent" in str(raised.value)


def test_a_batch_size_below_one_is_refused(capsys):
    with pytest.raises(ValueError, match="batch size must be at least 1, got 0"):
        send_traffic(lambda batch: None, [{}], batch_size=0)
    with pytest.raises(SystemExit) as exited:
        cli.main(["traffic", "--batch-size", "0"])
    assert exited.value.code == 2
    assert "argument --batch-size: must be at least 1, got 0" in capsys.readouterr().err


def test_the_cli_prints_progress_and_a_summary(endpoint, capsys):
    code = cli.main(
        ["traffic", "--url", endpoint.url, "--requests", "120", "--drift", "--seed", "7"]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out == [
        "  50 of 120 rows sent",
        "  100 of 120 rows sent",
        f"Sent 120 rows in 12 requests to local endpoint {endpoint.url}: 120 answered, "
        "0 failed (drift on body_mass_g: on, seed 7)",
    ]


def test_the_cli_says_when_no_endpoint_answers(penguins_cli):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = penguins_cli("traffic", "--url", url, timeout=120)
    assert done.returncode == 1
    assert f"No endpoint answers at {url}; start one with `make serve`." in done.stderr
    assert time.monotonic() - started < 30, "a dead endpoint is reported at once"


def test_the_cli_says_how_to_enable_sagemaker(monkeypatch, capsys):
    from penguins_platform.definitions import defs
    from penguins_platform.defs.resources import SageMakerEndpoint

    monkeypatch.setitem(defs.resources, "sagemaker", SageMakerEndpoint())
    assert cli.main(["traffic", "--target", "sagemaker"]) == 1
    assert "SAGEMAKER_EXECUTION_ROLE_ARN" in capsys.readouterr().err
