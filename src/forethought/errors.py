"""Errors a user can cause, each carrying a message that says what to change.

The CLI catches `ForethoughtError` and prints its message instead of a traceback.
"""


class ForethoughtError(Exception):
    """Base class for every error caused by input the user controls."""


class ConfigError(ForethoughtError, ValueError):
    """A configuration value is invalid; the message names the flag as the user types it.

    `field` is the config field (`eval_episodes`, `mbpo.real_ratio`) or the flag itself
    (`--resume`); both print as the flag (`--eval-episodes`, `--mbpo.real-ratio`)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{as_flag(field)}: {message}")


def as_flag(field: str) -> str:
    """The command-line flag of a config field, as tyro spells it."""
    if field.startswith("-") or field.isupper():  # a flag already, or a positional (RUN_DIR)
        return field
    return "--" + field.replace("_", "-")


class DataError(ForethoughtError, ValueError):
    """Data handed to forethought (observations, transitions, files) is malformed."""


def require(condition: bool, field: str, message: str) -> None:
    """Raise `ConfigError(field, message)` unless `condition` holds."""
    if not condition:
        raise ConfigError(field, message)
