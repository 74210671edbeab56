"""Sample text from a trained language model.

    python -m rnnlab.generate --model models --prompt "def " --length 200 \\
        --temperature 0.8 --top-k 20 --seed 0

``--model`` is a trained-model directory (``models/`` of a DVC run, or a Hydra job's
``<job>/models``) or an MLflow model URI (``runs:/<run id>/model``, ``models:/<name>@<alias>``).
Prompt characters (or words) outside the model's vocabulary are read as ``<unk>``, with a
warning that names them.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rnnlab.cli import user_errors_exit
from rnnlab.errors import ConfigError

if TYPE_CHECKING:
    from rnnlab.model_store import TrainedModel


def load_language_model(source: str) -> TrainedModel:
    """A trained LM from a directory or an MLflow model URI (``rnnlab.predict.load_model``)."""
    from rnnlab.predict import load_model

    trained = load_model(source)
    if trained.cfg.task.name != "lm":
        raise ConfigError(f"{source} is a {trained.cfg.task.name} model; generation needs task=lm.")
    return trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", required=True, help="model directory or MLflow model URI")
    parser.add_argument(
        "--prompt", default="", help="text to continue (default: none, start at a line start)"
    )
    parser.add_argument("--length", type=int, default=200, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="> 0; lower is safer")
    parser.add_argument(
        "--top-k", type=int, default=20, help="sample among the k likeliest; 0: all"
    )
    parser.add_argument("--seed", type=int, default=None, help="make the sample reproducible")
    args = parser.parse_args(argv)
    with user_errors_exit():
        if args.temperature <= 0 or args.length < 0 or args.top_k < 0:
            raise ConfigError("--temperature must be > 0; --length and --top-k must be >= 0.")
        from rnnlab.tasks.lm import generate_text

        trained = load_language_model(args.model)
        text = generate_text(
            trained, args.prompt, args.length, args.temperature, args.top_k, args.seed
        )
    print(args.prompt + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
