"""What a crash leaves behind, cleaned up on the next start; signals that stop a run cleanly.

- Every MLflow run this project opens is tagged with the host and the process (pid and start
  time, so a recycled pid is not mistaken for the owner). A run still RUNNING whose process is
  gone from this host was killed (``kill -9``, power loss): ``close_orphaned_runs`` marks it
  KILLED with a note, sweep parents included.
- Temporary folders and files (``atomic_dir``/``atomic_file``) carry their owner's pid in the
  name (``.models.tmp-<pid>-xxxx``); ``remove_orphaned_temp`` deletes those whose owner is gone,
  and never a live process's.
- SIGTERM and SIGINT raise ``SystemExit(143)`` / ``SystemExit(130)`` (the shell's codes for
  them), so the stage unwinds: temporary output is removed, earlier results stay, the run is
  marked KILLED, and the process exits non-zero.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("rnnlab")

HOST_TAG, PROCESS_TAG = "rnnlab.host", "rnnlab.process"
TEMP_MARK = ".tmp-"  # in the names of atomic_dir/atomic_file staging paths
SIGNAL_EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
_TEMP_NAME = re.compile(rf"^\..+{re.escape(TEMP_MARK)}(\d+)-")


def temp_prefix(name: str) -> str:
    """Prefix of a staging path for ``name`` owned by this process."""
    return f".{name}{TEMP_MARK}{os.getpid()}-"


def _process_id(pid: int) -> str:
    """``pid:start time``: identifies a process even after its pid is reused."""
    import psutil

    return f"{pid}:{psutil.Process(pid).create_time():.2f}"


def process_tags() -> dict[str, str]:
    """Tags that let a later start tell whether the run's process still exists."""
    return {HOST_TAG: socket.gethostname(), PROCESS_TAG: _process_id(os.getpid())}


def _alive(process: str) -> bool:
    import psutil

    pid = int(process.split(":")[0])
    try:
        return _process_id(pid) == process
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def close_orphaned_runs(client: Any) -> list[str]:
    """Mark KILLED every RUNNING run whose process on this host no longer exists."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    host = socket.gethostname()
    running = client.search_runs(
        experiments,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
        max_results=1000,
    )
    closed = []
    for run in running:
        process = run.data.tags.get(PROCESS_TAG)
        if process is None or _alive(process):
            continue
        note = (
            f"Closed by a later start: its process ({process.split(':')[0]} on {host}) no "
            "longer exists, so it was killed or crashed."
        )
        client.set_tag(run.info.run_id, "rnnlab.note", note)
        client.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
    if closed:
        log.warning("Marked %d run(s) left RUNNING by a dead process as KILLED.", len(closed))
    return closed


def remove_orphaned_temp(directories: Iterable[Path]) -> None:
    """Delete staging folders and files in ``directories`` whose owning process is gone."""
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            match = _TEMP_NAME.match(path.name)
            if match and not _pid_alive(int(match.group(1))):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def _exit_on(signum: int, frame: Any) -> None:
    raise SystemExit(SIGNAL_EXIT_CODES[signal.Signals(signum)])


def exit_on_signals() -> None:
    """SIGTERM and SIGINT unwind the stage as ``SystemExit`` with 143 / 130."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # a launcher's worker thread: signals belong to the main thread
    for signum in SIGNAL_EXIT_CODES:
        signal.signal(signum, _exit_on)


def stopped_by_signal(error: BaseException) -> bool:
    return isinstance(error, SystemExit) and error.code in SIGNAL_EXIT_CODES.values()
