"""Speech recognition: audio in, text out, with a CTC acoustic model over log-mel frames.

Evaluation decodes the test utterances (unseen voices for the generated corpus) greedily and
with a prefix beam search, and reports character and word error rates for both, beside a
"prior" baseline that always answers the most frequent training transcript. Per-utterance
examples and a figure of spectrograms with their CTC posteriorgrams go to MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset

from rnnlab.data.asr import load_prepared, target_ids, utterances
from rnnlab.data.audio import FeaturePipeline, audio_from_frame
from rnnlab.data.audio_sets import example_audio
from rnnlab.data.preprocessing import pad
from rnnlab.errors import ConfigError
from rnnlab.model_store import TrainedModel
from rnnlab.models.acoustic import AcousticModel
from rnnlab.models.names import ACOUSTIC_ARCHS
from rnnlab.paths import RunPaths
from rnnlab.tasks.audio_augment import augment_settings, augmented
from rnnlab.tasks.base import Evaluation, Task, TaskData
from rnnlab.tasks.ctc import error_rates, greedy_decode, prefix_beam_search
from rnnlab.tasks.inference import predict_batches

FIGURE_UTTERANCES = 3
ACOUSTIC_OPTIONS = (
    "hidden_size", "num_layers", "dropout", "bidirectional", "nonlinearity", "init",
    "num_heads", "activation", "dim_feedforward",
)  # fmt: skip
EXAMPLES = 30


class UtteranceDataset(Dataset):
    """Utterances padded to the split's longest: ``{"x", "lengths", "y", "target_lengths"}``.

    With ``augment`` (training) every draw is freshly augmented (``audio_augment``).
    """

    def __init__(self, arrays: dict[str, np.ndarray], augment: dict[str, Any] | None) -> None:
        self.frames, self.targets, self.augment = utterances(arrays), target_ids(arrays), augment
        self.max_frames = max(len(f) for f in self.frames)
        self.max_target = max(len(t) for t in self.targets)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        frames, target = self.frames[i], self.targets[i]
        if self.augment:
            frames = augmented(frames, self.augment)
        (x,), length = pad([frames], np.float32, self.max_frames)
        (y,), target_length = pad([target], np.int64, self.max_target)
        return {
            "x": torch.from_numpy(x),
            "lengths": torch.from_numpy(length)[0],
            "y": torch.from_numpy(y),
            "target_lengths": torch.from_numpy(target_length)[0],
        }


def posteriors(model: AcousticModel, frames: list[np.ndarray], batch: int = 64) -> list[np.ndarray]:
    """Per-utterance CTC log-probabilities (T'_i, V), in eval mode, longest first per batch."""
    order = np.argsort([-len(f) for f in frames], kind="stable")

    def step(chosen: Tensor) -> list[np.ndarray]:
        x, lengths = pad([frames[i] for i in chosen.tolist()])
        log_probs, out_lengths = model(torch.from_numpy(x), torch.from_numpy(lengths))
        return [lp[: int(n)].numpy() for lp, n in zip(log_probs, out_lengths, strict=True)]

    batches = predict_batches(model, torch.from_numpy(order), step=step, batch_size=batch)
    out: list[np.ndarray] = [np.zeros(0)] * len(frames)
    for i, log_probs in zip(order, (lp for b in batches for lp in b), strict=True):
        out[i] = log_probs
    return out


def decode(log_probs: list[np.ndarray], alphabet: list[str], how: str, beam_width: int) -> list:
    def text(ids: list[int]) -> str:
        return "".join(alphabet[i] for i in ids)

    if how == "greedy":
        return [text(greedy_decode(lp)) for lp in log_probs]
    return [text(prefix_beam_search(lp, beam_width)) for lp in log_probs]


class ASRTask(Task):
    name = "asr"

    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        meta, splits = load_prepared(paths.prepared_dir)
        return TaskData(
            train=UtteranceDataset(splits["train"], augment_settings(cfg.task)),
            val=UtteranceDataset(splits["val"], None),
            meta=meta,
        )

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> AcousticModel:
        model = cfg.model
        if model.attention is not None or model.arch not in ACOUSTIC_ARCHS:
            raise ConfigError(
                f"model={model.name}: recognition needs an output per frame; use one of the "
                f"archs {list(ACOUSTIC_ARCHS)} without attention pooling (e.g. model=bigru, "
                "lstm, mlp or transformer)."
            )
        if model.segment_len is not None:
            raise ConfigError("model.segment_len does not apply to task=asr; use task.subsample.")
        return AcousticModel(
            model.arch,
            meta["n_features"],
            len(meta["alphabet"]),
            subsample=cfg.task.subsample,
            lookahead=cfg.task.lookahead,
            context=cfg.task.frame_context,
            **{key: model[key] for key in ACOUSTIC_OPTIONS},
        )

    def loss(self, prediction: tuple[Tensor, Tensor], batch: dict[str, Tensor]) -> Tensor:
        log_probs, out_lengths = prediction
        return nn.functional.ctc_loss(
            log_probs.transpose(0, 1),  # (T', B, V)
            batch["y"],
            out_lengths,
            batch["target_lengths"],
            blank=0,
            zero_infinity=True,  # an utterance too short for its transcript adds no gradient
        )

    def val_metrics(
        self, prediction: tuple[Tensor, Tensor], batch: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Greedy CER (``val/cer``): the figure a recogniser is judged by, and one that keeps
        falling after an over-confident model's CTC loss has turned up; ``task.monitor=val/cer``
        keeps the checkpoint it likes best."""
        log_probs, out_lengths = prediction

        def text(ids: list[int]) -> str:  # character ids as text: no alphabet needed
            return "".join(map(chr, ids))

        hypotheses = [
            text(greedy_decode(lp[: int(n)].float().cpu().numpy()))
            for lp, n in zip(log_probs, out_lengths, strict=True)
        ]
        references = [
            text(y[: int(n)].tolist())
            for y, n in zip(batch["y"], batch["target_lengths"], strict=True)
        ]
        cer = error_rates(hypotheses, references)["cer"]
        return {"cer": torch.tensor(cer)}

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        return example_audio(paths.raw_dir, cfg.data.sample_rate)

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """Audio in (an ``audio`` column: file paths or base64 WAV/FLAC) -> ``transcript``."""
        pipeline = FeaturePipeline(**trained.meta["features"])
        waves = audio_from_frame(frame, pipeline.sample_rate, pipeline.min_samples)
        log_probs = posteriors(trained.model, [pipeline(w) for w in waves])
        settings = trained.cfg.evaluate
        texts = decode(log_probs, trained.meta["alphabet"], settings.decode, settings.beam_width)
        return pd.DataFrame({"transcript": texts})

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        meta, splits = load_prepared(paths.prepared_dir)
        test, alphabet = splits["test"], meta["alphabet"]
        references = [str(t) for t in test["texts"]]
        frames = utterances(test)
        log_probs = posteriors(model, frames)
        greedy = decode(log_probs, alphabet, "greedy", 1)
        beam = decode(log_probs, alphabet, "beam", cfg.evaluate.beam_width)
        prior = pd.Series(splits["train"]["texts"]).mode().iloc[0]
        metrics = {
            "model": error_rates(greedy, references),
            "beam": error_rates(beam, references),
            "prior": error_rates([prior] * len(references), references),
            "utterances": len(references),
            "speakers": len(set(test["speakers"])),
        }
        chosen = beam if cfg.evaluate.decode == "beam" else greedy
        examples = pd.DataFrame(
            {"id": test["ids"], "speaker": test["speakers"], "reference": references,
             "greedy": greedy, "beam": beam}
        )  # fmt: skip
        examples["cer"] = [
            error_rates([h], [r])["cer"] for h, r in zip(chosen, references, strict=True)
        ]
        title = (
            f"{meta['dataset']}: {cfg.model.name}, test CER {metrics['model']['cer']:.3f}, "
            f"WER {metrics['model']['wer']:.3f}"
        )
        figure = posteriorgram_figure(frames, log_probs, alphabet, references, greedy, title)
        return Evaluation(
            metrics={"test": metrics},
            plot_tables={"asr_examples": examples.head(EXAMPLES)},
            figures={"asr_posteriorgram": figure},
            texts={"asr_test_examples": examples.to_string(index=False)},
        )


def posteriorgram_figure(
    frames: list[np.ndarray],
    log_probs: list[np.ndarray],
    alphabet: list[str],
    references: list[str],
    hypotheses: list[str],
    title: str,
) -> Any:
    """Log-mel spectrogram over the CTC posteriorgram (which character when) for a few test
    utterances; the blank row is drawn too, it takes most frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = min(FIGURE_UTTERANCES, len(frames))
    fig, axes = plt.subplots(2, count, figsize=(5 * count, 6.5), squeeze=False)
    for j in range(count):
        axes[0, j].imshow(frames[j].T, origin="lower", aspect="auto", cmap="magma")
        axes[0, j].set_title(f"ref: {references[j]}\nhyp: {hypotheses[j]}", fontsize=8)
        axes[0, j].set_ylabel("mel channel")
        axes[1, j].imshow(np.exp(log_probs[j]).T, origin="lower", aspect="auto", cmap="Greys")
        axes[1, j].set_yticks(range(len(alphabet)))
        axes[1, j].set_yticklabels(["_" if c == "_" else repr(c)[1:-1] for c in alphabet],
                                   fontsize=5)  # fmt: skip
        axes[1, j].set_xlabel("output frame")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
