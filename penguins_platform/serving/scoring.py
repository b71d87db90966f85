"""The endpoint's logic, with no web framework in it: a request in, a status and JSON out.

`invocations` takes MLflow's scoring protocol, `{"inputs": [record, ...]}` (or
`dataframe_records`), and answers one prediction per record, in order, with the model version
and a request id. Bad input is a 4xx whose JSON names the row and field; nothing a client
sends gets a 5xx. `app.py` only wires these functions to routes, so they are tested without
HTTP, as MLflow's own scoring server tests its `invocations()`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from penguins_platform.capture.contract import CapturedRow
from penguins_platform.ml import schema
from penguins_platform.ml.inference import InferenceModel, InvalidRecordError, Prediction
from penguins_platform.serving.capture import CaptureStore

logger = logging.getLogger(__name__)
INPUT_KEYS = ("inputs", "dataframe_records")
# Every error answer carries one of these codes; the README has the same table.
ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "MODEL_REJECTED",
    500: "INTERNAL_ERROR",
}


@dataclass(frozen=True)
class Answer:
    """What the endpoint answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]  # JSON


class ClientError(Exception):
    """A request the endpoint refuses, with the HTTP status and what to fix."""

    def __init__(self, status: int, message: str, **details: object) -> None:
        super().__init__(message)
        self.status = status
        self.details = details

    def answer(self) -> Answer:
        return error_answer(self.status, str(self), **self.details)


def error_answer(status: int, message: str, **details: object) -> Answer:
    body: dict[str, object] = {"error_code": ERROR_CODES[status], "message": message}
    body.update({k: v for k, v in details.items() if v is not None})
    return Answer(status, body)


@dataclass(frozen=True)
class ServingModel:
    """One loaded version. Swapped as a whole, so a request never sees half of two."""

    model: InferenceModel
    version: str
    name: str
    directory: str
    loaded_at: str


@dataclass
class EndpointLimits:
    max_rows: int
    max_body_bytes: int


@dataclass
class EndpointState:
    serving: ServingModel
    limits: EndpointLimits
    admin_token: str
    capture: CaptureStore | None = None
    capture_errors: int = 0
    uncaptured_smoke_tests: int = 0  # requests a deployment's smoke test sent
    started_at: float = field(default_factory=time.time)
    # Held across the load of a new version, which runs off the event loop: one swap at a time.
    swap_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def load_serving_model(directory: str, version: str, name: str) -> ServingModel:
    """Load a version and refuse it unless it gives valid probabilities for sample rows."""
    model = InferenceModel.load(Path(directory))
    model.smoke_test()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return ServingModel(model, version, name, directory, loaded_at=now)


def parse_records(body: bytes, max_rows: int) -> list[object]:
    """The records of a scoring request, or a `ClientError` that says what is wrong."""
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


def capture_rows(
    records: list[dict[str, object]], answers: list[Prediction], ignored: list[list[str]],
    version: str, request_id: str,
) -> list[CapturedRow]:  # fmt: skip
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = []
    for i, (record, answer) in enumerate(zip(records, answers, strict=True)):
        inputs = [record.get(name) for name in schema.FEATURES]
        rows.append((
            request_id, i, now, version, *inputs, answer["prediction"], answer["confidence"],
            json.dumps(answer["flags"]), json.dumps(ignored[i]), None,
        ))  # fmt: skip
    return rows


def invocations(
    body: bytes, content_type: str | None, state: EndpointState, capture: bool = True
) -> Answer:
    """Score a request body: predictions in order, or a 4xx naming what to fix. `capture`
    False (a deployment's smoke test) leaves the request out of the capture store."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return error_answer(415, f"expected Content-Type application/json, got {content_type!r}")
    limit = state.limits.max_body_bytes
    if len(body) > limit:
        return error_answer(413, f"body of {len(body)} bytes exceeds the {limit}-byte limit")
    serving = state.serving
    try:
        records = parse_records(body, state.limits.max_rows)
        answers, batch = serving.model.predict_records(records)
    except ClientError as error:
        return error.answer()
    except InvalidRecordError as error:
        return error_answer(400, str(error), row=error.row, field=error.field)
    request_id = str(uuid.uuid4())
    if not capture:
        state.uncaptured_smoke_tests += 1
    elif state.capture is not None and records:
        try:
            # predict_records accepted every record, so each is a JSON object.
            accepted = cast("list[dict[str, object]]", records)
            state.capture.submit(
                capture_rows(accepted, answers, batch.ignored_fields, serving.version, request_id)
            )
        except Exception:  # capture must never fail a prediction
            state.capture_errors += 1
            logger.exception("could not queue capture rows for request %s", request_id)
    return Answer(
        200,
        {
            "predictions": answers,
            "model_version": serving.version,
            "request_id": request_id,
            "ignored_fields": batch.all_ignored_fields(),
        },
    )


def health(state: EndpointState) -> Answer:
    capture: dict[str, object] = state.capture.snapshot() if state.capture else {"enabled": False}
    capture["queue_errors"] = state.capture_errors
    capture["smoke_test_requests"] = state.uncaptured_smoke_tests
    return Answer(
        200,
        {
            "status": "ok",
            "service": "penguins-endpoint",
            "model_name": state.serving.name,
            "model_version": state.serving.version,
            "uptime_seconds": round(time.time() - state.started_at, 1),
            "capture": capture,
        },
    )


def version(state: EndpointState) -> Answer:
    serving = state.serving
    return Answer(
        200,
        {
            "model_name": serving.name,
            "model_version": serving.version,
            "model_dir": serving.directory,
            "loaded_at": serving.loaded_at,
        },
    )


def authorized(header: str | None, token: str) -> bool:
    """Whether an `Authorization: Bearer …` header holds the admin token (constant time)."""
    offered = (header or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(offered.encode(), token.encode())


def swap_request(body: bytes) -> tuple[str, str, str | None]:
    """(model_dir, version, model_name) of an admin swap request, or a `ClientError`."""
    try:
        payload = json.loads(body)
        name = payload.get("model_name")
        return (
            str(payload["model_dir"]),
            str(payload["version"]),
            None if name is None else str(name),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ClientError(
            400, 'expected {"model_dir": "...", "version": "...", "model_name": "..."}'
        ) from error
