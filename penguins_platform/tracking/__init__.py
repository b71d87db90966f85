"""MLflow tracking and the model registry, as plain code: no Dagster here.

`contract.py` names the alias and tags that registration writes and deployment reads,
`store.py` talks to the tracking server or SQLite file, and `credentials.py` keeps a
password in a tracking URI out of every message, log and link.
"""
