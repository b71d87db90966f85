"""The pinned environment: every integration imports, and the definitions load light."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

INTEGRATIONS = [
    "dagster",
    "dagster_webserver",
    "dagster_aws.s3",
    "mlflow",
    "keras",
    "jax",
    "sklearn",
    "pandas",
    "boto3",
    "azure.ai.ml",
    "azure.identity",
    "starlette",
    "uvicorn",
    "moto",
]
HEAVY = ["keras", "jax", "mlflow", "sklearn", "pandas", "numpy", "dagster_aws", "matplotlib"]


@pytest.mark.parametrize("module", INTEGRATIONS)
def test_integration_imports(module):
    importlib.import_module(module)


def test_keras_is_on_jax():
    from penguins_platform.ml.model import import_keras

    assert import_keras().backend.backend() == "jax"


def test_loading_the_definitions_imports_nothing_heavy():
    """Dagster imports the definitions for every run, sensor tick and UI reload."""
    probe = (
        "import json, sys; import penguins_platform.definitions; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []


# `make rehearse` installs the test tools (moto stands in for AWS): the rehearsal alone may
# import them, and nothing the main job loads imports the rehearsal (test_layers.py).
WITH_TEST_TOOLS = ("penguins_platform/rehearsal/",)


def main_closure(lock_file: Path, groups: tuple[str, ...] = ()) -> set[str]:
    """Every distribution `make train` installs: the project's dependencies without the `dev`
    group, theirs, and those of the extras they ask for, from the lock file; with `groups`,
    those dependency groups too."""
    import tomllib

    packages = {
        package["name"]: package for package in tomllib.loads(lock_file.read_text())["package"]
    }
    needed: set[str] = set()
    project = packages["penguins-platform"]
    stack = [{"name": "penguins-platform"}] + [
        dependency
        for group in groups
        for dependency in project.get("dev-dependencies", {}).get(group, [])
    ]
    while stack:
        wanted = stack.pop()
        package = packages[wanted["name"]]
        extras = package.get("optional-dependencies", {})
        stack.extend(d for extra in wanted.get("extra", []) for d in extras.get(extra, []))
        if wanted["name"] not in needed:
            needed.add(wanted["name"])
            stack.extend(package.get("dependencies", []))
    return needed


def test_every_import_of_the_package_comes_with_the_main_job_s_install():
    """`make train` installs the platform without the test tools: a module the package
    imports only through a test tool (as pydantic-settings once was) fails there alone."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    from penguins_platform_tests.conftest import REPO_ROOT

    providers = packages_distributions()
    closure = main_closure(REPO_ROOT / "uv.lock")
    with_test_tools = main_closure(REPO_ROOT / "uv.lock", groups=("dev",))
    missing: dict[str, set[str]] = {}
    for path in (REPO_ROOT / "penguins_platform").rglob("*.py"):
        relative = str(path.relative_to(REPO_ROOT))
        installed = with_test_tools if relative.startswith(WITH_TEST_TOOLS) else closure
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top == "penguins_platform" or top in sys.stdlib_module_names:
                    continue
                distributions = {d.lower().replace("_", "-") for d in providers.get(top, [])}
                if not distributions & installed:
                    missing.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    assert missing == {}, "imported by the package, installed only with the test tools"
