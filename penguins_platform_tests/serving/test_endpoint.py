"""The endpoint process over HTTP: the protocol, bad input, concurrency and capture."""

import json
import os
import sqlite3
import threading
import urllib.error
import urllib.request
import uuid

import pytest

from penguins_platform import defaults
from penguins_platform.ml.features import feature_records
from penguins_platform.ml.schema import SAMPLE_PENGUIN
from penguins_platform.serving import service
from penguins_platform_tests.servers import HttpClient, endpoint_health


@pytest.fixture
def client(endpoint):
    http = HttpClient(endpoint.url)
    yield http
    http.close()


def test_health_ping_and_version_answer(client):
    status, health = client.request("GET", "/health")
    assert status == 200
    assert health["status"] == "ok" and health["model_version"] == "1"
    assert client.request("GET", "/ping")[0] == 200
    status, version = client.request("GET", "/version")
    assert version["model_version"] == "1" and version["model_dir"]


def test_the_reference_sample_is_a_gentoo(client):
    status, body = client.predict([SAMPLE_PENGUIN])
    assert status == 200
    assert body["predictions"][0]["prediction"] == "Gentoo"
    assert body["predictions"][0]["flags"] == []
    assert body["model_version"] == "1"
    uuid.UUID(body["request_id"])


def test_answers_come_one_per_record_in_order(client, trained_model):
    records = feature_records(trained_model.penguins)[:50]
    status, body = client.predict(records)
    singles = [client.predict([r])[1]["predictions"][0] for r in records]
    assert status == 200
    assert [a["prediction"] for a in body["predictions"]] == [a["prediction"] for a in singles]
    for batched, single in zip(body["predictions"], singles, strict=True):
        assert batched["confidence"] == pytest.approx(single["confidence"], abs=1e-6)


BAD_REQUESTS = {
    "not json": (b"{inputs: [", "application/json", 400, "not valid JSON"),
    "wrong content type": (b'{"inputs": []}', "text/plain", 415, "application/json"),
    "inputs missing": (b'{"rows": []}', "application/json", 400, 'missing "inputs"'),
    "inputs not a list": (b'{"inputs": {"island": "Dream"}}', "application/json", 400,
                          '"inputs" must be a list'),
    "not an object": (b"[1, 2]", "application/json", 400, "expected a JSON object"),
    "record not an object": (b'{"inputs": [{}, "Dream"]}', "application/json", 400,
                             "row 1: expected an object"),
    "text in a number": (b'{"inputs": [{"body_mass_g": "heavy"}]}', "application/json", 400,
                         "row 0, field 'body_mass_g': expected a number, got the text 'heavy'"),
    "boolean": (b'{"inputs": [{"culmen_depth_mm": true}]}', "application/json", 400,
                "field 'culmen_depth_mm': expected a number, got the boolean True"),
    "NaN": (b'{"inputs": [{"body_mass_g": NaN}]}', "application/json", 400,
            "field 'body_mass_g': expected a finite number"),
    "Infinity": (b'{"inputs": [{}, {"body_mass_g": -Infinity}]}', "application/json", 400,
                 "row 1, field 'body_mass_g': expected a finite number"),
    "nested object": (b'{"inputs": [{"island": {"name": "Dream"}}]}', "application/json", 400,
                      "field 'island': expected text, got a nested object"),
    "invalid utf-8": (b'{"inputs": [{"island": "\xff\xfe"}]}', "application/json", 400,
                      "not valid UTF-8"),
    "deeply nested": (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                      "application/json", 400, "nested too deeply"),
}  # fmt: skip


@pytest.mark.parametrize(
    "body,content_type,status,fragment", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys()
)
def test_bad_request_gets_a_4xx_naming_the_problem(client, body, content_type, status, fragment):
    answered, error = client.request("POST", "/invocations", body, content_type)
    assert answered == status
    assert fragment in error["message"], error


def test_bad_record_errors_carry_row_and_field(client):
    status, error = client.predict([{}, {}, {"flipper_length_mm": "x"}])
    assert status == 400
    assert (error["row"], error["field"]) == (2, "flipper_length_mm")


def test_an_empty_list_is_an_empty_answer(client):
    status, body = client.predict([])
    assert status == 200 and body["predictions"] == []


