"""Jobs: named selections of the lineage that users and schedules launch."""

import dagster as dg

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("training"),
    description=(
        "Raw penguins to a registered MLflow model version, gated by the data checks and "
        "the accuracy threshold."
    ),
)
