"""The registry contract: the alias and tags that registration writes and deployment reads.

Registration, the deployment sensor and every deployment target agree through these names,
so each is written here once and imported everywhere else.
"""

# The alias that names the version to serve when no version is given.
CHAMPION_ALIAS = "champion"

# Set on every version that passed the blocking checks of the run that registered it; the
# deployment sensor deploys only versions that carry it (or the champion alias).
CHECKS_PASSED_TAG = "checks_passed"

# Ties an MLflow run, and the model version it registered, to the Dagster run that made it.
DAGSTER_RUN_TAG = "dagster_run_id"

# Written by the deployment targets on what they deploy (a SageMaker model and endpoint, an
# Azure ML deployment), so they can tell which registered version serves.
VERSION_TAG = "penguins_model_version"
MODEL_NAME_TAG = "penguins_model_name"
