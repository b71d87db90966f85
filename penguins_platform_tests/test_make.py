"""The README commands as a user runs them: `make train`, then `make serve/sample/stop`, with
what they print held to what the README shows."""

import json
import os
import platform
import re

import dagster as dg
import pytest

from penguins_platform.serving import service
from penguins_platform_tests.conftest import model_versions
from penguins_platform_tests.readme import assert_shows, matches_shown, shown, shown_json
from penguins_platform_tests.servers import free_port


@pytest.fixture(scope="module")
def user(tmp_path_factory, make):
    """A user's environment: own Dagster home, MLflow store and endpoint, all in a tmp dir."""
    root = tmp_path_factory.mktemp("user")
    env = {
        "DAGSTER_HOME": str(root / "dagster_home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PENGUINS_ENDPOINT_PORT": str(free_port()),
        "PENGUINS_ENDPOINT_STATE_DIR": str(root / "serving"),
        "PENGUINS_REPORT_DIR": str(root / "reports"),
    }
    trained = make("train", env=env)
    yield root, env, trained
    make("stop", env=env)


def test_make_train_registers_a_version_and_records_the_run(user):
    root, env, done = user
    assert done.returncode == 0, done.stderr[-3000:]
    assert_shows("make-train", "\n".join(printed(done.stdout)[-2:]))
    home = root / "dagster_home"
    assert "nux:\n  enabled: false" in (home / "dagster.yaml").read_text()
    assert model_versions(env["MLFLOW_TRACKING_URI"], "penguins") == ["1"]
    assert list((root / "artifacts").rglob("model.keras")), "artifacts sit beside the store"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [run.job_name for run in runs] == ["training_job"]
        assert runs[0].is_success


def test_make_train_with_a_high_threshold_exits_non_zero_and_says_why(tmp_path, make):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": store}
    done = make("train", "--threshold", "0.99", env=env)
    assert done.returncode != 0
    assert_shows("make-train-below-threshold", "\n".join(printed(done.stderr)[-3:]))
    assert model_versions(store, "penguins") == []


def test_make_serve_then_sample_then_stop(user, make):
    root, env, trained = user
    assert trained.returncode == 0
    served = make("serve", env=env)
    assert served.returncode == 0, served.stderr[-3000:]
    url = f"http://127.0.0.1:{env['PENGUINS_ENDPOINT_PORT']}"
    assert f"Serving penguins version 1 at {url}" in served.stdout
    assert (root / "serving" / "endpoint.pid").exists()

    sampled = make("sample", env=env)
    assert sampled.returncode == 0, sampled.stderr
    answer = json.loads(sampled.stdout[sampled.stdout.index("{") :])
    assert answer["predictions"][0]["prediction"] == "Gentoo"
    assert answer["model_version"] == "1"

    # The monitoring loop as the README shows it: traffic, an evaluation, drifted traffic and
    # an evaluation of that.
    for args in readme_commands("monitoring-demo"):
        done = make(*args, env=env)
        assert done.returncode == 0, (args, done.stderr[-3000:])
        if args[0] == "traffic":
            assert "200 answered, 0 failed" in done.stdout, done.stdout
        if args == ["monitor"]:  # the first evaluation: every row captured, no drift
            assert "capture_health: passed: 201 recent rows" in done.stdout  # and the sample
    lines = printed(done.stdout)
    assert_shows("make-monitor", "\n".join(lines[:-1]))
    report = lines[-1].removeprefix("Report: ")
    assert report.startswith(str(root / "reports")) and os.path.getsize(report) > 100_000

    # The request the README shows, and its answer.
    request = re.search(r"-d '(.*)'", shown("command", "curl-invocations"), re.S)
    assert request is not None, "the README's curl command has no -d '...' body"
    status, body = service.request_json(f"{url}/invocations", json.loads(request.group(1)))
    assert status == 200 and matches_shown(shown_json("curl-invocations"), body), body

    stopped = make("stop", env=env)
    assert f"Stopped the endpoint at {url}" in stopped.stdout
    assert not (root / "serving" / "endpoint.pid").exists()
    again = make("sample", env=env)
    assert again.returncode != 0
    assert "start one with `make serve`" in again.stderr


def printed(text: str) -> list[str]:
    """The lines a command printed, without make's own: the recipe it echoes before running
    it, and its note when the recipe fails."""
    return [
        line
        for line in text.splitlines()
        if not line.startswith(("make: ", "make[", ".venv/bin/", ".uv/bin/"))
    ]


def readme_commands(name: str) -> list[list[str]]:
    """The `make` commands of the README's command block `name`, as (target, *ARGS)."""
    commands = []
    for line in shown("command", name).splitlines():
        command = line.split("#")[0].strip()
        if not command.startswith("make "):
            continue
        target, _, rest = command.removeprefix("make ").partition(" ")
        arguments = re.fullmatch(r'(?:ARGS="(.*)")?', rest.strip())
        assert arguments is not None, f"cannot read the README command {line!r}"
        commands.append([target, *(arguments.group(1) or "").split()])
    return commands


def test_make_train_again_then_promote_and_roll_back_as_the_readme_shows(user, make):
    """A worse seed is registered, not promoted; the README's promotion commands then make it
    the champion by hand and roll it back, each recorded on the version."""
    from mlflow.tracking import MlflowClient

    _, env, trained = user
    assert trained.returncode == 0
    again = make("train", "--seed", "7", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_shows("make-train-not-promoted", "\n".join(printed(again.stdout)[-2:]))
    client = MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    expected = {"promote": ("2", "manual"), "rollback": ("1", "rollback")}
    commands = promotion_commands()
    assert [target for target, _ in commands] == ["promote", "rollback"]
    for target, variables in commands:
        done = make(target, env=env, variables=variables)
        assert done.returncode == 0, done.stderr[-3000:]
        champion = client.get_model_version_by_alias("penguins", "champion")
        assert (str(champion.version), champion.tags["promotion"]) == expected[target]
        assert champion.tags["promotion_reason"] == variables["REASON"]
        assert champion.tags["promoted_by"], "who asked"
    without_reason = make("promote", env=env, variables={"VERSION": "2"})
    assert without_reason.returncode != 0
    assert 'usage: make promote VERSION=n REASON="why"' in without_reason.stderr


def promotion_commands() -> list[tuple[str, dict[str, str]]]:
    """The README's promotion commands, as (target, {VARIABLE: value})."""
    import shlex

    commands = []
    for line in shown("command", "promote").splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "make", line
        variables = dict(word.split("=", 1) for word in words[2:])
        commands.append((words[1], variables))
    return commands


def test_make_monitor_before_training_says_what_to_run_first(tmp_path, make):
    env = {
        "DAGSTER_HOME": str(tmp_path / "home"),
        "PENGUINS_REPORT_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    done = make("monitor", env=env)
    assert done.returncode != 0
    assert "run `make train` (and `make serve`, `make traffic`) first" in done.stderr


def test_make_serve_on_a_taken_port_says_so_in_one_message(user, make):
    import http.server
    import threading

    _, env, trained = user
    assert trained.returncode == 0
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_address[1]
    try:
        served = make("serve", env={**env, "PENGUINS_ENDPOINT_PORT": str(port)})
    finally:
        other.shutdown()
        other.server_close()
    assert served.returncode != 0
    here = {"8080": str(port), "3.11.7": platform.python_version()}
    assert_shows("make-serve-taken-port", "\n".join(printed(served.stderr)), replace=here)
    assert "Traceback" not in served.stdout + served.stderr


def test_serve_where_penguins_targets_leaves_local_out_says_so_and_starts_nothing(
    tmp_path, penguins_cli
):
    env = {
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PENGUINS_ENDPOINT_STATE_DIR": str(tmp_path / "serving"),
        "PENGUINS_TARGETS": "sagemaker",
    }
    done = penguins_cli("serve", env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "The local endpoint is off here: PENGUINS_TARGETS=sagemaker leaves local out; add it to "
        "enable it."
    )
    assert not (tmp_path / "serving" / "endpoint.pid").exists()


def test_a_failing_train_ends_with_a_short_summary_and_nothing_else(tmp_path, penguins_cli):
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": dead}
    done = penguins_cli("train", env=env)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("Training run ") and lines[0].endswith(" failed:")
    assert lines[1] == (
        f"  resources could not start: MLflow tracking server {dead} is unreachable "
        "([Errno 111] Connection refused). Start it, or unset MLFLOW_TRACKING_URI to use the "
        "local SQLite store."
    )
    assert len(lines) == 3, done.stderr
    assert done.stdout == ""


def test_a_data_error_is_reported_without_the_exception_class_path(tmp_path, penguins_cli):
    env = {
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    done = penguins_cli("train", "--data", str(tmp_path / "missing.csv"), env=env)
    assert done.returncode == 1
    assert f"  step raw_penguins failed: data file {tmp_path / 'missing.csv'} does not exist" in (
        done.stderr
    )
    assert "DataValidationError" not in done.stderr
    assert "Traceback" not in done.stderr


def test_verbose_prints_dagsters_whole_log(tmp_path, penguins_cli):
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"DAGSTER_HOME": str(tmp_path / "home"), "MLFLOW_TRACKING_URI": dead}
    done = penguins_cli("train", "--verbose", env=env)
    assert done.returncode == 1
    assert "RESOURCE_INIT_FAILURE" in done.stderr and "Stack Trace" in done.stderr


def test_a_run_over_its_max_runtime_is_stopped_and_says_so(tmp_path, penguins_cli):
    env = {
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    done = penguins_cli("train", "--max-runtime", "3", env=env)
    assert done.returncode == 1
    assert_shows("max-runtime", done.stderr.splitlines()[-1], replace={"600": "3"})
    assert model_versions(env["MLFLOW_TRACKING_URI"], "penguins") == []
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        [run] = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert run.tags["dagster/max_runtime"] == "3"


def test_make_test_names_a_missing_system_package_and_the_command_that_installs_it(make):
    """`make test` never runs sudo itself: it says what is missing and what to run."""
    done = make("check-system-packages", env={"CHROMIUM": "/nowhere/chromium"})
    assert done.returncode != 0
    assert "make test needs Debian's chromium" in done.stderr
    assert "run 'make system-packages'" in done.stderr
    assert make("check-system-packages", env={}).returncode == 0, "this machine has both"
