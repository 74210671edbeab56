"""Gradient-flow diagnostic: ||dL/dh_t|| at every time step t, at the start and end of training.

A recurrent layer's fused forward hides its per-step hidden states from autograd (the ``outputs``
it returns are copies, not the states the recurrence uses), so the probe re-runs the encoder one
step at a time on the same weights and asks autograd for the gradient of the loss with respect
to each step's state. It only reads gradients (``torch.autograd.grad``): parameter gradients,
the optimizer and the random number streams are untouched, so training is the same with the
probe on or off. Vanishing gradients show up as norms falling by orders of magnitude from the
last step back to the first, hence the log scale of the plot.
"""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from rnnlab.models.encoders import RecurrentEncoder, State, hidden_of, map_state

CSV_NAME, FIGURE_NAME = "grad_flow.csv", "grad_flow.png"


def unrolled_forward(
    encoder: RecurrentEncoder,
    x: Tensor,
    lengths: Tensor | None,
    states: list[Tensor],
    state: State | None = None,
) -> tuple[Tensor, Tensor, State]:
    """``encoder.forward`` computed step by step, appending each step's h (L, B, H) to ``states``.

    The top layer's output at step t *is* the state h_t here, so ``dL/dh_t`` collects both the
    paths through later steps and any per-step head. Padded steps (t >= length) keep the state.
    """
    steps = x.shape[1]
    outputs = []
    for t in range(steps):
        _, new_state = encoder.rnn(x[:, t : t + 1], state)
        if lengths is not None and state is not None:
            active = (t < lengths.to(x.device))[None, :, None]  # (1, B, 1)
            new_state = map_state(partial(torch.where, active), new_state, state)
        state = new_state
        h = hidden_of(state)  # (L, B, H)
        states.append(h)
        outputs.append(h[-1])
    stacked = torch.stack(outputs, dim=1)  # (B, T, H)
    if lengths is not None:
        stacked = stacked * (torch.arange(steps)[None, :] < lengths[:, None]).unsqueeze(-1)
    return stacked, states[-1][-1], state


def hidden_grad_norms(module: pl.LightningModule, batch: dict[str, Tensor]) -> list[float]:
    """||dL/dh_t|| of the top layer for t = 1..T on one batch (Frobenius norm over (B, H))."""
    encoder = find_encoder(module)
    if encoder is None:
        raise ValueError("The model has no unidirectional RecurrentEncoder to probe.")
    states: list[Tensor] = []
    encoder.forward = lambda x, lengths=None, state=None: unrolled_forward(  # type: ignore[method-assign]
        encoder, x, lengths, states, state
    )
    try:
        with torch.enable_grad():
            # predict_batch, not model(x, lengths): task modules feed targets or carried state.
            # The "probe" split keeps TBPTT's training state and teacher forcing's RNG untouched.
            loss = module.loss_fn(module.predict_batch(batch, "probe"), batch)
            if not states:
                raise ValueError("the model never called its recurrent encoder's forward")
            grads = torch.autograd.grad(loss, states, allow_unused=True)
    finally:
        del encoder.forward  # back to the class's fused forward
    return [0.0 if g is None else float(g[-1].norm()) for g in grads]


def find_encoder(module: torch.nn.Module) -> RecurrentEncoder | None:
    """The model's unidirectional recurrent encoder, or None if it has none to probe."""
    for sub in module.modules():
        if isinstance(sub, RecurrentEncoder) and sub.num_directions == 1:
            return sub
    return None


class GradientFlow(pl.Callback):
    """Record ||dL/dh_t|| on the first ``n_batches`` training batches and again after training.

    Writes ``grad_flow.csv`` (stage, batch, t, grad_norm) and ``grad_flow.png`` (log scale over
    t) into ``directory``. Models without a unidirectional recurrent encoder (MLP, Transformer,
    bidirectional RNNs) are skipped with a note.
    """

    def __init__(self, directory: Path, n_batches: int) -> None:
        self.directory, self.n_batches = directory, n_batches
        self.rows: list[dict[str, Any]] = []
        self.active = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if find_encoder(pl_module) is None:
            self.active = False
            rank_zero_info(
                "Gradient-flow diagnostic skipped: the model has no unidirectional recurrent "
                "encoder whose hidden states could be probed."
            )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.active and trainer.current_epoch == 0 and batch_idx < self.n_batches:
            self._probe(pl_module, batch, "start", batch_idx)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active or not trainer.is_global_zero:
            return
        for batch_idx, batch in enumerate(trainer.train_dataloader):
            if batch_idx >= self.n_batches:
                break
            batch = {k: v.to(pl_module.device) for k, v in batch.items()}
            self._probe(pl_module, batch, "end", batch_idx)
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / CSV_NAME).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["stage", "batch", "t", "grad_norm"])
            writer.writeheader()
            writer.writerows(self.rows)
        figure = grad_flow_figure(self.rows)
        figure.savefig(self.directory / FIGURE_NAME, dpi=110)

    def state_dict(self) -> dict[str, Any]:  # the start-of-training probes, for resuming
        return {"rows": self.rows, "active": self.active}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows, self.active = list(state_dict["rows"]), state_dict["active"]

    def _probe(self, module: pl.LightningModule, batch: Any, stage: str, batch_idx: int) -> None:
        was_training = module.training
        module.eval()  # no dropout: the probe must not draw random numbers
        try:
            norms = hidden_grad_norms(module, batch)
        except (RuntimeError, ValueError) as err:
            # A diagnostic must never cost a training run: note it and stop probing.
            rank_zero_warn(f"Gradient-flow diagnostic stopped: {err}")
            self.active = False
            return
        finally:
            module.train(was_training)
        self.rows += [
            {"stage": stage, "batch": batch_idx, "t": t + 1, "grad_norm": norm}
            for t, norm in enumerate(norms)
        ]


def mean_curves(frame: Any) -> dict[str, Any]:
    """Rows as recorded (``stage``, ``t``, ``grad_norm``) -> {stage: mean norm per t}."""
    return {
        stage: part.groupby("t")["grad_norm"].mean()
        for stage, part in frame.groupby("stage", sort=False)
    }


def plot_curve(ax: Any, curve: Any, label: str) -> None:
    """One mean-norm curve on a log axis; zeros (underflow) are drawn at the 1e-30 floor."""
    ax.plot(curve.index, curve.clip(lower=1e-30), label=label)
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")


def grad_flow_figure(rows: list[dict[str, Any]]) -> Any:
    """Mean ||dL/dh_t|| over the probed batches against t, one line per stage, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, ax = plt.subplots(figsize=(7, 4))
    for stage, curve in mean_curves(pd.DataFrame(rows)).items():
        plot_curve(ax, curve, f"{stage} of training")
    ax.set(xlabel="time step t", ylabel="||dL/dh_t||", title="Gradient flow over time")
    ax.legend()
    fig.tight_layout()
    return fig