def test_unicode_garbage_in_a_category_is_predicted_and_flagged(client):
    status, body = client.predict([{**SAMPLE_PENGUIN, "island": "\u202e\U0001f427\x00ïsland"}])
    assert status == 200
    assert body["predictions"][0]["flags"][0].startswith("unknown island")


def test_absurd_magnitudes_are_predicted_and_flagged(client):
    status, body = client.predict(
        [{**SAMPLE_PENGUIN, "body_mass_g": -3.0, "flipper_length_mm": 1e12}]
    )
    assert status == 200
    flags = body["predictions"][0]["flags"]
    assert any("body_mass_g -3" in f for f in flags)
    assert any("flipper_length_mm 1e+12" in f for f in flags)


def test_unknown_island_and_sex_are_predicted_and_flagged(client):
    status, body = client.predict([{**SAMPLE_PENGUIN, "island": "Atlantis", "sex": "UNKNOWN"}])
    assert status == 200
    assert body["predictions"][0]["flags"] == ["unknown island 'Atlantis'", "unknown sex 'UNKNOWN'"]


def test_extra_fields_are_ignored_and_reported(client):
    status, body = client.predict([{**SAMPLE_PENGUIN, "colour": "black", "tag": 7}])
    assert status == 200
    assert body["ignored_fields"] == ["colour", "tag"]
    assert body["predictions"][0]["prediction"] == "Gentoo"


def test_too_many_rows_get_413(client):
    status, error = client.predict([{}] * 100_000)
    assert status == 413
    assert "100000 rows exceed the limit of 10000" in error["message"]


def _twenty_megabytes() -> bytes:
    """A 20 MB request body: 4 times the 5 MiB limit, less than the 4x drain bound."""
    return b'{"inputs": [' + b" " * (20_000_000 - 14) + b"]}"


