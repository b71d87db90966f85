"""The endpoint as a service: start it detached, find it, swap its model, stop it.

The server outlives whoever started it (a Dagster run, `make serve`). Its pid, log and admin
token live in one state folder, so any later process can find and manage it. That folder is
private (0700): the capture store in it holds users' requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeGuard

# The server reads its admin token from here, never from argv, where `ps` would show it.
TOKEN_VARIABLE = "PENGUINS_ENDPOINT_TOKEN"
SERVICE_NAME = "penguins-endpoint"
# All the server inherits of its starter's environment. A long-lived HTTP server has no use
# for AWS keys or an MLflow password, so it must not hold them. OPENBLAS_* stay: on some
# processors numpy computes wrong results without them.
INHERITED_VARIABLES = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE",
)  # fmt: skip
START_MARKER = "--- penguins endpoint start"


class EndpointError(RuntimeError):
    """The endpoint could not be started, reached or updated. The message says why."""


@dataclass(frozen=True)
class EndpointPaths:
    """Where a running endpoint keeps its pid, log, admin token and models."""

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

    def prepare(self) -> None:
        """Create the state folder readable by its owner alone, or narrow an existing one."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)


@dataclass(frozen=True)
class ServerOptions:
    """How to run the server process: where it listens, what it captures, what it refuses."""

    host: str
    port: int
    capture_uri: str | None
    max_rows: int
    max_body_bytes: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def request_json(
    url: str,
    payload: object = None,
    token: str | None = None,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, object]:
    """(status, decoded JSON) of a GET, or of a POST when `payload` is given."""
    # urllib and http.client are imported where they are used: the definitions import this
    # module (through the local target's settings) on every load, and need neither.
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **(headers or {})}
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


def health(url: str, timeout: float = 2.0) -> dict[str, object] | None:
    """The /health answer of whatever listens at `url`, or None when nothing answers it."""
    try:
        status, body = request_json(f"{url}/health", timeout=timeout)
    except (OSError, ValueError):  # urllib's URLError is an OSError
        return None
    return body if status == 200 and isinstance(body, dict) else None


def is_endpoint(answer: dict[str, object] | None) -> TypeGuard[dict[str, object]]:
    """Whether a /health answer comes from this platform's endpoint."""
    return answer is not None and answer.get("service") == SERVICE_NAME


def describe_listener(host: str, port: int, timeout: float = 2.0) -> str | None:
    """What answers on `host:port`, in words, or None when nothing listens there."""
    import http.client

    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    connection.close()
    client = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        client.request("GET", "/")
        reply = client.getresponse()
        server = reply.getheader("server")
        return f"an HTTP server answers there (HTTP {reply.status}" + (
            f", {server!r})" if server else ")"
        )
    except (OSError, http.client.HTTPException):
        return "something that does not speak HTTP listens there"
    finally:
        client.close()


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


def write_token(paths: EndpointPaths) -> str:
    """A new admin token in a file that is 0600 from its first byte."""
    token = secrets.token_urlsafe(32)
    paths.token_file.unlink(missing_ok=True)
    descriptor = os.open(paths.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


def server_environment(token: str) -> dict[str, str]:
    """The few variables the server needs, the admin token, and this checkout on its path."""
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
    env[TOKEN_VARIABLE] = token
    env["PYTHONPATH"] = package_root
    return env


def start(
    paths: EndpointPaths,
    model_dir: Path,
    version: str,
    model_name: str,
    options: ServerOptions,
    timeout: float = 60.0,
) -> int:
    """Start the server in its own session and wait until it answers /health.

    Refuses a port that something else listens on, naming what answers there. The log is
    appended to by every start, so each start marks where its own lines begin and reports
    only those.
    """
    taken = describe_listener(options.host, options.port)
    if taken is not None:
        from penguins_platform.serving.settings import LocalEndpointSettings
        from penguins_platform.settings import variable

        raise EndpointError(
            f"port {options.port} on {options.host} is taken: {taken}; stop it, or set "
            f"{variable(LocalEndpointSettings, 'port')} to a free port"
        )
    paths.prepare()
    token = write_token(paths)
    command = [
        sys.executable, "-m", "penguins_platform.serving",
        "--model-dir", str(model_dir), "--version", version, "--model-name", model_name,
        "--host", options.host, "--port", str(options.port),
        "--max-rows", str(options.max_rows), "--max-body-bytes", str(options.max_body_bytes),
    ]  # fmt: skip
    if options.capture_uri:
        command += ["--capture", options.capture_uri]
    with paths.log_file.open("ab") as log:
        os.chmod(paths.log_file, 0o600)
        log_start = log.tell()
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"{START_MARKER} {stamp}: version {version} on {options.url}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_environment(token),
            start_new_session=True,
        )
    paths.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            paths.pid_file.unlink(missing_ok=True)
            raise EndpointError(
                f"the endpoint exited with code {process.returncode} while starting; "
                f"its log ({paths.log_file}) says:\n{log_since(paths.log_file, log_start)}"
            )
        answer = health(options.url, timeout=1.0)
        if is_endpoint(answer) and answer.get("model_version") == version:
            return process.pid
        time.sleep(0.1)
    stop(paths)
    raise EndpointError(f"the endpoint did not answer {options.url}/health within {timeout:.0f}s")


def swap(
    url: str, paths: EndpointPaths, model_dir: Path, version: str, model_name: str
) -> dict[str, object]:
    """Ask the running server to load `model_dir` and serve it once it passes its own check."""
    try:
        token = paths.token_file.read_text().strip()
    except OSError as error:
        raise EndpointError(
            f"an endpoint answers at {url} but {paths.token_file} is missing; it was not "
            "started from this state folder. Stop it, or point the deployment at its state folder."
        ) from error
    status, body = request_json(
        f"{url}/admin/model",
        {"model_dir": str(model_dir), "version": version, "model_name": model_name},
        token,
        timeout=60,
    )
    if status != 200 or not isinstance(body, dict):
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server to bind next."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def log_since(path: Path, offset: int, lines: int = 20) -> str:
    """The last `lines` lines written to `path` after byte `offset`: one start's own output."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing)"
