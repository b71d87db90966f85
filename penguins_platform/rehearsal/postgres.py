"""A throwaway PostgreSQL cluster on 127.0.0.1, started and stopped by whoever needs it: the
rehearsal of the production deployment, and the tests of production mode.

PostgreSQL refuses to run as root, and root's home (where pytest keeps tmp_path) is not
readable by the `postgres` user. So as root, the cluster lives in a folder of its own under
/tmp owned by `postgres`, and only the Postgres programs (`initdb`, `pg_ctl`) run as that
user, through `runuser`. As any other user they run as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from penguins_platform.serving.service import free_port

if TYPE_CHECKING:
    from psycopg2.sql import Composable

INSTALL_HINT = "install PostgreSQL: `make system-packages` (Debian: apt-get install -y postgresql)"


def postgres_bin_dir() -> Path:
    """The newest installed server's programs (Debian keeps them off PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name)
    )
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(f"no PostgreSQL server programs (initdb, pg_ctl) found: {INSTALL_HINT}")


@dataclass
class PostgresCluster:
    """One cluster: its folder, port and superuser, and how to stop and start it."""

    root: Path
    port: int
    user: str
    password: str
    bin_dir: Path

    host = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def _check(self, program: str, *args: str) -> None:
        done = self._run(program, *args)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed:\n{done.stdout}{done.stderr}\n{log[-3000:]}")

    def init(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(self.password)
        _give_to_postgres(password_file)
        self._check(
            "initdb", "-D", str(self.data_dir), "-U", self.user, f"--pwfile={password_file}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        password_file.unlink()

    def start(self) -> None:
        options = f"-h {self.host} -p {self.port} -k {self.root} -c fsync=off"
        self._check(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        """Stop fast (disconnecting clients); kill the server's group if pg_ctl cannot."""
        if self.running_pid() is None:
            return
        done = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        pid = self.running_pid()
        if done.returncode != 0 and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)

    def running_pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if process_is_running(pid) else None

    def create_database(self, name: str, owner: str | None = None) -> None:
        self._execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))

    def create_role(self, name: str, password: str) -> None:
        """A login role, as an RDS instance's master user (who may create databases)."""
        from psycopg2 import sql

        statement = sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)
        )
        self._execute(statement)

    def _execute(self, statement: str | Composable) -> None:
        import psycopg2

        connection = psycopg2.connect(self.url("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def url(self, database: str) -> str:
        """A libpq URL, for psycopg2 itself."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def environment(self, database: str) -> dict[str, str]:
        """The variables infra/dagster/dagster.yaml reads to reach `database`."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": database,
        }


def process_is_running(pid: int) -> bool:
    """True while `pid` runs. An exited server that no one has reaped yet (a zombie: its
    parent here is an init that may not reap) no longer runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


@contextlib.contextmanager
def running_cluster(
    user: str = "dagster", password: str | None = None
) -> Iterator[PostgresCluster]:
    """A new cluster whose superuser is `user` (with `password`, or a new random one), running
    until the block ends; then stopped and its folder removed."""
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="penguins-postgres-"))
    _give_to_postgres(root)
    cluster = PostgresCluster(root, free_port(), user, password or secrets.token_hex(12), bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
