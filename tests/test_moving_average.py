"""trainer.ema_decay: validation, checkpoints and the trained model use a moving average."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from rnnlab.lightning.callbacks import MovingAverage


class _Line(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, _index):
        x, y = batch
        return torch.mean((self.weight * x - y) ** 2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.3)


class _Steps(pl.Callback):
    def __init__(self) -> None:
        self.weights: list[float] = []

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self.weights.append(module.weight.item())


def test_the_trained_model_is_the_warmed_up_moving_average_of_its_steps(tmp_path):
    x = torch.linspace(-1, 1, 32).unsqueeze(1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, 2.0 * x), batch_size=4)
    steps, decay = _Steps(), 0.8
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[steps, MovingAverage(decay)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    module = _Line()
    trainer.fit(module, loader)

    expected = steps.weights[0]
    for n, weight in enumerate(steps.weights[1:], start=1):
        rate = min(decay, (1 + n) / (10 + n))  # warmed up: early steps do not linger
        expected = rate * expected + (1 - rate) * weight
    assert len(steps.weights) == 16 and steps.weights[-1] > 1.5  # it learns towards 2
    assert module.weight.item() == pytest.approx(expected, rel=1e-6)
    assert module.weight.item() < steps.weights[-1]  # the average lags the last step
