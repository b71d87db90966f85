"""Every default value of the platform, in one place.

The launchpad, the CLI, the benchmarks and the tests all read these, so changing a default
here changes it everywhere. The training recipe is the reference program's.
"""

from typing import Final

# The training recipe. One seed drives the shuffle, the weights and the fold split.
THRESHOLD = 0.7  # minimum mean cross-validated accuracy for a model to be registered
EPOCHS = 50
BATCH_SIZE = 32
LEARNING_RATE = 0.01
SEED = 42
FOLDS = 5
# SGD steps per compiled call; None runs a whole epoch in one (bench/scaling.py chose it:
# 16x less time than one dispatch a step on 34,400 rows, with the same weights).
STEPS_PER_EXECUTION: int | None = None

# Where the raw penguins come from: relative paths start at the project root.
DATA_LOCATION = "data/penguins.csv"
# The largest data location (all its CSV files together) that raw_penguins reads. Every
# column is read as text first, which takes 10x the file's size in memory (measured).
MAX_DATA_BYTES = 256 * 1024 * 1024  # about 6 million penguin rows

# The registry.
MODEL_NAME = "penguins"
EXPERIMENT_NAME = "penguins"
MLFLOW_UI_URL = "http://127.0.0.1:5000"
EXAMPLE_ROWS = 5  # rows logged as the registered model's input example

# The local endpoint.
ENDPOINT_HOST = "127.0.0.1"
ENDPOINT_PORT = 8080
MAX_ROWS = 10_000  # rows per request above which: 413
MAX_BODY_BYTES = 5 * 1024 * 1024  # body size above which: 413
ENDPOINT_STARTUP_SECONDS = 60.0

# The deployment checks every target runs.
SMOKE_ROWS = 5
LATENCY_REQUESTS = 20
LOCAL_LATENCY_BOUND_MS = 250.0
CLOUD_LATENCY_BOUND_MS = 2000.0
# A transient cloud failure (throttling) that outlasts the SDK's own retries is retried by
# Dagster this many times, this far apart.
DEPLOY_RETRIES = 3
DEPLOY_RETRY_WAIT_SECONDS = 30.0

# How often the deployment sensor polls the registry.
SENSOR_INTERVAL_SECONDS = 30

# No run may hang forever: the `dagster/max_runtime` tag of each job. A SageMaker update may
# legitimately wait 30 minutes for InService, so deployments get an hour.
TRAINING_MAX_RUNTIME_SECONDS = 3600
DEPLOYMENT_MAX_RUNTIME_SECONDS = 3600
MONITORING_MAX_RUNTIME_SECONDS = 1800

# Production retrains on a schedule (the reference's Step Functions trigger): Mondays at 03:00
# UTC. Local mode leaves the schedule stopped; PENGUINS_SCHEDULES=on starts it.
TRAINING_SCHEDULE_CRON = "0 3 * * 1"
SCHEDULE_TIMEZONE = "UTC"

# Monitoring: what production saw, against the training data.
MONITORING_ROWS = 500  # newest captured rows each evaluation reads
GROUND_TRUTH_QUALITY = 0.8  # the simulated labeler's share of labels equal to the prediction
DRIFT_SHARE = 0.1  # share of drifted features above which feature_drift fails
PRODUCTION_ACCURACY = 0.9  # accuracy on labeled production rows below which it fails
RECENT_HOURS = 24.0  # capture_health fails when nothing was captured this recently
MONITORING_SCHEDULE_CRON = "0 * * * *"  # hourly
# Retraining: on a failed production_accuracy, or drift in this many evaluations in a row,
# and at most once per cool-down.
DRIFT_PERSISTENCE = 3
RETRAINING_COOLDOWN_HOURS = 24.0
RETRAINING_SENSOR_INTERVAL_SECONDS = 60

# The traffic tool (`make traffic`): sample requests for demos and tests.
TRAFFIC_REQUESTS = 200
TRAFFIC_BATCH_SIZE = 10

# The challenger gate. Every cleaned row is either training or holdout, decided by a hash of
# its values, so a row keeps its side in every run and across data versions: no registered
# version trained on a holdout row. A new version must beat the champion on the holdout by
# at least the margin, in the metric (one of MLflow's classifier metrics), to be promoted.
HOLDOUT_SHARE = 0.2
PROMOTION_METRIC: Final = "accuracy_score"
PROMOTION_MARGIN = 0.01  # about one more holdout row right out of 70
# With production labels on, training adds at most this many of the newest captured rows
# that have a label.
PRODUCTION_TRAINING_ROWS = 100_000
