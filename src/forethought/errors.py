"""Errors a user can cause, each carrying a message that says what to change.

The CLI catches `ForethoughtError` and prints its message instead of a traceback.
"""


class ForethoughtError(Exception):
    """Base class for every error caused by input the user controls."""


class ConfigError(ForethoughtError, ValueError):
    """A configuration value is invalid; the message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class DataError(ForethoughtError, ValueError):
    """Data handed to forethought (observations, transitions, files) is malformed."""


def require(condition: bool, field: str, message: str) -> None:
    """Raise `ConfigError(field, message)` unless `condition` holds."""
    if not condition:
        raise ConfigError(field, message)
