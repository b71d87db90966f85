"""Our Helm overrides (infra/helm/values.yaml) against the official chart, offline.

Two layers can reject a value. Helm validates the merged values against the chart's
values.schema.json, vendored beside our overrides; then Dagster validates the instance config
the chart renders from them (run launcher, run queue, compute logs, run monitoring). Both are
checked here without a cluster, a helm binary or the network.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

REPO_ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = REPO_ROOT / "infra" / "helm" / "values.yaml"
CHART_DIR = REPO_ROOT / "infra" / "helm" / "dagster-chart-437f92d"

# What the README installs: `helm upgrade --install dagster dagster/dagster -n dagster`.
RELEASE_NAME = "dagster"
RELEASE_NAMESPACE = "dagster"

# The chart's schema points at Kubernetes definitions by URL, e.g.
# https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/v1.19.0/_definitions.json
KUBERNETES_DEFINITIONS_URL = re.compile(r"^https://\S+/v(\d+\.\d+\.\d+)/_definitions\.json$")


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's rule for a values file: maps merge key by key, anything else (lists too) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return copy.deepcopy(override)


def set_path(values: dict, path: str, value: Any) -> dict:
    """A copy of `values` with the dotted `path` set; a numeric part indexes a list."""
    changed = copy.deepcopy(values)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return changed


def remote_refs(schema: Any) -> Iterator[str]:
    """Every `$ref` in the schema that names another document."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            yield ref
        for value in schema.values():
            yield from remote_refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from remote_refs(item)


def kubernetes_definitions(url: str) -> Resource:
    """The Kubernetes definitions that `url` serves, from the kubernetes-validate wheel.

    The wheel ships versions from 1.25 on; older chart URLs (1.19) get the oldest shipped, whose
    shapes for what the chart refers to (resources, env, probes, volumes) are the same. The
    wheel's non-strict flavour is the one the URL serves: unknown Kubernetes fields pass, as
    they do under Helm. The wheel keeps the definitions under `$defs`; the chart's pointers say
    `#/definitions/...`, so both names lead to them. Its `$id` is dropped, so the document's
    own `#/$defs/...` references resolve against the URL it is registered under.
    """
    import kubernetes_validate

    match = KUBERNETES_DEFINITIONS_URL.match(url)
    if match is None:
        raise AssertionError(f"the chart's schema refers to {url}, which is no Kubernetes URL")
    shipped = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = sorted(
        (tuple(int(n) for n in folder.name[1:].split("-")[0].split(".")), folder)
        for folder in shipped.glob("v*-local")
    )
    wanted = tuple(int(n) for n in match.group(1).split("."))
    folder = next((f for v, f in versions if v >= wanted), versions[-1][1])
    document = json.loads((folder / "_definitions.json").read_text())
    document.pop("$id", None)
    document["definitions"] = document["$defs"]
    return Resource.from_contents(document)


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((CHART_DIR / "values.schema.json").read_text())


@pytest.fixture(scope="module")
def chart_defaults() -> dict:
    return yaml.safe_load((CHART_DIR / "values.yaml").read_text())


@pytest.fixture(scope="module")
def overrides() -> dict:
    return yaml.safe_load(OVERRIDES.read_text())


@pytest.fixture(scope="module")
def values(chart_defaults: dict, overrides: dict) -> dict:
    """What Helm hands the templates: the chart's defaults with our file merged over them."""
    return deep_merge(chart_defaults, overrides)


@pytest.fixture(scope="module")
def fetched() -> list[str]:
    """Every URL the validator tried to fetch; it must stay empty."""
    return []


def offline_registry(served: Iterable[str], fetched: list[str]) -> Registry:
    """The `served` documents, registered locally; any other is never fetched.

    An attempt to fetch is recorded in `fetched` and fails the validation that made it.
    """

    def retrieve(uri: str) -> Resource:
        fetched.append(uri)
        raise NoSuchResource(uri)

    # referencing declares its attrs classes through the pre-PEP 681 `__dataclass_transform__`,
    # which mypy does not read, so it knows no `retrieve` argument.
    return Registry(retrieve=retrieve).with_resources(  # type: ignore[call-arg]
        (url, kubernetes_definitions(url)) for url in sorted(served)
    )


