"""Comparison reports: an MLflow experiment (or one sweep) as a leaderboard, table and chart.

    python -m rnnlab.report --experiment rnnlab-forecast [--parent-run ID|latest] \\
        [--metric test/model/mase] --output reports/
    python -m rnnlab.report --experiment rnnlab-longrange --parent-run latest --study

One row per training run: the task's headline test metric and its companion (macro-F1 beside
accuracy, MAE beside MASE...), the best validation loss, the parameter count, training time and
epochs, plus the parameters that differ between the runs (the "variant"); the baselines logged
beside the model are rows too.
Writes ``<name>.md``, ``<name>.png`` and a self-contained ``<name>.html`` and logs them to the
sweep's parent run (or, for a whole experiment, to a new run named ``report``). ``--study``
adds the vanishing-gradient view: which cell solves the long-range task at which T, with and
without clipping, against the memoryless baseline, and the gradient-flow curves that explain it.
"""

from __future__ import annotations

import argparse
import base64
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from rnnlab.cli import user_errors_exit
from rnnlab.errors import ConfigError
from rnnlab.tasks import TASK_SPECS, TaskSpec
from rnnlab.tasks.spec import higher_is_better
from rnnlab.tracking import KIND_TAG, create_run_once

VAL_METRIC = "train/best_val_loss"
# A long-range task counts as solved below these fractions of the memoryless baseline:
# adding MSE < 0.01 (6% of 1/6), copy cross-entropy < 10% of the baseline.
SOLVED_FRACTION = {"mse": 0.06, "cross_entropy": 0.1}


def load_runs(client: Any, experiment: str, parent_run: str | None) -> tuple[pd.DataFrame, str]:
    """Training runs of ``experiment`` (children of ``parent_run`` if given) and the parent id.

    ``parent_run="latest"`` picks the most recent sweep of the experiment.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError(f"No MLflow experiment {experiment!r}; experiments here: {names}.")
    exp_id = found.experiment_id
    if parent_run == "latest":
        sweeps = client.search_runs(
            [exp_id], f"tags.`{KIND_TAG}` = 'sweep'", order_by=["attributes.start_time DESC"]
        )
        if not sweeps:
            raise ConfigError(f"Experiment {experiment!r} has no sweeps (`python -m ... -m`).")
        parent_run = sweeps[0].info.run_id
    query = f"tags.mlflow.parentRunId = '{parent_run}'" if parent_run else ""
    # Every training run carries a `task` tag; sweep parents and report runs do not.
    runs = [r for r in client.search_runs([exp_id], query) if "task" in r.data.tags]
    if not runs:
        where = f"sweep {parent_run}" if parent_run else f"experiment {experiment!r}"
        raise ConfigError(f"No training runs in {where}.")
    rows = []
    for run in runs:
        row = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "status": run.info.status,
            "task": run.data.tags["task"],
        }
        row.update({f"param:{k}": v for k, v in run.data.params.items()})
        row.update(run.data.metrics)
        rows.append(row)
    return pd.DataFrame(rows), parent_run or ""


def pick_metric(runs: pd.DataFrame, metric: str | None) -> str:
    if metric is not None:
        if metric not in runs.columns:
            available = sorted(c for c in runs.columns if c.startswith("test/"))
            raise ConfigError(f"No run has metric {metric!r}; test metrics here: {available}.")
        return metric
    for spec in _task_specs(runs):  # the headline, or the first alternative the runs logged
        for candidate in spec.metrics:
            if candidate.key in runs.columns:
                return candidate.key
    raise ConfigError("The runs have no test metrics yet; pass --metric explicitly.")


def companion_metric(runs: pd.DataFrame, metric: str) -> str | None:
    """The task's next metric after ``metric`` that the runs logged (macro-F1 beside accuracy,
    MAE beside MASE, ...)."""
    for spec in _task_specs(runs):
        for candidate in spec.metrics:
            if candidate.key != metric and candidate.key in runs.columns:
                return candidate.key
    return None


def leaderboard(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per run, best first, with the task's companion metric; ``variant`` names the
    parameters that differ. Baselines logged beside the model (``test/<baseline>/<metric>``)
    are rows too, marked ``baseline``: the bar every run has to clear."""
    params = [c for c in runs.columns if c.startswith("param:") and c != "param:n_parameters"]
    varying = _distinguishing(runs[params].astype(str))
    variant = (
        runs[varying]
        .astype(str)
        .apply(
            lambda row: " ".join(f"{c.removeprefix('param:')}={v}" for c, v in row.items()), axis=1
        )
    )
    companion = companion_metric(runs, metric)
    scores = [metric, *([companion] if companion else [])]
    table = pd.DataFrame(
        {
            "variant": variant if varying else runs["run_name"],
            **{key: runs[key] for key in scores},
            VAL_METRIC: runs.get(VAL_METRIC),
            "parameters": pd.to_numeric(runs.get("param:n_parameters"), errors="coerce"),
            "train_seconds": runs.get("train/train_seconds"),
            "epochs": runs.get("train/epochs"),
            "status": runs["status"],
            "run_id": runs["run_id"],
        }
    )
    table = pd.concat([table, baseline_rows(runs, scores)], ignore_index=True)
    table["parameters"] = table["parameters"].astype("Int64")  # baselines have none: <NA>
    descending = higher_is_better(metric, [s.name for s in _task_specs(runs)])
    return table.sort_values(metric, ascending=not descending, na_position="last").reset_index(
        drop=True
    )


