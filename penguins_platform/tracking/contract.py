"""The registry contract: the alias and tags that registration writes and deployment reads.

Registration, the deployment sensor and every deployment target agree through these names,
so each is written here once and imported everywhere else.
"""

# The alias that names the version to serve when no version is given.
CHAMPION_ALIAS = "champion"

# Set on every version that passed the blocking training checks of the run that registered it.
CHECKS_PASSED_TAG = "checks_passed"

# Ties an MLflow run, and the model version it registered, to the Dagster run that made it.
DAGSTER_RUN_TAG = "dagster_run_id"

# Written by the deployment targets on what they deploy (a SageMaker model and endpoint, an
# Azure ML deployment), so they can tell which registered version serves.
VERSION_TAG = "penguins_model_version"
MODEL_NAME_TAG = "penguins_model_name"

# The alias of the newest version that passed the training checks. It becomes the champion
# only by beating the champion on the holdout (the `beats_champion` check), or by hand.
CHALLENGER_ALIAS = "challenger"
# The challenger gate's verdict on a version, in one line: "promoted: …" or "rejected: …".
GATE_TAG = "challenger_gate"

# Written on a version each time it becomes the champion, before the alias moves. The
# deployment sensor keys its run on the promotion id, so a promotion deploys once, and a
# rollback (a new promotion of an older version) deploys again.
PROMOTION_ID_TAG = "promotion_id"
PROMOTION_KIND_TAG = "promotion"  # first, automatic, manual or rollback
PROMOTED_AT_TAG = "promoted_at"
PROMOTED_BY_TAG = "promoted_by"
PROMOTION_REASON_TAG = "promotion_reason"
PREVIOUS_CHAMPION_TAG = "previous_champion"

# What trained a version, logged to its MLflow run: the cleaned training rows and the holdout
# rows it was judged on, as dataset inputs (name, digest, schema) and as Parquet artifacts,
# which monitoring reads back as the reference of the rows that version answered.
TRAINING_DATA_ARTIFACT = "training_data/training.parquet"
HOLDOUT_DATA_ARTIFACT = "training_data/holdout.parquet"
TRAINING_DIGEST_TAG = "training_data_digest"
HOLDOUT_SHARE_TAG = "holdout_share"
