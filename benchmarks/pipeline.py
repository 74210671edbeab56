"""End-to-end pipeline: `dvc repro` from nothing, then a no-op `dvc repro`.

Cold run: the repository's tracked and new files (``git ls-files -co --exclude-standard``) are
committed to a fresh git repository in a temporary directory, the pipeline outputs deleted,
``MLFLOW_TRACKING_URI`` pointed at a temporary sqlite file (the real ``mlflow.db`` untouched),
and ``dvc repro`` timed, split by stage from time-stamped ``Running stage`` lines; test MASE
from ``metrics/test.json``. Targets: < 90 s; model MASE < 1 and below seasonal naive. No-op
run: ``dvc repro`` again in the last copy; target < 2 s (median). ``--quick``: one cold run of
the quick experiment without MLflow, one no-op run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, VENV_BIN, child_env, finish, md_table, median, options, start, verdict

COLD_TARGET_S, NOOP_TARGET_S = 90.0, 2.0
OUTPUTS = ("data/raw", "data/prepared", "models", "metrics", "plots")
STAGE_LINE = re.compile(r"Running stage '([^']+)'")
GIT_USER = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]


def make_copy(dest: Path, params: str | None) -> None:
    """The repo's files committed in a fresh git repo, pipeline outputs removed."""
    ls = ["git", "ls-files", "-co", "--exclude-standard", "-z"]
    listed = subprocess.run(ls, cwd=REPO, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split("\0")):
        if (REPO / rel).is_file():  # skips files deleted in the working tree but still indexed
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    if params is not None:
        (dest / "params.yaml").write_text(params, encoding="utf-8")
    for command in (["init", "-q"], ["add", "-A"], [*GIT_USER, "commit", "-qm", "copy"]):
        subprocess.run(["git", *command], cwd=dest, check=True, capture_output=True)
    for name in OUTPUTS:
        shutil.rmtree(dest / name, ignore_errors=True)


def timed_repro(cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run `dvc repro`, time it, and time-stamp the lines that announce each stage."""
    dvc = str(VENV_BIN / "dvc") if (VENV_BIN / "dvc").exists() else "dvc"
    started = time.perf_counter()
    # Own process group, so an interrupted benchmark takes the stage processes down with it.
    proc = subprocess.Popen(
        [dvc, "repro"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines, stage_starts = [], []
    try:
        for line in proc.stdout or []:
            lines.append(line.rstrip())
            if match := STAGE_LINE.search(line):
                stage_starts.append((match.group(1), time.perf_counter() - started))
        code = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"`dvc repro` failed ({code}) in {cwd}:\n" + "\n".join(lines[-40:]))
    ends = [t for _, t in stage_starts[1:]] + [seconds]
    stages = {name: end - t for (name, t), end in zip(stage_starts, ends)}  # noqa: B905
    stages["DVC before first stage"] = stage_starts[0][1] if stage_starts else seconds
    return {
        "seconds": seconds,
        "stages": stages,
        "up_to_date": any("up to date" in x for x in lines),
    }


def measure(args: Any, base: Path) -> dict[str, Any]:
    from rnnlab.config import dump_params

    params = dump_params(["experiment=quick", "logger=none"]) if args.quick else None
    cold, noop = [], []
    for rep in range(args.cold_repeats):
        copy, tracking = base / f"run{rep}" / "repo", base / f"run{rep}" / "mlflow"
        copy.mkdir(parents=True)
        tracking.mkdir()
        make_copy(copy, params)
        # Unbuffered: stage output reaches the pipe promptly, so the time stamps are accurate.
        env = {**child_env(), "PYTHONUNBUFFERED": "1"}
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tracking / 'mlflow.db'}"
        run = timed_repro(copy, env)
        test = json.loads((copy / "metrics/test.json").read_text())["test"]
        run["epochs"] = json.loads((copy / "metrics/train.json").read_text()).get("epochs")
        run["mase"] = (test["model"]["mase"], test["seasonal_naive"]["mase"])
        cold.append(run)
        print(f"  cold repro {rep + 1}: {run['seconds']:.1f} s", file=sys.stderr, flush=True)
    for _ in range(args.noop_repeats):
        noop.append(timed_repro(copy, env))
    return {"cold": cold, "noop": noop}


def to_markdown(res: dict[str, Any]) -> str:
    cold, noop = res["cold"], res["noop"]
    stage_names = list(cold[0]["stages"])
    rows = []
    for i, c in enumerate(cold):
        stages = (f"{c['stages'].get(s, 0):.1f}" for s in stage_names)
        mase = (f"{m:.3f}" for m in c["mase"])
        rows.append([i + 1, f"{c['seconds']:.1f}", *stages, c["epochs"], *mase])
    cold_s, noop_s = [c["seconds"] for c in cold], [n["seconds"] for n in noop]
    mase_ok = all(model < min(1.0, seasonal) for model, seasonal in (c["mase"] for c in cold))
    cold_ok = median(cold_s) < COLD_TARGET_S
    noop_ok = median(noop_s) < NOOP_TARGET_S and all(n["up_to_date"] for n in noop)
    cold_figure = f"median {median(cold_s):.1f} s, best {min(cold_s):.1f} s ({len(cold)} runs)"
    noop_figure = f"median {median(noop_s):.2f} s of {', '.join(f'{s:.2f}' for s in noop_s)}"
    mase = "model test MASE < 1 and below seasonal naive"
    targets = [
        [f"cold `dvc repro` < {COLD_TARGET_S:.0f} s", cold_figure, verdict(cold_ok)],
        [mase, "{:.3f} vs {:.3f}".format(*cold[-1]["mase"]), verdict(mase_ok)],
        [f"no-op `dvc repro` < {NOOP_TARGET_S:.0f} s", noop_figure, verdict(noop_ok)],
    ]
    header = ["run", "total s", *(f"{s} s" for s in stage_names), "epochs (early stop)"]
    runs_table = md_table([*header, "model MASE", "seasonal-naive MASE"], rows)
    return runs_table + "\n\n" + md_table(["target", "figure", "verdict"], targets)


def main() -> None:
    parser = options(__doc__)
    parser.add_argument("--cold-repeats", type=int, default=3, help="cold runs, fresh copies")
    parser.add_argument("--noop-repeats", type=int, default=5, help="no-op runs (median)")
    args = parser.parse_args()
    if args.quick:
        args.cold_repeats, args.noop_repeats = 1, 1
    if args.cold_repeats < 1 or args.noop_repeats < 1:
        parser.error("--cold-repeats and --noop-repeats must be at least 1")
    os.environ.pop("DVC_ROOT", None)
    info = start(args)
    with tempfile.TemporaryDirectory(prefix="rnnlab-pipeline-bench-") as base:
        res = measure(args, Path(base))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
    text = f"HEAD {commit.stdout.decode().strip()}" + " (quick)" * args.quick + "\n\n"
    finish(info, text + to_markdown(res), args.json, res)


if __name__ == "__main__":
    main()
