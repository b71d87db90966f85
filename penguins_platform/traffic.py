"""Sampled penguins sent to an endpoint: production traffic for demos and tests.

Monitoring has nothing to watch until an endpoint has scored something. As the reference
program's traffic tool does, this draws records from the penguins table, optionally drifts
one feature so the drift report has something to find, and sends them in small batches
through a deployment target's `invoke`, so the same code feeds every target's capture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from penguins_platform import defaults
from penguins_platform.deploy.target import InvokeError
from penguins_platform.ml import schema

DRIFT_FEATURE = "body_mass_g"
# The reference's drift: noise drawn uniformly from [1, 3 standard deviations of body mass).
DRIFT_STANDARD_DEVIATIONS = 3.0
# Failed requests in a row after which the endpoint counts as gone: each may take a timeout.
GIVE_UP_AFTER = 3
KEPT_ERRORS = 5


@dataclass(frozen=True)
class TrafficResult:
    """What one round of traffic did: rows sent and answered, and why requests failed."""

    sent: int  # rows in the requests made
    answered: int  # rows in the requests that got a valid answer
    requests: int
    failed_requests: int
    errors: list[str] = field(default_factory=list)  # the first few failures' messages

    @property
    def failed(self) -> int:
        return self.sent - self.answered

    def summary(self, where: str) -> str:
        return (
            f"Sent {self.sent} rows in {self.requests} requests to {where}: "
            f"{self.answered} answered, {self.failed} failed"
        )


class TrafficError(RuntimeError):
    """The endpoint failed several requests in a row, so sending stopped. `result` holds
    what was sent and answered before."""

    def __init__(self, message: str, result: TrafficResult) -> None:
        super().__init__(message)
        self.result = result


def shipped_penguins() -> pd.DataFrame:
    """The cleaned penguins of the shipped data file: what the traffic tool draws from."""
    from penguins_platform.ml.cleaning import clean_penguins, read_penguins_csv
    from penguins_platform.project import resolve_path

    path = resolve_path(defaults.DATA_LOCATION)
    return clean_penguins(read_penguins_csv(path.read_bytes(), str(path)), defaults.SEED)


def sample_records(
    data: pd.DataFrame, requests: int, *, drift: bool = False, seed: int = defaults.SEED
) -> list[dict]:
    """`requests` records drawn with replacement from `data`, the cleaned penguins table
    (the `penguins` asset): its six features, without the species, missing values as None.

    With `drift`, body mass gets uniform noise of up to three of its standard deviations (about
    2,400 g on the penguins data). The endpoint still answers such rows, flagging the implausible
    ones. The same seed draws the same penguins with or without drift.
    """
    missing = [name for name in schema.FEATURES if name not in data.columns]
    if missing:
        raise ValueError(
            f"the penguins table lacks the feature column(s) {', '.join(missing)}; "
            f"expected {', '.join(schema.FEATURES)}"
        )
    texts = [
        name for name in schema.NUMERIC_FEATURES if not pd.api.types.is_numeric_dtype(data[name])
    ]
    if texts:
        raise ValueError(
            f"column(s) {', '.join(texts)} of the penguins table hold text; pass the cleaned "
            "table (`clean_penguins`), whose measurements are numbers"
        )
    if requests < 0:
        raise ValueError(f"cannot send {requests} records; ask for 0 or more")
    if requests and data.empty:
        raise ValueError("the penguins table has no rows to draw records from")
    rng = np.random.default_rng(seed)
    picked = data[list(schema.FEATURES)].iloc[rng.integers(0, len(data), size=requests)]
    if drift:
        spread = DRIFT_STANDARD_DEVIATIONS * data[DRIFT_FEATURE].std()
        # A table with one body mass has no spread (NaN): nothing to drift it by.
        noise = rng.uniform(1.0, spread if spread > 1.0 else 1.0, size=requests)
        picked = picked.assign(**{DRIFT_FEATURE: picked[DRIFT_FEATURE] + noise})
    # None, not NaN: a record is sent as JSON, where a missing value is null.
    return [
        {name: None if pd.isna(value) else value for name, value in record.items()}
        for record in picked.to_dict("records")
    ]


def send_traffic(
    invoke: Callable[[list[dict]], object],
    records: Sequence[dict],
    batch_size: int = defaults.TRAFFIC_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> TrafficResult:
    """Send `records` through `invoke` (a target's), `batch_size` records per request.

    A failed request (`InvokeError`) is counted and the next is sent. After `GIVE_UP_AFTER`
    failures in a row the endpoint is taken for gone, and `TrafficError` says so rather than
    waiting out every remaining request. `progress(sent, total)` is called after each request.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    sent = answered = requests = failed_requests = in_a_row = 0
    errors: list[str] = []
    last_error = ""
    for start in range(0, len(records), batch_size):
        batch = list(records[start : start + batch_size])
        requests += 1
        sent += len(batch)
        try:
            _check_answer(invoke(batch), len(batch))
        except InvokeError as error:
            failed_requests += 1
            in_a_row += 1
            if len(errors) < KEPT_ERRORS:
                errors.append(str(error))
            last_error = str(error)
        else:
            answered += len(batch)
            in_a_row = 0
        if progress is not None:
            progress(sent, len(records))
        if in_a_row >= GIVE_UP_AFTER:
            result = TrafficResult(sent, answered, requests, failed_requests, errors)
            raise TrafficError(
                f"{in_a_row} requests in a row failed, so {len(records) - sent} of "
                f"{len(records)} rows were not sent; the last error: {last_error}",
                result,
            )
    return TrafficResult(sent, answered, requests, failed_requests, errors)


def _check_answer(answer: object, records: int) -> None:
    """An answer that names its predictions must have one per record."""
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if isinstance(predictions, list) and len(predictions) != records:
        raise InvokeError(
            f"the endpoint answered {len(predictions)} predictions for {records} records"
        )
