"""Recurrent encoder-decoder with optional attention, teacher forcing, greedy and beam search.

The encoder is a ``RecurrentEncoder`` over source embeddings; its final state starts the decoder,
another ``RecurrentEncoder`` run one step at a time. With attention, each step's query is the
decoder's top hidden state before the step (Bahdanau et al. 2015); the context vector is fed into
the step with the previous token's embedding and again into the output layer (Luong et al. 2015).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.models.attention import build_attention, lengths_to_mask
from rnnlab.models.encoders import RecurrentEncoder, State, hidden_of, map_state
from rnnlab.models.init import init_weights
from rnnlab.models.names import DECODER_ATTENTION


def build_decoder_attention(kind: str, dim: int) -> nn.Module | None:
    if kind not in DECODER_ATTENTION:
        raise ValueError(f"Unknown attention {kind!r}; choose one of {DECODER_ATTENTION}.")
    return None if kind == "none" else build_attention(kind, dim)


def _select(state: State, index: Tensor) -> State:
    """Pick batch rows ``index`` of a state (beams that survive a step)."""
    return map_state(lambda s: s[:, index], state)


class Seq2Seq(nn.Module):
    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        init: str = "default",
        attention: str = "additive",
        pad: int = 0,
        bos: int = 2,
        eos: int = 3,
    ) -> None:
        super().__init__()
        self.pad, self.bos, self.eos = pad, bos, eos
        recurrent = dict(
            hidden_size=hidden_size,
            num_layers=num_layers,
            cell=cell,
            nonlinearity=nonlinearity,
            dropout=dropout,
            init=init,
        )
        context_size = 0 if attention == "none" else hidden_size
        self.source_embedding = nn.Embedding(source_vocab, embedding_dim, padding_idx=pad)
        self.target_embedding = nn.Embedding(target_vocab, embedding_dim)
        self.encoder = RecurrentEncoder(embedding_dim, **recurrent)
        self.decoder = RecurrentEncoder(embedding_dim + context_size, **recurrent)
        self.attention = build_decoder_attention(attention, hidden_size)
        self.output = nn.Linear(hidden_size + context_size, target_vocab)
        init_weights(self.output, init)
        if self.attention is not None:
            init_weights(self.attention, init)

    def encode(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, State]:
        """x (B, S) ids -> memory (B, S, H), mask (B, S) True at real steps, final state."""
        memory, _, state = self.encoder(self.source_embedding(x), lengths)
        return memory, lengths_to_mask(lengths.to(x.device), x.size(1)), state

    def decode_step(
        self, token: Tensor, state: State, memory: Tensor, mask: Tensor
    ) -> tuple[Tensor, State, Tensor | None]:
        """token (B,) -> logits (B, V), new state, attention weights (B, S) or None."""
        embedded = self.target_embedding(token)  # (B, E)
        if self.attention is None:
            out, _, state = self.decoder(embedded.unsqueeze(1), None, state)  # (B, 1, H)
            return self.output(out[:, 0]), state, None
        context, weights = self.attention(hidden_of(state)[-1], memory, mask)  # (B, H), (B, S)
        step_in = torch.cat([embedded, context], dim=-1).unsqueeze(1)  # (B, 1, E + H)
        out, _, state = self.decoder(step_in, None, state)  # (B, 1, H)
        return self.output(torch.cat([out[:, 0], context], dim=-1)), state, weights

    def forward(
        self,
        x: Tensor,
        lengths: Tensor,
        target: Tensor | None = None,
        teacher_forcing: float = 1.0,
    ) -> Tensor:
        """Logits (B, T, V) for ``target`` (B, T) (ends with EOS, then padding).

        At each step the true previous token is fed with probability ``teacher_forcing``, else
        the model's own previous prediction (scheduled sampling, Bengio et al. 2015).
        """
        if target is None:
            raise ValueError(
                "Seq2Seq.forward needs the target for its loss; use greedy() to decode."
            )
        memory, mask, state = self.encode(x, lengths)
        token = torch.full_like(target[:, 0], self.bos)  # (B,)
        steps = []
        for t in range(target.size(1)):
            logits, state, _ = self.decode_step(token, state, memory, mask)
            steps.append(logits)
            use_truth = teacher_forcing >= 1.0 or float(torch.rand(())) < teacher_forcing
            token = target[:, t] if use_truth else logits.argmax(-1)
        return torch.stack(steps, dim=1)  # (B, T, V)

    @torch.no_grad()
    def greedy(
        self, x: Tensor, lengths: Tensor, max_len: int
    ) -> tuple[list[list[int]], Tensor | None]:
        """Most likely token at each step, until EOS: ids without EOS, weights (B, T, S) or None."""
        memory, mask, state = self.encode(x, lengths)
        token = torch.full((x.size(0),), self.bos, dtype=torch.long, device=x.device)
        tokens, weights = [], []
        done = torch.zeros(x.size(0), dtype=torch.bool, device=x.device)
        for _ in range(max_len):
            logits, state, step_weights = self.decode_step(token, state, memory, mask)
            token = logits.argmax(-1)  # (B,)
            tokens.append(token)
            if step_weights is not None:
                weights.append(step_weights)
            done |= token == self.eos
            if bool(done.all()):
                break
        ids = torch.stack(tokens, dim=1).tolist()  # (B, T)
        cut = [row[: row.index(self.eos)] if self.eos in row else row for row in ids]
        return cut, torch.stack(weights, dim=1) if weights else None

    @torch.no_grad()
    def beam_search(self, x: Tensor, lengths: Tensor, max_len: int, width: int) -> list[list[int]]:
        """Beam search, one source at a time; the highest total log-probability wins.

        Finished hypotheses (EOS) leave the beam; the search stops once no live hypothesis can
        beat the best finished one (log-probabilities only fall). Width 1 is greedy decoding.
        """
        return [
            self._beam_one(x[i : i + 1, : int(lengths[i])], lengths[i : i + 1], max_len, width)
            for i in range(x.size(0))
        ]

    def _beam_one(self, x: Tensor, lengths: Tensor, max_len: int, width: int) -> list[int]:
        memory, mask, state = self.encode(x, lengths)
        sequences: list[list[int]] = [[]]
        scores = torch.zeros(1)
        token = torch.tensor([self.bos])
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_len):
            k = len(sequences)
            logits, state, _ = self.decode_step(
                token, state, memory.expand(k, -1, -1), mask.expand(k, -1)
            )
            total = torch.log_softmax(logits, dim=-1) + scores[:, None]  # (k, V)
            best, flat = total.view(-1).topk(min(width, total.numel()))
            vocab = total.size(1)
            keep, new_sequences = [], []
            for score, index in zip(best.tolist(), flat.tolist(), strict=True):
                beam, tok = divmod(index, vocab)
                if tok == self.eos:
                    finished.append((score, sequences[beam]))
                else:
                    keep.append((beam, tok, score))
                    new_sequences.append([*sequences[beam], tok])
            if not keep or (finished and max(f[0] for f in finished) >= keep[0][2]):
                break
            rows = torch.tensor([b for b, _, _ in keep])
            state, sequences = _select(state, rows), new_sequences
            scores = torch.tensor([s for _, _, s in keep])
            token = torch.tensor([t for _, t, _ in keep])
        if finished:
            return max(finished, key=lambda f: f[0])[1]
        return sequences[int(scores.argmax())]
