"""Language modelling: next-token prediction over one text, trained with truncated BPTT.

Training batches are the token stream laid out as ``batch_size`` parallel rows read in
consecutive windows of ``bptt`` steps (pytorch/examples ``word_language_model``); the state
is carried from window to window (``TruncatedBPTTModule``). Evaluation reports loss, bits per
token (per character at the default char level) and perplexity on val and test against
unigram, bigram and Kneser-Ney n-gram baselines on the same tokens, and samples a little text.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from rnnlab.data import read_prepared_meta
from rnnlab.data.checks import require_columns
from rnnlab.data.lm import load_prepared
from rnnlab.data.text_tokens import PAD_ID, UNK_ID, Vocabulary
from rnnlab.errors import ConfigError, DataError
from rnnlab.lightning.sequence_modules import TruncatedBPTTModule
from rnnlab.model_store import TrainedModel
from rnnlab.models.language_model import RecurrentLanguageModel, detach_state, sample
from rnnlab.paths import RunPaths
from rnnlab.tasks.base import Evaluation, Task, TaskData
from rnnlab.tasks.ngram import KneserNey, NgramBaselines
from rnnlab.tasks.recurrent_encoder_options import recurrent_options

EVAL_BATCH = 8  # parallel rows when scoring val/test: wide enough to be fast, few cut tokens


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Token stream (N,) -> (batch_size, N // batch_size): row b is the b-th contiguous slice.
    A view: on a memory-mapped stream nothing is read until a window is cut from it."""
    columns = len(ids) // batch_size
    return ids[: batch_size * columns].reshape(batch_size, columns)


def cut(rows: np.ndarray, row: int | slice, start: int, steps: int) -> Tensor:
    """``steps`` tokens of ``rows`` from column ``start`` on, read into an int64 tensor."""
    return torch.from_numpy(rows[row, start : start + steps].astype(np.int64))


class ContiguousBatches(Dataset):
    """Windows of the batchified stream, indexed so that an *unshuffled* DataLoader with
    ``batch_size`` rows yields window 0, window 1, ... with row b of each window continuing
    row b of the one before (item j is row ``j % batch_size`` of window ``j // batch_size``).
    Only whole windows are kept, so every batch has the same shape and the state always fits.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, bptt: int, split: str) -> None:
        self.rows = batchify(ids, batch_size)  # (B, N)
        self.batch_size, self.bptt = batch_size, bptt
        self.windows = (self.rows.shape[1] - 1) // bptt
        if self.windows < 1:
            raise DataError(
                f"The {split} split has {len(ids)} tokens: too few for one window of "
                f"trainer.batch_size={batch_size} rows x task.bptt={bptt} steps. Lower them, or "
                "use a longer text / a larger split fraction."
            )

    def __len__(self) -> int:
        return self.windows * self.batch_size

    def __getitem__(self, j: int) -> dict[str, Tensor]:
        window, row = divmod(j, self.batch_size)
        chunk = cut(self.rows, row, window * self.bptt, self.bptt + 1)  # (bptt + 1,)
        return {"x": chunk[:-1], "y": chunk[1:]}


@torch.no_grad()
def stream_loss(model: RecurrentLanguageModel, ids: np.ndarray, bptt: int) -> float:
    """Mean next-token cross-entropy (nats) over a whole split, state carried throughout."""
    model.eval()
    rows = batchify(ids, max(1, min(EVAL_BATCH, len(ids) // 2)))  # (B, N >= 2)
    total, count, state = 0.0, 0, None
    for start in range(0, rows.shape[1] - 1, bptt):
        chunk = cut(rows, slice(None), start, bptt + 1)  # (B, <= bptt + 1)
        logits, state = model.step(chunk[:, :-1], state)
        state = detach_state(state)
        target = chunk[:, 1:]
        total += float(
            nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum")
        )
        count += target.numel()
    return total / count


def scores(loss: float) -> dict[str, float]:
    """Loss in nats, bits per token (per character at char level) and perplexity."""
    return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss)}


def generate_text(
    trained: TrainedModel,
    prompt: str,
    length: int,
    temperature: float,
    top_k: int,
    seed: int | None = None,
) -> str:
    """Continue ``prompt`` (may be empty: then the text starts at a line start); characters (or
    words) outside the vocabulary are read as <unk> with a warning. Returns the continuation.

    The model first reads the end of its training text (``meta["warmup"]``, cut after a line
    break), then the prompt: truncated-BPTT training rarely starts from a zero state (only
    ``task.zero_state_fraction`` of its windows), so a prompt read from one starts badly."""
    vocab = Vocabulary.from_dict(trained.meta["vocab"])
    warmup = vocab.encode(vocab.tokenize(trained.meta.get("warmup", "")), what="The warm-up")
    ids = warmup + vocab.encode(vocab.tokenize(prompt), what="The prompt")
    if not ids:
        raise DataError("The prompt is empty and the model has no warm-up text; give a prompt.")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    new = sample(trained.model, ids, length, temperature, top_k, generator, never=(PAD_ID, UNK_ID))
    text = vocab.text(new)
    return text if vocab.level == "char" else " " + text


def sample_prompts(cfg: DictConfig, meta: dict[str, Any]) -> list[str]:
    """``evaluate.sample_prompts``, or when not set the text's most common line starts."""
    if cfg.evaluate.sample_prompts is not None:
        return list(cfg.evaluate.sample_prompts)
    return meta.get("line_starts") or [""]


