"""Synthetic speech corpora from eSpeak NG (the ``espeakng-loader`` wheel: library + voices).

No recorded speech ships offline, so the default speech data is synthesised in ``prepare``:
spoken digit strings and short command phrases (ASR), or single command words (spoken-word
classification), each said by a *speaker* (an English accent with a voice variant, e.g.
``en-us+f3``) at a random rate and pitch. Train, validation and test speakers use disjoint
voice variants, so the test split measures voices never heard in training. Everything is
deterministic from the seed. Noise is not synthesised here but added later (``add_noise``).

Training can also hear *mixed* voices (``mixed_variants``): new variant files whose traits
(pitch, formants, voicing, breath, ...) each come from a different training variant, so the
model meets combinations no single training voice has, without hearing a validation or test one.
"""

from __future__ import annotations

import ctypes
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.errors import DataError

ESPEAK_RATE = 22050
ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
# Voice variants (eSpeak's voices/!v); the eccentric ones (whisper, robots, croak) are left out.
VARIANTS = (
    *(f"m{i}" for i in range(1, 9)),
    *(f"f{i}" for i in range(1, 6)),
    "adam", "Alex", "Andy", "anika", "aunty", "benjamin", "boris", "caleb", "david", "ed",
    "edward", "Gene", "grandma", "grandpa", "Henrique", "Hugo", "ian", "iven", "Jacky", "john",
    "klatt", "klatt2", "klatt3", "Lee", "linda", "max", "Michael", "Mike", "norbert", "paul",
    "pedro", "quincy", "Reed", "rob", "robert", "steph", "travis", "victor", "zac",
)  # fmt: skip

MIXED = "mixed"  # mixed voice variants are named mixed01, mixed02, ...
# The keywords of an eSpeak variant file that a mixed voice takes together, from one donor.
_TRAITS = (
    ("gender", "pitch"), ("formant",), ("voicing",), ("consonants",), ("breath", "breathw"),
    ("flutter",), ("roughness",), ("tone",), ("klatt",), ("echo",), ("intonation",),
    ("stressAdd", "stressAmp", "stressLength"),
)  # fmt: skip

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
_ROOMS = ("kitchen", "bedroom", "living room", "hall", "garden", "office")
_NUMBERS = (*DIGITS[1:], "ten", "fifteen", "twenty", "thirty")
_TEMPLATES = (
    lambda r: f"turn {r.choice(['on', 'off'])} the {r.choice(_ROOMS)} lights",
    lambda r: f"set a timer for {r.choice(_NUMBERS)} minutes",
    lambda r: f"play {r.choice(['some music', 'the news', 'the radio', 'a podcast'])}",
    lambda r: f"{r.choice(['open', 'close', 'lock'])} the {r.choice(['door', 'window', 'garage'])}",
    lambda r: f"call {r.choice(['mom', 'dad', 'home', 'the office'])}",
    lambda r: f"what is the weather {r.choice(['today', 'tomorrow', 'like'])}",
    lambda r: f"move {r.choice(COMMAND_WORDS[2:6])} {r.choice(_NUMBERS)} steps",
)


@dataclass(frozen=True)
class Speaker:
    accent: str
    variant: str

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


def speakers_by_split(seed: int, val_variants: int, test_variants: int) -> dict[str, list[Speaker]]:
    """Every accent with disjoint sets of voice variants per split (test: unseen voices)."""
    variants = list(np.random.default_rng(seed).permutation(VARIANTS))
    if val_variants + test_variants >= len(variants):
        raise DataError(
            f"{val_variants} validation + {test_variants} test voice variants leave none for "
            f"training (there are {len(variants)}); lower data.val_voices or data.test_voices."
        )
    chosen = {
        "test": variants[:test_variants],
        "val": variants[test_variants : test_variants + val_variants],
        "train": variants[test_variants + val_variants :],
    }
    return {
        split: [Speaker(accent, str(v)) for v in names for accent in ACCENTS]
        for split, names in chosen.items()
    }


def mixed_variants(donors: Sequence[str], count: int, seed: int) -> dict[str, str]:
    """``count`` new eSpeak voice variant files (name -> text), each trait of each taken from a
    donor variant drawn at random: the training voices recombined. Deterministic from ``seed``."""
    by_keyword = [_variant_lines(name) for name in donors]
    rng = np.random.default_rng([seed, 2_654_435_761])
    variants = {}
    for k in range(1, count + 1):
        name = f"{MIXED}{k:02d}"
        lines = ["language variant", f"name {name}"]
        for trait in _TRAITS:
            donor = by_keyword[int(rng.integers(len(by_keyword)))]
            lines += [line for keyword in trait for line in donor.get(keyword, [])]
        variants[name] = "\n".join(lines) + "\n"
    return variants


