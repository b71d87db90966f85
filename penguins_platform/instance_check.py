"""`python -m penguins_platform check-instance`: a production dagster.yaml checked before start-up.

Dagster itself refuses a bad instance config, but as a 60-line stack trace, and after retrying
an unreachable Postgres for about 15 seconds. The webserver, daemon and code location
containers run this check first, so a deployment that cannot work says in one line which
setting is wrong: the environment variable that is unset or malformed, the key that the run
launcher does not know, or the database that does not answer.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONNECT_TIMEOUT_SECONDS = 5
# Sections that name a class by `module` and `class` and configure it under `config`.
CLASS_SECTIONS = ("run_launcher", "run_coordinator", "compute_logs", "event_log_storage")


class InstanceConfigError(ValueError):
    """A setting of the instance config is missing or wrong; the message names it."""


@dataclass(frozen=True)
class EnvReference:
    path: str  # where in dagster.yaml, dotted
    variable: str


def env_references(value: object, path: str = "") -> Iterator[EnvReference]:
    """Every `{env: NAME}` in the config, with where it is."""
    if isinstance(value, Mapping):
        if set(value) == {"env"} and isinstance(value["env"], str):
            yield EnvReference(path, value["env"])
            return
        for key, item in value.items():
            yield from env_references(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from env_references(item, f"{path}[{index}]")


def check_instance(home: Path, environ: Mapping[str, str] | None = None) -> str:
    """A one-line summary of the instance in `home` once every check passes.

    Raises InstanceConfigError naming the first wrong setting, in the order a reader would
    fix them: unset variables, then each section's keys and values, then the database.
    """
    environ = os.environ if environ is None else environ
    path = home / "dagster.yaml"
    if not path.exists():
        raise InstanceConfigError(f"no instance config: {path} does not exist (DAGSTER_HOME)")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InstanceConfigError(f"{path} is not valid YAML: {error}") from None
    check_variables(config, environ, path.name)
    parts = [_check_storage(config.get("storage"))]
    for section in CLASS_SECTIONS:
        if section in config:
            parts.append(_check_class_section(section, config[section]))
    _check_with_dagster(home)
    return f"instance {home}: {', '.join(parts)}: OK"


def check_variables(config: Mapping[str, Any], environ: Mapping[str, str], name: str) -> None:
    """Every variable the config reads is set, and so is every one its run launcher copies
    into runs (a run task loads the same file with only those)."""
    missing = [ref for ref in env_references(config) if not environ.get(ref.variable)]
    if missing:
        where = "; ".join(f"{ref.variable} (at {ref.path})" for ref in missing)
        raise InstanceConfigError(f"{name} reads environment variables that are not set: {where}")
    unset = [variable for variable in copied_to_runs(config) if variable not in environ]
    if unset:
        raise InstanceConfigError(
            f"run_launcher.config.env_vars copies variables into every run that are not set "
            f"here: {', '.join(unset)}"
        )


def copied_to_runs(config: Mapping[str, Any]) -> list[str]:
    """The variables the run launcher copies from its own environment into every run."""
    launcher = (config.get("run_launcher") or {}).get("config") or {}
    return [name for name in launcher.get("env_vars") or [] if "=" not in name]


def _processed(section: str, schema: object, value: Mapping[str, object]) -> Mapping[str, Any]:
    """`value` validated against a Dagster config schema, env vars resolved."""
    from dagster._config import process_config, resolve_to_config_type

    result = process_config(resolve_to_config_type(schema), value)
    if not result.success:
        messages = "; ".join(_reason(error.message) for error in result.errors or [])
        raise InstanceConfigError(f"{section}: {messages}")
    assert result.value is not None, "Dagster returns the processed value of a valid config"
    return result.value


def _reason(message: str) -> str:
    """The part of a Dagster config error that names the setting: Dagster follows an unknown
    key with the whole schema, and a malformed variable with a stack trace."""
    if "PostProcessingError: " in message:
        return message.split("PostProcessingError: ", 1)[1].splitlines()[0]
    return message.split(" Expected:")[0]


def _check_storage(storage: object) -> str:
    if not storage:
        return "storage sqlite (default)"
    if not isinstance(storage, Mapping) or len(storage) != 1:
        raise InstanceConfigError("storage: name exactly one of postgres, sqlite, mysql, custom")
    ((kind, value),) = storage.items()
    if kind != "postgres":
        return f"storage {kind}"
    from dagster_postgres import DagsterPostgresStorage

    settings = _processed("storage.postgres", DagsterPostgresStorage.config_type(), value)
    return _check_postgres(settings)


def _check_postgres(settings: Mapping) -> str:
    """Connect once, briefly, so a wrong host, port, database or password says which."""
    import psycopg2

    if settings.get("postgres_url"):
        target, connect = "postgres_url", {"dsn": settings["postgres_url"]}
    else:
        db = settings["postgres_db"]
        target = f"{db['hostname']}:{db.get('port', 5432)}/{db['db_name']} as {db['username']}"
        connect = {
            "host": db["hostname"],
            "port": db.get("port", 5432),
            "dbname": db["db_name"],
            "user": db["username"],
            "password": db["password"],
            **(db.get("params") or {}),
        }
    try:
        psycopg2.connect(connect_timeout=CONNECT_TIMEOUT_SECONDS, **connect).close()
    except psycopg2.Error as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise InstanceConfigError(
            f"storage.postgres: cannot connect to {target}: {reason} "
            "(DAGSTER_PG_HOST, DAGSTER_PG_PORT, DAGSTER_PG_DB, DAGSTER_PG_USERNAME, "
            "DAGSTER_PG_PASSWORD)"
        ) from None
    return f"storage postgres ({target})"


def _check_class_section(section: str, value: object) -> str:
    if not isinstance(value, Mapping) or not {"module", "class"} <= set(value):
        raise InstanceConfigError(f"{section}: needs `module` and `class`")
    unknown = set(value) - {"module", "class", "config"}
    if unknown:
        raise InstanceConfigError(f"{section}: unknown keys {sorted(unknown)}")
    # Dagster's documented module paths (`dagster.core...`) are aliases of `dagster._core`.
    module = value["module"].replace("dagster.core.", "dagster._core.", 1)
    try:
        klass = getattr(importlib.import_module(module), value["class"])
    except (ImportError, AttributeError) as error:
        raise InstanceConfigError(
            f"{section}: cannot load {value['module']}.{value['class']}: {error}"
        ) from None
    _processed(f"{section}.config", klass.config_type(), value.get("config") or {})
    return f"{section.replace('_', ' ')} {value['class']}"


def _check_with_dagster(home: Path) -> None:
    """What Dagster itself makes of the whole file, once every part above passed."""
    from dagster import DagsterInstance
    from dagster._core.errors import DagsterInvalidConfigError

    try:
        DagsterInstance.from_config(str(home)).dispose()
    except DagsterInvalidConfigError as error:
        messages = "; ".join(e.message for e in error.errors) or str(error)
        raise InstanceConfigError(f"dagster.yaml: {messages}") from None
