"""Entry-point plumbing for the DVC stage scripts: load params.yaml, report errors plainly."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnlab.errors import RnnlabError
from rnnlab.paths import RunPaths


def run_stage(stage: Callable[..., dict[str, Any]], params_file: str = "params.yaml") -> None:
    """Run ``stage(cfg, paths)`` from the current directory; user errors exit 2, no traceback."""
    from rnnlab.config import load_params

    try:
        cfg = load_params(params_file)
        summary = stage(cfg, RunPaths(Path.cwd()))
    except RnnlabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary, indent=2, default=str))
