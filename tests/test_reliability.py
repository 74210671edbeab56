"""The bad-input matrix: every case stops at the right stage, exit code 2, a message that names
the problem, and earlier outputs (data, models, metrics, plots, dvc.lock) byte-identical.

Each task gets a base repository (the stage scripts' view: params.yaml, data/external, outputs
of a good `prepare`); each case copies it, breaks one thing, runs the stage script as a
subprocess and compares checksums. Prepare-stage failures need no training.

    RNNLAB_RELIABILITY_REPORT=docs/reliability.md python -m pytest -m reliability \
        tests/test_reliability.py      # `make reliability-report`: the table in the docs
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from checkout import REPO, run_stage, stage_env
from rnnlab.config import dump_params

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

REPORT_ENV = "RNNLAB_RELIABILITY_REPORT"

# task base -> the params.yaml overrides of its good run
BASES: dict[str, list[str]] = {
    "forecast": [
        "data=csv",
        "task.lookback=14",
        "task.horizon=7",
        "experiment=quick",
        "trainer.num_threads=1",
    ],
    "lm": ["task=lm", "data=text_file", "data.path=data/external/corpus.txt", "task.bptt=16"],
    "seq2seq": ["task=seq2seq", "data=pairs_tsv"],
    "classify-text": ["task=classify", "data=text"],
    "classify-seq": ["task=classify", "data=sequences_csv"],
    "longrange": [
        "task=longrange",
        "data=adding",
        "data.seq_len=20",
        "data.n_train=200",
        "data.n_val=50",
        "data.n_test=50",
    ],
}
GOOD_CSV = (REPO / "data" / "external" / "example.csv").read_text()
HEADER, *ROWS = GOOD_CSV.splitlines()


def csv_with(**changes: str) -> str:
    """The example CSV with rows replaced: ``changes`` maps 'row<i>' (data row i) -> text."""
    rows = list(ROWS)
    for key, text in changes.items():
        rows[int(key.removeprefix("row"))] = text
    return "\n".join([HEADER, *rows]) + "\n"


@dataclass(frozen=True)
class Case:
    name: str
    base: str
    expected: str  # a fragment of the message
    stage: str = "prepare"
    params: dict[str, Any] = field(default_factory=dict)
    file: tuple[str, str | bytes] | None = None  # written to data/external, set as data.path


def bad(name: str, base: str, expected: str, **kwargs: Any) -> Case:
    return Case(name, base, expected, **kwargs)


CSV = "data/external/bad.csv"
CASES = [
    # forecasting, the user's CSV
    bad("malformed CSV (ragged row)", "forecast", "not a well-formed CSV",
        file=("bad.csv", csv_with(row5="2023-01-06,1,2,3,4"))),
    bad("missing target column", "forecast", "has no column(s) ['sales']",
        params={"data.target_columns": ["sales"]}),
    bad("non-numeric value", "forecast", "is not numeric: row 5",
        file=("bad.csv", csv_with(row3="2023-01-04,n/a?,0"))),
    bad("series shorter than the windows", "forecast", "too short for lookback=14",
        file=("bad.csv", "\n".join([HEADER, *ROWS[:20]]) + "\n")),
    bad("inf in the target", "forecast", "holds inf at row 12",
        file=("bad.csv", csv_with(row10="2023-01-11,inf,0"))),
    bad("-inf in a covariate", "forecast", "Column `promo` of",
        params={"data.covariate_columns": ["promo"]},
        file=("bad.csv", csv_with(row10="2023-01-11,100,-inf"))),
    bad("1e308 (scaling overflows)", "forecast", "Scaling column `value`",
        file=("bad.csv", csv_with(row10="2023-01-11,1e308,0"))),
    bad("1e30 in the test split (absurd)", "forecast", "times the training spread",
        file=("bad.csv", csv_with(row700="2024-12-01,1e30,0"))),
    bad("constant target", "forecast", "is constant (5) on the training split",
        file=("bad.csv", "\n".join([HEADER, *(f"{r.split(',')[0]},5,0" for r in ROWS)]) + "\n")),
    bad("data.path is a directory", "forecast", "points at the directory",
        params={"data.path": "data/external"}),
    bad("data.path does not exist", "forecast", "does not exist", params={"data.path": CSV}),
    bad("unparseable date", "forecast", "not a date: row 9 holds 'yesterday'",
        file=("bad.csv", csv_with(row7="yesterday,100,0"))),
    bad("duplicate timestamps", "forecast", "repeated timestamp(s) in `date`: 2023-01-03 at rows",
        file=("bad.csv", csv_with(row3=ROWS[2]))),
    bad("unsorted rows with data.unsorted=error", "forecast", "not in time order",
        params={"data.unsorted": "error"},
        file=("bad.csv", "\n".join([HEADER, *reversed(ROWS)]) + "\n")),
    bad("empty file", "forecast", "is empty", file=("bad.csv", "")),
    bad("header only", "forecast", "has a header but no data rows", file=("bad.csv", HEADER)),
    bad("not UTF-8", "forecast", "not UTF-8", file=("bad.csv", GOOD_CSV.encode() + b"\xff\xfe")),
    bad("missing values with data.missing=error", "forecast", "missing values",
        params={"data.missing": "error"}, file=("bad.csv", csv_with(row4="2023-01-05,,0"))),
    bad("unknown model name", "forecast", "`model.arch=lstmm` is not allowed",
        params={"model.arch": "lstmm"}),
    bad("misspelt key", "forecast", "Did you mean `model.hidden_size`",
        params={"model.hiden_size": 32}),
    bad("split fractions over 1", "forecast", "val_fraction and data.test_fraction",
        params={"data.val_fraction": 0.6, "data.test_fraction": 0.5}),
    bad("NaN loss (learning rate 1e12)", "forecast", "Training diverged", stage="train",
        params={"trainer.optimizer.lr": 1e12, "trainer.gradient_clip_val": None}),
    bad("train before prepare (no prepared data)", "forecast", "run the prepare stage first",
        stage="train", params={"task.name": "forecast"}, file=None),
    # character language model
    bad("empty text file", "lm", "is empty", file=("bad.txt", "")),
    bad("whitespace-only text", "lm", "is empty", file=("bad.txt", " \n\t\n")),
    bad("text too short to split", "lm", "too few for a train/val/test split",
        file=("bad.txt", "abc")),
    bad("text file not UTF-8", "lm", "not UTF-8", file=("bad.txt", b"caf\xe9 au lait\n")),
    bad("text path is a directory", "lm", "points at the directory",
        params={"data.path": "data/external"}),
    bad("text file missing", "lm", "not found", params={"data.path": "data/external/none.txt"}),
    bad("bptt below 2", "lm", "`task.bptt=1` is out of range", params={"task.bptt": 1}),
    # sequence to sequence
    bad("TSV line without a tab", "seq2seq", "line 2", file=("bad.tsv", "a b\tc d\nno tab\n")),
    bad("TSV line with an empty target", "seq2seq", "line 1", file=("bad.tsv", "a b\t\n")),
    bad("too few pairs", "seq2seq", "too few for a train/val/test split",
        file=("bad.tsv", "a\tb\nc\td\n")),
    bad("empty pairs file", "seq2seq", "is empty", file=("bad.tsv", "")),
    bad("pairs path is a directory", "seq2seq", "points at the directory",
        params={"data.path": "data/external"}),
    # text classification
    bad("missing label column", "classify-text", "label", file=("bad.csv", "text\ngood\nbad\n")),
    bad("empty text CSV", "classify-text", "is empty", file=("bad.csv", "")),
    bad("JSONL with a broken line", "classify-text", "line 2: not a JSON object",
        file=("bad.jsonl", '{"text": "ok", "label": "a"}\n{broken\n')),
    bad("unknown text file type", "classify-text", "unknown text file type",
        file=("bad.xlsx", "text,label\n")),
    # sequence classification (long format)
    bad("non-numeric channel", "classify-seq", "channel `accel_x` is 'abc', not a number",
        file=("bad.csv", "sequence_id,step,accel_x,label\ns1,0,abc,a\ns1,1,1.0,a\n")),
    bad("infinite channel value", "classify-seq", "not a finite number",
        file=("bad.csv", "sequence_id,step,accel_x,label\ns1,0,inf,a\ns1,1,1.0,a\n")),
    bad("repeated step", "classify-seq", "repeats step",
        file=("bad.csv", "sequence_id,step,accel_x,label\ns1,0,1,a\ns1,0,2,a\n")),
    bad("missing label", "classify-seq", "no label in `label`",
        file=("bad.csv", "sequence_id,step,accel_x,label\ns1,0,1,a\ns1,1,2,\n")),
    # long-range probes
    bad("sequence length below 2", "longrange", "`data.seq_len=1` is out of range",
        params={"data.seq_len": 1}),
    bad("unknown problem", "longrange", "`data.problem=sum` is not allowed",
        params={"data.problem": "sum"}),
    bad("no training sequences", "longrange", "`data.n_train=0` is out of range",
        params={"data.n_train": 0}),
]  # fmt: skip


def run_stage_case(root: Path, stage: str) -> subprocess.CompletedProcess:
    return run_stage(root, stage, stage_env(MLFLOW_TRACKING_URI=""), timeout=600)


def checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every earlier output and of dvc.lock."""
    files = [root / "dvc.lock"]
    for folder in ("data/raw", "data/prepared", "models", "metrics", "plots"):
        files += sorted(p for p in (root / folder).rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One repository per task base, with the outputs of a good prepare (made on first use)."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            for item in ("dvc.yaml", "dvc.lock"):
                shutil.copy2(REPO / item, root / item)
            shutil.copytree(REPO / "data" / "external", root / "data" / "external")
            (root / "data" / "external" / "corpus.txt").write_text(
                "The quick brown fox jumps over the lazy dog.\n" * 400, encoding="utf-8"
            )
            (root / "params.yaml").write_text(dump_params(BASES[name]))
            done = run_stage_case(root, "prepare")
            assert done.returncode == 0, done.stderr
            made[name] = root
        return made[name]

    return get  # type: ignore[return-value]


RESULTS: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def report() -> Any:
    yield
    target = os.environ.get(REPORT_ENV)
    if target and RESULTS:
        write_report(Path(target), RESULTS)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.base}: {c.name}" for c in CASES])