def baseline_rows(runs: pd.DataFrame, scores: list[str]) -> pd.DataFrame:
    """One row per baseline that logged the headline metric: its median over the runs (the same
    value whenever the runs share their data and split)."""
    if not scores[0].startswith("test/model/"):
        return pd.DataFrame()
    names = sorted(
        {
            column.split("/")[1]
            for column in runs.columns
            if column.count("/") == 2
            and column.startswith("test/")
            and column.endswith("/" + scores[0].rsplit("/", 1)[1])
            and column.split("/")[1] != "model"
        }
    )
    rows = []
    for name in names:
        row = {"variant": f"baseline: {name}", "status": "baseline"}
        for key in scores:
            column = key.replace("test/model/", f"test/{name}/")
            row[key] = runs[column].median() if column in runs.columns else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _task_specs(runs: pd.DataFrame) -> list[TaskSpec]:
    """The specs of the runs' tasks (their ``task`` tag), else of every registered task."""
    names = runs["task"].dropna().unique() if "task" in runs.columns else []
    return [TASK_SPECS[n] for n in names if n in TASK_SPECS] or list(TASK_SPECS.values())


def _distinguishing(params: pd.DataFrame) -> list[str]:
    """The columns that vary, minus those a column already kept determines.

    Sweeping ``model=rnn,lstm`` changes ``model.name`` and with it ``model.arch``,
    ``model.init``, ...: the name alone says which run is which.
    """
    kept: list[str] = []
    for column in params.columns:
        if params[column].nunique(dropna=False) < 2:
            continue
        if not any(params.groupby(k)[column].nunique(dropna=False).max() == 1 for k in kept):
            kept.append(column)
    return kept


