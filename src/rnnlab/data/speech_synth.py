"""Synthetic speech corpora from eSpeak NG (the ``espeakng-loader`` wheel: library + voices).

No recorded speech ships offline, so the default speech data is synthesised in ``prepare``:
spoken digit strings and short command phrases (ASR), or single command words (spoken-word
classification), each said by a *speaker* (an English accent with a voice variant, e.g.
``en-us+f3``) at a random rate and pitch. Train, validation and test speakers use disjoint
voice variants, so the test split measures voices never heard in training. Everything is
deterministic from the seed. Noise is not synthesised here but added later (``add_noise``).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache

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

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise DataError(
                "Synthesising the default speech corpus needs the espeakng-loader package "
                "(`pip install espeakng-loader`), or use your own recordings (data=asr_manifest)."
            ) from None
        self.lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        rate = self.lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate != ESPEAK_RATE:
            raise DataError(f"eSpeak NG failed to initialise (returned {rate}).")
        self.chunks: list[np.ndarray] = []

        def collect(wav, n, _events):
            if n > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = self._CALLBACK(collect)  # kept referenced: the library holds it
        self.lib.espeak_SetSynthCallback(self._callback)

    def say(self, text: str, speaker: Speaker, rate: int, pitch: int) -> np.ndarray:
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


@cache
def _espeak() -> _Espeak:
    return _Espeak()


def synthesize(text: str, speaker: Speaker, rate: int, pitch: int, seed: int = 0) -> np.ndarray:
    """Float32 samples at 22,050 Hz of ``text`` said by ``speaker`` (rate in words/minute,
    pitch 0-100). ``seed`` seeds the voice's random breath and flutter."""
    espeak = _espeak()
    espeak.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
    return espeak.say(text, speaker, rate, pitch)


@dataclass(frozen=True)
class SynthJob:
    path: str
    text: str
    speaker: Speaker
    rate: int
    pitch: int
    seed: int


def synthesize_files(jobs: list[SynthJob], sample_rate: int) -> None:
    """Write each job as 16-bit FLAC at ``sample_rate``, in a fresh process.

    eSpeak NG carries state from one utterance to the next (a few samples of timing), even
    across re-initialisation, so the same corpus is only reproduced by the same sequence of
    calls from a fresh library: a spawned process gives every corpus that.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_write_files, (jobs, sample_rate))


def _write_files(jobs: list[SynthJob], sample_rate: int) -> None:
    import soundfile as sf
    import soxr

    for job in jobs:
        wave = synthesize(job.text, job.speaker, job.rate, job.pitch, job.seed)
        wave = soxr.resample(wave, ESPEAK_RATE, sample_rate, "HQ")
        sf.write(job.path, wave, sample_rate, subtype="PCM_16")


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` relative to the signal's power over its non-silent samples."""
    loud = samples[np.abs(samples) > 1e-3]
    power = float(np.mean(np.square(loud))) if loud.size else 0.0
    noise = rng.standard_normal(samples.shape).astype(np.float32)
    return samples + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
