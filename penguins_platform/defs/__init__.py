"""Dagster wiring only, one module per stage of the lineage.

`data.py`, `training.py`, `registry.py` and `deployment.py` hold the assets and the checks
beside them; `sensors.py` and `jobs.py` what launches them; `resources.py` the configured
outside world; `metadata.py` builders for what the UI shows; `event_log.py` every read of
Dagster's own records. The work itself lives in `ml/`, `tracking/`, `deploy/` and `serving/`,
which never import Dagster.
"""
