"""What every task provides to the generic prepare/train/evaluate stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from rnnlab.model_store import TrainedModel
from rnnlab.paths import RunPaths


@dataclass
class TaskData:
    """Datasets yielding ``{"x": ..., "y": ...}`` dicts, plus what the model needs to know."""

    train: Dataset
    val: Dataset
    meta: dict[str, Any]
    # True when batches must arrive in dataset order (e.g. truncated BPTT carrying state from
    # one batch to the next): the train loader then does not shuffle.
    ordered: bool = False


@dataclass
class Evaluation:
    """Test results: nested metrics for JSON, flat ones for MLflow, plot tables and figures."""

    metrics: dict[str, Any]
    plot_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # e.g. generated samples, for MLflow

    def flat_metrics(self) -> dict[str, float]:
        def walk(prefix: str, node: Any) -> dict[str, float]:
            if isinstance(node, dict):
                return {
                    k: v
                    for key, sub in node.items()
                    for k, v in walk(f"{prefix}/{key}", sub).items()
                }
            return {prefix: float(node)}

        return {k.lstrip("/"): v for k, v in walk("", self.metrics).items()}


class Task(Protocol):
    name: str

    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData: ...

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module: ...

    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor: ...

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        """Raw input as a user would send it to the logged model (signature and example)."""

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """Predict from raw input with the saved preprocessing; the logged model's ``predict``."""

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation: ...

    # Optional: ``lightning_module(model, cfg) -> SequenceModule`` for models that need more than
    # ``model(x, lengths)`` per batch (carried state, teacher forcing); the train stage falls
    # back to ``SequenceModule(model, task.loss, cfg.trainer)``.

    # Optional: ``predict_unit = "sequence"`` when ``predict_frame`` takes exactly one sequence
    # (a forecast's history); batch prediction then never mixes sequences in one call. The
    # default, "rows", lets it batch rows or whole groups (see ``rnnlab.predict``).
