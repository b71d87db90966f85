"""Smoke tests for a deployed endpoint: real rows in, valid answers out, timed.

Every target (the local server, SageMaker, Azure ML) is tried the same way through an
`invoke(records) -> response body` function, so the deployment checks mean the same thing
everywhere.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from penguins_platform.ml import schema

Invoke = Callable[[list[dict[str, Any]]], Any]


class SmokeTestError(RuntimeError):
    """The endpoint did not answer the smoke test with valid predictions."""


@dataclass
class SmokeResult:
    """What the smoke test saw: the answers, or the error that stopped it, and latencies."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def latency_p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else math.nan

    @property
    def latency_p99_ms(self) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def predictions_of(body: Any) -> Any:
    """MLflow's scoring servers answer {"predictions": [...]}; some answer the list alone."""
    return body.get("predictions") if isinstance(body, dict) else body


def check_answers(answers: Any, expected_rows: int) -> list[dict[str, Any]]:
    """Raise unless there is one species and a probability per row."""
    if not isinstance(answers, list) or len(answers) != expected_rows:
        raise SmokeTestError(f"expected {expected_rows} predictions, got {str(answers)[:200]}")
    for i, answer in enumerate(answers):
        if not isinstance(answer, dict):
            raise SmokeTestError(f"row {i}: {answer!r} is not a prediction object")
        species, confidence = answer.get("prediction"), answer.get("confidence")
        if species not in schema.SPECIES:
            raise SmokeTestError(f"row {i}: {species!r} is not a species")
        if not isinstance(confidence, float | int) or not 0.0 <= confidence <= 1.0:
            raise SmokeTestError(f"row {i}: confidence {confidence!r} is not a probability")
    return answers


def smoke_test(invoke: Invoke, records: list[dict[str, Any]], latency_requests: int) -> SmokeResult:
    """Send `records` as one batch, then single rows to time latency. Never raises."""
    result = SmokeResult()
    try:
        body = invoke(records)
        result.answers = check_answers(predictions_of(body), len(records))
        for i in range(latency_requests):
            start = time.perf_counter()
            check_answers(predictions_of(invoke([records[i % len(records)]])), 1)
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
    except SmokeTestError as error:
        result.error = str(error)
    return result


def http_invoker(url: str, timeout: float = 10.0) -> Invoke:
    """POST records to `url`/invocations, as MLflow's scoring protocol has it."""

    def invoke(records: list[dict[str, Any]]) -> Any:
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps({"inputs": records}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as error:
            raise SmokeTestError(
                f"{url}/invocations answered {error.code}: {error.read()[:300]!r}"
            ) from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise SmokeTestError(f"{url}/invocations failed: {error}") from error

    return invoke
