"""Weight initialisation schemes for recurrent and linear layers.

Recurrent nets are unusually sensitive to initialisation: the hidden-to-hidden matrix is applied
once per time step, so its spectrum decides whether gradients explode or vanish over long
sequences. The schemes here are the classic ones compared in the literature:

- ``default``: keep PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)) init (the baseline).
- ``xavier``: Glorot-uniform weights, zero biases.
- ``orthogonal``: orthogonal hidden-to-hidden blocks (all singular values 1, so the linear part
  neither grows nor shrinks the state), xavier input-to-hidden, zero biases and, for LSTMs, a
  forget-gate bias of 1 so the cell remembers by default (Jozefowicz et al. 2015).
- ``chrono``: ``orthogonal`` with the gate biases set for memory over up to ``max_timescale``
  steps (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?"): an LSTM's
  forget-gate bias ~ log(U(1, T_max - 1)) and input-gate bias its negative; a GRU's update-gate
  bias likewise. Each unit then starts out forgetting on its own timescale, spread up to T_max,
  instead of all of them forgetting within a few steps. Plain RNNs have no gates: orthogonal.
- ``identity``: the IRNN of Le et al. 2015 -- hidden-to-hidden = identity, zero biases, tiny
  input weights. Designed for ReLU RNNs, where the state is then copied unchanged step to step;
  for LSTM/GRU the identity is put in each gate's hidden-to-hidden block.

``nn.Linear`` layers (heads, attention projections) get xavier weights and zero biases under
every non-default scheme, so one scheme name configures the whole network.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.names import INIT_SCHEMES


def init_weights(module: nn.Module, scheme: str, max_timescale: int | None = None) -> None:
    """Initialise every nn.RNN/nn.LSTM/nn.GRU and nn.Linear inside ``module`` in place.

    ``max_timescale`` is the longest lag the ``chrono`` scheme prepares the gates for (the
    sequence length, usually); the other schemes ignore it.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"Unknown init scheme {scheme!r}; choose one of {INIT_SCHEMES}.")
    if scheme == "default":
        return
    for sub in module.modules():
        if isinstance(sub, (nn.RNN, nn.LSTM, nn.GRU)):
            _init_recurrent(sub, scheme, max_timescale)
        elif isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


@torch.no_grad()
def _init_recurrent(rnn: nn.RNN | nn.LSTM | nn.GRU, scheme: str, max_timescale: int | None) -> None:
    """Initialise a recurrent layer's parameters by name (weight_ih_l*, weight_hh_l*, bias_*)."""
    if scheme == "chrono" and (max_timescale is None or max_timescale < 3):
        raise ConfigError(
            "model.init=chrono spreads the gates' memory over up to the sequence length, which "
            f"is {max_timescale} here; it needs sequences of a known length of at least 3 "
            "steps (task=forecast, longrange or lm). Use model.init=orthogonal otherwise."
        )
    hidden = rnn.hidden_size
    for name, param in rnn.named_parameters():
        if name.startswith("weight_ih"):
            # (gates*H, F): input-to-hidden
            if scheme == "identity":
                nn.init.normal_(param, mean=0.0, std=0.001)
            else:
                nn.init.xavier_uniform_(param)
        elif name.startswith("weight_hh"):
            # (gates*H, H): one square (H, H) block per gate, stacked along dim 0
            for block in param.split(hidden, dim=0):
                if scheme == "xavier":
                    nn.init.xavier_uniform_(block)
                elif scheme in ("orthogonal", "chrono"):
                    nn.init.orthogonal_(block)
                else:  # identity
                    block.copy_(torch.eye(hidden, dtype=param.dtype, device=param.device))
        elif name.startswith("weight_hr"):
            # LSTM projection (proj_size > 0): not square in general, xavier is the safe choice.
            nn.init.xavier_uniform_(param)
        elif name.startswith("bias_"):
            nn.init.zeros_(param)
            # Only bias_ih is set: the effective bias is bias_ih + bias_hh.
            if name.startswith("bias_ih"):
                _init_gate_biases(rnn, param, scheme, max_timescale)


def _init_gate_biases(
    rnn: nn.RNN | nn.LSTM | nn.GRU, bias: torch.Tensor, scheme: str, max_timescale: int | None
) -> None:
    """Gate biases: LSTM gates are (input, forget, cell, output), GRU gates (reset, update, new)."""
    gates = bias.split(rnn.hidden_size)
    if scheme == "chrono" and isinstance(rnn, (nn.LSTM, nn.GRU)):
        timescale = torch.empty_like(gates[0]).uniform_(1.0, max_timescale - 1.0)
        gates[1].copy_(torch.log(timescale))  # LSTM forget / GRU update gate: keep the state
        if isinstance(rnn, nn.LSTM):
            gates[0].copy_(-torch.log(timescale))  # write in as much as is forgotten
    elif scheme == "orthogonal" and isinstance(rnn, nn.LSTM):
        gates[1].fill_(1.0)  # remember by default (Jozefowicz et al. 2015)