def _variant_lines(name: str) -> dict[str, list[str]]:
    """The lines of eSpeak's voice variant ``name``, by their first word."""
    text = (Path(_loader().get_data_path()) / "voices" / "!v" / name).read_text(encoding="utf-8")
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if words:
            lines.setdefault(words[0], []).append(" ".join(words))
    return lines


def sentence(rng: np.random.Generator) -> str:
    """A digit string (1-6 digits) or a command phrase from the grammar, half and half."""
    if rng.random() < 0.5:
        return " ".join(rng.choice(DIGITS, size=int(rng.integers(1, 7))))
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template(rng)


class _Espeak:
    """The eSpeak NG library in synchronous mode; samples arrive through a callback."""

    _CALLBACK = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )
    RATE, PITCH = 1, 3  # espeak_PARAMETER values

    def __init__(self, data_path: str) -> None:
        self.lib = ctypes.cdll.LoadLibrary(_loader().get_library_path())
        rate = self.lib.espeak_Initialize(2, 0, data_path.encode(), 0)
        if rate != ESPEAK_RATE:
            raise DataError(f"eSpeak NG failed to initialise (returned {rate}).")
        self.chunks: list[np.ndarray] = []

        def collect(wav, n, _events):
            if n > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = self._CALLBACK(collect)  # kept referenced: the library holds it
        self.lib.espeak_SetSynthCallback(self._callback)

    def say(self, text: str, speaker: Speaker, rate: int, pitch: int, seed: int) -> np.ndarray:
        """Float32 samples at 22,050 Hz of ``text`` said by ``speaker`` (rate in words/minute,
        pitch 0-100); ``seed`` seeds the voice's random breath and flutter."""
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        if self.lib.espeak_SetVoiceByName(speaker.name.encode()) != 0:
            raise DataError(f"eSpeak NG has no voice {speaker.name!r}.")
        self.lib.espeak_SetParameter(self.RATE, int(rate), 0)
        self.lib.espeak_SetParameter(self.PITCH, int(pitch), 0)
        self.chunks = []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0x1000, None, None)  # espeakCHARS_UTF8
        self.lib.espeak_Synchronize()
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return samples.astype(np.float32) / 32768.0


def _loader():
    try:
        import espeakng_loader
    except ImportError:
        raise DataError(
            "Synthesising the default speech corpus needs the espeakng-loader package "
            "(`pip install espeakng-loader`), or use your own recordings (data=asr_manifest)."
        ) from None
    return espeakng_loader


@contextmanager
def _voice_data(variants: dict[str, str]) -> Iterator[str]:
    """eSpeak's data folder with ``variants`` added to its voice variants: a temporary folder
    of links to the wheel's files (19 MB, left untouched) beside the new variant files."""
    shipped = Path(_loader().get_data_path())
    if not variants:
        yield str(shipped)
        return
    with tempfile.TemporaryDirectory(prefix="rnnlab-espeak-") as tmp:
        root = Path(tmp)
        for folder in (shipped, shipped / "voices", shipped / "voices" / "!v"):
            own = root / folder.relative_to(shipped)
            own.mkdir(exist_ok=True)
            for entry in folder.iterdir():
                if entry.name not in ("voices", "!v"):
                    (own / entry.name).symlink_to(entry)
        for name, text in variants.items():
            (root / "voices" / "!v" / name).write_text(text, encoding="utf-8")
        yield str(root)


@dataclass(frozen=True)
class SynthJob:
    path: str
    text: str
    speaker: Speaker
    rate: int
    pitch: int
    seed: int


def synthesize_files(
    jobs: list[SynthJob], sample_rate: int, variants: dict[str, str] | None = None
) -> None:
    """Write each job as 16-bit FLAC at ``sample_rate``, in a fresh process; ``variants``
    (name -> variant file) are voices of its own, e.g. ``mixed_variants``.

    eSpeak NG carries state from one utterance to the next (a few samples of timing), even
    across re-initialisation, so the same corpus is only reproduced by the same sequence of
    calls from a fresh library: a spawned process gives every corpus that.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_write_files, (jobs, sample_rate, variants or {}))


def _write_files(jobs: list[SynthJob], sample_rate: int, variants: dict[str, str]) -> None:
    import soundfile as sf
    import soxr

    with _voice_data(variants) as data_path:
        espeak = _Espeak(data_path)
        for job in jobs:
            wave = espeak.say(job.text, job.speaker, job.rate, job.pitch, job.seed)
            wave = soxr.resample(wave, ESPEAK_RATE, sample_rate, "HQ")
            sf.write(job.path, wave, sample_rate, subtype="PCM_16")


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` relative to the signal's power over its non-silent samples."""
    loud = samples[np.abs(samples) > 1e-3]
    power = float(np.mean(np.square(loud))) if loud.size else 0.0
    noise = rng.standard_normal(samples.shape).astype(np.float32)
    return samples + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
