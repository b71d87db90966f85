#!/bin/sh
# Start a long-lived Dagster service (the code location, the daemon, the webserver) only once
# its instance config checks out: `check-instance` names a missing variable, a wrong key or
# an unreachable database in one line, where the service itself would print a stack trace or,
# for settings it reads lazily (the S3 compute logs), fail only at the first run.
# Run and step tasks skip it: their service already checked the same config.
set -e
python -m penguins_platform check-instance
exec "$@"