class LanguageModelTask(Task):
    name = "lm"

    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        meta, ids = load_prepared(paths.prepared_dir)
        batch, bptt = cfg.trainer.batch_size, cfg.task.bptt
        return TaskData(
            train=ContiguousBatches(ids["train"], batch, bptt, "train"),
            val=ContiguousBatches(ids["val"], batch, bptt, "val"),
            meta={"vocab_size": len(meta["vocab"]["tokens"]), **meta},
            ordered=True,
        )

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module:
        options = recurrent_options(cfg, "a bidirectional language model would see the future.")
        return RecurrentLanguageModel(
            meta["vocab_size"],
            cfg.task.embedding_dim,
            tie_weights=cfg.task.tie_weights,
            max_timescale=cfg.task.bptt,  # the longest lag one backward pass can learn
            **options,
        )

    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return nn.functional.cross_entropy(prediction.flatten(0, 1), batch["y"].flatten())

    def lightning_module(self, model: nn.Module, cfg: DictConfig) -> TruncatedBPTTModule:
        if "ddp" in str(cfg.trainer.strategy):
            # A distributed sampler deals each process every n-th row: no row would continue.
            raise ConfigError(
                "task=lm carries the recurrent state from one batch to the next, which "
                f"trainer.strategy={cfg.trainer.strategy} would split across processes; "
                "train it in one process (trainer=default or trainer=gpu)."
            )
        return TruncatedBPTTModule(model, self.loss, cfg.trainer, cfg.task.zero_state_fraction)

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        meta = read_prepared_meta(paths.prepared_dir, "lm")
        # The corpus's own line start, not evaluate.sample_prompts: train reads no evaluate key.
        return pd.DataFrame({"prompt": (meta.get("line_starts") or [""])[:1]})

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """One continuation per ``prompt`` row, sampled with the ``evaluate`` section's length,
        temperature and top-k and seeded by ``seed``, so the same prompt gives the same text."""
        require_columns(frame, ["prompt"])
        sampling = trained.cfg.evaluate
        generated = [
            generate_text(
                trained,
                str(p),
                sampling.sample_length,
                sampling.temperature,
                sampling.top_k,
                trained.cfg.seed,
            )
            for p in frame["prompt"]
        ]
        return pd.DataFrame({"prompt": frame["prompt"].astype(str), "generated": generated})

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        meta, ids = load_prepared(paths.prepared_dir)
        baselines = NgramBaselines(ids["train"], len(meta["vocab"]["tokens"]))
        baselines.fit_weight(ids["val"])
        kneser_ney = KneserNey(ids["train"], len(meta["vocab"]["tokens"]))
        kneser_ney.fit_order(ids["val"])
        metrics: dict[str, Any] = {}
        for split in ("val", "test"):
            metrics[split] = {
                "model": scores(stream_loss(model, ids[split], cfg.task.bptt)),
                "unigram": scores(baselines.unigram_loss(ids[split])),
                "bigram": scores(baselines.bigram_loss(ids[split])),
                "kneser_ney": scores(kneser_ney.loss(ids[split])),
                "tokens": len(ids[split]),
            }
        metrics["test"]["bigram_weight"] = baselines.weight
        metrics["test"]["kneser_ney_order"] = kneser_ney.order
        trained = TrainedModel(cfg, meta, model)
        sampling = cfg.evaluate
        # One seed per prompt: with a shared seed, a short-memory model that has forgotten the
        # prompts would draw the very same continuation for each.
        samples = "\n\n".join(
            f"--- prompt {p!r} (temperature {sampling.temperature}, top-k {sampling.top_k}) ---\n"
            + p
            + generate_text(
                trained, p, sampling.sample_length, sampling.temperature, sampling.top_k, seed
            )
            for seed, p in enumerate(sample_prompts(cfg, meta), start=cfg.seed)
        )
        return Evaluation(metrics=metrics, texts={"lm_samples": samples})
