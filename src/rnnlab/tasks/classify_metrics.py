"""Classification scores, the logistic-regression baseline and the confusion-matrix figure.

scikit-learn and matplotlib are imported inside the functions: only evaluation needs them, not
the logged model's ``predict``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def classification_scores(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 (every class weighs the same, whether it was seen in test or not)."""
    from sklearn.metrics import f1_score

    return {
        "accuracy": float(np.mean(y == predicted)),
        "macro_f1": float(
            f1_score(y, predicted, labels=range(n_classes), average="macro", zero_division=0)
        ),
    }


def per_class_scores(
    y: np.ndarray, predicted: np.ndarray, n_classes: int
) -> list[dict[str, float]]:
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, _, _ = precision_recall_fscore_support(
        y, predicted, labels=range(n_classes), zero_division=0
    )
    return [
        {"precision": float(p), "recall": float(r)} for p, r in zip(precision, recall, strict=True)
    ]


def summary_features(meta: dict[str, Any], split: dict[str, np.ndarray]) -> Any:
    """Order-free features for the non-neural baseline.

    Sequences: per channel the mean, standard deviation, min, max, first and last value over the
    real steps, plus the length. Text: bag of words, token counts divided by the text's length
    (a sparse matrix: vocabularies run to tens of thousands of tokens).
    """
    x, lengths = split["x"], split["lengths"]
    if meta["kind"] == "text":
        from scipy.sparse import csr_matrix

        rows, cols = np.nonzero(np.arange(x.shape[1])[None, :] < lengths[:, None])
        weights = 1.0 / lengths[rows]
        return csr_matrix((weights, (rows, x[rows, cols])), shape=(len(x), meta["n_tokens"]))
    real = (np.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]  # (N, T, 1)
    n = lengths[:, None].astype(np.float64)
    mean = np.where(real, x, 0).sum(axis=1) / n
    std = np.sqrt(np.where(real, (x - mean[:, None]) ** 2, 0).sum(axis=1) / n)
    low = np.where(real, x, np.inf).min(axis=1)
    high = np.where(real, x, -np.inf).max(axis=1)
    last = x[np.arange(len(x)), lengths - 1]
    return np.hstack([mean, std, low, high, x[:, 0], last, n])


def logistic_baseline(
    meta: dict[str, Any], train: dict[str, np.ndarray], test: dict[str, np.ndarray], seed: int
) -> np.ndarray:
    """Test predictions of a logistic regression fitted on the training split's summary features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler, StandardScaler

    scaler = MaxAbsScaler() if meta["kind"] == "text" else StandardScaler()
    model = make_pipeline(scaler, LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(summary_features(meta, train), train["y"])
    return model.predict(summary_features(meta, test))


TFIDF_C = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def token_ngrams(split: dict[str, np.ndarray]) -> list[list[str]]:
    """Every text's token ids as unigrams and bigrams ("12", "12_7"), padding dropped."""
    texts = []
    for row, length in zip(split["x"], split["lengths"], strict=True):
        ids = [str(i) for i in row[:length]]
        texts.append(ids + [f"{a}_{b}" for a, b in itertools.pairwise(ids)])
    return texts


def tfidf_baseline(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    seed: int,
) -> tuple[np.ndarray, float]:
    """Test predictions of a TF-IDF unigram+bigram logistic regression on the model's own
    tokens, with the inverse regularisation C chosen on the validation split; returns C too.
    A strong text baseline: on sentiment it rivals small recurrent models."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=lambda tokens: tokens, sublinear_tf=True, min_df=2)
    features = vectorizer.fit_transform(token_ngrams(train))
    val_features = vectorizer.transform(token_ngrams(val))
    best: tuple[float, float, Any] = (-1.0, 0.0, None)
    for c in TFIDF_C:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit(features, train["y"])
        accuracy = float((model.predict(val_features) == val["y"]).mean())
        if accuracy > best[0]:
            best = (accuracy, c, model)
    _, c, model = best
    return model.predict(vectorizer.transform(token_ngrams(test))), c


def confusion_figure(y: np.ndarray, predicted: np.ndarray, classes: list[str], title: str) -> Any:
    """Counts of (actual, predicted) pairs as an annotated heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (y, predicted), 1)
    size = min(3 + 0.6 * k, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(counts, cmap="Blues")
    if k <= 30:  # beyond that the numbers would be unreadable
        for (i, j), n in np.ndenumerate(counts):
            color = "white" if n > counts.max() / 2 else "black"
            ax.text(j, i, str(n), ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(k), classes, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
