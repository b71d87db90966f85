"""A real endpoint process per test module (or per test, where a test needs its own)."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from penguins_platform import defaults
from penguins_platform.serving import service
from penguins_platform_tests.servers import free_port


@dataclass(frozen=True)
class RunningEndpoint:
    url: str
    paths: service.EndpointPaths
    capture_db: Path
    pid: int


def launch_endpoint(
    state_dir: Path, model_dir: Path, capture: bool = True, capture_uri: str | None = None
) -> RunningEndpoint:
    """Start an endpoint process; the caller stops it (fixtures below do)."""
    port = free_port()
    paths = service.EndpointPaths(state_dir)
    capture_db = state_dir / "capture.db"
    uri = (capture_uri or f"sqlite:///{capture_db}") if capture else None
    options = service.ServerOptions(
        "127.0.0.1", port, uri, max_rows=defaults.MAX_ROWS, max_body_bytes=defaults.MAX_BODY_BYTES
    )
    pid = service.start(paths, model_dir, "1", defaults.MODEL_NAME, options)
    return RunningEndpoint(f"http://127.0.0.1:{port}", paths, capture_db, pid)


@pytest.fixture(scope="module")
def endpoint(model_dir, tmp_path_factory) -> Iterator[RunningEndpoint]:
    running = launch_endpoint(tmp_path_factory.mktemp("endpoint"), model_dir)
    try:
        yield running
    finally:
        service.stop(running.paths)


@pytest.fixture
def fresh_endpoint(model_dir, tmp_path) -> Iterator[RunningEndpoint]:
    """An endpoint of this test's own, with an empty capture store."""
    running = launch_endpoint(tmp_path / "endpoint", model_dir)
    try:
        yield running
    finally:
        service.stop(running.paths)


@pytest.fixture
def start_endpoint(model_dir) -> Iterator[Callable[..., RunningEndpoint]]:
    """Starts endpoints for one test, `model_dir`'s model unless told otherwise, and stops
    every one of them when the test ends, also one whose start failed half-way."""
    started: list[service.EndpointPaths] = []

    def start(state_dir: Path, model: Path | None = None, **options) -> RunningEndpoint:
        started.append(service.EndpointPaths(state_dir))
        return launch_endpoint(state_dir, model or model_dir, **options)

    try:
        yield start
    finally:
        for paths in started:
            service.stop(paths)


@pytest.fixture
def broken_model_dir(model_dir, tmp_path) -> Path:
    """A model folder whose network answers NaN: the server must refuse to serve it."""
    import numpy as np

    from penguins_platform.ml.inference import InferenceModel

    model = InferenceModel.load(model_dir)
    kernel, bias = model.weights[-1]
    model.weights[-1] = (np.full_like(kernel, np.nan), bias)
    model.save(tmp_path / "broken")
    return tmp_path / "broken"
