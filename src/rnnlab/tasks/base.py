"""What every task provides to the generic prepare/train/evaluate stages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from rnnlab.model_store import TrainedModel
from rnnlab.paths import RunPaths

if TYPE_CHECKING:
    # Lightning takes seconds to import; serving a model never needs it.
    from rnnlab.lightning.module import SequenceModule


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
    """Test results: nested metrics for JSON, flat ones for MLflow, plot tables and figures.

    ``metrics["test"]["model"]`` holds the model's scores named by its ``TaskSpec.metrics``;
    baselines sit beside it (``metrics["test"]["naive"]``, ...).
    """

    metrics: dict[str, Any]
    plot_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # e.g. generated samples, for MLflow
    # One row per test prediction, so any metric can be recomputed (forecast windows x steps).
    predictions: pd.DataFrame | None = None

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


class Task(ABC):
    """What a task implements; registered through a ``TaskSpec`` (``rnnlab.tasks.spec``).

    Stages call: prepare -> the spec's preparer; train -> ``load_data``, ``build_model``,
    ``lightning_module`` (``loss`` inside it), ``example_frame`` for the logged model;
    evaluate -> ``evaluate``; the logged model, serving and batch prediction ->
    ``predict_frame``. Override ``lightning_module`` and ``predict_unit`` only when the
    defaults do not fit.
    """

    # "sequence" when ``predict_frame`` takes exactly one sequence (a forecast's history): batch
    # prediction then never mixes sequences in one call. "rows": any rows, or whole groups.
    predict_unit: ClassVar[Literal["rows", "sequence"]] = "rows"

    @abstractmethod
    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        """Train and validation datasets from ``paths.prepared_dir``."""

    @abstractmethod
    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module:
        """The network for ``cfg.model`` and the prepared data's ``meta``."""

    @abstractmethod
    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor: ...

    @abstractmethod
    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        """Raw input as a user would send it to the logged model (signature and example)."""

    @abstractmethod
    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """Predict from raw input with the saved preprocessing; the logged model's ``predict``."""

    @abstractmethod
    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        """Test metrics shaped ``{"test": {"model": {<spec metric>: ...}, <baseline>: ...}}``."""

    def lightning_module(self, model: nn.Module, cfg: DictConfig) -> SequenceModule:
        """How a batch trains ``model``: by default ``loss(model(x, lengths), batch)``; tasks
        that need more (carried state, teacher forcing) return their own module."""
        from rnnlab.lightning.module import SequenceModule

        return SequenceModule(model, self.loss, cfg.trainer, self.val_metrics)

    def val_metrics(self, prediction: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Validation figures beside the loss, averaged over batches (``val/<name>`` in the
        learning curve and MLflow; their values at the best checkpoint in ``train.json``)."""
        return {}
