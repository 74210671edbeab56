"""Config schemas and validation shared by the DVC stages and the Hydra app.

``conf/`` holds plain YAML so that DVC can compose it without importing rnnlab. The schemas
below are applied when a stage starts: unknown or misspelt keys, wrong types and values outside
the allowed choices fail before any work, with a message that names the key and the options.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from rnnlab.errors import ConfigError
from rnnlab.models.names import (
    ACTIVATIONS,
    ARCHS,
    ATTENTION_KINDS,
    DECODER_ATTENTION,
    INIT_SCHEMES,
    LINEAR_VARIANTS,
    NONLINEARITIES,
)

# The package's conf/: in a checkout a symlink to the repository's top-level conf/, in an
# installed wheel a copy of it (package data), so `rnnlab-train` works from any directory.
CONF_DIR = Path(__file__).resolve().parent / "conf"


def choice(default: Any, options: tuple[str, ...]) -> Any:
    """A string field restricted to ``options``; checked by :func:`validate`."""
    return field(default=default, metadata={"choices": options})


def monitored(*extra: str) -> Any:
    """A task schema's ``monitor`` field: the validation figure that checkpoints and early
    stopping follow (lowest first): ``val/loss``, or one of ``extra`` that the task logs."""
    return choice("val/loss", ("val/loss", *extra))


def best_key(monitor: str) -> str:
    """The ``train.json`` key of the monitored figure at the kept epoch (``best_val_loss``)."""
    return f"best_{monitor.replace('/', '_')}"


def at_least(
    default: Any, low: float, below: float | None = None, high: float | None = None
) -> Any:
    """A number field with ``low <= value`` (and ``value < below``, ``value <= high``); checked
    by :func:`validate`."""
    return field(default=default, metadata={"low": low, "below": below, "high": high})


@dataclass
class ForecastTaskConfig:
    name: str = "forecast"
    lookback: int = at_least(104, 1)
    horizon: int = at_least(13, 1)
    window_norm: str = choice("last", ("none", "last", "revin"))
    channel_independent: bool = True  # several targets: one shared network per target
    monitor: str = monitored()


@dataclass
class SplitPoints:
    """Where train, val and test end: row counts or dates (a date ends a split before the first
    row at or after it). All null: split by ``val_fraction`` / ``test_fraction``."""

    train_end: Any = None
    val_end: Any = None
    test_end: Any = None  # null: the end of the series


@dataclass
class ForecastDataConfig:
    name: str = "co2"
    source: str = choice("co2", ("co2", "sunspots", "macrodata", "csv"))
    path: str | None = None
    time_column: str = "date"
    target_columns: list[str] = field(default_factory=lambda: ["co2"])
    covariate_columns: list[str] = field(default_factory=list)
    seasonal_period: int | None = at_least(52, 1)  # null: inferred from the time index
    missing: str = choice("interpolate", ("interpolate", "ffill", "drop", "error"))
    unsorted: str = choice("sort", ("sort", "error"))  # rows out of time order: sort or refuse
    scaling: str = choice("standard", ("standard", "minmax", "none"))
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split: SplitPoints = field(default_factory=SplitPoints)  # set: overrides the fractions


@dataclass
class LMTaskConfig:
    name: str = "lm"
    bptt: int = at_least(100, 2)  # truncated-BPTT window: steps between state detaches
    embedding_dim: int = at_least(64, 1)
    tie_weights: bool = False  # share embedding and output matrix (embedding_dim == hidden)
    zero_state_fraction: float = at_least(0.0, 0.0, high=1.0)  # training rows reset per batch
    monitor: str = monitored()


@dataclass
class LMEvaluateConfig:
    """How the evaluation (and the logged model) samples text; changing it re-runs evaluate
    only."""

    sample_length: int = at_least(200, 1)
    temperature: float = at_least(0.8, 1e-6)
    top_k: int = at_least(20, 0)  # 0: sample from the whole vocabulary
    sample_prompts: list[str] | None = None  # null: the corpus's most common line starts


@dataclass
class LMDataConfig:
    name: str = "pydoc_topics"
    source: str = choice("pydoc_topics", ("pydoc_topics", "text_file"))
    path: str | None = None
    level: str = choice("char", ("char", "word"))
    max_chars: int | None = None  # keep only the first max_chars characters (quick runs)
    val_fraction: float = 0.05
    test_fraction: float = 0.05


@dataclass
class Seq2SeqTaskConfig:
    name: str = "seq2seq"
    attention: str = choice("additive", DECODER_ATTENTION)
    embedding_dim: int = at_least(32, 1)
    teacher_forcing: float = at_least(0.5, 0.0, high=1.0)
    monitor: str = monitored()


@dataclass
class Seq2SeqEvaluateConfig:
    """How the evaluation (and the logged model) decodes; changing it re-runs evaluate only."""

    decode: str = choice("greedy", ("greedy", "beam"))
    beam_width: int = at_least(4, 1)
    max_target_length: int = at_least(64, 1)  # decoding stops here if no end token came


@dataclass
class Seq2SeqDataConfig:
    name: str = "dates"
    source: str = choice("dates", ("dates", "pairs_tsv"))
    path: str | None = None
    level: str = choice("char", ("char", "word"))
    n_train: int = at_least(20000, 1)  # generated data (dates) only
    n_val: int = at_least(1000, 1)
    n_test: int = at_least(1000, 1)
    val_fraction: float = 0.1  # user pairs (pairs_tsv) only
    test_fraction: float = 0.1


@dataclass
class AudioFeatureConfig:
    """How recordings become feature frames (``rnnlab.data.audio.FeaturePipeline``)."""

    sample_rate: int = at_least(16000, 4000)  # every recording is resampled to this rate
    features: str = choice("logmel", ("logmel", "mfcc"))
    n_mels: int = at_least(40, 8)
    n_mfcc: int = at_least(13, 2)
    win_ms: float = at_least(25.0, 5.0)
    hop_ms: float = at_least(10.0, 1.0)
    cmvn: str = choice("utterance", ("global", "utterance", "running"))  # FeaturePipeline.cmvn
    # Extra copies of every training recording, each with fresh white noise at an SNR drawn
    # from data.snr_db (multi-condition training; validation and test are left alone).
    noisy_copies: int = at_least(0, 0)


@dataclass
class SynthSpeechConfig:
    """The generated eSpeak NG corpus (``rnnlab.data.speech_synth``), deterministic from seed."""

    n_train: int = at_least(2000, 1)
    n_val: int = at_least(200, 1)
    n_test: int = at_least(300, 1)
    val_voices: int = at_least(6, 1)  # voice variants only heard in validation
    test_voices: int = at_least(8, 1)  # ... and only in test: unseen voices
    rate: list[int] = field(default_factory=lambda: [130, 220])  # words per minute, min-max
    pitch: list[int] = field(default_factory=lambda: [25, 75])  # eSpeak pitch 0-100, min-max
    snr_db: list[float] = field(default_factory=lambda: [30.0, 20.0, 10.0])  # white noise
    seed: int = 1234  # data seed, separate from the model's so variants hear the same data


CLASSIFY_AUDIO = ("spoken_words", "audio_folder")  # generated words, your recordings


@dataclass
class SpecAugmentConfig:
    """SpecAugment-style masks on training audio features (``rnnlab.data.audio.spec_augment``):
    task=asr, and task=classify on audio."""

    spec_augment: bool = False  # time and frequency masks on training features
    freq_masks: int = at_least(2, 0)  # masks per example, each up to freq_width channels
    freq_width: int = at_least(6, 0)
    time_masks: int = at_least(2, 0)  # ... each up to time_width frames (and 1/5 of it)
    time_width: int = at_least(8, 0)
    # Vocal-tract-length perturbation: each training example's mel axis warped by a random
    # factor in [1 - freq_warp, 1 + freq_warp] (0: off; log-mel features only).
    freq_warp: float = at_least(0.0, 0.0, below=0.5)


@dataclass
class ClassifyTaskConfig(SpecAugmentConfig):
    name: str = "classify"
    embedding_dim: int = at_least(64, 1)  # token embedding size (text data only)
    # A deep ensemble: this many networks trained side by side, each on its own loss, and
    # their class probabilities averaged (costs that many times the training and inference).
    ensemble: int = at_least(1, 1)
    monitor: str = monitored()


@dataclass
class ClassifyDataConfig(AudioFeatureConfig, SynthSpeechConfig):
    """Labelled sequences: a built-in set, a long-format CSV, text files, or audio: generated
    spoken words or your recordings (see conf/data/)."""

    name: str = "japanese_vowels"
    source: str = choice(
        "japanese_vowels",
        ("japanese_vowels", "basic_motions", "sequences_csv", "text", *CLASSIFY_AUDIO),
    )
    path: str | None = None  # user data; CSV/TSV/JSONL for text
    test_path: str | None = None  # null: a stratified test split is carved from `path`
    label_column: str = "label"
    id_column: str = "sequence_id"  # long format: one row per (sequence, time step)
    step_column: str = "step"
    channel_columns: list[str] = field(default_factory=list)  # empty: every other column
    scaling: str = choice("standard", ("standard", "minmax", "none"))
    text_column: str = "text"
    level: str = choice("word", ("char", "word"))  # text tokens: characters or words
    lowercase: bool = True
    min_freq: int = at_least(1, 1)
    max_vocab: int = at_least(20000, 3)
    max_length: int = at_least(200, 1)
    val_fraction: float = at_least(0.15, 0.0, below=1.0)
    test_fraction: float = at_least(0.2, 0.0, below=1.0)


@dataclass
class LongRangeTaskConfig:
    name: str = "longrange"
    monitor: str = monitored()


@dataclass
class LongRangeDataConfig:
    """Synthetic long-range probes (``rnnlab.data.longrange``), generated from ``seed``."""

    name: str = "adding"
    problem: str = choice("adding", ("adding", "copy"))
    seq_len: int = at_least(100, 2)  # T: distance the information must travel
    copy_length: int = at_least(10, 1)  # copy only: K symbols to remember
    n_symbols: int = at_least(8, 2)  # copy only: alphabet size S
    n_train: int = at_least(10000, 1)
    n_val: int = at_least(1000, 1)
    n_test: int = at_least(1000, 1)
    seed: int = 1234  # data seed, separate from the model's so variants see the same data


@dataclass
class ASREvaluateConfig:
    """Which decoder the test examples show (the metrics report both); evaluate reads it."""

    decode: str = choice("greedy", ("greedy", "beam"))
    beam_width: int = at_least(8, 1)


@dataclass
class ASRTaskConfig(SpecAugmentConfig):
    name: str = "asr"
    subsample: int = at_least(2, 1)  # stack this many feature frames into one model step
    lookahead: int = at_least(0, 0)  # model steps of future each step also sees (latency)
    frame_context: int = at_least(4, 0)  # model=mlp: steps either side each output sees
    spec_augment: bool = True  # time and frequency masks on training features
    # val/cer: greedy validation CER, which can keep falling after the CTC loss turns up
    monitor: str = monitored("val/cer")


@dataclass
class ASRDataConfig(AudioFeatureConfig, SynthSpeechConfig):
    """Generated speech (``synth``) or your recordings (``files``: a manifest or a folder)."""

    name: str = "synth_speech"
    source: str = choice("synth", ("synth", "files"))
    path: str | None = None  # files: a CSV/TSV manifest or a folder under data/external/
    alphabet: str = "abcdefghijklmnopqrstuvwxyz' "
    val_fraction: float = at_least(0.1, 0.0, below=1.0)  # files: split by speaker if known
    test_fraction: float = at_least(0.1, 0.0, below=1.0)


@dataclass
class ModelConfig:
    name: str = "lstm"
    arch: str = choice("lstm", ARCHS)
    hidden_size: int = at_least(64, 1)
    num_layers: int = at_least(2, 1)
    dropout: float = at_least(0.1, 0.0, below=1.0)
    bidirectional: bool = False
    nonlinearity: str = choice("tanh", NONLINEARITIES)
    init: str = choice("default", INIT_SCHEMES)
    attention: str | None = choice(None, ATTENTION_KINDS)
    num_heads: int = at_least(4, 1)
    activation: str = choice("relu", ACTIVATIONS)
    dim_feedforward: int = at_least(128, 1)
    variant: str = choice("nlinear", LINEAR_VARIANTS)  # arch=linear only
    moving_avg: int = at_least(25, 1)  # dlinear's trend window (odd)
    segment_len: int | None = at_least(None, 1)  # rnn/lstm/gru/transformer: segment tokens


@dataclass
class OptimizerConfig:
    name: str = choice("adamw", ("adam", "adamw", "sgd"))
    lr: float = at_least(3e-3, 0.0)
    weight_decay: float = at_least(1e-4, 0.0)
    momentum: float = 0.9


@dataclass
class SchedulerConfig:
    name: str = choice("plateau", ("none", "plateau", "cosine"))
    factor: float = 0.5  # plateau only
    patience: int = 3  # plateau only
    warmup: float = at_least(0.0, 0.0, below=1.0)  # cosine only: fraction of training


@dataclass
class TrainerConfig:
    max_epochs: int = at_least(40, 1)
    batch_size: int = at_least(64, 1)
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = at_least(1, 1)  # machines; torchrun and srun set it themselves
    precision: str = choice("32-true", ("32-true", "16-mixed", "bf16-mixed", "64-true"))
    gradient_clip_val: float | None = 1.0
    gradient_clip_algorithm: str = choice("norm", ("norm", "value"))
    early_stopping_patience: int = at_least(8, 1)
    deterministic: bool = True
    num_workers: int = at_least(0, 0)
    flush_denormal: bool = True
    mkldnn: bool = True
    keep_freed_memory: bool = True  # glibc keeps freed buffers instead of re-faulting them
    num_threads: int | None = at_least(1, 1)  # torch CPU threads; null: one per core
    limit_train_batches: float = 1.0
    # Wall-clock budget for fitting (Lightning's max_time): "DD:HH:MM:SS", a dict such as
    # {minutes: 10}, or seconds; null: none. The best checkpoint so far is then evaluated.
    max_time: Any = None
    grad_flow_batches: int = at_least(2, 0)  # batches probed for ||dL/dh_t||; 0: off
    resume: bool = True  # continue an interrupted training of the same config from its checkpoint
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class LoggerConfig:
    backend: str = choice("mlflow", ("mlflow", "none"))
    tracking_uri: str | None = None
    experiment_name: str = "rnnlab"
    log_model: bool = True


# Keys that were renamed or moved: a config that still uses one is told where it went.
MOVED_KEYS = {
    **{f"task.{k}": f"evaluate.{k}" for k in ("decode", "beam_width", "max_target_length")},
    **{f"task.{k}": f"evaluate.{k}" for k in ("sample_length", "temperature", "top_k")},
    "task.sample_prompts": "evaluate.sample_prompts",
    "data.tokenizer": "data.level",
}


@dataclass
class Config:
    seed: int = 42
    task: Any = None
    data: Any = None
    evaluate: Any = None  # evaluation-only settings, per task (conf/evaluate/<task>.yaml)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def validate(cfg: DictConfig | dict) -> DictConfig:
    """Check ``cfg`` against the schemas and return a typed, read-only copy."""
    raw = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    from rnnlab.tasks import get_spec

    task_name = OmegaConf.select(raw, "task.name")
    spec = get_spec(task_name)
    task_schema, data_schema = spec.task_schema, spec.data_schema
    _check_data_fits_task(raw, task_name, data_schema)
    schema = OmegaConf.structured(Config)
    schema.task = OmegaConf.structured(task_schema)
    schema.data = OmegaConf.structured(data_schema)
    schema.evaluate = OmegaConf.structured(spec.evaluate_schema)
    try:
        merged = OmegaConf.merge(schema, raw)
    except ConfigKeyError as err:
        raise ConfigError(unknown_key_message(str(err.full_key), schema)) from None
    except OmegaConfBaseException as err:
        reason = str(err.msg).splitlines()[0]
        raise ConfigError(f"Invalid config value at `{err.full_key}`: {reason}") from None
    for section, dataclass_type in (
        ("task", task_schema),
        ("data", data_schema),
        ("evaluate", spec.evaluate_schema),
        ("model", ModelConfig),
        ("trainer", TrainerConfig),
        ("logger", LoggerConfig),
    ):
        _check_fields(merged[section], dataclass_type, section)
    _check_audio_augmentation(task_name, merged)
    max_time(merged.trainer)
    OmegaConf.set_readonly(merged, True)
    return merged


def _check_audio_augmentation(task_name: str, cfg: DictConfig) -> None:
    """SpecAugment and the mel-axis warp need audio features; the warp needs mel bands."""
    if "freq_warp" not in cfg.task:
        return
    if task_name == "classify" and cfg.data.source not in CLASSIFY_AUDIO:
        for key, off in (("spec_augment", False), ("freq_warp", 0.0)):
            if cfg.task[key] != off:
                raise ConfigError(
                    f"task.{key} augments audio features; data={cfg.data.name} is not audio "
                    f"(audio sources: {list(CLASSIFY_AUDIO)}): set task.{key}={str(off).lower()}."
                )
    if cfg.task.freq_warp and cfg.data.features != "logmel":
        raise ConfigError(
            f"task.freq_warp warps the mel axis; data.features={cfg.data.features} has none: "
            "use data.features=logmel or task.freq_warp=0."
        )


def training_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` without its ``evaluate`` section: all that train reads, saves with the model and
    logs, so an evaluation-only change never makes DVC retrain. Loading it back through
    :func:`validate` fills ``evaluate`` with the schema's defaults."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != "evaluate"])


TIME_UNITS = ("days", "hours", "minutes", "seconds")


def max_time(trainer_cfg: DictConfig) -> timedelta | None:
    """``trainer.max_time`` as a duration (None: no budget); a malformed value is a ConfigError."""
    value = trainer_cfg.max_time
    if value is None:
        return None
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value)
    try:
        if isinstance(value, str):
            parts = [float(part) for part in value.split(":")]
            if len(parts) != 4:
                raise ValueError
            budget = timedelta(**dict(zip(TIME_UNITS, parts, strict=True)))
        elif isinstance(value, dict):
            budget = timedelta(**{unit: float(value[unit]) for unit in value})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            budget = timedelta(seconds=value)
        else:
            raise ValueError
    except (ValueError, TypeError):
        raise ConfigError(
            f"`trainer.max_time={value}` is not a duration; write it as DD:HH:MM:SS (e.g. "
            f"trainer.max_time=00:00:10:00), a dict with keys {list(TIME_UNITS)} (e.g. "
            "'trainer.max_time={minutes: 10}') or a number of seconds."
        ) from None
    if budget <= timedelta(0):
        raise ConfigError(f"`trainer.max_time={value}` must be a positive duration (or null).")
    return budget


def _data_sources(data_schema: type) -> tuple[str, ...]:
    source = next((f for f in fields(data_schema) if f.name == "source"), None)
    return source.metadata.get("choices", ()) if source else ()


def data_configs_for(task_name: str, config_dir: Path = CONF_DIR) -> list[str]:
    """Names of the ``conf/data`` configs the task's data schema accepts: every key known to
    the schema and, if the schema restricts ``source``, an allowed source."""
    from rnnlab.tasks import get_spec

    schema = get_spec(task_name).data_schema
    names, sources = {f.name for f in fields(schema)}, _data_sources(schema)

    def fits(node: DictConfig) -> bool:
        keys = set(node.keys()) - {"defaults"}  # a defaults list composes shared keys in
        return keys <= names and (not sources or node.get("source") in sources)

    return sorted(p.stem for p in (config_dir / "data").glob("*.yaml") if fits(OmegaConf.load(p)))


def _check_data_fits_task(raw: DictConfig, task_name: str, data_schema: type) -> None:
    """A data config made for another task fails here, naming the data configs that fit."""
    source, sources = OmegaConf.select(raw, "data.source"), _data_sources(data_schema)
    if source is None or not sources or source in sources:
        return
    fitting = data_configs_for(task_name)
    raise ConfigError(
        f"data.source={source!r} is not data for task={task_name}; use one of the data "
        f"configs {fitting} (for example `task={task_name} data={fitting[0] if fitting else '?'}`)."
    )


def unknown_key_message(full_key: str, schema: DictConfig) -> str:
    """``Unknown config key ... Did you mean ...?`` for a key missing from ``schema``; a key
    that moved says where to."""
    if full_key in MOVED_KEYS:
        return f"`{full_key}` is now `{MOVED_KEYS[full_key]}`; rename it in your config."
    parent, _, key = full_key.rpartition(".")
    node = OmegaConf.select(schema, parent) if parent else schema
    allowed = sorted(node.keys()) if isinstance(node, DictConfig) else []
    hint = difflib.get_close_matches(key, allowed, n=1)
    did_you_mean = f" Did you mean `{parent + '.' if parent else ''}{hint[0]}`?" if hint else ""
    return f"Unknown config key `{full_key}`.{did_you_mean} Allowed keys here: {allowed}."


def _check_fields(node: DictConfig, dataclass_type: type, prefix: str) -> None:
    """Enforce the ``choice`` and ``at_least`` constraints, recursing into nested sections."""
    for f in fields(dataclass_type):
        value, key = node[f.name], f"{prefix}.{f.name}"
        options = f.metadata.get("choices")
        if options is not None and value is not None and value not in options:
            raise ConfigError(f"`{key}={value}` is not allowed; choose one of {list(options)}.")
        low, below, high = (f.metadata.get(k) for k in ("low", "below", "high"))
        if low is not None and value is not None:
            above = below if below is not None else math.inf
            if not (low <= value < above and (high is None or value <= high)):
                bound = f">= {low}" + (f" and < {below}" if below is not None else "")
                bound += f" and <= {high}" if high is not None else ""
                raise ConfigError(f"`{key}={value}` is out of range; it must be {bound}.")
        default = f.default_factory() if callable(f.default_factory) else None
        if is_dataclass(default):
            _check_fields(value, type(default), key)


def group_file_values(group: str, option: str, config_dir: Path = CONF_DIR) -> DictConfig:
    """The values ``conf/<group>/<option>.yaml`` sets itself: without its defaults list, and
    unwrapped when the file is in the global package (``task/forecast.yaml`` also chooses the
    default model, ``task/lm.yaml`` presets model and trainer keys, so their own keys sit under
    ``task:``)."""
    own = _conf_file(group, option, config_dir)
    return own.get(group, own)


def group_presets(group: str, option: str, config_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The other sections a global-packaged ``conf/<group>/<option>.yaml`` presets, e.g.
    ``{"model": {...}, "trainer": {...}}`` for ``task/lm.yaml``; empty for ordinary files."""
    own = _conf_file(group, option, config_dir)
    return {key: value for key, value in own.items() if key != group} if group in own else {}


