"""End-to-end pipeline: `dvc repro` from nothing, then a no-op `dvc repro`.

(a) Cold run. The repository's tracked and untracked-but-not-ignored files
(``git ls-files -co --exclude-standard``) are copied to a temporary directory, committed to a
fresh git repository there, and the pipeline outputs (``data/raw data/prepared models metrics
plots``) are deleted, as in a fresh clone before any run. ``MLFLOW_TRACKING_URI`` points at a
temporary sqlite file, so the real ``mlflow.db`` is untouched. ``dvc repro`` is timed wall-clock;
every output line is time-stamped to split the time by stage. Target: < 90 s. The model's test
MASE and the seasonal-naive MASE come from ``metrics/test.json``; target: model MASE < 1 and
below seasonal naive. Repeated ``--cold-repeats`` times on fresh copies (best and median).

(b) No-op run: ``dvc repro`` again in the same copy, everything cached. Target: < 2 s, median of
``--noop-repeats`` (5).

    python benchmarks/pipeline.py [--cold-repeats 3] [--noop-repeats 5] [--keep]
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO,
    VENV_BIN,
    add_nice_option,
    apply_nice,
    child_env,
    machine_info,
    machine_line,
    md_table,
    median,
    sigterm_exits,
    verdict,
    write_json,
)

COLD_TARGET_S = 90.0
NOOP_TARGET_S = 2.0
OUTPUTS = ("data/raw", "data/prepared", "models", "metrics", "plots")
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)


def make_copy(dest: Path, source: str = "worktree") -> Path:
    """The repo's files, committed in a fresh git repo, pipeline outputs removed.

    ``worktree``: tracked + untracked-not-ignored files as they are on disk now
    (``git ls-files -co --exclude-standard``). ``head``: the last commit (``git archive HEAD``),
    for a consistent snapshot while someone is editing the working tree.
    """
    env = child_env()
    if source == "head":
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        for rel in filter(None, listed):
            src = REPO / rel
            if src.is_file():  # skips files deleted in the working tree but still in the index
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    _run(["git", "init", "-q"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(
        [
            "git",
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-qm",
            "benchmark copy",
        ],
        dest,
        env,
    )
    for name in OUTPUTS:
        shutil.rmtree(dest / name, ignore_errors=True)
    return dest


def dvc_env(tracking_dir: Path, omp_threads: int = 0) -> dict[str, str]:
    env = child_env()
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(omp_threads)  # torch's intra-op thread count in the stages
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tracking_dir / 'mlflow.db'}"
    # Stage output reaches the pipe promptly, so the per-stage time stamps are accurate.
    env["PYTHONUNBUFFERED"] = "1"
    return env


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
        bufsize=1,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines, stage_starts = [], []
    try:
        for line in proc.stdout:
            now = time.perf_counter() - started
            lines.append(f"[{now:7.2f}s] {line.rstrip()}")
            if match := STAGE_LINE.search(line):
                stage_starts.append((match.group(1), now))
        code = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        tail = "\n".join(lines[-40:])
        raise RuntimeError(f"`dvc repro` failed with exit code {code} in {cwd}:\n{tail}")
    bounds = [t for _, t in stage_starts] + [seconds]
    stages = {name: round(bounds[i + 1] - t, 2) for i, (name, t) in enumerate(stage_starts)}
    if stage_starts:
        stages["dvc before first stage"] = round(stage_starts[0][1], 2)
    return {"seconds": seconds, "stages": stages, "output": lines}


def real_mlflow_state() -> tuple[float, int] | None:
    db = REPO / "mlflow.db"
    return (db.stat().st_mtime, db.stat().st_size) if db.exists() else None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    info = machine_info()
    mlflow_before = real_mlflow_state()
    cold: list[dict[str, Any]] = []
    noop: list[float] = []
    noop_messages: set[str] = set()
    base = Path(tempfile.mkdtemp(prefix="rnnlab-pipeline-bench-"))
    try:
        for rep in range(args.cold_repeats):
            work = base / f"run{rep}"
            copy, tracking = work / "repo", work / "mlflow"
            copy.mkdir(parents=True)
            tracking.mkdir()
            make_copy(copy, args.source)
            env = dvc_env(tracking, args.omp_threads)
            res = timed_repro(copy, env)
            test = json.loads((copy / "metrics/test.json").read_text())["test"]
            train = json.loads((copy / "metrics/train.json").read_text())
            ran = [s for s in ("prepare", "train", "evaluate") if s in res["stages"]]
            cold.append(
                {
                    "seconds": res["seconds"],
                    "stages": res["stages"],
                    "stages_run": ran,
                    "model_mase": test["model"]["mase"],
                    "seasonal_naive_mase": test["seasonal_naive"]["mase"],
                    "naive_mase": test["naive"]["mase"],
                    "epochs": train.get("epochs"),
                    "tracking_db_written": (tracking / "mlflow.db").exists(),
                    "output": res["output"],
                }
            )
            print(
                f"  cold repro {rep + 1}/{args.cold_repeats}: {res['seconds']:.1f} s "
                f"(stages {res['stages']}), model MASE {test['model']['mase']:.3f}",
                file=sys.stderr,
                flush=True,
            )
            if rep == args.cold_repeats - 1:
                for i in range(args.noop_repeats):
                    again = timed_repro(copy, env)
                    noop.append(again["seconds"])
                    noop_messages.update(
                        line.split("] ", 1)[-1]
                        for line in again["output"]
                        if "up to date" in line.lower()
                    )
                    print(
                        f"  no-op repro {i + 1}/{args.noop_repeats}: {again['seconds']:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        if args.keep:
            print(f"  kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    cold_s = [c["seconds"] for c in cold]
    last = cold[-1]
    mase_ok = all(c["model_mase"] < 1 and c["model_mase"] < c["seasonal_naive_mase"] for c in cold)
    return {
        "machine": info,
        "source": args.source,
        "omp_threads": args.omp_threads,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "cold": cold,
        "cold_best_s": min(cold_s),
        "cold_median_s": median(cold_s),
        "cold_target_s": COLD_TARGET_S,
        "cold_met": median(cold_s) < COLD_TARGET_S,
        "model_mase": last["model_mase"],
        "seasonal_naive_mase": last["seasonal_naive_mase"],
        "mase_met": mase_ok,
        "noop_s": noop,
        "noop_median_s": median(noop) if noop else float("nan"),
        "noop_target_s": NOOP_TARGET_S,
        "noop_met": bool(noop) and median(noop) < NOOP_TARGET_S,
        "noop_up_to_date": sorted(noop_messages),
        "real_mlflow_db_untouched": real_mlflow_state() == mlflow_before,
    }


def to_markdown(res: dict[str, Any]) -> str:
    cold = res["cold"]
    stage_names = list(cold[0]["stages"])
    rows = [
        [
            i + 1,
            f"{c['seconds']:.1f}",
            *(f"{c['stages'].get(s, 0):.1f}" for s in stage_names),
            c["epochs"],
            f"{c['model_mase']:.3f}",
            f"{c['seasonal_naive_mase']:.3f}",
        ]
        for i, c in enumerate(cold)
    ]
    lines = [
        "### Pipeline: `dvc repro` from nothing, then no-op",
        "",
        machine_line(res["machine"]),
        f"Fresh copy of the repository's files ({res['source']}, HEAD {res['commit']}) in a "
        "new git repo, pipeline outputs deleted, "
        "MLflow on a temporary sqlite file; wall-clock of `dvc repro` (stage split from "
        "time-stamped output)"
        + (f"; OMP_NUM_THREADS={res['omp_threads']}." if res.get("omp_threads") else "."),
        "",
        md_table(
            [
                "run",
                "total s",
                *(f"{s} s" for s in stage_names),
                "epochs (early stop)",
                "model MASE",
                "seasonal-naive MASE",
            ],
            rows,
        ),
        "",
        md_table(
            ["target", "figure", "verdict"],
            [
                [
                    f"cold `dvc repro` < {res['cold_target_s']:.0f} s",
                    f"median {res['cold_median_s']:.1f} s, best {res['cold_best_s']:.1f} s "
                    f"({len(cold)} runs)",
                    verdict(res["cold_met"]),
                ],
                [
                    "test MASE < 1 and below seasonal naive",
                    f"model {res['model_mase']:.3f} vs seasonal naive "
                    f"{res['seasonal_naive_mase']:.3f}",
                    verdict(res["mase_met"]),
                ],
                [
                    f"no-op `dvc repro` < {res['noop_target_s']:.0f} s",
                    f"median {res['noop_median_s']:.2f} s of {len(res['noop_s'])} "
                    f"({', '.join(f'{s:.2f}' for s in res['noop_s'])})",
                    verdict(res["noop_met"]),
                ],
            ],
        ),
        "",
        f"No-op output: {'; '.join(res['noop_up_to_date']) or '(no up-to-date message!)'}. "
        f"Real mlflow.db untouched: {'yes' if res['real_mlflow_db_untouched'] else 'NO'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cold-repeats", type=int, default=3, help="cold runs, each on a fresh copy"
    )
    parser.add_argument("--noop-repeats", type=int, default=5, help="no-op runs (median)")
    parser.add_argument(
        "--source",
        choices=("worktree", "head"),
        default="worktree",
        help="copy the working tree (git ls-files -co --exclude-standard; default) or HEAD",
    )
    parser.add_argument(
        "--omp-threads",
        type=int,
        default=0,
        help="set OMP_NUM_THREADS for the stages (default: unset, torch uses every core)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    add_nice_option(parser)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    if args.cold_repeats < 1:
        parser.error("--cold-repeats must be at least 1")
    os.environ.pop("DVC_ROOT", None)
    sigterm_exits()
    res = measure(args)
    write_json(args.json, res)
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
