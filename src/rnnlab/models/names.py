"""The names every model option accepts: the one source of the allowed values.

Free of torch, so ``rnnlab.config`` offers them as choices without importing a network; the
builders in this package check against the same tuples.
"""

from __future__ import annotations

RECURRENT_ARCHS: tuple[str, ...] = ("rnn", "lstm", "gru")  # also the recurrent cells
ARCHS: tuple[str, ...] = (*RECURRENT_ARCHS, "mlp", "transformer", "linear")
SEGMENT_ARCHS: tuple[str, ...] = (*RECURRENT_ARCHS, "transformer")  # can read segment tokens
LINEAR_VARIANTS: tuple[str, ...] = ("nlinear", "dlinear")  # arch=linear only
ACOUSTIC_ARCHS: tuple[str, ...] = (*RECURRENT_ARCHS, "mlp", "transformer")  # an output per frame
NONLINEARITIES: tuple[str, ...] = ("tanh", "relu")  # arch=rnn only
INIT_SCHEMES: tuple[str, ...] = ("default", "xavier", "orthogonal", "chrono", "identity")
ATTENTION_KINDS: tuple[str, ...] = ("additive", "dot", "multihead")  # pooling an encoder
DECODER_ATTENTION: tuple[str, ...] = ("none", "additive", "dot", "general")  # seq2seq decoder
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu")  # arch=mlp only
