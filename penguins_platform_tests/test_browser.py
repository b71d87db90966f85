"""The Dagster UI in a real browser, as a new user clicks through it.

Headless Chromium (Debian's, which `make system-packages` installs) drives the UI
that `dagster dev` serves. Each test saves a screenshot under bench/results/ so a reviewer
can look at what a user sees.
"""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from penguins_platform import defaults
from penguins_platform_tests.conftest import (
    DAGSTER_DEV_SENSOR_INTERVAL,
    LINEAGE_ASSETS,
    REPO_ROOT,
    DagsterDev,
    model_versions,
)
from penguins_platform_tests.servers import endpoint_health

CHROMIUM = Path(os.environ.get("PENGUINS_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = REPO_ROOT / "bench" / "results"
LOCATION = "/locations/penguins_platform"
MONITORING_ASSETS = {"production_data", "ground_truth_labels", "monitoring_report"}
ALL_ASSETS = (
    LINEAGE_ASSETS | {"local_endpoint", "sagemaker_endpoint", "azure_endpoint"} | MONITORING_ASSETS
)
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium through Playwright; the driver and browser stop with the module."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make system-packages` installs Debian's `chromium` "
            "(or set PENGUINS_CHROMIUM to another one)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(60_000)
    yield context.new_page()
    context.close()


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _wait_for_run(dagster_dev: DagsterDev, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = dagster_dev.graphql(RUN_STATUS, {"id": run_id})["runOrError"].get("status")
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise TimeoutError(f"run {run_id} still {status} after {timeout:.0f}s")


def _shows(label: str, name: str) -> bool:
    """Whether a graph node's label is `name`, which the UI may shorten to `start…end`."""
    start, ellipsis, end = label.partition("…")
    if not ellipsis:
        return label == name
    return name.startswith(start) and name.endswith(end) and len(start + end) < len(name)


def test_the_lineage_page_shows_every_asset(dagster_dev, page):
    page.goto(f"{dagster_dev.url}/asset-groups")
    page.get_by_role("button", name="Materialize all").wait_for()
    page.mouse.click(900, 800)  # focus the graph, then Alt+E: "Expand all groups"
    page.keyboard.press("Alt+e")
    page.locator("[class*=AssetNode_assetName]").nth(len(ALL_ASSETS) - 1).wait_for()
    labels = page.locator("[class*=AssetNode_assetName]").all_inner_texts()
    _screenshot(page, "lineage")
    assert len(labels) == len(ALL_ASSETS), labels
    missing = [a for a in ALL_ASSETS if not any(_shows(label, a) for label in labels)]
    assert missing == [], f"not on the lineage page: {missing} (labels: {labels})"


def test_trained_models_checks_tab_shows_the_blocking_accuracy_threshold(dagster_dev, page):
    page.goto(f"{dagster_dev.url}/assets/trained_model?view=checks")
    page.get_by_text("This is a blocking asset check.").wait_for()
    page.get_by_text("is never registered").first.wait_for()  # the description loads apart
    body = page.inner_text("body")
    _screenshot(page, "trained_model-checks")
    assert "Checks (1)" in body
    assert "accuracy_threshold" in body
    assert "is never registered" in body, "the check's docstring says what it protects"


def test_launching_training_with_threshold_099_fails_the_check_and_registers_nothing(
    dagster_dev, page
):
    before = model_versions(dagster_dev.tracking_uri, defaults.MODEL_NAME)
    page.goto(f"{dagster_dev.url}{LOCATION}/jobs/training_job/playground")
    page.locator(".CodeMirror").wait_for()
    scaffolded = page.evaluate("document.querySelector('.CodeMirror').CodeMirror.getValue()")
    assert f"threshold: {defaults.THRESHOLD}" in scaffolded, "the launchpad shows the default"
    edited = (
        scaffolded.replace(f"threshold: {defaults.THRESHOLD}", "threshold: 0.99")
        # A short fit is enough to fall short of 0.99, and keeps the suite quick.
        .replace(f"epochs: {defaults.EPOCHS}", "epochs: 5")
        .replace(f"folds: {defaults.FOLDS}", "folds: 2")
    )
    page.evaluate(
        "(text) => document.querySelector('.CodeMirror').CodeMirror.setValue(text)", edited
    )
    page.get_by_text("No errors").wait_for()
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}"))
    run_id = page.url.rsplit("/", 1)[-1].split("?")[0]

    assert _wait_for_run(dagster_dev, run_id) == "FAILURE"
    page.reload()
    page.get_by_text("RUN_FAILURE").first.wait_for()
    _screenshot(page, "launchpad-threshold-0.99-run")
    checks = dagster_dev.graphql(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { stepStats {
             stepKey status } } } }""",
        {"id": run_id},
    )["runOrError"]["stepStats"]
    statuses = {s["stepKey"]: s["status"] for s in checks}
    assert statuses["trained_model_accuracy_threshold"] == "FAILURE"
    assert statuses.get("registered_model_version") != "SUCCESS"
    assert model_versions(dagster_dev.tracking_uri, defaults.MODEL_NAME) == before


@pytest.fixture(scope="module")
def materialize_all(dagster_dev, browser) -> str:
    """Click "Materialize all" on the lineage page once; the id of the run it launched."""
    return _materialize_all(dagster_dev, browser, "/asset-groups", "materialize-all-run")


def _materialize_all(dagster_dev: DagsterDev, browser, path: str, screenshot: str) -> str:
    """Click "Materialize all" on the page at `path`; the id of the run, once it ended."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        page.goto(f"{dagster_dev.url}{path}")
        page.get_by_role("button", name="Materialize all").click()
        launched = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
        launched.wait_for()
        prefix = launched.inner_text().split()[-1]
        runs = dagster_dev.graphql(
            "{ runsOrError(limit: 10) { ... on Runs { results { runId } } } }"
        )["runsOrError"]["results"]
        [run_id] = [r["runId"] for r in runs if r["runId"].startswith(prefix)]
        _wait_for_run(dagster_dev, run_id)
        page.goto(f"{dagster_dev.url}/runs/{run_id}")
        page.get_by_text("RUN_SUCCESS").first.wait_for()
        _screenshot(page, screenshot)
        return run_id
    finally:
        context.close()


def test_materialize_all_on_a_default_setup_ends_green(dagster_dev, materialize_all):
    run = dagster_dev.graphql(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { status
             assetMaterializations { assetKey { path } } } } }""",
        {"id": materialize_all},
    )["runOrError"]
    assert run["status"] == "SUCCESS", "a target nobody configured must not fail the run"
    materialized = {"/".join(m["assetKey"]["path"]) for m in run["assetMaterializations"]}
    # Cloud targets are skipped; monitoring runs on the new endpoint, which has no traffic yet.
    assert materialized == LINEAGE_ASSETS | {"local_endpoint"} | MONITORING_ASSETS
    assert endpoint_health(dagster_dev.endpoint_url)["model_version"] == "1"


def test_a_skipped_cloud_target_says_how_to_enable_it_in_the_run_log(dagster_dev, materialize_all):
    logs = dagster_dev.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
             events { __typename ... on MessageEvent { message } } } } }""",
        {"id": materialize_all},
    )["logsForRun"]["events"]
    messages = " ".join(e.get("message") or "" for e in logs)
    assert "sagemaker_endpoint skipped: Disabled until configured" in messages
    assert "azure_endpoint skipped: Disabled until configured" in messages


