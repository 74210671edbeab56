"""A shared tracking server for a team: PostgreSQL for runs and Optuna studies, MLflow's server
with the artifact proxy in front of it (``make server``).

    python -m rnnlab.server [--dir .team-server] [--port 5000] [--pg-port 5433]

PostgreSQL comes from the OS (Debian's ``postgresql``: ``make server-deps``); its data, the
artifacts and the logs live under ``--dir``, so stopping and starting again keeps everything.
Clients only need ``MLFLOW_TRACKING_URI=http://127.0.0.1:5000``; artifacts go through the
server (``mlflow-artifacts:/``), so clients need no access to the artifact store. The Optuna
storage URL for the same PostgreSQL is printed at start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rnnlab.errors import RnnlabError

DATABASES = ("mlflow", "optuna")
DB_USER = "rnnlab"


class ServerError(RnnlabError):
    """PostgreSQL or the MLflow server could not be set up or started."""


@dataclass(frozen=True)
class TeamServer:
    """Where the server keeps its state, and the loopback ports it listens on."""

    root: Path
    port: int = 5000
    pg_port: int = 5433
    host: str = "127.0.0.1"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def database_uri(self, database: str) -> str:
        return f"postgresql+psycopg2://{DB_USER}@{self.host}:{self.pg_port}/{database}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    # PostgreSQL ----------------------------------------------------------------------------

    def start_postgres(self) -> None:
        """Create the cluster and databases on first use, then start PostgreSQL (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(parents=True, exist_ok=True)
            _give_to_postgres(self.pgdata)
            self._pg("initdb", "-D", str(self.pgdata), "-U", DB_USER, "--auth=trust", "-E", "UTF8")
        if self._pg("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0:
            return
        options = f"-h {self.host} -p {self.pg_port} -k {self.pgdata}"
        log = self.pgdata / "server.log"
        self._pg("pg_ctl", "start", "-w", "-D", str(self.pgdata), "-l", str(log), "-o", options)
        for database in DATABASES:
            self._create_database(database)

    def stop_postgres(self) -> None:
        self._pg("pg_ctl", "stop", "-m", "fast", "-D", str(self.pgdata), check=False)

    def _create_database(self, name: str) -> None:
        import psycopg2

        with contextlib.closing(
            psycopg2.connect(host=self.host, port=self.pg_port, user=DB_USER, dbname="postgres")
        ) as connection:
            connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(_postgres_bin() / tool), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise ServerError(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    # MLflow --------------------------------------------------------------------------------

    def mlflow_command(self, workers: int = 1) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.database_uri("mlflow"),
            "--artifacts-destination",
            self.artifacts.resolve().as_uri(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]

    def start_mlflow(self, log: Path | None = None) -> subprocess.Popen:
        """Start the MLflow server in the background; return once it answers."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        out = (log or self.root / "mlflow.log").open("ab")
        process = subprocess.Popen(
            self.mlflow_command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self.wait_until_up(process)
        except BaseException:
            stop(process)
            raise
        return process

    def wait_until_up(self, process: subprocess.Popen, timeout: float = 300.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(
                    f"The MLflow server exited with code {process.returncode}; "
                    f"see {self.root / 'mlflow.log'}."
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2),
            ):
                return
            time.sleep(0.5)
        raise ServerError(f"The MLflow server did not answer at {self.tracking_uri} in time.")


def stop(process: subprocess.Popen) -> None:
    """Stop a server started by :meth:`TeamServer.start_mlflow` (its whole process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running(server: TeamServer) -> Iterator[subprocess.Popen]:
    """PostgreSQL and the MLflow server up for the duration of the block."""
    server.start_postgres()
    try:
        process = server.start_mlflow()
        try:
            yield process
        finally:
            stop(process)
    finally:
        server.stop_postgres()


def _postgres_bin() -> Path:
    """The directory of PostgreSQL's server programs (Debian keeps them off PATH)."""
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not candidates:
        raise ServerError(
            "PostgreSQL's server programs (pg_ctl, initdb) were not found. Install them with "
            "`make server-deps` (Debian's postgresql package) or put pg_ctl on PATH."
        )
    return Path(candidates[-1]).parent


def _give_to_postgres(pgdata: Path) -> None:
    """As root, hand the data directory to the ``postgres`` user, who must reach it."""
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam("postgres")
    os.chown(pgdata, user.pw_uid, user.pw_gid)
    pgdata.chmod(0o700)
    blocked = [p for p in pgdata.parents if not os.stat(p).st_mode & 0o001]
    if blocked:
        raise ServerError(
            f"PostgreSQL runs as the `postgres` user, who cannot enter {blocked[0]}. Pick a "
            f"--dir it can reach (e.g. /var/tmp/rnnlab-server) or run as another user."
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(".team-server"), help="state folder")
    parser.add_argument("--port", type=int, default=5000, help="MLflow server port")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port")
    args = parser.parse_args(argv)
    server = TeamServer(args.dir.resolve(), args.port, args.pg_port)
    from rnnlab.cli import user_errors_exit

    # `kill` (a service manager, a background job that ignores Ctrl-C) stops both servers too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with user_errors_exit(), running(server) as process:
        print(
            f"MLflow server: export MLFLOW_TRACKING_URI={server.tracking_uri}\n"
            f"Optuna storage: hydra.sweeper.storage={server.database_uri('optuna')}\n"
            "Ctrl-C (or SIGTERM) stops both.",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            process.wait()


if __name__ == "__main__":
    main()
