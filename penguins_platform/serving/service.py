"""The endpoint as a service: start it detached, find it, swap its model, stop it.

The server outlives whoever started it (a Dagster run, `make serve`). Its pid, log and admin
token live in one state folder, so any later process can find and manage it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The server reads its admin token from here, never from argv, where `ps` would show it.
TOKEN_VARIABLE = "PENGUINS_ENDPOINT_TOKEN"


class EndpointError(RuntimeError):
    """The endpoint could not be started, reached or updated. The message says why."""


@dataclass(frozen=True)
class EndpointPaths:
    """Where a running endpoint keeps its pid, log and admin token."""

    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "endpoint.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "endpoint.log"

    @property
    def token_file(self) -> Path:
        return self.state_dir / "endpoint.token"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"


def request_json(
    url: str, payload: Any = None, token: str | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    """(status, decoded JSON) of a GET, or of a POST when `payload` is given."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            body = reply.read()
            return reply.status, json.loads(body) if body else None
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"message": body.decode(errors="replace")}


def health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The endpoint's /health answer, or None when nothing answers."""
    try:
        status, body = request_json(f"{url}/health", timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return body if status == 200 and isinstance(body, dict) else None


def read_pid(paths: EndpointPaths) -> int | None:
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def start(
    paths: EndpointPaths,
    model_dir: Path,
    version: str,
    host: str,
    port: int,
    capture_uri: str | None,
    max_rows: int,
    max_body_bytes: int,
    timeout: float = 60.0,
) -> int:
    """Start the server in its own session and wait until it answers /health."""
    url = f"http://{host}:{port}"
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    paths.token_file.write_text(token)
    paths.token_file.chmod(0o600)
    command = [
        sys.executable, "-m", "penguins_platform.serving",
        "--model-dir", str(model_dir), "--version", version,
        "--host", host, "--port", str(port),
        "--max-rows", str(max_rows), "--max-body-bytes", str(max_body_bytes),
    ]  # fmt: skip
    if capture_uri:
        command += ["--capture", capture_uri]
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = {
        **os.environ,
        TOKEN_VARIABLE: token,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    with paths.log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    paths.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(
                f"the endpoint exited with code {process.returncode} while starting; "
                f"log {paths.log_file}:\n{tail(paths.log_file)}"
            )
        answer = health(url, timeout=1.0)
        if answer and answer.get("model_version") == version:
            return process.pid
        time.sleep(0.1)
    stop(paths)
    raise EndpointError(f"the endpoint did not answer {url}/health within {timeout:.0f}s")


def swap(url: str, paths: EndpointPaths, model_dir: Path, version: str) -> dict[str, Any]:
    """Ask the running server to load `model_dir` and serve it once it passes its smoke test."""
    try:
        token = paths.token_file.read_text().strip()
    except OSError as error:
        raise EndpointError(
            f"an endpoint answers at {url} but {paths.token_file} is missing; it was not "
            "started from this state folder. Stop it, or point the deployment at its state folder."
        ) from error
    status, body = request_json(
        f"{url}/admin/model", {"model_dir": str(model_dir), "version": version}, token, timeout=60
    )
    if status != 200:
        message = body.get("message") if isinstance(body, dict) else body
        raise EndpointError(f"the endpoint at {url} refused version {version}: {message}")
    return body


def stop(paths: EndpointPaths, timeout: float = 15.0) -> bool:
    """Stop the server found in `paths` (it flushes capture on SIGTERM); False if none ran."""
    pid = read_pid(paths)
    if pid is None:
        paths.pid_file.unlink(missing_ok=True)
        return False
    terminate_group(pid, timeout)
    paths.pid_file.unlink(missing_ok=True)
    return True


def terminate_group(leader: int, grace_seconds: float = 15.0) -> None:
    """SIGTERM the process group `leader` heads, then SIGKILL whatever outlives the grace.

    The whole group, because servers such as `dagster dev` and `mlflow server` leave children
    running when only the parent is signalled.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(leader, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not _group_alive(leader):
                return
            time.sleep(0.05)


def _group_alive(leader: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(leader, os.WNOHANG)  # reap our own child, or it lingers as a zombie
    try:
        os.killpg(leader, 0)
    except ProcessLookupError:
        return False
    return True


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
