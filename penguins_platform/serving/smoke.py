"""Smoke tests for a deployed endpoint: real rows in, valid answers from the right version out."""

from __future__ import annotations

import json
import math
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from penguins_platform.ml import schema


class SmokeTestError(RuntimeError):
    """The endpoint answered, but not with valid predictions from the expected version."""


@dataclass
class SmokeResult:
    answers: list[dict[str, Any]]
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def latency_p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def latency_p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def check_answers(answers: Any, expected_rows: int) -> list[dict[str, Any]]:
    """Raise unless there is one species and a probability per row."""
    if not isinstance(answers, list) or len(answers) != expected_rows:
        raise SmokeTestError(f"expected {expected_rows} predictions, got {answers!r:.200}")
    for i, answer in enumerate(answers):
        species, confidence = answer.get("prediction"), answer.get("confidence")
        if species not in schema.SPECIES:
            raise SmokeTestError(f"row {i}: {species!r} is not a species")
        if not isinstance(confidence, float | int) or not 0.0 <= confidence <= 1.0:
            raise SmokeTestError(f"row {i}: confidence {confidence!r} is not a probability")
    return answers


def _post(url: str, records: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
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


def smoke_test_http(
    url: str,
    records: list[dict[str, Any]],
    expected_version: str,
    latency_requests: int = 20,
    timeout: float = 10.0,
) -> SmokeResult:
    """Send `records` as one batch, then each alone to time single-row latency."""
    body = _post(url, records, timeout)
    if str(body.get("model_version")) != expected_version:
        raise SmokeTestError(
            f"{url} serves version {body.get('model_version')!r}, expected {expected_version!r}"
        )
    result = SmokeResult(answers=check_answers(body.get("predictions"), len(records)))
    for i in range(latency_requests):
        start = time.perf_counter()
        check_answers(_post(url, [records[i % len(records)]], timeout).get("predictions"), 1)
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
    return result
