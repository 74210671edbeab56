"""A task defined in this file alone (schemas, preparer, Task, model, conf files) runs through
the Hydra app like a built-in one: one registration is all a new task needs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from mlflow import MlflowClient
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import StackDataset

from rnnlab.config import at_least
from rnnlab.data import read_prepared_meta
from rnnlab.io import atomic_dir, write_json
from rnnlab.model_store import TrainedModel
from rnnlab.paths import RunPaths
from rnnlab.tasks import TASK_SPECS, Metric, TaskSpec
from rnnlab.tasks.base import Evaluation, Task, TaskData

TOLERANCE = 0.1  # a prediction within this of the true mean counts as right


@dataclass
class ToyTaskConfig:
    name: str = "toy"
    seq_len: int = at_least(8, 2)
    monitor: str = "val/loss"


@dataclass
class ToyDataConfig:
    name: str = "toy_means"
    n: int = at_least(768, 30)
    seed: int = 0


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    """Sequences of uniform noise; the target is each sequence's mean. Thirds: train/val/test."""
    rng = np.random.default_rng(cfg.data.seed)
    x = rng.uniform(-1, 1, (cfg.data.n, cfg.task.seq_len)).astype(np.float32)
    with atomic_dir(paths.raw_dir) as raw:
        np.save(raw / "toy.npy", x)
    with atomic_dir(paths.prepared_dir) as out:
        for split, part in zip(("train", "val", "test"), np.array_split(x, 3), strict=True):
            np.save(out / f"{split}.npy", part)
        write_json(out / "meta.json", {"task": "toy", "seq_len": cfg.task.seq_len})
    return {"sequences": len(x)}


def _split(paths: RunPaths, split: str) -> StackDataset:
    read_prepared_meta(paths.prepared_dir, "toy")
    x = torch.from_numpy(np.load(paths.prepared_dir / f"{split}.npy"))
    return StackDataset(x=x[..., None], y=x.mean(1))


class MeanNet(nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        _, h = self.rnn(x)  # (1, B, H)
        return self.head(h[-1]).squeeze(-1)  # (B,)


class ToyTask(Task):
    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        meta = read_prepared_meta(paths.prepared_dir, "toy")
        return TaskData(_split(paths, "train"), _split(paths, "val"), meta)

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module:
        return MeanNet(cfg.model.hidden_size)

    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return nn.functional.mse_loss(prediction, batch["y"])

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        return pd.DataFrame(np.load(paths.prepared_dir / "test.npy")[:3], dtype=float).add_prefix(
            "x"
        )

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        x = torch.tensor(frame.to_numpy(np.float32))[..., None]
        with torch.no_grad():
            return pd.DataFrame({"mean": trained.model.eval()(x).numpy()})

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        test = _split(paths, "test")
        x, y = test.datasets["x"], test.datasets["y"]
        with torch.no_grad():
            predicted = model.eval()(x)

        def scores(guess: Tensor) -> dict[str, float]:
            error = (guess - y).abs()
            return {"within_tolerance": float((error < TOLERANCE).float().mean()),
                    "mae": float(error.mean())}  # fmt: skip

        return Evaluation({"test": {"model": scores(predicted), "zero": scores(0 * y)}})


TOY = TaskSpec(
    name="toy",
    task_schema=ToyTaskConfig,
    data_schema=ToyDataConfig,
    preparer=__name__,
    task_class=f"{__name__}:ToyTask",
    # Higher is better, unlike the losses a report assumes for undeclared metrics.
    metrics=(Metric("within_tolerance", higher_is_better=True), Metric("mae")),
)


@pytest.fixture
def toy_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy task registered (for this test only) and its conf files on disk."""
    monkeypatch.setitem(TASK_SPECS, "toy", TOY)
    conf = tmp_path / "toy_conf"
    (conf / "task").mkdir(parents=True)
    (conf / "data").mkdir()
    (conf / "evaluate").mkdir()
    (conf / "task" / "toy.yaml").write_text("name: toy\nseq_len: 8\nmonitor: val/loss\n")
    (conf / "data" / "toy_means.yaml").write_text("name: toy_means\nn: 768\nseed: 0\n")
    (conf / "evaluate" / "toy.yaml").write_text("# no evaluation-only settings\n")
    return conf


def _run_app(monkeypatch: pytest.MonkeyPatch, *overrides: str) -> None:
    from rnnlab.app import main

    monkeypatch.setattr(sys, "argv", ["rnnlab.app", *overrides])
    try:
        main()
    finally:
        GlobalHydra.instance().clear()


def test_a_task_registered_from_outside_runs_end_to_end(
    toy_conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    sweep = tmp_path / "multirun"
    _run_app(
        monkeypatch,
        "-m",
        f"hydra.searchpath=[file://{toy_conf}]",
        f"hydra.sweep.dir={sweep}",
        "task=toy",
        "data=toy_means",
        "model.hidden_size=1,16",
        "trainer.max_epochs=6",
        "trainer.batch_size=32",
        "trainer.num_threads=1",
        "trainer.grad_flow_batches=0",
    )
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnnlab-toy")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "task" in r.data.tags]
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    best = max(runs, key=lambda r: r.data.metrics["test/model/within_tolerance"])
    # The trained model learnt something: it beats always answering zero.
    assert best.data.metrics["test/model/mae"] < 0.5 * best.data.metrics["test/zero/mae"]
    # The sweep's report ranks by the spec's headline, best (highest) first.
    (board,) = (sweep / "report").glob("*.md")
    text = board.read_text()
    assert "test/model/within_tolerance" in text
    first_row = next(line for line in text.splitlines() if "model.hidden_size=" in line)
    assert f"model.hidden_size={best.data.params['model.hidden_size']} " in first_row
    # The logged model predicts through the task's predict_frame, like a built-in one.
    logged = mlflow.pyfunc.load_model(f"runs:/{best.info.run_id}/model")
    fresh = np.random.default_rng(7).uniform(-1, 1, (50, 8))
    predicted = logged.predict(pd.DataFrame(fresh).add_prefix("x"))["mean"]
    assert np.abs(predicted - fresh.mean(1)).mean() < TOLERANCE
