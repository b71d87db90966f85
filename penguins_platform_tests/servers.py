"""Starting and stopping the real server processes that tests drive."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from penguins_platform.serving import service
from penguins_platform.serving.service import free_port as free_port  # for the tests' servers
from penguins_platform.serving.service import terminate_group


def start_process(command: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """Start `command` in its own session, so the whole process group can be stopped."""
    handle = log.open("wb")
    return subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
    )


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """Stop `process` and every child in its session (see `service.terminate_group`)."""
    terminate_group(process.pid, grace_seconds)
    process.wait(timeout=5)


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout}s:\n{log.read_text()[-4000:]}")


def endpoint_health(url: str) -> dict[str, Any]:
    """The /health answer of the endpoint at `url`, as its JSON came; fails the test when
    nothing answers there."""
    answer = service.health(url)
    assert answer is not None, f"nothing answers {url}/health"
    return answer


class HttpClient:
    """One keep-alive HTTP/1.1 connection, as a load-test client would hold."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import http.client
        from urllib.parse import urlparse

        parsed = urlparse(url)
        self._connection = http.client.HTTPConnection(parsed.netloc, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None,
        content_type: str = "application/json", headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        import json

        all_headers = {"Content-Type": content_type, **(headers or {})}
        self._connection.request(method, path, body=body, headers=all_headers)
        reply = self._connection.getresponse()
        data = reply.read()
        if reply.getheader("connection", "").lower() == "close":
            self._connection.close()
        try:
            return reply.status, json.loads(data) if data else None
        except ValueError:
            return reply.status, data.decode(errors="replace")

    def predict(self, records: object) -> tuple[int, Any]:
        import json

        return self.request("POST", "/invocations", json.dumps({"inputs": records}).encode())

    def close(self) -> None:
        self._connection.close()
