"""Sequence and text classification: a whole variable-length sequence in, one of K classes out.

Padding never changes a prediction: recurrent encoders pack the sequences, attention pooling and
the Transformer mask the padded steps, and the feed-forward baseline sees masked summaries.
Evaluation reports accuracy, macro-F1 and per-class precision/recall for the model, the
majority class and a logistic regression on simple summary features of the same split, and for
text a TF-IDF unigram+bigram logistic regression (C chosen on validation).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import Dataset, StackDataset

from rnnlab.data import read_prepared_meta
from rnnlab.data.audio import FeaturePipeline, audio_from_frame
from rnnlab.data.audio_sets import example_audio
from rnnlab.data.checks import model_input
from rnnlab.data.classify import load_prepared
from rnnlab.data.labelled_text import check_text_table
from rnnlab.data.preprocessing import Scaler, pad
from rnnlab.data.sequences import parse_long
from rnnlab.data.text_tokens import PAD_ID, Vocabulary
from rnnlab.model_store import TrainedModel
from rnnlab.models import ProbabilityEnsemble, build_network, lengths_to_mask
from rnnlab.paths import RunPaths
from rnnlab.tasks.audio_augment import augment_settings, augmented
from rnnlab.tasks.base import Evaluation, Task, TaskData
from rnnlab.tasks.classify_metrics import (
    classification_scores,
    confusion_figure,
    logistic_baseline,
    per_class_scores,
    tfidf_baseline,
)
from rnnlab.tasks.inference import predict_batches


def examples(arrays: dict[str, np.ndarray]) -> StackDataset:
    """Right-padded examples of one split: ``{"x", "lengths", "y"}`` per item; ``x`` is
    (N, T, C) float or (N, T) token ids, ``lengths`` and ``y`` (N,)."""
    return StackDataset(**{key: torch.from_numpy(arrays[key]) for key in ("x", "lengths", "y")})


class AugmentedExamples(Dataset):
    """Audio training examples freshly augmented on every draw (``audio_augment``): the warp
    and masks fall on each recording's real frames only, the padding stays zero."""

    def __init__(self, arrays: dict[str, np.ndarray], settings: dict[str, Any]) -> None:
        self.x, self.lengths, self.y = arrays["x"], arrays["lengths"], arrays["y"]
        self.settings = settings

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        x, length = self.x[i].copy(), int(self.lengths[i])
        x[:length] = augmented(x[:length], self.settings)
        return {
            "x": torch.from_numpy(x),
            "lengths": torch.as_tensor(self.lengths[i]),
            "y": torch.as_tensor(self.y[i]),
        }


