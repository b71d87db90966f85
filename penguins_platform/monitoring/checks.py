"""What each monitoring check judges, and how it says so.

Three checks watch production: `capture_health` (requests arrive and every one is captured),
`feature_drift` (production still looks like the training data) and `production_accuracy`
(the model is still right often enough). Their rules live here as plain functions that return
a `Verdict`; the monitoring assets turn verdicts into Dagster check results, and the
retraining sensor reads those results back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from penguins_platform.monitoring.production import ProductionData
    from penguins_platform.monitoring.report import MonitoringSummary

# The running endpoint's capture counters that mean a captured row went missing or astray.
CAPTURE_FAILURES = {
    "write_failures": "capture write failures",
    "lost": "rows lost by the capture writer",
    "queue_errors": "rows the endpoint could not queue for capture",
}


@dataclass(frozen=True)
class Verdict:
    """A check's outcome: passed or not, why in one line, and the numbers behind it."""

    passed: bool
    description: str
    # Numbers and words as they are; a mapping (per-feature values) shows as JSON.
    metadata: dict[str, float | str | Mapping[str, object]] = field(default_factory=dict)


def capture_health(
    production: ProductionData,
    counters: Mapping[str, int] | None,
    recent_hours: float,
    now: datetime,
) -> Verdict:
    """Recent requests exist, and nothing failed to be captured: spill files, the running
    endpoint's write failures and lost rows (`counters`, None when no endpoint answers), and
    corrupt rows all count against it."""
    problems = []
    newest = production.newest_at
    if newest is None:
        problems.append("no request was ever captured")
    elif now - newest > timedelta(hours=recent_hours):
        problems.append(f"no request captured in the last {recent_hours:g} h (newest {newest})")
    spilled = sum(h.spilled_rows for h in production.health.values())
    if spilled:
        problems.append(f"{spilled} rows spilled to the capture store's spill file")
    live = dict(counters or {})
    for name, label in CAPTURE_FAILURES.items():
        if live.get(name):
            problems.append(f"{live[name]} {label} since the endpoint started")
    if production.skipped:
        problems.append(f"{production.skipped} corrupt rows skipped")
    return Verdict(
        passed=not problems,
        description="; ".join(problems)
        or f"{len(production.rows)} recent rows, every request captured",
        metadata={
            "newest_captured_at": newest.isoformat() if newest else "never",
            "spilled_rows": spilled,
            "corrupt_rows_skipped": production.skipped,
            **{f"endpoint_{name}": value for name, value in live.items()},
        },
    )


def feature_drift(summary: MonitoringSummary, drift_share: float) -> Verdict:
    """At most `drift_share` of the features drifted from the training data. A feature with
    no value on either side is named as not testable."""
    drifted = summary.drifted_features
    untestable = "; ".join(f"{c}: {why}" for c, why in summary.not_testable.items())
    return Verdict(
        passed=summary.drift_share <= drift_share,
        description=(
            f"{len(drifted)} of {len(summary.p_values)} features drifted"
            + (f" ({', '.join(drifted)})" if drifted else "")
            + f": share {summary.drift_share:.2f} against a bound of {drift_share:g}"
            + (f"; not testable: {untestable}" if untestable else "")
        ),
        metadata={
            "drift_share": round(summary.drift_share, 4),
            "bound": drift_share,
            "p_values": p_values(summary),
            "methods": summary.drift_methods,
            "not_testable": dict(summary.not_testable),
        },
    )


def production_accuracy(summary: MonitoringSummary, threshold: float) -> Verdict | None:
    """Accuracy on the labeled rows is at least `threshold`; None (nothing to judge) when no
    row has a label yet."""
    accuracy = summary.accuracy
    if accuracy is None:
        return None
    return Verdict(
        passed=accuracy >= threshold,
        description=f"accuracy {accuracy:.4f} on {summary.labeled} labeled rows against a "
        f"threshold of {threshold:g}",
        metadata={"accuracy": accuracy, "threshold": threshold, "labeled_rows": summary.labeled},
    )


def p_values(summary: MonitoringSummary) -> dict[str, float | None]:
    """Per-feature p-values; None where a feature had no value to test (NaN is not JSON)."""
    return {name: None if math.isnan(value) else value for name, value in summary.p_values.items()}
