"""Recurrent sequence encoder shared by every recurrent head (regression, language model, seq2seq).

The encoder only maps a sequence to hidden representations; it knows nothing about the task. It
returns the per-step outputs (for attention or per-step logits), a fixed-size summary of the whole
sequence (for classification/regression) and the recurrent state (for truncated BPTT or to
initialise a decoder).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.models.init import init_weights
from rnnlab.models.names import NONLINEARITIES, RECURRENT_ARCHS

# h_n for RNN/GRU, (h_n, c_n) for LSTM; each (num_layers * num_directions, B, H).
State = Tensor | tuple[Tensor, Tensor]


def hidden_of(state: State) -> Tensor:
    """h_n of a state, whatever the cell."""
    return state[0] if isinstance(state, tuple) else state


def map_state(fn: Callable[..., Tensor], *states: State) -> State:
    """``fn`` applied to h (and to c for an LSTM) of one or more states of the same cell."""
    if isinstance(states[0], tuple):
        return tuple(fn(*parts) for parts in zip(*states, strict=True))
    return fn(*states)


class RecurrentEncoder(nn.Module):
    """A (stacked, optionally bidirectional) RNN/LSTM/GRU over batch-first sequences.

    Right-padded batches are handled by packing when ``lengths`` is given, so the padding values
    never influence the outputs, the summary or the final state.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        dropout: float = 0.0,
        init: str = "default",
        max_timescale: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT_ARCHS:
            raise ValueError(f"Unknown cell {cell!r}; choose one of {RECURRENT_ARCHS}.")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"Unknown nonlinearity {nonlinearity!r}; choose one of {NONLINEARITIES}."
            )
        if cell != "rnn" and nonlinearity != "tanh":
            # LSTM/GRU have fixed gate nonlinearities; silently ignoring the option would make
            # a "relu LSTM" experiment identical to a plain LSTM one.
            raise ValueError(
                f"nonlinearity={nonlinearity!r} only applies to cell='rnn'; "
                f"{cell!r} has fixed gate nonlinearities (use nonlinearity='tanh')."
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")

        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions

        kwargs = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            # nn.RNN applies dropout between stacked layers only; with one layer it would just
            # emit a warning, so pass 0 there.
            dropout=dropout if num_layers > 1 else 0.0,
        )
        if cell == "rnn":
            self.rnn = nn.RNN(nonlinearity=nonlinearity, **kwargs)
        elif cell == "lstm":
            self.rnn = nn.LSTM(**kwargs)
        else:
            self.rnn = nn.GRU(**kwargs)
        init_weights(self.rnn, init, max_timescale)

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: State | None = None
    ) -> tuple[Tensor, Tensor, State]:
        """Encode ``x`` (B, T, F).

        Args:
            x: batch-first input, right-padded if ``lengths`` is given.
            lengths: optional (B,) true lengths; padded steps are then skipped entirely.
            state: optional initial state, same format as the returned one.

        Returns:
            outputs: (B, T, D) top-layer outputs, zeros at padded steps (D = ``output_size``).
            last: (B, D) representation of the whole sequence: the top layer's final hidden
                state(s). For a bidirectional encoder this concatenates the forward direction at
                the last real step and the backward direction at step 0.
            state: h_n, or (h_n, c_n) for an LSTM, each (num_layers * num_directions, B, H).
        """
        batch, steps, _ = x.shape
        if lengths is None:
            outputs, state = self.rnn(x, state)  # (B, T, D)
        else:
            # pack_padded_sequence wants int64 lengths on the CPU; enforce_sorted=False sorts
            # internally and restores the batch order of outputs and state.
            packed = pack_padded_sequence(
                x, lengths.to("cpu", dtype=torch.int64), batch_first=True, enforce_sorted=False
            )
            packed_outputs, state = self.rnn(packed, state)
            outputs, _ = pad_packed_sequence(
                packed_outputs, batch_first=True, total_length=steps
            )  # (B, T, D)

        h_n = hidden_of(state)  # (L * dirs, B, H)
        top = h_n.view(self.num_layers, self.num_directions, batch, self.hidden_size)[-1]
        last = top.transpose(0, 1).reshape(batch, self.output_size)  # (B, D)
        return outputs, last, state
