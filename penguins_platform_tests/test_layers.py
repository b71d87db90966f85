"""The package's layers point one way: wiring imports plain code, never back, and no two plain
packages import each other. Read from the source (every import, lazy ones in functions too),
so a change that crosses a layer fails here, in the fast tier, naming the import."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from penguins_platform_tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "penguins_platform"

# What each part of the package may import from the platform, besides itself. The plain
# packages, bottom up, then the wiring (`defs`, `definitions`) and the commands on top.
ALLOWED: dict[str, set[str]] = {
    "defaults": set(),
    "project": set(),
    "runtime": set(),
    "instance_check": set(),
    "settings": {"defaults", "project"},
    "ml": {"defaults"},
    "tracking": {"defaults", "project", "settings"},
    "capture": {"ml"},
    "serving": {"capture", "ml", "defaults", "project", "settings"},
    "deploy": {"serving", "capture", "tracking", "ml", "defaults", "project", "settings"},
    "monitoring": {"capture", "ml", "defaults", "project", "settings"},
    "traffic": {"deploy", "ml", "defaults", "project"},
    "defs": {
        "traffic",
        "monitoring",
        "deploy",
        "serving",
        "capture",
        "tracking",
        "ml",
        "defaults",
        "project",
        "settings",
    },
    "definitions": {
        "defs",
        "monitoring",
        "deploy",
        "serving",
        "tracking",
        "defaults",
        "project",
        "settings",
        "runtime",
    },
    "runner": {"definitions", "defs"},
    # The production deployment started on this machine from infra/ (`make rehearse`).
    "rehearsal": {"traffic", "tracking", "serving", "ml", "project"},
    "cli": {
        "rehearsal",
        "runner",
        "definitions",
        "defs",
        "instance_check",
        "traffic",
        "deploy",
        "serving",
        "tracking",
        "ml",
        "defaults",
        "project",
        "settings",
    },
    "__main__": {"cli", "runtime"},
    "__init__": set(),
}
# Plain code runs without the orchestrator: the registered model, the endpoint's process and
# the deployment targets load it, and Dagster calls it, never the other way round.
PLAIN = {"ml", "tracking", "capture", "serving", "deploy", "monitoring", "traffic", "settings"}


def part_of(path: Path) -> str:
    """The part of the package a source file belongs to: its subpackage or its module."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in `path`, wherever it stands."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            if node.module == "penguins_platform":
                for alias in node.names:
                    yield node.lineno, f"penguins_platform.{alias.name}"


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    assert {part_of(path) for path in SOURCES} == set(ALLOWED)


def test_the_layers_have_no_cycle():
    """No two parts may import each other, directly or through others."""
    visiting: list[str] = []

    def visit(part: str) -> None:
        assert part not in visiting, f"the layers form a cycle: {' -> '.join([*visiting, part])}"
        visiting.append(part)
        for lower in ALLOWED[part]:
            visit(lower)
        visiting.pop()

    for part in ALLOWED:
        visit(part)


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    part = part_of(path)
    crossing = []
    for line, module in imports(path):
        names = module.split(".")
        if names[0] == "penguins_platform" and len(names) > 1:
            target = names[1]
            if target != part and target not in ALLOWED[part]:
                crossing.append(f"line {line}: {part} imports {module}")
        elif names[0] in ("dagster", "dagster_aws", "dagster_k8s") and part in PLAIN:
            crossing.append(f"line {line}: plain code imports {module}")
    assert not crossing, f"{path.relative_to(REPO_ROOT)} crosses a layer:\n" + "\n".join(crossing)


def test_an_import_inside_a_function_counts_too(tmp_path):
    lazy = tmp_path / "lazy.py"
    lazy.write_text(
        "def deploy():\n"
        "    from penguins_platform.deploy.target import InvokeError\n"
        "    from penguins_platform import defs\n"
    )
    assert list(imports(lazy)) == [
        (2, "penguins_platform.deploy.target"),
        (3, "penguins_platform"),
        (3, "penguins_platform.defs"),
    ]
