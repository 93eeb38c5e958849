"""Errors that mean "the input is wrong", reported by the CLI as one clear line instead of a traceback."""


class InpoBenchError(Exception):
    """Base of the user-facing errors."""


class ConfigError(InpoBenchError, ValueError):
    """The configuration does not match the schema; the message lists every problem with its key."""


class DataError(InpoBenchError, ValueError):
    """An input data file is missing, unreadable or lacks required columns."""


class ModelError(InpoBenchError, ValueError):
    """A model directory is missing, incomplete or inconsistent."""


class TrainingDivergedError(InpoBenchError, RuntimeError):
    """The loss or the gradient became NaN or infinite; no model is written."""
