"""Swapping versions on a running endpoint: no failed request, and no worse model served."""

import os
import threading
import time

import pytest

from penguins_platform.serving import service
from penguins_platform_tests.conftest import export_inference_model, fit_model
from penguins_platform_tests.servers import HttpClient, endpoint_health

SAMPLE = {"island": "Biscoe", "culmen_length_mm": 48.6, "body_mass_g": 5800.0}


@pytest.fixture(scope="module")
def second_model_dir(tmp_path_factory):
    return export_inference_model(fit_model(seed=7, epochs=30), tmp_path_factory.mktemp("v2"))


def test_redeploy_under_load_fails_no_request(fresh_endpoint, second_model_dir):
    stop = threading.Event()
    outcomes: list[tuple[int, str | None]] = []

    def run() -> None:
        http = HttpClient(fresh_endpoint.url)
        while not stop.is_set():
            status, body = http.predict([SAMPLE])
            outcomes.append((status, body.get("model_version") if status == 200 else str(body)))
        http.close()

    clients = [threading.Thread(target=run) for _ in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(0.5)
    service.swap(fresh_endpoint.url, fresh_endpoint.paths, second_model_dir, "2", "penguins")
    time.sleep(0.5)
    stop.set()
    for thread in clients:
        thread.join()
    failures = [o for o in outcomes if o[0] != 200]
    assert failures == []
    versions = [v for _, v in outcomes]
    assert {"1", "2"} <= set(versions), "load ran before and after the swap"
    first_new = versions.index("2")
    assert len(outcomes) > 100
    assert endpoint_health(fresh_endpoint.url)["model_version"] == "2"
    assert versions[first_new:].count("1") <= 4, "only requests in flight at the swap see v1"


def test_a_version_that_fails_its_smoke_test_is_refused_and_the_old_one_serves(
    fresh_endpoint, broken_model_dir
):
    with pytest.raises(service.EndpointError, match=r"refused version 9.*no valid probabilities"):
        service.swap(fresh_endpoint.url, fresh_endpoint.paths, broken_model_dir, "9", "penguins")
    http = HttpClient(fresh_endpoint.url)
    status, body = http.predict([SAMPLE])
    http.close()
    assert status == 200 and body["model_version"] == "1"
    assert body["predictions"][0]["prediction"] == "Gentoo"


def test_a_missing_model_folder_is_refused(fresh_endpoint, tmp_path):
    with pytest.raises(service.EndpointError, match="version 3 failed to load"):
        service.swap(
            fresh_endpoint.url, fresh_endpoint.paths, tmp_path / "nothing", "3", "penguins"
        )
    assert endpoint_health(fresh_endpoint.url)["model_version"] == "1"


def test_the_admin_swap_needs_the_token(fresh_endpoint, second_model_dir):
    status, _ = service.request_json(
        f"{fresh_endpoint.url}/admin/model",
        {"model_dir": str(second_model_dir), "version": "2"},
        token="guess",
    )
    assert status == 401
    assert endpoint_health(fresh_endpoint.url)["model_version"] == "1"


def test_starting_on_a_broken_model_fails_with_the_log(broken_model_dir, tmp_path, start_endpoint):
    with pytest.raises(
        service.EndpointError,
        match=r"(?s)exited with code 1.*cannot serve version 1.*no valid probabilities",
    ):
        start_endpoint(tmp_path / "state", broken_model_dir)
    assert service.read_pid(service.EndpointPaths(tmp_path / "state")) is None


def test_refusals_of_a_swap_name_what_happened(fresh_endpoint, broken_model_dir):
    url = f"{fresh_endpoint.url}/admin/model"
    payload = {"model_dir": str(broken_model_dir), "version": "9"}
    status, body = service.request_json(url, payload, token="guess")
    assert isinstance(body, dict)
    assert (status, body["error_code"]) == (401, "UNAUTHORIZED")
    token = fresh_endpoint.paths.token_file.read_text()
    status, body = service.request_json(url, payload, token=token)
    assert isinstance(body, dict)
    assert (status, body["error_code"]) == (422, "MODEL_REJECTED")
    assert body["serving_version"] == "1"


def test_requests_are_answered_while_a_new_version_loads(
    fresh_endpoint, second_model_dir, tmp_path
):
    """The load runs off the event loop: a load blocked on its files must not block requests.

    The new version's parameters file is a named pipe, so loading it waits until this test
    writes the parameters, and meanwhile the server must keep answering.
    """
    import shutil

    slow = tmp_path / "slow"
    shutil.copytree(second_model_dir, slow)
    parameters = (slow / "inference.json").read_bytes()
    (slow / "inference.json").unlink()
    os.mkfifo(slow / "inference.json")
    swapped: list[dict[str, object]] = []
    swap = threading.Thread(
        target=lambda: swapped.append(
            service.swap(fresh_endpoint.url, fresh_endpoint.paths, slow, "2", "penguins")
        )
    )
    swap.start()
    try:
        time.sleep(0.3)  # the server is now blocked opening the pipe
        http = HttpClient(fresh_endpoint.url, timeout=5)
        status, body = http.predict([SAMPLE])
        http.close()
        assert (status, body["model_version"]) == (200, "1"), "answered while the load waits"
        assert swap.is_alive(), "the load is still waiting for its parameters"
    finally:
        with open(slow / "inference.json", "wb") as pipe:
            pipe.write(parameters)
        swap.join(timeout=30)
    assert swapped and swapped[0]["model_version"] == "2"
    assert endpoint_health(fresh_endpoint.url)["model_version"] == "2"
