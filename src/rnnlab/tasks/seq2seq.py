"""Sequence-to-sequence: a source string in, a target string out (dates to ISO 8601 by default).

Evaluation decodes the test sources (greedy or beam search, per ``evaluate.decode``) and reports
exact match, token accuracy and BLEU, exact match by source length (where attention should
matter most), and attention heatmaps for a few examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import StackDataset

from rnnlab.data.checks import require_columns
from rnnlab.data.preprocessing import pad
from rnnlab.data.seq2seq import SPLITS, load_prepared
from rnnlab.data.text_tokens import BOS, EOS, PAD_ID, Vocabulary, tokenize
from rnnlab.lightning.sequence_modules import TeacherForcingModule
from rnnlab.model_store import TrainedModel
from rnnlab.models.seq2seq import Seq2Seq
from rnnlab.paths import RunPaths
from rnnlab.tasks.base import Evaluation, Task, TaskData
from rnnlab.tasks.inference import predict_batches
from rnnlab.tasks.recurrent_encoder_options import recurrent_options

LENGTH_BUCKETS = 4  # source-length quartiles for exact match by length
HEATMAPS = 4


class PairCodec:
    """Strings <-> padded id tensors with the vocabularies saved in the model's metadata."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.source = Vocabulary.from_dict(meta["source_vocab"])
        self.target = Vocabulary.from_dict(meta["target_vocab"])
        self.level = self.target.level
        self.bos, self.eos = self.target.index[BOS], self.target.index[EOS]

    def sources(self, texts: list[str], what: str | None = None) -> tuple[Tensor, Tensor]:
        """Right-padded source ids (N, S) and lengths (N,)."""
        x, lengths = self.source.encode_texts(texts, what=what)
        return torch.from_numpy(x), torch.from_numpy(lengths)

    def targets(self, texts: list[str]) -> Tensor:
        """Target ids followed by EOS, right-padded (N, T)."""
        ids = [[*self.target.encode(self.target.tokenize(t)), self.eos] for t in texts]
        return torch.from_numpy(pad([np.asarray(i, dtype=np.int64) for i in ids], np.int64)[0])


def pairs(frame: pd.DataFrame, codec: PairCodec) -> StackDataset:
    """``{"x", "lengths", "y"}`` items: padded source ids, source length, padded target ids."""
    x, lengths = codec.sources(list(frame["source"]))
    return StackDataset(x=x, lengths=lengths, y=codec.targets(list(frame["target"])))


def decode(
    model: Seq2Seq, codec: PairCodec, x: Tensor, lengths: Tensor, cfg: DictConfig, batch: int = 256
) -> list[str]:
    """Decode sources with the configured strategy (``cfg.evaluate``), in batches."""
    settings = cfg.evaluate

    def step(xb: Tensor, lb: Tensor) -> list[str]:
        xb = xb[:, : int(lb.max())]
        if settings.decode == "beam":
            ids = model.beam_search(xb, lb, settings.max_target_length, settings.beam_width)
        else:
            ids, _ = model.greedy(xb, lb, settings.max_target_length)
        return [codec.target.text(row) for row in ids]

    texts = predict_batches(model, x, lengths, step=step, batch_size=batch)
    return [text for batch_texts in texts for text in batch_texts]


def sequence_metrics(predictions: list[str], targets: list[str], level: str) -> dict[str, float]:
    """Exact match, token accuracy (reference tokens right at their position) and BLEU (0-100,
    on our tokens: characters at char level, words at word level)."""
    import sacrebleu

    pred_tokens = [tokenize(p, level) for p in predictions]
    ref_tokens = [tokenize(t, level) for t in targets]
    right = sum(
        sum(a == b for a, b in zip(p, r, strict=False))
        for p, r in zip(pred_tokens, ref_tokens, strict=True)
    )
    bleu = sacrebleu.corpus_bleu(
        [" ".join(p) for p in pred_tokens], [[" ".join(r) for r in ref_tokens]], tokenize="none"
    )
    return {
        "exact_match": float(np.mean([p == t for p, t in zip(predictions, targets, strict=True)])),
        "token_accuracy": right / max(1, sum(map(len, ref_tokens))),
        "bleu": float(bleu.score),
    }