def test_the_sensor_is_running_and_its_cursor_shows_the_deployed_champion(
    dagster_dev, materialize_all, page
):
    # The champion, version 1, and the id of the promotion that made it the champion.
    expected = re.compile(
        rf'\{{"model": "{defaults.MODEL_NAME}", "deployed": "v1-[0-9a-f]{{12}}"\}}'
    )
    deadline = time.monotonic() + 3 * DAGSTER_DEV_SENSOR_INTERVAL + 30
    while True:
        page.goto(f"{dagster_dev.url}{LOCATION}/sensors/champion_sensor")
        page.get_by_text("Cursor").first.wait_for()
        body = page.inner_text("body")
        if expected.search(body) or time.monotonic() > deadline:
            break
        time.sleep(5)
    _screenshot(page, "sensor")
    assert expected.search(body), body[-2000:]
    switch = page.locator("tr", has_text="Running").locator("input[type=checkbox]").first
    assert switch.is_checked(), "the sensor is on"


def test_the_monitoring_report_shows_its_link_and_check_results(
    dagster_dev, materialize_all, browser, page
):
    from penguins_platform.defs.resources import LocalEndpoint
    from penguins_platform.traffic import sample_records, send_traffic, shipped_penguins

    endpoint = LocalEndpoint(
        port=int(dagster_dev.endpoint_url.rsplit(":", 1)[1]),
        state_dir=str(dagster_dev.endpoint_paths.state_dir),
    )
    records = sample_records(shipped_penguins(), 60, seed=1)
    sent = send_traffic(endpoint.target("penguins").invoke, records)
    assert sent.answered == 60
    deadline = time.monotonic() + 30
    while endpoint_health(endpoint.url)["capture"]["written"] < 60:
        assert time.monotonic() < deadline, "the endpoint did not capture the traffic"
        time.sleep(0.1)

    _materialize_all(dagster_dev, browser, f"{LOCATION}/jobs/monitoring_job", "monitoring-run")
    page.goto(f"{dagster_dev.url}/assets/monitoring_report")
    page.get_by_text("report_in_mlflow").first.wait_for()
    body = page.inner_text("body")
    _screenshot(page, "monitoring_report")
    assert "report_file" in body and ".html" in body
    links = page.locator("a[href*='/artifacts/monitoring/']")
    assert links.count() >= 1, "the report's MLflow artifact is a link"
    assert links.first.get_attribute("href").endswith(".html")

    page.goto(f"{dagster_dev.url}/assets/monitoring_report?view=checks")
    page.get_by_text("production_accuracy").first.wait_for()
    page.get_by_text("feature_drift").first.wait_for()
    body = page.inner_text("body")
    _screenshot(page, "monitoring_report-checks")
    assert "Checks (2)" in body
    # The simulated labels agree with the prediction 80% of the time by default: production
    # accuracy reads about 0.8, under the 0.9 threshold.
    assert "Failed" in body
