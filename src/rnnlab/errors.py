"""Errors that users can act on.

Every error raised for bad input says what is wrong and how to fix it; the stage entry points
print these without a traceback and exit with status 2.
"""


class RnnlabError(Exception):
    """Base class for errors caused by configuration or data, not by a bug."""


class ConfigError(RnnlabError, ValueError):
    """A config key is unknown, misspelt, of the wrong type, or out of range."""


class DataError(RnnlabError, ValueError):
    """Input data is missing, malformed, or too short for the requested windows."""


class TrainingError(RnnlabError, RuntimeError):
    """Training diverged (NaN or infinite loss) or could not produce a model."""