class Seq2SeqTask(Task):
    name = "seq2seq"

    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        meta, frames = _pair_frames(paths)
        codec = PairCodec(meta)
        return TaskData(
            train=pairs(frames["train"], codec),
            val=pairs(frames["val"], codec),
            meta=meta,
        )

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module:
        options = recurrent_options(
            cfg, "its final state is not a left-to-right summary the decoder can start from."
        )
        codec = PairCodec(meta)
        return Seq2Seq(
            len(codec.source),
            len(codec.target),
            cfg.task.embedding_dim,
            attention=cfg.task.attention,
            pad=PAD_ID,
            bos=codec.bos,
            eos=codec.eos,
            **options,
        )

    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor:
        # Padding after EOS carries no signal.
        return nn.functional.cross_entropy(
            prediction.flatten(0, 1), batch["y"].flatten(), ignore_index=PAD_ID
        )

    def lightning_module(self, model: nn.Module, cfg: DictConfig) -> TeacherForcingModule:
        return TeacherForcingModule(model, self.loss, cfg.trainer, cfg.task.teacher_forcing)

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        return _pair_frames(paths, ("test",))[1]["test"][["source"]].head(3)

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """One decoded ``prediction`` per ``source`` row; unknown source tokens read as <unk>
        (with a warning)."""
        require_columns(frame, ["source"])
        codec = PairCodec(trained.meta)
        sources = [str(s) for s in frame["source"]]
        x, lengths = codec.sources(sources, what="The source")
        predictions = decode(trained.model, codec, x, lengths, trained.cfg)
        return pd.DataFrame({"source": sources, "prediction": predictions})

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        meta, frames = _pair_frames(paths)
        codec, test = PairCodec(meta), frames["test"]
        x, lengths = codec.sources(list(test["source"]))
        targets = list(test["target"])
        predictions = decode(model, codec, x, lengths, cfg)
        metrics = {"model": sequence_metrics(predictions, targets, codec.level), "pairs": len(test)}
        by_length = _by_length(lengths.numpy(), predictions, targets)
        metrics["model"]["exact_match_longest"] = float(by_length["exact_match"].iloc[-1])
        examples = "\n".join(
            f"{'ok ' if p == t else 'BAD'} {s!r} -> {p!r} (target {t!r})"
            for s, p, t in zip(test["source"][:30], predictions[:30], targets[:30], strict=True)
        )
        figures = {}
        if cfg.task.attention != "none":
            figures["seq2seq_attention"] = _attention_figure(model, codec, test, x, lengths)
        return Evaluation(
            metrics={"test": metrics},
            plot_tables={"seq2seq_exact_match_by_length": by_length},
            figures=figures,
            texts={"seq2seq_test_examples": examples},
        )


def _pair_frames(
    paths: RunPaths, splits: tuple[str, ...] = SPLITS
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The prepared pairs as frames of ``source`` and ``target`` strings."""
    meta, arrays = load_prepared(paths.prepared_dir, splits)
    return meta, {split: pd.DataFrame(part) for split, part in arrays.items()}


def _by_length(lengths: np.ndarray, predictions: list[str], targets: list[str]) -> pd.DataFrame:
    """Exact match per source-length quartile (the last row: the longest inputs)."""
    correct = np.array([p == t for p, t in zip(predictions, targets, strict=True)])
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, LENGTH_BUCKETS + 1)))
    bucket = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, len(edges) - 2)
    rows = [
        {
            "bucket": b,
            "min_length": int(lengths[bucket == b].min()),
            "max_length": int(lengths[bucket == b].max()),
            "pairs": int((bucket == b).sum()),
            "exact_match": float(correct[bucket == b].mean()),
        }
        for b in sorted(set(bucket.tolist()))
    ]
    return pd.DataFrame(rows)


def _attention_figure(
    model: Seq2Seq, codec: PairCodec, test: pd.DataFrame, x: Tensor, lengths: Tensor
) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The longest test sources: where attention has the most to show.
    chosen = np.argsort(-lengths.numpy(), kind="stable")[:HEATMAPS]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.5 * len(chosen), 4.2), squeeze=False)
    for ax, i in zip(axes[0], chosen, strict=True):
        n = int(lengths[i])
        ids, weights = model.greedy(x[i : i + 1, :n], lengths[i : i + 1], 64)
        out_tokens = [*codec.target.decode(ids[0]), EOS]
        grid = weights[0, : len(out_tokens), :n].numpy()  # (T, S)
        ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        src_tokens = [
            t.replace(" ", "\u2423") for t in codec.source.tokenize(test["source"].iloc[i])
        ]
        ax.set_xticks(range(n), src_tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(out_tokens)), out_tokens, fontsize=7)
        ax.set_title(test["source"].iloc[i][:40], fontsize=8)
    fig.suptitle("Attention of each output token over the source")
    fig.tight_layout()
    return fig
