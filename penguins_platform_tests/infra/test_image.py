"""The platform's image (infra/image/Dockerfile) and its build context, without a Docker daemon.

hadolint lints the Dockerfile with every rule at its strictest level; the build context is
checked against Docker's own .dockerignore rules, so the Dockerfile's COPY sources reach it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "infra" / "image" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"

# A build context must never carry these: environments, caches, local state, the tests.
NEVER_IN_CONTEXT = [
    ".git/HEAD",
    ".venv/bin/python",
    ".uv/bin/uv",
    ".dagster/dagster.yaml",
    ".mlflow/mlflow.db",
    ".serving/state.json",
    ".cache/jax/entry",
    "bench/results/latest.json",
    "penguins_platform_tests/conftest.py",
    "penguins_platform/__pycache__/cli.cpython-311.pyc",
]


def hadolint(dockerfile: Path, tmp_path: Path) -> tuple[int, list[dict]]:
    """hadolint's exit code and findings, every rule on and no inline `ignore` honoured.

    An explicit, empty configuration keeps a user's or the project's hadolint settings out.
    """
    if not HADOLINT.exists():
        pytest.fail(f"no hadolint at {HADOLINT}: run `make setup-dev` (the dev group installs it)")
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    result = subprocess.run(
        [
            str(HADOLINT),
            "--config",
            str(config),
            "--disable-ignore-pragma",
            "--failure-threshold",
            "style",
            "--format",
            "json",
            str(dockerfile),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, json.loads(result.stdout or "[]")


def describe(findings: list[dict]) -> str:
    return "\n".join(
        f"  line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in findings
    )


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    code, findings = hadolint(DOCKERFILE, tmp_path)
    assert (code, findings) == (0, []), f"hadolint on {DOCKERFILE}:\n{describe(findings)}"


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint above cannot pass by accident: the same call fails an unpinned image."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    code, findings = hadolint(bad, tmp_path)
    assert code != 0
    assert {"DL3007", "DL3008"} <= {f["code"] for f in findings}, describe(findings)


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths the Dockerfile's COPY instructions read (not `COPY --from`)."""
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY":
            continue
        flags = [w for w in words[1:] if w.startswith("--")]
        paths = [w for w in words[1:] if not w.startswith("--")]
        if not any(flag.startswith("--from=") for flag in flags):
            sources.extend(path.rstrip("/") for path in paths[:-1])
    return sources


def dockerignore_patterns(text: str) -> list[tuple[bool, list[str]]]:
    """(is an exception, path components) for each pattern, as Docker cleans them."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line[1:].strip() if exception else line
        parts = [part for part in pattern.strip("/").split("/") if part not in ("", ".")]
        patterns.append((exception, parts))
    return patterns


def component_regex(parts: list[str]) -> re.Pattern[str]:
    """Go's filepath.Match per component (`*`, `?`), with `**` for any number of directories."""
    pieces = []
    for part in parts:
        if part == "**":
            pieces.append("(?:[^/]+/)*")
            continue
        piece = "".join(
            "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in part
        )
        pieces.append(piece + "/")
    return re.compile("".join(pieces)[:-1] if pieces else "")


def excluded_from_context(path: str, patterns: list[tuple[bool, list[str]]]) -> bool:
    """Whether Docker leaves `path` out: the last pattern matching it, or a parent, decides."""
    parts = path.split("/")
    excluded = False
    for exception, pattern in patterns:
        regex = component_regex(pattern)
        matched = bool(regex.fullmatch(path))
        if not matched and len(parts) > 1 and len(pattern) <= len(parts) - 1:
            matched = bool(regex.fullmatch("/".join(parts[: len(pattern)])))
        if matched:
            excluded = not exception
    return excluded


def test_build_context_has_what_the_dockerfile_copies_and_nothing_local() -> None:
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text())
    sources = copy_sources(DOCKERFILE)
    assert {"pyproject.toml", "uv.lock", "penguins_platform", "data"} <= set(sources), sources

    copied = []
    for source in sources:
        path = REPO_ROOT / source
        assert path.exists(), f"the Dockerfile copies {source}, which does not exist"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        copied += [
            p.relative_to(REPO_ROOT).as_posix() for p in files if "__pycache__" not in p.parts
        ]
    left_out = [path for path in copied if excluded_from_context(path, patterns)]
    assert not left_out, f".dockerignore leaves out files the Dockerfile copies: {left_out}"

    let_in = [path for path in NEVER_IN_CONTEXT if not excluded_from_context(path, patterns)]
    assert not let_in, f".dockerignore lets these into the build context: {let_in}"


def test_image_pins_python_and_the_makefiles_uv() -> None:
    dockerfile = DOCKERFILE.read_text()
    (base,) = re.findall(r"^FROM (python:\S+) AS python$", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), f"unpinned base image {base}"
    (image_uv,) = re.findall(r"^ARG UV_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    makefile = (REPO_ROOT / "Makefile").read_text()
    (make_uv,) = re.findall(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert image_uv == make_uv, f"the image installs uv {image_uv}, the Makefile {make_uv}"
