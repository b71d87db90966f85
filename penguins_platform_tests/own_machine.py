"""Imported first by the conftest: the test process, and every process a test starts, runs as
on a machine of its own, wherever the suite runs (a CI runner may be a pod, a shell may hold
PENGUINS_TARGETS).

Which deployment targets a deployment uses follows PENGUINS_TARGETS and whether the process
runs inside an ECS task or a Kubernetes pod (`deploy/selection.py`), read when the definitions
load and again in each sensor tick and step. A test about either sets it itself.
"""

import os

from penguins_platform.deploy.selection import TASK_MARKERS, TargetSettings
from penguins_platform.settings import variable

for name in (variable(TargetSettings, "targets"), *TASK_MARKERS):
    os.environ.pop(name, None)
