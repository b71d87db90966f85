"""How a deployment monitors production: where labels come from, how long captured rows are
kept, and where the reports go.

Deployment-wide settings, so they come from the environment (through the `monitoring`
resource); each evaluation's thresholds are run config of the monitoring assets instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from penguins_platform import defaults
from penguins_platform.project import DEFAULT_REPORT_DIR, resolve_path
from penguins_platform.settings import Settings, setting, variable

if TYPE_CHECKING:
    from penguins_platform.capture.contract import Retention
    from penguins_platform.monitoring.labels import Labeler


class MonitoringSettings(Settings):
    """Labels, retention and reports of the monitoring lineage."""

    labeler: Literal["simulated", "csv"] = setting(
        "PENGUINS_LABELER",
        "simulated",
        "`simulated`: the prediction with probability ground_truth_quality, for demos; "
        "`csv`: the labels in the labels CSV, joined on the request id.",
    )
    labels_csv: str | None = setting(
        "PENGUINS_LABELS_CSV",
        None,
        "CSV of request_id, [row,] species, for the `csv` labeler (relative: project root).",
    )
    ground_truth_quality: float = setting(
        "PENGUINS_GROUND_TRUTH_QUALITY",
        defaults.GROUND_TRUTH_QUALITY,
        "The simulated labeler's share of labels equal to the prediction.",
        ge=0.0,
        le=1.0,
    )
    label_seed: int = Field(default=defaults.SEED, description="The simulated labeler's seed.")
    # No bounds declared on these two: Dagster checks a field against its EnvVar's
    # placeholder (0) before it reads the variable; `retention()` refuses a bad bound instead.
    retention_days: float | None = setting(
        "PENGUINS_CAPTURE_RETENTION_DAYS",
        None,
        "Delete captured rows older than this many days; unset: keep every row.",
    )
    retention_rows: int | None = setting(
        "PENGUINS_CAPTURE_RETENTION_ROWS",
        None,
        "Keep at most this many captured rows; unset: keep every row.",
    )
    report_dir: str = setting(
        "PENGUINS_REPORT_DIR",
        str(DEFAULT_REPORT_DIR),
        "Folder for the HTML reports (relative: project root).",
    )

    def retention(self) -> Retention:
        """The retention to apply; a bound that would delete every row is refused, naming
        its variable."""
        from penguins_platform.capture.contract import Retention

        try:
            return Retention(max_age_days=self.retention_days, max_rows=self.retention_rows)
        except ValueError as error:
            names = ", ".join(variable(MonitoringSettings, f) for f in RETENTION_FIELDS)
            raise ValueError(f"{error} ({names})") from None

    def make_labeler(self) -> Labeler:
        """The configured labeler; the CSV one needs its file, and says so."""
        from penguins_platform.monitoring import labels

        if self.labeler == "csv":
            if not self.labels_csv:
                raise ValueError(
                    f"{variable(MonitoringSettings, 'labeler')}=csv needs "
                    f"{variable(MonitoringSettings, 'labels_csv')}, the CSV of request_id, "
                    "[row,] species"
                )
            return labels.csv_labels(resolve_path(self.labels_csv))
        return labels.simulated_labels(self.ground_truth_quality, seed=self.label_seed)

    def describe_labeler(self) -> str:
        if self.labeler == "csv":
            return f"labels from {self.labels_csv}"
        return f"simulated, quality {self.ground_truth_quality:g}"

    def report_folder(self) -> Path:
        return resolve_path(self.report_dir)


RETENTION_FIELDS = ("retention_days", "retention_rows")
