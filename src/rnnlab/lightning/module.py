"""One LightningModule for every task and architecture: the task supplies model and loss."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Timer
from torch import Tensor, nn

from rnnlab.errors import TrainingError

LossFn = Callable[[Tensor, dict[str, Tensor]], Tensor]
MetricsFn = Callable[[Tensor, dict[str, Tensor]], dict[str, Tensor]]


class SequenceModule(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        trainer_cfg: DictConfig,
        val_metrics: MetricsFn | None = None,
    ) -> None:
        """``val_metrics``: more validation figures beside the loss (logged ``val/<name>``)."""
        super().__init__()
        self.model, self.loss_fn, self.val_metrics = model, loss_fn, val_metrics
        self.optimizer_cfg = dict(trainer_cfg.optimizer)
        self.scheduler_cfg = dict(trainer_cfg.scheduler)
        self.clip = trainer_cfg.gradient_clip_val

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.model(x, lengths)

    def predict_batch(self, batch: dict[str, Tensor], split: str) -> Tensor:
        """The prediction the loss is computed on; tasks with stateful or teacher-forced models
        override this in a subclass (see ``rnnlab.lightning.sequence_modules``)."""
        # Batches are dicts: "x", "y", and "lengths" for right-padded variable-length input.
        return self.model(batch["x"], batch.get("lengths"))

    def _shared_step(self, batch: dict[str, Tensor], split: str) -> Tensor:
        prediction = self.predict_batch(batch, split)
        loss = self.loss_fn(prediction, batch)
        figures = {"loss": loss}
        if split == "val" and self.val_metrics is not None:
            figures |= self.val_metrics(prediction, batch)  # validation runs without gradients
        for name, value in figures.items():
            self.log(
                f"{split}/{name}",
                value,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=batch["x"].shape[0],
                # Under DDP each process sees part of the data: average over them, so every
                # rank (and the checkpoint and early stopping on rank 0) judge the same number.
                sync_dist=True,
            )
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        if not torch.isfinite(loss):
            raise TrainingError(self._divergence_message(float(loss.detach()), batch_idx))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def _divergence_message(self, loss: float, batch_idx: int) -> str:
        kind = "NaN" if math.isnan(loss) else "infinite"
        lr = self.optimizer_cfg["lr"]
        clip = "off" if self.clip is None else self.clip
        return (
            f"Training diverged: the loss became {kind} at epoch {self.current_epoch}, batch "
            f"{batch_idx}. No model was written; earlier results are untouched. Try a lower "
            f"learning rate (trainer.optimizer.lr={lr}, e.g. {lr / 10:g}), gradient clipping "
            f"(trainer.gradient_clip_val={clip}, e.g. 1.0), 32-bit precision, or check the input "
            "data for extreme values."
        )

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_cfg
        params = self.model.parameters()
        if opt["name"] == "sgd":
            optimizer = torch.optim.SGD(
                params, lr=opt["lr"], momentum=opt["momentum"], weight_decay=opt["weight_decay"]
            )
        else:
            cls = torch.optim.AdamW if opt["name"] == "adamw" else torch.optim.Adam
            optimizer = cls(params, lr=opt["lr"], weight_decay=opt["weight_decay"])
        sched = self.scheduler_cfg
        if sched["name"] == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=sched["factor"], patience=sched["patience"]
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
            }
        if sched["name"] == "cosine":
            # Stepped every batch, so warm-up and decay follow the training's progress.
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda _: cosine_factor(self.training_progress(), sched["warmup"])
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }
        return optimizer

    def training_progress(self) -> float:
        """Fraction of the training done, 0..1: of the steps ``max_epochs`` allows, or of
        ``trainer.max_time`` if that budget will run out first, so the learning rate has
        decayed when a time budget ends."""
        trainer = self._trainer
        if trainer is None:
            return 0.0
        total = trainer.estimated_stepping_batches
        progress = trainer.global_step / total if math.isfinite(total) and total > 0 else 0.0
        for callback in trainer.callbacks:
            if isinstance(callback, Timer):
                elapsed, remaining = callback.time_elapsed(), callback.time_remaining()
                if remaining is not None and elapsed + remaining > 0:
                    progress = max(progress, elapsed / (elapsed + remaining))
        return min(progress, 1.0)


def cosine_factor(progress: float, warmup: float) -> float:
    """Learning-rate multiplier: linear warm-up over the first ``warmup`` fraction of training,
    then a cosine decay from 1 to 0 over the rest."""
    if progress < warmup:
        return max(progress / warmup, 0.01)
    decayed = (progress - warmup) / (1.0 - warmup) if warmup < 1.0 else 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(decayed, 1.0)))
