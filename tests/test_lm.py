"""Language modelling: contiguous batches, truncated BPTT, tying, baselines, sampling, bad input."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from rnnlab.config import LMEvaluateConfig
from rnnlab.data import prepare_task_data
from rnnlab.data.text_tokens import Vocabulary
from rnnlab.errors import ConfigError, DataError
from rnnlab.lightning.sequence_modules import TruncatedBPTTModule
from rnnlab.model_store import load_trained
from rnnlab.models.language_model import RecurrentLanguageModel, sample
from rnnlab.paths import RunPaths
from rnnlab.pipeline import run_pipeline
from rnnlab.tasks import get_task
from rnnlab.tasks.lm import ContiguousBatches, generate_text, sample_prompts
from rnnlab.tasks.ngram import KneserNey, NgramBaselines

TINY = ["logger=none", "trainer=fast", "trainer.grad_flow_batches=0", "model.hidden_size=32"]


@pytest.fixture
def lm_cfg(tmp_path: Path, compose_cfg):
    """``lm_cfg(text, *overrides, **data)``: a task=lm config on ``text`` written to a file."""

    def make(text: str | bytes | None, *overrides: str, **data):
        path = tmp_path / "corpus.txt"
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        elif isinstance(text, bytes):
            path.write_bytes(text)
        overrides = ("task=lm", "data=text_file", *TINY, *overrides)
        return compose_cfg(overrides, data={"path": str(path), **data})

    return make


def toy_corpus(n_sentences: int = 600, seed: int = 0) -> str:
    """Structured text a small model can learn: a few words in a fixed grammar."""
    rng = np.random.default_rng(seed)
    subjects, verbs, objects = ["the cat", "a dog", "my bird"], ["sees", "eats"], ["fish", "rice"]
    return "".join(
        f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}. "
        for _ in range(n_sentences)
    )


def test_contiguous_batches_continue_each_row_from_batch_to_batch() -> None:
    ids = np.arange(1000, dtype=np.int32)
    data = ContiguousBatches(ids, batch_size=4, bptt=10, split="train")
    batches = list(DataLoader(data, batch_size=4, shuffle=False))
    assert len(batches) == data.windows == (1000 // 4 - 1) // 10
    for first, second in itertools.pairwise(batches):
        assert first["x"].shape == (4, 10)
        # row b of the next window starts where row b of this one stopped
        assert torch.equal(second["x"][:, 0], first["x"][:, -1] + 1)
        assert torch.equal(first["y"], first["x"] + 1)  # targets: the next token
    assert torch.equal(batches[0]["x"][:, 0], torch.tensor([0, 250, 500, 750]))


def test_too_short_split_names_the_settings() -> None:
    with pytest.raises(DataError, match=r"trainer\.batch_size=64 rows x task\.bptt=64"):
        ContiguousBatches(np.arange(500, dtype=np.int32), 64, 64, "val")


def test_tbptt_carries_the_detached_state_into_the_next_batch(compose_cfg) -> None:
    torch.manual_seed(0)
    model = RecurrentLanguageModel(20, 8, 16, num_layers=2, cell="lstm")
    module = TruncatedBPTTModule(
        model, get_task("lm").loss, compose_cfg(["task=lm", "data=pydoc_topics"]).trainer
    )
    seen = []
    step = model.step
    model.step = lambda x, state=None: (seen.append(state), step(x, state))[1]
    data = ContiguousBatches(np.random.default_rng(0).integers(1, 20, 2000), 4, 12, "train")
    first, second = list(DataLoader(data, batch_size=4, shuffle=False))[:2]

    module.predict_batch(first, "train")
    carried = module.carried["train"]
    loss = module.loss_fn(module.predict_batch(second, "train"), second)
    assert seen[0] is None  # the epoch starts from a zero state
    assert seen[1] is carried  # ... and batch i+1 starts from the end of batch i
    assert all(not s.requires_grad and s.grad_fn is None for s in carried)  # detached (h, c)
    loss.backward()  # no "backward through the graph a second time": nothing crosses batches
    # The carried state is the real end state: recomputing batch 1 from zero gives it.
    _, state = step(first["x"])
    assert torch.allclose(state[0], carried[0]) and torch.allclose(state[1], carried[1])
    module.on_train_epoch_start()
    assert "train" not in module.carried  # reset at every epoch


def test_zero_state_fraction_restarts_some_training_rows_from_zero(compose_cfg) -> None:
    torch.manual_seed(0)
    model = RecurrentLanguageModel(20, 8, 16, num_layers=2, cell="lstm")
    cfg = compose_cfg(["task=lm", "data=pydoc_topics", "task.zero_state_fraction=0.5"])
    module = get_task("lm").lightning_module(model, cfg)
    seen = []
    step = model.step
    model.step = lambda x, state=None: (seen.append(state), step(x, state))[1]
    data = ContiguousBatches(np.random.default_rng(0).integers(1, 20, 20000), 64, 12, "train")
    first, second = list(DataLoader(data, batch_size=64, shuffle=False))[:2]

    for split in ("train", "val"):
        module.predict_batch(first, split)
        carried = module.carried[split]
        module.predict_batch(second, split)
        h, c = seen[-1]  # (layers, B, H) each, as the second batch started
        zeroed = (h == 0).all(dim=(0, 2)) & (c == 0).all(dim=(0, 2))  # (B,)
        kept = (h == carried[0]).all(dim=(0, 2)) & (c == carried[1]).all(dim=(0, 2))
        assert bool((zeroed | kept).all())  # a row is either restarted whole or carried whole
        if split == "train":
            assert 16 <= int(zeroed.sum()) <= 48  # about half of 64 rows
        else:
            assert not zeroed.any()  # validation always carries the state


def test_weight_tying_shares_one_tensor_and_needs_matching_sizes(compose_cfg) -> None:
    tied = RecurrentLanguageModel(30, 16, 16, tie_weights=True)
    assert tied.output.weight is tied.embedding.weight
    n_tied = sum(p.numel() for p in tied.parameters())
    untied = RecurrentLanguageModel(30, 16, 16)
    assert sum(p.numel() for p in untied.parameters()) - n_tied == 30 * 16
    cfg = compose_cfg(
        ["task=lm", "data=pydoc_topics", "task.tie_weights=true", "task.embedding_dim=256"]
    )
    built = get_task("lm").build_model(cfg, {"vocab_size": 30})
    assert built.output.weight is built.embedding.weight
    cfg = compose_cfg(
        ["task=lm", "data=pydoc_topics", "task.tie_weights=true", "model.hidden_size=32"]
    )
    with pytest.raises(ConfigError, match=r"set task\.embedding_dim=32 or task\.tie_weights=false"):
        get_task("lm").build_model(cfg, {"vocab_size": 30})


@pytest.mark.parametrize(
    ("model", "reason"),
    [("bilstm", "would see the future"), ("mlp", "not one"), ("lstm_attn", "pools an encoder")],
)
def test_models_that_cannot_be_language_models_are_refused(compose_cfg, model, reason) -> None:
    cfg = compose_cfg(["task=lm", "data=pydoc_topics", f"model={model}"])
    with pytest.raises(ConfigError, match=reason):
        get_task("lm").build_model(cfg, {"vocab_size": 30})


def test_lm_data_with_a_forecast_task_names_the_configs_that_fit(compose_cfg) -> None:
    with pytest.raises(ConfigError, match=r"\['pydoc_topics', 'text_file'\]"):
        compose_cfg(["task=lm", "data=co2"])
    with pytest.raises(ConfigError, match=r"task=seq2seq data=dates"):
        compose_cfg(["task=seq2seq", "data=pydoc_topics"])


def test_ngram_baselines_on_a_predictable_stream() -> None:
    train = np.tile(np.array([1, 2, 3, 4], dtype=np.int32), 500)  # 1 2 3 4 1 2 3 4 ...
    baselines = NgramBaselines(train, vocab_size=5)
    baselines.fit_weight(train[:100])
    assert baselines.unigram_loss(train) == pytest.approx(np.log(4), abs=0.01)
    assert baselines.weight == 0.99 and baselines.bigram_loss(train) < 0.05


def test_kneser_ney_picks_the_order_the_stream_needs_and_sums_to_one() -> None:
    # After "a" comes "b" or "c", alternately: a bigram cannot tell which; a trigram can.
    rng = np.random.default_rng(0)
    pattern = np.array([1, 2, 1, 3], dtype=np.int32)  # a b a c
    stream = np.concatenate(
        [pattern if rng.random() < 0.95 else rng.integers(1, 5, 4) for _ in range(3000)]
    ).astype(np.int32)
    train, val, test = stream[:10000], stream[10000:11000], stream[11000:]
    kneser_ney = KneserNey(train, vocab_size=5)
    bigram = NgramBaselines(train, vocab_size=5)
    bigram.fit_weight(val)
    assert kneser_ney.fit_order(val) >= 3
    assert kneser_ney.loss(test) < bigram.bigram_loss(test) - 0.3
    # a proper distribution over the next token, for seen and unseen histories
    for history in ([1, 2, 1], [3, 1, 2], [4, 4, 4], [0, 0, 1]):
        candidates = [kneser_ney._probs(np.array([*history, w]), 4)[-1] for w in range(5)]
        assert sum(candidates) == pytest.approx(1.0)


def test_kneser_ney_lower_orders_count_distinct_left_contexts() -> None:
    """Kneser-Ney's lower orders score a token by how many different tokens it follows, not by
    how often it occurs: after a context never seen, a token seen 11 times behind only two
    different tokens is less likely than one seen 3 times behind three (Chen & Goodman 1998)."""
    train = np.array([0, 1] * 10 + [0, 2, 1, 2, 3, 2, 4], dtype=np.int32)  # 4: never a context
    kneser_ney = KneserNey(train, vocab_size=5, max_order=2)
    p_often, p_spread = (kneser_ney._probs(np.array([4, w]), 2)[-1] for w in (1, 2))
    assert p_spread > 1.2 * p_often


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("  \n\n", "is empty"), (b"caf\xe9 au lait", "not UTF-8 .*line 1")],
)
def test_bad_text_files_are_refused_at_prepare(tmp_path, lm_cfg, content, message) -> None:
    cfg = lm_cfg(content)
    with pytest.raises(DataError, match=message):
        prepare_task_data(cfg, RunPaths(tmp_path / "job"))
    assert not (tmp_path / "job" / "data" / "prepared").exists()


def test_prepare_keeps_contiguous_splits_and_train_vocabulary(tmp_path, lm_cfg) -> None:
    text = "abcab" * 200 + "xyz" * 20  # "xyz" only in the test block
    cfg = lm_cfg(text)
    paths = RunPaths(tmp_path / "job")
    summary = prepare_task_data(cfg, paths)
    meta = (paths.prepared_dir / "meta.json").read_text()
    assert summary["train"] + summary["val"] + summary["test"] == len(text)
    assert '"x"' not in meta and meta.count("<unk>") == 1
    test_ids = np.load(paths.prepared_dir / "test.npy")
    assert (test_ids == 1).sum() == summary["test"]  # unseen characters are <unk> (id 1)
    assert (paths.raw_dir / "corpus.txt").read_text(encoding="utf-8") == text


def test_sampling_is_reproducible_and_stays_in_the_top_k() -> None:
    torch.manual_seed(0)
    model = RecurrentLanguageModel(12, 8, 16).eval()
    prompt = [3, 4, 5]

    def draw(seed: int, top_k: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return sample(model, prompt, 25, 1.5, top_k, generator, never=(0, 1))

    assert draw(1, 0) == draw(1, 0)
    assert draw(1, 0) != draw(2, 0)
    assert draw(1, 1) == draw(2, 1)  # top-1 is greedy whatever the seed
    tokens = draw(3, 3)
    for t, token in enumerate(tokens):  # replay: each draw was among the 3 likeliest
        logits, _ = model.step(torch.tensor([prompt + tokens[:t]]))
        allowed = logits[0, -1, 2:].topk(3).indices + 2  # <pad>, <unk> (ids 0, 1) never drawn
        assert token in allowed.tolist()


def test_trained_char_lm_beats_unigram_and_generates(tmp_path, lm_cfg) -> None:
    cfg = lm_cfg(
        toy_corpus(),
        "trainer.max_epochs=6",
        "trainer.limit_train_batches=1.0",
        "trainer.batch_size=8",
        "task.bptt=32",
        "evaluate.sample_length=30",
        'evaluate.sample_prompts=["the "]',
        "trainer.optimizer.lr=0.01",
    )
    result = run_pipeline(cfg, RunPaths(tmp_path / "job"))
    test = result["evaluate"]["test"]
    assert test["model"]["bpc"] < test["unigram"]["bpc"] - 1.0
    assert test["kneser_ney"]["loss"] < test["bigram"]["loss"] and test["kneser_ney_order"] >= 2
    assert test["model"]["bpc"] == pytest.approx(test["model"]["loss"] / np.log(2))
    assert test["model"]["perplexity"] == pytest.approx(np.exp(test["model"]["loss"]))

    trained = load_trained(tmp_path / "job" / "models")
    text = generate_text(trained, "the ", 40, 0.5, 5, seed=0)
    assert len(text) == 40 and text == generate_text(trained, "the ", 40, 0.5, 5, seed=0)
    with pytest.warns(UserWarning, match=r"outside the vocabulary.*'Q'"):
        assert len(generate_text(trained, "Qthe ", 10, 1.0, 0, seed=0)) == 10
    assert len(generate_text(trained, "", 10, 1.0, 0)) == 10  # starts from the warm-up alone
    frame = get_task("lm").predict_frame(trained, pd.DataFrame({"prompt": ["a "]}))
    # The model directory holds how it was trained, not evaluate.*: the defaults apply.
    default_length = LMEvaluateConfig().sample_length
    assert list(frame.columns) == ["prompt", "generated"]
    assert len(frame["generated"][0]) == default_length


def test_generate_cli_reads_a_model_directory(tmp_path, untrained_model_dir, capsys) -> None:
    from rnnlab.generate import main

    model_dir = untrained_model_dir(
        ["task=lm", "data=pydoc_topics", "data.max_chars=30000", "trainer.batch_size=8"]
    )
    args = ["--model", str(model_dir), "--prompt", "def ", "--length", "20", "--seed", "0"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("def ") and len(first) == len("def ") + 20 + 1
    assert main(args) == 0 and capsys.readouterr().out == first
    with pytest.raises(SystemExit) as exited:
        main(["--model", str(tmp_path / "nowhere"), "--prompt", "x"])
    assert exited.value.code == 2
    assert "neither a model directory" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="outside the vocabulary"):
            main([*args[:2], "--prompt", "\u2603 snow"])


def test_data_parallel_training_is_refused_for_carried_state(compose_cfg) -> None:
    cfg = compose_cfg(["task=lm", "data=pydoc_topics", "trainer=ddp"])
    with pytest.raises(ConfigError, match="strategy=ddp_spawn would split"):
        get_task("lm").lightning_module(RecurrentLanguageModel(10, 4, 4), cfg)


def play_corpus(n_lines: int = 900, seed: int = 0) -> str:
    """Lines of a play: a speaker (ROMEO twice as often as JULIET), a colon, a toy sentence."""
    rng = np.random.default_rng(seed)
    speakers = rng.choice(["ROMEO", "ROMEO", "JULIET"], size=n_lines)
    sentences = toy_corpus(n_lines, seed).split(". ")
    lines = zip(speakers, sentences, strict=False)  # the split leaves one empty tail
    return "".join(f"{who}: {said.strip()}.\n" for who, said in lines)


def test_generation_starts_from_a_warmed_up_state_and_corpus_prompts(tmp_path, lm_cfg) -> None:
    text = play_corpus()
    cfg = lm_cfg(
        text,
        "trainer.max_epochs=8",
        "trainer.batch_size=8",
        "task.bptt=32",
        "evaluate.sample_length=30",
        "trainer.optimizer.lr=0.01",
    )
    result = run_pipeline(cfg, RunPaths(tmp_path / "job"))
    trained = load_trained(tmp_path / "job" / "models")
    meta, model = trained.meta, trained.model
    # prompts come from the corpus when evaluate.sample_prompts is not set
    assert meta["line_starts"] == ["ROMEO: ", "JULIET: "]
    assert meta["warmup"].endswith("\n") and meta["warmup"] in text
    assert sample_prompts(cfg, meta) == ["ROMEO: ", "JULIET: "]
    assert (
        result["evaluate"]["test"]["model"]["loss"] < result["evaluate"]["test"]["bigram"]["loss"]
    )

    # The first characters of a held-out line read after the warm-up are likelier (by the
    # model) than read from a zero state, which truncated-BPTT training never sees.
    vocab = Vocabulary.from_dict(meta["vocab"])
    warmup = torch.tensor([vocab.encode(list(meta["warmup"]))])
    line = torch.tensor([vocab.encode(list("JULIET: my bird sees rice."))])
    model.eval()
    with torch.no_grad():
        _, state = model.step(warmup)
        warm = nn.functional.cross_entropy(model.step(line[:, :-1], state)[0][0], line[0, 1:])
        cold = nn.functional.cross_entropy(model.step(line[:, :-1])[0][0], line[0, 1:])
    assert float(warm) < float(cold), (float(warm), float(cold))

    # Prompt-less generation starts at a line start: a speaker's name and a colon.
    for seed in range(3):
        sample = generate_text(trained, "", 12, 0.5, 3, seed=seed)
        assert sample.split(":")[0] in ("ROMEO", "JULIET"), sample
    # A prompted sample continues with the corpus's frequent continuation: a space, a subject.
    assert generate_text(trained, "ROMEO:", 5, 0.5, 3, seed=0).startswith(" ")
