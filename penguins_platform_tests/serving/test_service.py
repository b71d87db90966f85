"""The endpoint as a service: what it inherits, what it keeps private, how it reports a start."""

import http.server
import os
import stat
import threading
from pathlib import Path

import pytest

from penguins_platform.serving import service


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_server_process_inherits_no_credentials(start_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-sentinel-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow-sentinel-secret")
    running = start_endpoint(tmp_path / "state")
    environ = Path(f"/proc/{running.pid}/environ").read_bytes().decode().split("\0")
    names = {entry.partition("=")[0] for entry in environ if entry}
    assert "AWS_SECRET_ACCESS_KEY" not in names
    assert "MLFLOW_TRACKING_PASSWORD" not in names
    assert not any("sentinel-secret" in entry for entry in environ)
    assert {service.TOKEN_VARIABLE, "PYTHONPATH"} <= names
    assert names <= {service.TOKEN_VARIABLE, "PYTHONPATH", *service.INHERITED_VARIABLES}


def test_the_state_folder_token_and_capture_store_are_private(start_endpoint, tmp_path):
    from penguins_platform_tests.servers import HttpClient

    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    running = start_endpoint(state)
    http = HttpClient(running.url)
    http.predict([{"island": "Dream"}])
    http.close()
    service.stop(running.paths)  # flushes the capture store
    assert _mode(state) == 0o700, "an existing folder is narrowed too"
    assert _mode(running.paths.token_file) == 0o600
    assert _mode(running.capture_db) == 0o600
    assert _mode(running.paths.log_file) == 0o600


def test_the_token_file_is_never_readable_by_others(tmp_path):
    paths = service.EndpointPaths(tmp_path)
    paths.token_file.write_text("old")
    paths.token_file.chmod(0o644)
    previous = os.umask(0)
    try:
        token = service.write_token(paths)
    finally:
        os.umask(previous)
    assert _mode(paths.token_file) == 0o600
    assert paths.token_file.read_text() == token != "old"


class _OtherServer(http.server.BaseHTTPRequestHandler):
    server_version = "SomethingElse/1.0"

    def do_GET(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def other_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_taken_port_is_named_with_what_answers_there(model_dir, tmp_path, other_server):
    paths = service.EndpointPaths(tmp_path / "state")
    options = service.ServerOptions("127.0.0.1", other_server, None, 10, 1000)
    with pytest.raises(service.EndpointError) as raised:
        service.start(paths, model_dir, "1", "penguins", options)
    message = str(raised.value)
    assert f"port {other_server} on 127.0.0.1 is taken" in message
    assert "HTTP 404, 'SomethingElse/1.0" in message
    assert "PENGUINS_ENDPOINT_PORT" in message
    assert len(message.splitlines()) == 1
    assert service.read_pid(paths) is None


def test_a_failed_start_reports_its_own_log_lines_only(broken_model_dir, tmp_path, start_endpoint):
    state = tmp_path / "state"
    state.mkdir()
    (state / "endpoint.log").write_text("an old run's line that must not be shown again\n")
    with pytest.raises(service.EndpointError) as raised:
        start_endpoint(state, broken_model_dir)
    message = str(raised.value)
    assert "cannot serve version 1" in message
    assert "an old run's line" not in message
    assert message.count(service.START_MARKER) == 1


def test_describe_listener_is_none_on_a_free_port():
    from penguins_platform_tests.servers import free_port

    assert service.describe_listener("127.0.0.1", free_port()) is None


def test_another_service_answering_health_is_not_taken_for_the_endpoint():
    assert not service.is_endpoint({"status": "ok"})
    assert service.is_endpoint({"service": service.SERVICE_NAME, "model_version": "1"})