def masked_mean_max(h: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, D) and true lengths -> mean and max over the real steps only, (B, 2D)."""
    mask = lengths_to_mask(lengths.to(h.device), h.size(1)).unsqueeze(-1)  # (B, T, 1)
    mean = h.masked_fill(~mask, 0.0).sum(dim=1) / lengths.to(h.device, h.dtype).unsqueeze(1)
    high = h.masked_fill(~mask, float("-inf")).amax(dim=1)
    return torch.cat([mean, high], dim=-1)  # (B, 2D)


class Classifier(nn.Module):
    """(B, T, C) values or (B, T) token ids, optional lengths (B,) -> class logits (B, K).

    Text goes through an ``nn.Embedding`` (id 0 is padding) into the same networks. The MLP
    baseline has no notion of time or length, so it gets the masked mean and max of every
    channel over the real steps, a fixed-size summary that padding cannot touch.
    """

    def __init__(self, network: nn.Module, embedding: nn.Embedding | None, summarise: bool) -> None:
        super().__init__()
        self.network, self.embedding, self.summarise = network, embedding, summarise

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)
        x = x[:, : int(lengths.max())]  # drop steps that are padding in every row
        h = self.embedding(x) if self.embedding is not None else x  # (B, T, D)
        if self.summarise:
            return self.network(masked_mean_max(h, lengths).unsqueeze(1))  # (B, 1, 2D) -> (B, K)
        return self.network(h, lengths)  # (B, K)


class ClassifyTask(Task):
    name = "classify"

    def load_data(self, cfg: DictConfig, paths: RunPaths) -> TaskData:
        meta, splits = load_prepared(paths.prepared_dir)
        settings = augment_settings(cfg.task)  # audio only (checked by config.validate)
        return TaskData(
            train=AugmentedExamples(splits["train"], settings)
            if settings
            else examples(splits["train"]),
            val=examples(splits["val"]),
            meta=meta,
        )

    def build_model(self, cfg: DictConfig, meta: dict[str, Any]) -> nn.Module:
        hparams = {k: v for k, v in cfg.model.items() if k not in ("name", "arch")}
        summarise = cfg.model.arch in ("mlp", "linear")
        text = meta["kind"] == "text"
        features = cfg.task.embedding_dim if text else meta["n_features"]

        def classifier() -> Classifier:
            network = build_network(
                cfg.model.arch,
                input_size=2 * features if summarise else features,
                output_size=len(meta["classes"]),
                seq_len=1 if summarise else None,
                **hparams,
            )
            embedding = (
                nn.Embedding(meta["n_tokens"], features, padding_idx=PAD_ID) if text else None
            )
            return Classifier(network, embedding, summarise)

        if cfg.task.ensemble == 1:
            return classifier()
        return ProbabilityEnsemble([classifier() for _ in range(cfg.task.ensemble)])

    def loss(self, prediction: Tensor, batch: dict[str, Tensor]) -> Tensor:
        # An ensemble in training gives every member's logits, (M, B, K): a loss per member.
        members = prediction.reshape(-1, *prediction.shape[-2:])  # (M, B, K)
        y = batch["y"].repeat(len(members))
        return nn.functional.cross_entropy(members.flatten(0, 1), y)

    def val_metrics(self, prediction: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"accuracy": (prediction.argmax(dim=-1) == batch["y"]).float().mean()}

    def example_frame(self, cfg: DictConfig, paths: RunPaths) -> pd.DataFrame:
        """A few raw test examples without their labels, as a user would send them."""
        meta = read_prepared_meta(paths.prepared_dir, "classify")
        if meta["kind"] == "audio":
            return example_audio(paths.raw_dir, meta["features"]["sample_rate"])
        name = "test.csv" if (paths.raw_dir / "test.csv").exists() else "train.csv"
        raw = pd.read_csv(paths.raw_dir / name)
        if meta["kind"] == "text":
            return raw[[meta["text_column"]]].head(3)
        first = raw[meta["id_column"]].drop_duplicates().head(2)
        return raw[raw[meta["id_column"]].isin(first)].drop(columns=cfg.data.label_column)

    def predict_frame(self, trained: TrainedModel, frame: pd.DataFrame) -> pd.DataFrame:
        """Raw input -> one row per example: its label and the probability of every class.

        Sequences come in the long format (id, step and channel columns, one row per step, any
        order); text as a column of raw strings named like the training data's text column;
        audio as an ``audio`` column of .wav/.flac paths or base64 WAV bytes.
        """
        meta = trained.meta
        if meta["kind"] == "audio":
            pipeline = FeaturePipeline(**meta["features"])
            waves = audio_from_frame(frame, pipeline.sample_rate, pipeline.min_samples)
            x, lengths = pad([pipeline(w) for w in waves])
            out = pd.DataFrame(index=range(len(frame)))
        elif meta["kind"] == "text":
            check_text_table(frame, "The input", meta["text_column"], None)
            vocab = Vocabulary.from_dict(meta["vocab"])
            texts = frame[meta["text_column"]].astype(str).tolist()
            x, lengths = vocab.encode_texts(texts, meta["max_length"])
            out = pd.DataFrame(index=range(len(frame)))
        else:
            sequences = parse_long(
                frame,
                "The input",
                id_column=meta["id_column"],
                step_column=meta["step_column"],
                label_column=None,
                channels=meta["channels"],
            )
            scaler = Scaler(**meta["scaler"])
            model_input(frame, meta["channels"], scaler.loc, scaler.scale)  # absurd values
            x, lengths = pad([scaler.transform(v) for v in sequences.values])
            out = pd.DataFrame({meta["id_column"]: sequences.ids})
        probs = predict_proba(trained.model, x, lengths)  # (N, K)
        out["label"] = np.asarray(meta["classes"])[probs.argmax(axis=1)]
        for k, name in enumerate(meta["classes"]):
            out[f"prob_{name}"] = probs[:, k]
        return out

    def evaluate(self, cfg: DictConfig, paths: RunPaths, model: nn.Module) -> Evaluation:
        meta, splits = load_prepared(paths.prepared_dir)
        classes, train, test = meta["classes"], splits["train"], splits["test"]
        predicted = predict_proba(model, test["x"], test["lengths"]).argmax(axis=1)
        majority = np.full_like(test["y"], np.bincount(train["y"]).argmax())
        logistic = logistic_baseline(meta, train, test, seed=cfg.seed)
        baselines = {"majority": majority, "logistic": logistic}
        if meta["kind"] == "text":
            baselines["tfidf"], tfidf_c = tfidf_baseline(train, splits["val"], test, cfg.seed)
        metrics = {
            "model": classification_scores(test["y"], predicted, len(classes)),
            **{
                name: classification_scores(test["y"], labels, len(classes))
                for name, labels in baselines.items()
            },
            "per_class": {
                _metric_safe(name): scores
                for name, scores in zip(
                    classes, per_class_scores(test["y"], predicted, len(classes)), strict=True
                )
            },
            "examples": len(test["y"]),
        }
        if meta["kind"] == "text":
            metrics["tfidf_c"] = tfidf_c
        names = np.asarray(classes)
        table = pd.DataFrame({"actual": names[test["y"]], "predicted": names[predicted]})
        title = (
            f"{meta['dataset']}: {cfg.model.name}, test accuracy {metrics['model']['accuracy']:.3f}"
        )
        return Evaluation(
            metrics={"test": metrics},
            plot_tables={"confusion": table},
            figures={"confusion": confusion_figure(test["y"], predicted, classes, title)},
        )


def predict_proba(model: nn.Module, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) for padded inputs, in batches, in eval mode."""
    logits = predict_batches(model, torch.from_numpy(x), torch.from_numpy(lengths))
    return torch.softmax(torch.cat(logits), dim=-1).numpy().astype(np.float64)


def _metric_safe(name: str) -> str:
    """Class names become MLflow metric-name parts: keep letters, digits, ``_ - .``."""
    return re.sub(r"[^\w\-.]", "_", name)
