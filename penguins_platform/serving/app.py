"""The endpoint's HTTP API: MLflow's scoring protocol, health, and a guarded model swap.

`POST /invocations` takes `{"inputs": [record, ...]}` (or `dataframe_records`) and answers
one prediction per record, in order, with the model version and a request id. Bad input is
a 4xx with a JSON error naming the row and field; the server never answers it with a 5xx.
`POST /admin/model` loads another version beside the serving one and swaps it in only after
it passes a smoke test, so requests are always answered by one complete model.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from penguins_platform.ml import schema
from penguins_platform.ml.inference import InferenceModel, InvalidRecordError
from penguins_platform.serving.capture import CaptureStore

logger = logging.getLogger(__name__)
INPUT_KEYS = ("inputs", "dataframe_records")


@dataclass(frozen=True)
class ServingModel:
    """One loaded version. Swapped as a whole, so a request never sees half of two."""

    model: InferenceModel
    version: str
    directory: str
    loaded_at: str


@dataclass
class EndpointLimits:
    max_rows: int = 10_000
    max_body_bytes: int = 5 * 1024 * 1024


@dataclass
class EndpointState:
    serving: ServingModel
    limits: EndpointLimits
    admin_token: str
    capture: CaptureStore | None = None
    capture_errors: int = 0
    started_at: float = field(default_factory=time.time)
    swap_lock: threading.Lock = field(default_factory=threading.Lock)


class ClientError(Exception):
    """A request the endpoint refuses, with the HTTP status and what to fix."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


def load_serving_model(directory: str, version: str) -> ServingModel:
    model = InferenceModel.load(Path(directory))
    model.smoke_test()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return ServingModel(model=model, version=version, directory=directory, loaded_at=now)


def _error(status: int, message: str, **details: Any) -> JSONResponse:
    code = {413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}.get(status, "BAD_REQUEST")
    body = {"error_code": code, "message": message}
    body.update({k: v for k, v in details.items() if v is not None})
    return JSONResponse(body, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ClientError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ClientError(413, f"body of {int(declared)} bytes exceeds the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_records(body: bytes, max_rows: int) -> list[Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ClientError(400, f"body is not valid UTF-8 (byte {error.start})") from error
    try:
        payload = json.loads(text)
    except RecursionError as error:
        raise ClientError(400, "body is nested too deeply to be a request") from error
    except json.JSONDecodeError as error:
        raise ClientError(400, f"body is not valid JSON: {error.msg} at line {error.lineno}, "
                               f"column {error.colno}") from error  # fmt: skip
    if not isinstance(payload, dict):
        raise ClientError(400, 'expected a JSON object like {"inputs": [{...}, ...]}')
    key = next((k for k in INPUT_KEYS if k in payload), None)
    if key is None:
        raise ClientError(
            400, 'missing "inputs": expected {"inputs": [{...}, ...]}', field="inputs"
        )
    records = payload[key]
    if not isinstance(records, list):
        raise ClientError(
            400, f'"{key}" must be a list of records, got {type(records).__name__}', field=key
        )
    if len(records) > max_rows:
        raise ClientError(
            413, f"{len(records)} rows exceed the limit of {max_rows} rows per request; "
                 "split the batch", rows=len(records), limit=max_rows,
        )  # fmt: skip
    return records


def _capture_rows(
    records: list[Any], answers: list[dict[str, Any]], ignored: list[list[str]],
    version: str, request_id: str,
) -> list[tuple[Any, ...]]:  # fmt: skip
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = []
    for i, (record, answer) in enumerate(zip(records, answers, strict=True)):
        inputs = [record.get(name) for name in schema.FEATURES]
        rows.append((
            request_id, i, now, version, *inputs, answer["prediction"], answer["confidence"],
            json.dumps(answer["flags"]), json.dumps(ignored[i]), None,
        ))  # fmt: skip
    return rows


def build_app(state: EndpointState) -> Starlette:
    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return _error(415, f"expected Content-Type application/json, got {content_type!r}")
        try:
            records = _parse_records(
                await _read_body(request, state.limits.max_body_bytes), state.limits.max_rows
            )
            serving = state.serving
            answers, batch = serving.model.predict_records(records)
        except ClientError as error:
            return _error(error.status, str(error), **error.details)
        except InvalidRecordError as error:
            return _error(400, str(error), row=error.row, field=error.field)
        request_id = str(uuid.uuid4())
        if state.capture is not None and records:
            try:
                state.capture.submit(
                    _capture_rows(
                        records, answers, batch.ignored_fields, serving.version, request_id
                    )
                )
            except Exception:  # capture must never fail a prediction
                state.capture_errors += 1
                logger.exception("could not queue capture rows for request %s", request_id)
        return JSONResponse(
            {
                "predictions": answers,
                "model_version": serving.version,
                "request_id": request_id,
                "ignored_fields": batch.all_ignored_fields(),
            }
        )

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def health(request: Request) -> Response:
        capture = state.capture.snapshot() if state.capture else {"enabled": False}
        capture["queue_errors"] = state.capture_errors
        return JSONResponse(
            {
                "status": "ok",
                "service": "penguins-endpoint",
                "model_version": state.serving.version,
                "uptime_seconds": round(time.time() - state.started_at, 1),
                "capture": capture,
            }
        )

    async def version(request: Request) -> Response:
        serving = state.serving
        return JSONResponse(
            {
                "model_version": serving.version,
                "model_dir": serving.directory,
                "loaded_at": serving.loaded_at,
            }
        )

    async def swap_model(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(token.encode(), state.admin_token.encode()):
            return _error(401, "missing or wrong admin token")
        try:
            payload = json.loads(await request.body())
            directory, new_version = str(payload["model_dir"]), str(payload["version"])
        except (ValueError, KeyError, TypeError):
            return _error(400, 'expected {"model_dir": "...", "version": "..."}')
        with state.swap_lock:
            previous = state.serving
            try:
                candidate = load_serving_model(directory, new_version)
            except Exception as error:
                logger.error("refused version %s from %s: %s", new_version, directory, error)
                return _error(
                    422,
                    f"version {new_version} failed to load or its smoke test: {error}; "
                    f"version {previous.version} keeps serving",
                    serving_version=previous.version,
                )
            state.serving = candidate
        logger.info("now serving version %s (was %s)", new_version, previous.version)
        return JSONResponse({"model_version": new_version, "previous_version": previous.version})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if state.capture is not None:  # flush every captured row before exiting
            state.capture.close()

    return Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/ping", ping, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/admin/model", swap_model, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