def test_bad_input_stops_at_its_stage_and_keeps_earlier_outputs(case: Case, bases, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(bases(case.base), root)
    if case.name.startswith("train before prepare"):
        shutil.rmtree(root / "data" / "prepared")
    params = OmegaConf.load(root / "params.yaml")
    if case.file is not None:
        name, content = case.file
        path = root / "data" / "external" / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        OmegaConf.update(params, "data.path", f"data/external/{name}")
    for key, value in case.params.items():
        OmegaConf.update(params, key, value, force_add=True)
    (root / "params.yaml").write_text(OmegaConf.to_yaml(params))
    before = checksums(root)

    done = run_stage_case(root, case.stage)
    message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    message = message.replace(f"{root}/", "").replace(str(root), ".")  # stable in the report
    unchanged = checksums(root) == before
    RESULTS.append(
        {"case": case, "code": done.returncode, "message": message, "unchanged": unchanged}
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert message.startswith("error: "), done.stderr[-2000:]
    assert case.expected in message
    assert unchanged
    assert not list(root.rglob(".*.tmp-*")), "a staging folder was left behind"


def write_report(target: Path, results: list[dict[str, Any]]) -> None:
    rows = [
        "| task | bad input | stage | exit | earlier outputs and dvc.lock | message |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        case, message = r["case"], r["message"].removeprefix("error: ")
        message = message.replace("|", "\\|")
        message = message if len(message) <= 160 else message[:157] + "..."
        kept = "byte-identical" if r["unchanged"] else "**CHANGED**"
        rows.append(
            f"| {case.base} | {case.name} | {case.stage} | {r['code']} | {kept} | {message} |"
        )
    text = target.read_text() if target.exists() else ""
    start, end = "<!-- matrix:start -->", "<!-- matrix:end -->"
    table = "\n".join([start, *rows, end])
    if start in text and end in text:
        text = text[: text.index(start)] + table + text[text.index(end) + len(end) :]
    else:
        text = f"{text.rstrip()}\n\n{table}\n" if text else table + "\n"
    target.write_text(text)
