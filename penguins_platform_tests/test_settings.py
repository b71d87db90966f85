"""Every environment variable has one home: its setting's declaration. Resources, hints and
errors take the name from there, and the README's tables are generated from it."""

import ast
import re

import dagster as dg
import pytest

from penguins_platform.definitions import SETTINGS
from penguins_platform.defs.resources import (
    AzureMLEndpoint,
    LocalEndpoint,
    MlflowTracking,
    SageMakerEndpoint,
    from_env,
)
from penguins_platform.deploy import azure, sagemaker
from penguins_platform.settings import (
    AutomationSettings,
    ExecutionSettings,
    markdown_table,
    variable,
    variables,
)
from penguins_platform_tests.conftest import REPO_ROOT
from penguins_platform_tests.readme import README, settings_tables

DECLARED = {name: model for model in SETTINGS for name in variables(model).values()}


def test_no_variable_is_declared_twice():
    names = [name for model in SETTINGS for name in variables(model).values()]
    assert len(names) == len(set(names)) == len(DECLARED)


def _code_strings(tree: ast.AST) -> list[str]:
    """The string constants of a module that are code, not docstrings."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_each_variable_is_spelled_out_in_the_package_once_where_it_is_declared():
    """Hints and errors name a variable through `settings.variable`, so renaming one is a
    one-line change that every message follows."""
    found: dict[str, list[str]] = {name: [] for name in DECLARED}
    for path in sorted((REPO_ROOT / "penguins_platform").rglob("*.py")):
        for text in _code_strings(ast.parse(path.read_text())):
            for name in found:
                if re.search(rf"\b{name}\b", text):
                    found[name].append(str(path.relative_to(REPO_ROOT)))
    repeated = {name: where for name, where in found.items() if len(where) != 1}
    assert repeated == {}, "spelled out more than once (use settings.variable):"


@pytest.mark.parametrize("model", SETTINGS, ids=lambda model: model.__name__)
def test_the_readme_table_of_each_settings_class_is_current(model):
    tables = settings_tables()
    assert model.__name__ in tables, (
        f"README.md has no table of {model.__name__}: add one between "
        f"'<!-- settings: {model.__name__} -->' and '<!-- /settings -->'"
    )
    assert tables[model.__name__] == markdown_table(model), (
        f"README.md's table of {model.__name__} is out of date: replace it with its table in "
        "the output of `.venv/bin/python -m penguins_platform settings`"
    )


def test_the_readme_has_no_table_of_a_settings_class_that_is_gone():
    assert set(settings_tables()) <= {model.__name__ for model in SETTINGS}, README


@pytest.mark.parametrize(
    "resource",
    [LocalEndpoint, MlflowTracking, SageMakerEndpoint, AzureMLEndpoint],
    ids=lambda resource: resource.__name__,
)
def test_a_resource_takes_every_variable_that_is_set_and_shows_only_its_name(resource, monkeypatch):
    for name in variables(resource).values():
        monkeypatch.delenv(name, raising=False)
    assert from_env(resource) == {}
    field, name = next(iter(variables(resource).items()))
    monkeypatch.setenv(name, "a-value")
    assert from_env(resource) == {field: dg.EnvVar(name)}


def test_a_number_setting_becomes_an_integer_variable(monkeypatch):
    monkeypatch.setenv(variable(LocalEndpoint, "port"), "9090")
    assert from_env(LocalEndpoint)["port"] == dg.EnvVar.int("PENGUINS_ENDPOINT_PORT")
    resolved = LocalEndpoint(**from_env(LocalEndpoint)).process_config_and_initialize()
    assert resolved.port == 9090


def test_a_target_says_how_to_turn_it_on_with_every_variable_of_its_settings():
    for hint, model in (
        (sagemaker.ENABLE_HINT, sagemaker.SageMakerSettings),
        (azure.ENABLE_HINT, azure.AzureSettings),
    ):
        assert all(name in hint for name in variables(model).values()), hint
    assert sagemaker.ENABLE_HINT.startswith(
        "Disabled until configured: set SAGEMAKER_EXECUTION_ROLE_ARN and SAGEMAKER_BUCKET "
        "(optionally AWS_REGION, "
    )


def test_settings_read_at_load_come_from_their_variables_only(monkeypatch):
    monkeypatch.setenv("PENGUINS_SENSOR_INTERVAL", "5")
    monkeypatch.setenv("SENSOR_INTERVAL", "7")  # the field's own name is no variable
    monkeypatch.setenv("DRIFT_PERSISTENCE", "9")
    settings = AutomationSettings()
    assert (settings.sensor_interval, settings.drift_persistence) == (5, 3)
    monkeypatch.setenv("PENGUINS_EXECUTOR", "")
    assert ExecutionSettings().executor == "in_process", "an empty variable is unset"


def test_settings_from_a_given_environment_read_that_environment_only(monkeypatch):
    monkeypatch.setenv("PENGUINS_EXECUTOR", "ecs")
    assert ExecutionSettings.from_environ({}).executor == "in_process"
    assert ExecutionSettings.from_environ({"PENGUINS_EXECUTOR": "k8s"}).executor == "k8s"


def test_a_wrong_value_read_at_load_names_its_variable(monkeypatch):
    import pydantic

    monkeypatch.setenv("PENGUINS_SENSOR_INTERVAL", "often")
    with pytest.raises(pydantic.ValidationError, match="PENGUINS_SENSOR_INTERVAL"):
        AutomationSettings()
    monkeypatch.setenv("PENGUINS_SENSOR_INTERVAL", "0")
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 1"):
        AutomationSettings()