def offline_validator(schema: dict, registry: Registry) -> Draft202012Validator:
    """The schema names no `$schema`; its `$defs` come from pydantic 2, which writes 2020-12."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


@pytest.fixture(scope="module")
def registry(schema: dict, fetched: list[str]) -> Registry:
    return offline_registry({ref.split("#")[0] for ref in remote_refs(schema)}, fetched)


@pytest.fixture(scope="module")
def validator(schema: dict, registry: Registry) -> Draft202012Validator:
    return offline_validator(schema, registry)


def schema_errors(validator: Draft202012Validator, values: dict) -> list[str]:
    return sorted(
        f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(values)
    )


def test_every_remote_reference_resolves_locally(
    registry: Registry, schema: dict, fetched: list[str]
) -> None:
    refs = sorted(set(remote_refs(schema)))
    assert refs, "the schema has no remote $ref: the local registry is no longer needed"
    resolver = registry.resolver()
    for ref in refs:
        assert resolver.lookup(ref).contents, f"{ref} resolves to nothing"
    assert fetched == [], f"resolving the schema's references fetched {fetched}"


def test_a_document_not_served_locally_is_never_fetched(schema: dict, chart_defaults: dict) -> None:
    """The guard the other tests rely on: without the local definitions, validation stops."""
    fetched: list[str] = []
    with pytest.raises(Unresolvable):
        schema_errors(offline_validator(schema, offline_registry((), fetched)), chart_defaults)
    assert fetched and all(KUBERNETES_DEFINITIONS_URL.match(url) for url in fetched), fetched


def test_chart_defaults_satisfy_the_chart_schema(
    validator: Draft202012Validator, chart_defaults: dict, fetched: list[str]
) -> None:
    """A check of the vendored pair and of the local definitions, before judging our file."""
    assert schema_errors(validator, chart_defaults) == []
    assert fetched == []


def test_our_values_satisfy_the_chart_schema(
    validator: Draft202012Validator, values: dict, fetched: list[str]
) -> None:
    errors = schema_errors(validator, values)
    assert not errors, "infra/helm/values.yaml breaks the chart's schema:\n" + "\n".join(errors)
    assert fetched == [], f"validation fetched {fetched}; it must run offline"


QUEUE = "dagsterDaemon.runCoordinator.config.queuedRunCoordinator"


@pytest.mark.parametrize(
    ("path", "mistake", "where"),
    [
        ("runLauncher.type", "K8sRunLaunchr", "runLauncher.type"),
        ("dagster-user-deployments.deployments.0.port", "4000", "deployments.0.port"),
        ("runLauncher.config.k8sRunLauncher.jobNamespac", "dagster", "k8sRunLauncher"),
        (f"{QUEUE}.tagConcurrencyLimits.0.limit", "one", "queuedRunCoordinator"),
        # Only the Kubernetes definitions say what `requests` holds: proof they are applied.
        ("dagsterWebserver.resources.requests", "lots", "dagsterWebserver.resources.requests"),
    ],
    ids=[
        "misspelled-launcher",
        "port-as-text",
        "unknown-launcher-key",
        "limit-as-text",
        "kubernetes-resources-as-text",
    ],
)
def test_chart_schema_rejects_a_mistake(
    validator: Draft202012Validator, values: dict, path: str, mistake: str, where: str
) -> None:
    """So a passing validation means something: each of these mistakes must be caught."""
    errors = schema_errors(validator, set_path(values, path, mistake))
    assert any(where in error for error in errors), f"{path}={mistake!r} passed: {errors}"


# The instance config the chart renders from the values, key for key as its templates do
# (helm/dagster/templates/helpers/instance/_run-launcher.tpl, _run-coordinator.tpl,
# _compute-log-manager.tpl, templates/configmap-instance.yaml).


def chart_fullname() -> str:
    return RELEASE_NAME if "dagster" in RELEASE_NAME else f"{RELEASE_NAME}-dagster"


def k8s_run_launcher_config(values: Mapping[str, Any]) -> dict[str, Any]:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or RELEASE_NAMESPACE,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"]
        or values["serviceAccount"]["name"]
        or chart_fullname(),
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{chart_fullname()}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    if launcher.get("kubeconfigFile"):
        config["kubeconfig_file"] = launcher["kubeconfigFile"]
    if values.get("imagePullSecrets"):
        config["image_pull_secrets"] = values["imagePullSecrets"]
    if launcher.get("image"):
        config["job_image"] = f"{launcher['image']['repository']}:{launcher['image']['tag']}"
    if launcher.get("envConfigMaps"):
        config["env_config_maps"] = [c["name"] for c in launcher["envConfigMaps"] if "name" in c]
    if launcher.get("envSecrets"):
        config["env_secrets"] = [s["name"] for s in launcher["envSecrets"] if "name" in s]
    for key, name in [
        ("envVars", "env_vars"),
        ("volumeMounts", "volume_mounts"),
        ("volumes", "volumes"),
        ("labels", "labels"),
        ("resources", "resources"),
        ("schedulerName", "scheduler_name"),
        ("securityContext", "security_context"),
    ]:
        if launcher.get(key):
            config[name] = launcher[key]
    if launcher.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    if launcher.get("runK8sConfig"):
        config["run_k8s_config"] = {
            snake_case(key): value for key, value in launcher["runK8sConfig"].items() if value
        }
    return config


def queued_run_coordinator_config(values: Mapping[str, Any]) -> dict[str, Any]:
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    limit = queue.get("maxConcurrentRuns")
    config: dict[str, Any] = {"max_concurrent_runs": -1 if limit is None else limit}
    for key in [
        "tagConcurrencyLimits",
        "dequeueIntervalSeconds",
        "dequeueUseThreads",
        "dequeueNumWorkers",
    ]:
        if queue.get(key):
            config[snake_case(key)] = queue[key]
    blocking = queue.get("blockOpConcurrencyLimitedRuns")
    if blocking:
        config["block_op_concurrency_limited_runs"] = {
            "enabled": blocking["enabled"],
            "op_concurrency_slot_buffer": blocking["opConcurrencySlotBuffer"],
        }
    return config


def s3_compute_log_manager_config(values: Mapping[str, Any]) -> dict[str, Any]:
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    config = {"bucket": s3["bucket"], "verify": s3.get("verify") is not False}
    for key, value in s3.items():
        if key not in {"bucket", "verify"} and value:
            config[snake_case(key)] = value
    return config


def run_monitoring_config(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        snake_case(key): value for key, value in values["dagsterDaemon"]["runMonitoring"].items()
    }


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def config_errors(config_type: Any, config: Mapping[str, Any]) -> list[str]:
    from dagster._config import process_config

    result = process_config(config_type, config)
    return [] if result.success else [error.message for error in result.errors or []]


def test_chart_renders_a_k8s_run_launcher_config_dagster_accepts(values: dict) -> None:
    from dagster_k8s import K8sRunLauncher

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    config = k8s_run_launcher_config(values)
    errors = config_errors(K8sRunLauncher.config_type(), config)
    assert not errors, f"K8sRunLauncher rejects {config}: {errors}"


def test_k8s_run_launcher_config_names_an_unknown_key(values: dict) -> None:
    from dagster_k8s import K8sRunLauncher

    config = {**k8s_run_launcher_config(values), "job_namespac": RELEASE_NAMESPACE}
    errors = config_errors(K8sRunLauncher.config_type(), config)
    assert any("job_namespac" in error for error in errors), errors


def test_chart_renders_a_run_queue_dagster_accepts(values: dict) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator

    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    config = queued_run_coordinator_config(values)
    errors = config_errors(QueuedRunCoordinator.config_type(), config)
    assert not errors, f"QueuedRunCoordinator rejects {config}: {errors}"


def test_run_queue_allows_one_deployment_run_per_tag_value(values: dict) -> None:
    """The tag the deployment jobs carry is the one the queue limits."""
    from penguins_platform.defs.jobs import DEPLOYMENT_TAG

    limits = queued_run_coordinator_config(values)["tag_concurrency_limits"]
    assert {"key": DEPLOYMENT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        limits
    ), f"no limit of one run per value of {DEPLOYMENT_TAG!r} in {limits}"


def test_chart_renders_s3_compute_logs_dagster_accepts(values: dict) -> None:
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    config = s3_compute_log_manager_config(values)
    errors = config_errors(S3ComputeLogManager.config_type(), config)
    assert not errors, f"S3ComputeLogManager rejects {config}: {errors}"


def test_run_monitoring_uses_only_settings_dagster_knows(values: dict) -> None:
    """The chart's schema lets any key through here, so a typo would be silently ignored."""
    from dagster._core.instance.config import dagster_instance_config_schema

    config = run_monitoring_config(values)
    field = dagster_instance_config_schema()["run_monitoring"]
    errors = config_errors(field.config_type, config)
    assert not errors, f"run_monitoring rejects {config}: {errors}"
    assert config["enabled"] and config["max_runtime_seconds"] > 0


def test_run_pods_get_the_code_locations_settings(overrides: dict) -> None:
    """includeConfigInLaunchedRuns is off, so the launcher repeats what runs need; it must agree.

    Runs need all of it (a deployment run calls SageMaker, every step reads S3) but the
    schedules switch, which only the code location's own schedules read.
    """
    from penguins_platform.settings import AutomationSettings, variable

    (deployment,) = overrides["dagster-user-deployments"]["deployments"]
    launcher = overrides["runLauncher"]["config"]["k8sRunLauncher"]
    run_env = dict(item.split("=", 1) for item in launcher["envVars"])
    for name, value in run_env.items():
        assert deployment["env"].get(name) == value, (
            f"run pods get {name}={value!r}, the code location {deployment['env'].get(name)!r}"
        )
    assert deployment["env"].keys() - run_env.keys() == {
        variable(AutomationSettings, "schedules")
    }, "run pods lack settings of the code location"
    assert run_env["PENGUINS_EXECUTOR"] == "k8s"
    assert launcher["envSecrets"] == deployment["envSecrets"]
