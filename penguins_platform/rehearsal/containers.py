"""What a container of the project's image sees: its environment and its files.

A task's process gets the image's own `ENV` (read from `infra/image/Dockerfile`), the task
definition's `environment` and `secrets`, the run task's overrides, and what ECS injects into
every Fargate task (the metadata and credentials endpoints, the region). Nothing of the
rehearsal's own environment leaks in.

The image's paths become folders of this machine: `/app` is the checkout (the image installs
the project there, editable), and `DAGSTER_HOME` and `/tmp` are folders of the task's own,
as each container has its own filesystem.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# What the python:3.11-slim base image sets before the Dockerfile's own ENV lines.
BASE_IMAGE_ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _expand(value: str, environment: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: environment.get(m.group(1) or m.group(2), ""), value)


def image_environment(dockerfile: Path) -> dict[str, str]:
    """The environment the Dockerfile's last stage runs with: the base image's, then each
    `ENV` of that stage and of the stages it is built `FROM`."""
    stages: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for instruction, arguments in _instructions(dockerfile.read_text()):
        if instruction == "FROM":
            words = arguments.split()
            parent = words[0]
            current = dict(stages.get(parent, BASE_IMAGE_ENVIRONMENT))
            if len(words) >= 3 and words[1].upper() == "AS":
                stages[words[2]] = current
        elif instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                current[name] = _expand(value, current)
    return current


@dataclass(frozen=True)
class Filesystem:
    """Where a container's paths are on this machine."""

    app: Path  # the checkout: the image's /app
    home: Path  # the task's DAGSTER_HOME
    tmp: Path  # the task's /tmp
    bin: Path  # the image's own programs (start-service), ahead of /usr/local/bin
    image_home: str  # DAGSTER_HOME inside the image

    def host_path(self, text: str) -> str:
        """`text` with each image path replaced by its folder here, in one pass (a folder
        here may itself lie under /tmp)."""
        outside = {self.image_home: str(self.home), "/app": str(self.app), "/tmp": str(self.tmp)}
        inside = "|".join(re.escape(path) for path in sorted(outside, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w./:-])({inside})(?=/|$|[\s:'\"])")
        return pattern.sub(lambda match: outside[match.group(1)], text)

    def host_search_path(self, path: str) -> str:
        """The image's PATH, with the image's programs found first."""
        parts = [self.host_path(part) for part in path.split(":")]
        return ":".join([str(self.bin), *parts])
