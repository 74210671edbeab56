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
  marked KILLED, and the process exits non-zero. During training a first signal is held until
  the next batch boundary (``signals_at_safe_points``): raised anywhere, it can land inside an
  MLflow write, leave the tracking database locked by the dying process, and turn the clean
  exit into a failure to mark the run.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


class _Held:
    """A signal received inside ``signals_at_safe_points``, not yet raised."""

    active = False
    code: int | None = None


def _exit_on(signum: int, frame: Any) -> None:
    code = SIGNAL_EXIT_CODES[signal.Signals(signum)]
    if _Held.active and _Held.code is None:
        _Held.code = code  # a second signal raises at once
        return
    raise SystemExit(code)


@contextmanager
def signals_at_safe_points() -> Iterator[None]:
    """Inside, a first SIGTERM/SIGINT is only recorded; ``raise_held_signal`` raises it where
    the work can stop (between batches, see ``lightning.callbacks.StopOnSignal``)."""
    _Held.active, _Held.code = True, None
    try:
        yield
    except SystemExit:
        # Lightning stops at its own safe point on SIGTERM, by a SystemExit without a code.
        raise_held_signal()
        raise
    finally:
        _Held.active = False
    raise_held_signal()


def raise_held_signal() -> None:
    if _Held.code is not None:
        code, _Held.code = _Held.code, None
        raise SystemExit(code)


def exit_on_signals() -> None:
    """SIGTERM and SIGINT unwind the stage as ``SystemExit`` with 143 / 130."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # a launcher's worker thread: signals belong to the main thread
    for signum in SIGNAL_EXIT_CODES:
        signal.signal(signum, _exit_on)


def stopped_by_signal(error: BaseException) -> bool:
    return isinstance(error, SystemExit) and error.code in SIGNAL_EXIT_CODES.values()