def _post_with_urllib(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _post_with_requests(url: str, body: bytes) -> tuple[int, dict]:
    import requests

    reply = requests.post(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    return reply.status_code, reply.json()


@pytest.mark.parametrize("post", [_post_with_urllib, _post_with_requests])
def test_a_20_mb_body_gets_a_readable_413_in_ordinary_clients(endpoint, post):
    status, error = post(endpoint.url, _twenty_megabytes())
    assert status == 413
    assert error["error_code"] == "REQUEST_TOO_LARGE"
    assert "body of 20000000 bytes exceeds the 5242880-byte limit" in error["message"]


def test_a_body_past_the_drain_bound_is_refused_at_once_and_the_server_carries_on(endpoint):
    from penguins_platform.serving.app import DRAIN_FACTOR

    body = b" " * (DRAIN_FACTOR * defaults.MAX_BODY_BYTES + (1 << 20))
    http = HttpClient(endpoint.url)
    try:
        status, error = http.request("POST", "/invocations", body)
        assert status == 413 and error["error_code"] == "REQUEST_TOO_LARGE"
    except (ConnectionResetError, BrokenPipeError):
        pass  # closing on a client still sending is allowed past the bound
    finally:
        http.close()
    assert endpoint_health(endpoint.url)["status"] == "ok"


def test_server_stays_healthy_after_every_bad_request(endpoint):
    http = HttpClient(endpoint.url)
    for body, content_type, _, _ in BAD_REQUESTS.values():
        http.request("POST", "/invocations", body, content_type)
    status, answer = http.predict([SAMPLE_PENGUIN])
    http.close()
    assert status == 200 and answer["predictions"][0]["prediction"] == "Gentoo"
    assert endpoint_health(endpoint.url)["status"] == "ok"


def test_eight_concurrent_clients_get_the_sequential_answers(endpoint, trained_model):
    records = feature_records(trained_model.penguins)
    sequential = HttpClient(endpoint.url)
    expected = [sequential.predict([r])[1]["predictions"][0] for r in records]
    problems: list[str] = []

    def run(k: int) -> None:
        http = HttpClient(endpoint.url)
        for i in range(k, len(records) * 2, 8):
            status, body = http.predict([records[i % len(records)]])
            if status != 200 or body["predictions"][0] != expected[i % len(records)]:
                problems.append(f"client {k}, row {i % len(records)}: {status} {body}")
        http.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    after = [sequential.predict([r])[1]["predictions"][0] for r in records[:20]]
    sequential.close()
    assert after == expected[:20], "answers must stay correct after the load"


def test_capture_keeps_exactly_one_row_per_prediction_under_load(fresh_endpoint):
    def run(k: int) -> None:
        http = HttpClient(fresh_endpoint.url)
        for i in range(500):
            status, _ = http.predict(
                [{**SAMPLE_PENGUIN, "body_mass_g": 4000.0 + i, "sex": f"c{k}"}]
            )
            assert status == 200
        http.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    service.stop(fresh_endpoint.paths)  # a graceful stop flushes the capture queue
    with sqlite3.connect(fresh_endpoint.capture_db) as connection:
        total, requests, clients = connection.execute(
            "SELECT COUNT(*), COUNT(DISTINCT request_id), COUNT(DISTINCT sex) FROM predictions"
        ).fetchone()
        row = connection.execute(
            "SELECT model_version, prediction, confidence, target, flags, captured_at "
            "FROM predictions LIMIT 1"
        ).fetchone()
    assert (total, requests, clients) == (4000, 4000, 8)
    assert row[0] == "1" and row[1] in {"Adelie", "Chinstrap", "Gentoo"} and row[3] is None
    assert json.loads(row[4])[0].startswith("unknown sex")
    assert row[5].endswith("+00:00"), "timestamps are UTC"


def test_a_failing_capture_store_never_fails_a_request(start_endpoint, tmp_path):
    blocked = tmp_path / "blocked.db"
    blocked.mkdir()
    running = start_endpoint(tmp_path / "state", capture_uri=f"sqlite:///{blocked}")
    http = HttpClient(running.url)
    statuses = [http.predict([SAMPLE_PENGUIN])[0] for _ in range(20)]
    http.close()
    assert statuses == [200] * 20
    counters = _wait_for_capture(running.url, expected=20)
    assert counters["write_failures"] >= 1 and counters["spilled"] == 20
    assert counters["written"] == 0 and counters["lost"] == 0
    spilled = (tmp_path / "blocked.db.spilled.jsonl").read_text().splitlines()
    assert len(spilled) == 20, "rows the store refused are spilled, not dropped"


def _wait_for_capture(url: str, expected: int) -> dict:
    import time

    for _ in range(100):
        counters = endpoint_health(url)["capture"]
        if counters["pending"] == 0 and counters["submitted"] == expected:
            return counters
        time.sleep(0.1)
    return counters


def test_capture_switched_off_writes_nothing(start_endpoint, tmp_path):
    running = start_endpoint(tmp_path / "state", capture=False)
    http = HttpClient(running.url)
    assert http.predict([SAMPLE_PENGUIN])[0] == 200
    http.close()
    assert endpoint_health(running.url)["capture"]["enabled"] is False
    service.stop(running.paths)
    assert not running.capture_db.exists()


def test_stop_ends_the_process_and_clears_the_pid_file(fresh_endpoint):
    assert service.stop(fresh_endpoint.paths)
    assert not fresh_endpoint.paths.pid_file.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(fresh_endpoint.pid, 0)
    assert service.health(fresh_endpoint.url) is None


@pytest.mark.parametrize(
    "method,path,status,code",
    [("GET", "/nowhere", 404, "NOT_FOUND"), ("GET", "/invocations", 405, "METHOD_NOT_ALLOWED")],
)
def test_unknown_routes_and_methods_answer_json(client, method, path, status, code):
    answered, error = client.request(method, path)
    assert (answered, error["error_code"]) == (status, code)


def test_a_client_leaving_mid_upload_is_one_log_line(fresh_endpoint):
    import socket
    import time

    host, port = fresh_endpoint.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'{"inputs": ['
        )
        time.sleep(0.2)
    log = fresh_endpoint.paths.log_file
    deadline = time.monotonic() + 10
    while "disconnected during its upload" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    assert endpoint_health(fresh_endpoint.url)["status"] == "ok"
    text = log.read_text()
    assert text.count("disconnected during its upload") == 1
    assert "Exception in ASGI application" not in text
    assert "Traceback" not in text
