"""Recurrent language model (embedding -> RecurrentEncoder -> linear over the vocabulary) and
sampling from it, in the spirit of pytorch/examples ``word_language_model``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.errors import ConfigError
from rnnlab.models.encoders import RecurrentEncoder, State, map_state
from rnnlab.models.init import init_weights


def detach_state(state: State) -> State:
    """Cut the graph at a batch boundary (truncated BPTT), keeping the values; LSTM-aware."""
    return map_state(Tensor.detach, state)


class RecurrentLanguageModel(nn.Module):
    """Next-token logits for every step: (B, T) token ids -> (B, T, V).

    ``tie_weights`` makes the output layer reuse the embedding matrix (Press & Wolf 2017,
    Inan et al. 2017): fewer parameters and usually lower perplexity; it needs
    ``embedding_dim == hidden_size``. Dropout sits on the embeddings, between stacked layers
    (inside the encoder) and before the output layer.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        init: str = "default",
        max_timescale: int | None = None,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        if tie_weights and embedding_dim != hidden_size:
            raise ConfigError(
                f"task.tie_weights needs task.embedding_dim == model.hidden_size, got "
                f"{embedding_dim} and {hidden_size}; set task.embedding_dim={hidden_size} or "
                "task.tie_weights=false."
            )
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.drop = nn.Dropout(dropout)
        self.encoder = RecurrentEncoder(
            embedding_dim,
            hidden_size,
            num_layers,
            cell,
            nonlinearity,
            dropout=dropout,
            init=init,
            max_timescale=max_timescale,
        )
        self.output = nn.Linear(hidden_size, vocab_size)
        init_weights(self.output, init)
        if tie_weights:
            self.output.weight = self.embedding.weight

    def step(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x (B, T) ids, optional state -> logits (B, T, V) and the state after the last step."""
        embedded = self.drop(self.embedding(x))  # (B, T, E)
        outputs, _, state = self.encoder(embedded, None, state)  # (B, T, H)
        return self.output(self.drop(outputs)), state  # (B, T, V)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.step(x)[0]


@torch.no_grad()
def sample(
    model: RecurrentLanguageModel,
    prompt_ids: list[int],
    length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    never: tuple[int, ...] = (),
) -> list[int]:
    """Continue ``prompt_ids`` by ``length`` sampled tokens (the prompt is not repeated).

    Logits are divided by ``temperature``; with ``top_k > 0`` only the k most likely tokens can
    be drawn. Ids in ``never`` are never drawn (``<pad>``, and ``<unk>``: it stands for
    "something not in the vocabulary").
    """
    if not prompt_ids:
        raise ValueError("The prompt is empty; give at least one token to start from.")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    model.eval()
    logits, state = model.step(torch.tensor([prompt_ids]))
    last = logits[0, -1]  # (V,)
    generated: list[int] = []
    for _ in range(length):
        scores = last / temperature
        scores[list(never)] = float("-inf")
        if 0 < top_k < scores.numel():
            kth = scores.topk(top_k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator))
        generated.append(token)
        logits, state = model.step(torch.tensor([[token]]), state)
        last = logits[0, -1]
    return generated
