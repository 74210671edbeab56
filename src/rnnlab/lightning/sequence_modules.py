"""SequenceModule variants for models that need more than ``model(x, lengths)`` per batch.

- ``TruncatedBPTTModule`` (language modelling): batches are consecutive windows of parallel
  token streams; the recurrent state at the end of one batch starts the next, detached so no
  gradient flows across the boundary (truncated backpropagation through time). Optionally a
  random fraction of the training rows starts a window from a zero state instead, the state
  generation starts from.
- ``TeacherForcingModule`` (seq2seq): the decoder is fed the true previous token with the
  configured probability while training, and always when validating (a stable val/loss).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from rnnlab.lightning.module import LossFn, SequenceModule
from rnnlab.models.encoders import State, map_state
from rnnlab.models.language_model import detach_state


class TruncatedBPTTModule(SequenceModule):
    """Carries one recurrent state per split across the batches of an epoch.

    The data loader must yield the windows in order (``TaskData.ordered``), each batch's row b
    continuing row b of the previous batch. The state is reset at every epoch start.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        trainer_cfg: DictConfig,
        zero_state_fraction: float = 0.0,
    ) -> None:
        super().__init__(model, loss_fn, trainer_cfg)
        self.carried: dict[str, State] = {}
        self.zero_state_fraction = zero_state_fraction

    def on_train_epoch_start(self) -> None:
        self.carried.pop("train", None)

    def on_validation_epoch_start(self) -> None:
        self.carried.pop("val", None)

    def predict_batch(self, batch: dict[str, Tensor], split: str) -> Tensor:
        state = self.carried.get(split)
        if split == "train" and state is not None and self.zero_state_fraction > 0:
            state = self._zero_some_rows(state)
        logits, state = self.model.step(batch["x"], state)
        self.carried[split] = detach_state(state)
        return logits

    def _zero_some_rows(self, state: State) -> State:
        """Each row's state becomes zero with probability ``zero_state_fraction``: otherwise
        training never sees the zero state that sampling starts from."""
        h = state[0] if isinstance(state, tuple) else state  # (layers, B, H)
        keep = torch.rand(h.size(1), device=h.device) >= self.zero_state_fraction  # (B,)
        mask = keep.to(h.dtype).view(1, -1, 1)
        return map_state(lambda part: part * mask, state)


class TeacherForcingModule(SequenceModule):
    def __init__(
        self, model: nn.Module, loss_fn: LossFn, trainer_cfg: DictConfig, teacher_forcing: float
    ) -> None:
        super().__init__(model, loss_fn, trainer_cfg)
        self.teacher_forcing = teacher_forcing

    def predict_batch(self, batch: dict[str, Tensor], split: str) -> Tensor:
        ratio = self.teacher_forcing if split == "train" else 1.0
        return self.model(batch["x"], batch["lengths"], batch["y"], ratio)
