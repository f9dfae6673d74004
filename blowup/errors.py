"""Bad input as one line: the error every check raises and the CLI prints (it imports nothing from blowup)."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad input: the message is the one line the user sees."""


def require(ok: bool, key: str, value, allowed: str) -> None:
    """The one shape of a bad-value error: key=value is invalid: allowed ..."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: allowed {allowed}")


def require_all(checks: list[tuple]) -> None:
    """Rows of (key under equation., value, ok, allowed): the first failing row is a ConfigError."""
    for key, value, ok, allowed in checks:
        require(ok, f"equation.{key}", value, allowed)