def study_table(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Cell x (T, clipping) grid of the test metric, each marked solved or not."""
    kind = metric.rsplit("/", 1)[-1]
    baseline_column = f"test/baseline/{kind}"
    if kind not in SOLVED_FRACTION or baseline_column not in runs.columns:
        raise ConfigError(
            f"--study needs long-range runs (task=longrange) and a metric among "
            f"{[f'test/model/{k}' for k in SOLVED_FRACTION]}; got {metric!r}."
        )
    clip = runs["param:trainer.gradient_clip_val"].map(
        lambda v: "off" if v in (None, "None", "null") else f"clip {v}"
    )
    frame = pd.DataFrame(
        {
            "cell": runs["param:model.name"],
            "T": pd.to_numeric(runs["param:data.seq_len"]),
            "clipping": clip,
            "score": runs[metric],
            "baseline": runs[baseline_column],
        }
    )
    threshold = SOLVED_FRACTION[kind]
    frame["cell_text"] = [
        "failed" if math.isnan(s) else f"{s:.4f} {'✓' if s < threshold * b else '✗'}"
        for s, b in zip(frame["score"], frame["baseline"], strict=True)
    ]
    grid = frame.pivot_table(
        index="cell", columns=["T", "clipping"], values="cell_text", aggfunc="first"
    )
    grid.columns = [f"T={t} {c}" for t, c in grid.columns]
    baselines = frame.groupby("T")["baseline"].first()
    note = ", ".join(f"T={t}: {b:.4f}" for t, b in baselines.items())
    grid.attrs["note"] = (
        f"{metric} per cell; ✓ = solved (below {threshold:g} x the memoryless baseline: {note})."
    )
    return grid.reset_index()


def markdown(table: pd.DataFrame) -> str:
    def fmt(value: Any) -> str:
        if value is pd.NA:
            return ""
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def leaderboard_chart(table: pd.DataFrame, metric: str, title: str) -> Any:
    """Horizontal bars, best at the top, baselines grey, values written on the bars. When the
    values are close the axis starts near the smallest, not at 0, so 0.84 and 0.88 differ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table.dropna(subset=[metric]).iloc[::-1]  # best at the top
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.5))
    colours = ["tab:grey" if s == "baseline" else "tab:blue" for s in shown["status"]]
    bars = ax.barh([v[:60] for v in shown["variant"]], shown[metric], color=colours)
    ax.bar_label(bars, labels=[f"{v:.4g}" for v in shown[metric]], padding=3, fontsize=8)
    ax.set(xlabel=metric, title=title)
    if len(shown):
        low, high = float(shown[metric].min()), float(shown[metric].max())
        if low > 0 and high - low < 0.5 * high:  # close values: zoom in on their range
            pad = max(high - low, 0.01 * high) * 0.25
            ax.set_xlim(low - pad, high + 2 * pad)
            ax.set_xlabel(f"{metric} (axis does not start at 0)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def grad_flow_curves(client: Any, runs: pd.DataFrame) -> list[tuple[dict, dict]]:
    """(run, {stage: mean ||dL/dh_t|| per t}) for one run per (T, cell), clipped runs first."""
    import tempfile

    from rnnlab.lightning.grad_flow import mean_curves  # imports Lightning: --study only

    curves = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in runs.to_dict("records"):
            try:
                path = client.download_artifacts(run["run_id"], "plots/grad_flow.csv", scratch)
            except Exception:  # runs without the diagnostic (MLP, Transformer, failed runs)
                continue
            curves.append((run, mean_curves(pd.read_csv(path))))
    curves.sort(key=lambda c: c[0].get("param:trainer.gradient_clip_val") in (None, "None"))
    shown, seen = [], set()
    for run, by_stage in curves:
        key = (int(run["param:data.seq_len"]), run["param:model.name"])
        if key not in seen:
            seen.add(key)
            shown.append((run, by_stage))
    return shown


def grad_flow_table(curves: list[tuple[dict, dict]]) -> pd.DataFrame:
    """The plotted curves in numbers: how far the gradient falls from the last step to the first,
    and up to which step it has underflowed to zero (denormals are flushed)."""
    rows = []
    for run, by_stage in curves:
        for stage, curve in by_stage.items():
            last, first = float(curve.iloc[-1]), float(curve.iloc[0])
            zero = curve.index[curve.to_numpy() == 0]
            rows.append(
                {
                    "cell": run["param:model.name"],
                    "T": int(run["param:data.seq_len"]),
                    "stage": stage,
                    "norm at t=T": last,
                    "norm at t=1": first,
                    "orders of magnitude lost": math.log10(last / first) if first > 0 else math.inf,
                    "zero up to t": int(zero.max()) if len(zero) else math.nan,
                }
            )
    table = pd.DataFrame(rows).sort_values(["stage", "T", "cell"], ascending=[False, True, True])
    table.attrs["note"] = "Mean ||dL/dh_t|| of the curves in the gradient-flow figure."
    return table.reset_index(drop=True)


def grad_flow_chart(curves: list[tuple[dict, dict]]) -> Any:
    """Mean ||dL/dh_t|| per cell (log scale): one column per T, rows start / end of training."""
    import matplotlib

    from rnnlab.lightning.grad_flow import plot_curve

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seq_lens = sorted({int(r["param:data.seq_len"]) for r, _ in curves})
    stages = ("start", "end")
    fig, axes = plt.subplots(
        len(stages), len(seq_lens), figsize=(4.5 * len(seq_lens), 7), squeeze=False
    )
    for col, seq_len in enumerate(seq_lens):
        for row_index, stage in enumerate(stages):
            ax = axes[row_index][col]
            for run, by_stage in curves:
                if int(run["param:data.seq_len"]) == seq_len and stage in by_stage:
                    plot_curve(ax, by_stage[stage], run["param:model.name"])
            ax.set(title=f"T={seq_len}, {stage} of training", xlabel="time step t")
        axes[0][col].legend(fontsize=8)
    for row in axes:
        row[0].set_ylabel("||dL/dh_t||")
    fig.tight_layout()
    return fig


def write_report(
    output: Path, name: str, title: str, tables: list[tuple[str, pd.DataFrame]], figures: dict
) -> list[Path]:
    """``<name>.md``, one PNG per figure and ``<name>.html`` (tables and embedded PNGs)."""
    output.mkdir(parents=True, exist_ok=True)
    pngs = []
    for key, figure in figures.items():
        pngs.append(output / f"{name}{key}.png")
        figure.savefig(pngs[-1], dpi=110)
    md = [f"# {title}\n"]
    html = [f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"]
    html.append(f"<h1>{title}</h1>")
    for heading, table in tables:
        note = table.attrs.get("note", "")
        md += [f"## {heading}\n", f"{note}\n" if note else "", markdown(table)]
        html += [f"<h2>{heading}</h2>", f"<p>{note}</p>", table.to_html(index=False, na_rep="")]
    for png in pngs:
        md.append(f"\n![{png.stem}]({png.name})\n")
        data = base64.b64encode(png.read_bytes()).decode()
        html.append(f"<img src='data:image/png;base64,{data}' alt='{png.stem}'>")
    html.append("</body></html>")
    (output / f"{name}.md").write_text("\n".join(md), encoding="utf-8")
    (output / f"{name}.html").write_text("\n".join(html), encoding="utf-8")
    return [output / f"{name}.md", *pngs, output / f"{name}.html"]


def log_report(client: Any, experiment: str, parent_run: str, files: list[Path]) -> str:
    """Attach the report to the sweep's parent run, else to a new ``report`` run."""
    run_id = parent_run
    if not run_id:
        exp_id = client.get_experiment_by_name(experiment).experiment_id
        run_id = create_run_once(client, exp_id, "report", {KIND_TAG: "report"}).info.run_id
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path="report")
    if not parent_run:
        client.set_terminated(run_id)
    return run_id


def build_report(
    experiment: str,
    output: Path,
    parent_run: str | None = None,
    metric: str | None = None,
    study: bool = False,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    from mlflow import MlflowClient

    from rnnlab.tracking import tracking_uri as default_uri

    uri = tracking_uri or default_uri()
    client = MlflowClient(uri)
    runs, parent = load_runs(client, experiment, parent_run)
    metric = pick_metric(runs, metric)
    board = leaderboard(runs, metric)
    scope = f"sweep {parent}" if parent else f"experiment {experiment}"
    title = f"{experiment}: {scope}"
    tables = [("Leaderboard", board)]
    figures = {"": leaderboard_chart(board, metric, title)}
    name = f"{experiment}-{parent[:8]}" if parent else experiment
    if study:
        tables.insert(0, ("Which settings solve the task", study_table(runs, metric)))
        if curves := grad_flow_curves(client, runs):
            figures["-grad_flow"] = grad_flow_chart(curves)
            tables.insert(1, ("Gradient flow", grad_flow_table(curves)))
    files = write_report(output, name, title, tables, figures)
    run_id = log_report(client, experiment, parent, files)
    return {
        "files": [str(f) for f in files],
        "run_id": run_id,
        "metric": metric,
        "runs": len(runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--experiment", required=True, help="MLflow experiment name")
    parser.add_argument("--parent-run", help="a sweep's parent run id, or `latest`")
    parser.add_argument("--metric", help="test metric to rank by (default: the task's headline)")
    parser.add_argument("--output", type=Path, default=Path("reports"))
    parser.add_argument("--study", action="store_true", help="vanishing-gradient study view")
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else mlflow.db")
    args = parser.parse_args(argv)
    with user_errors_exit():
        result = build_report(
            args.experiment,
            args.output,
            args.parent_run,
            args.metric,
            args.study,
            args.tracking_uri,
        )
    print(f"{result['runs']} runs ranked by {result['metric']}; logged to run {result['run_id']}")
    for path in result["files"]:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
