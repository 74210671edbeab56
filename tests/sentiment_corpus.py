"""A small labelled sentiment corpus with a signal a model must learn, generated with a seed.

No labelled sentiment text ships offline. Each sentence praises or pans a film with words of
one polarity; a quarter of them negate the verdict ("was not great"), which flips the label,
so counting words alone is not enough.
"""

from __future__ import annotations

import random

import pandas as pd

POSITIVE = ["good", "great", "wonderful", "excellent", "delightful", "brilliant", "charming"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "horrible", "clumsy"]
NOUNS = ["film", "movie", "plot", "acting", "script", "ending", "soundtrack", "cast"]
OPENERS = ["honestly ,", "overall", "i think", "frankly", "in the end", "to me", ""]


def sentence(rng: random.Random) -> tuple[str, str]:
    positive = rng.random() < 0.5
    negated = rng.random() < 0.25
    word = rng.choice(POSITIVE if positive else NEGATIVE)
    noun = rng.choice(NOUNS)
    verdict = f"not {word}" if negated else word
    template = rng.choice(
        [
            "{o} the {n} was {v} .",
            "{o} this {n} is {v} , really .",
            "the {n} ? {v} .",
            "{o} i found the {n} {v} .",
        ]
    )
    text = template.format(o=rng.choice(OPENERS), n=noun, v=verdict).strip()
    return " ".join(text.split()), "positive" if positive != negated else "negative"


def make_corpus(n: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = [sentence(rng) for _ in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


if __name__ == "__main__":
    # Regenerates data/external/sentiment_example.csv (the default of conf/data/text.yaml).
    make_corpus(400, seed=7).to_csv("data/external/sentiment_example.csv", index=False)
