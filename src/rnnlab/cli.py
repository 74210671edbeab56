"""Command-line plumbing: user errors exit 2 with one readable line, never a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rnnlab.errors import RnnlabError
from rnnlab.paths import RunPaths


@contextmanager
def user_errors_exit() -> Iterator[None]:
    """Turn an ``RnnlabError`` (bad config or data) into ``error: ...`` on stderr and exit 2."""
    try:
        yield
    except RnnlabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def run_stage(stage: Callable[..., dict[str, Any]], params_file: str = "params.yaml") -> None:
    """Run ``stage(cfg, paths)`` for a DVC stage script, from the current directory."""
    from rnnlab.config import load_params
    from rnnlab.recovery import exit_on_signals, remove_orphaned_temp

    exit_on_signals()
    paths = RunPaths(Path.cwd())
    remove_orphaned_temp(paths.staging_parents)
    with user_errors_exit():
        cfg = load_params(params_file)
        summary = stage(cfg, paths)
    print(json.dumps(summary, indent=2, default=str))
