"""Smoke tests for a deployment: real rows in, valid answers out, timed.

Every target is tried the same way, through an `invoke(records) -> response body` function,
so the deployment checks mean the same thing everywhere.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from penguins_platform.deploy.target import InvokeError, Records
from penguins_platform.ml import schema

if TYPE_CHECKING:
    from penguins_platform.ml.inference import Prediction

Invoke = Callable[[Records], object]


class SmokeTestError(InvokeError):
    """The target answered, but not with one valid prediction per row."""


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 < q <= 1): the value `q` of the samples stay within."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class SmokeResult:
    """What the smoke test saw: the answers, or the error that stopped it, and latencies."""

    answers: list[Prediction] = field(default_factory=list)
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
        return percentile(self.latencies_ms, 0.99)


def predictions_of(body: object) -> object:
    """MLflow's scoring servers answer {"predictions": [...]}; some answer the list alone."""
    return body.get("predictions") if isinstance(body, dict) else body


def check_answers(answers: object, expected_rows: int) -> list[Prediction]:
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


def smoke_test(invoke: Invoke, records: Records, latency_requests: int) -> SmokeResult:
    """Send `records` as one batch, then single rows to time latency. Never raises."""
    result = SmokeResult()
    try:
        body = invoke(records)
        result.answers = check_answers(predictions_of(body), len(records))
        for i in range(latency_requests):
            start = time.perf_counter()
            check_answers(predictions_of(invoke([records[i % len(records)]])), 1)
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
    except InvokeError as error:
        result.error = str(error)
    return result