def _conf_file(group: str, option: str, config_dir: Path) -> DictConfig:
    own = OmegaConf.load(config_dir / group / f"{option}.yaml")
    own.pop("defaults", None)
    return own


def load_params(path: Path | str = "params.yaml") -> DictConfig:
    """Load and validate a resolved config file such as DVC's ``params.yaml``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"{path} not found. Run the stage from the repository root, or regenerate it with "
            "`make params`."
        )
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and OmegaConf's own parse errors
        reason = str(err).splitlines()[0]
        raise ConfigError(
            f"{path} is not valid YAML ({reason}). Regenerate it from conf/ with `make params`."
        ) from None
    return validate(loaded)


def compose(overrides: list[str] | None = None, config_dir: Path = CONF_DIR) -> DictConfig:
    """Compose ``conf/`` the way DVC and the Hydra app do, resolved, without validation."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(config_dir), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=overrides or [])
    OmegaConf.resolve(cfg)
    return cfg


def dump_params(overrides: list[str] | None = None) -> str:
    """``params.yaml`` text exactly as ``dvc exp run`` writes it from ``conf/``."""
    return OmegaConf.to_yaml(compose(overrides))


if __name__ == "__main__":
    # `python -m rnnlab.config [overrides...] > params.yaml` (what `make params` runs)
    import sys

    text = dump_params(sys.argv[1:])
    validate(OmegaConf.create(text))
    print(text, end="")
