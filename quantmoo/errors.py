"""Errors quantmoo raises on bad input.

Every error a user can cause is a :class:`QuantmooError`. Its message names the field that
is wrong and, where there is a finite set, the allowed values, in the style scikit-learn uses
for parameter validation. The command line turns these into one line and exit status 2.
"""
from __future__ import annotations

import importlib
import math
import reprlib
from typing import Any, Iterable


# Every character str.splitlines() breaks on, mapped to its escape: a message stays one line even
# when it quotes a field name or value from a file that holds line breaks.
_ONE_LINE = str.maketrans({c: c.encode("unicode_escape").decode("ascii")
                           for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


class QuantmooError(ValueError):
    """Bad input: an unknown name, a malformed file, an impossible constraint, bad data.

    The message is always one line (line breaks in quoted names are escaped), so the command
    line can print it as one line.
    """

    def __init__(self, *args):
        if args and isinstance(args[0], str):
            args = (args[0].translate(_ONE_LINE),) + args[1:]
        super().__init__(*args)


class MissingDependencyError(QuantmooError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, purpose: str = "") -> Any:
    """Import an optional dependency or raise one clear error naming the extra.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"safetensors.numpy"``.
    extra : str
        The quantmoo extra that installs it, e.g. ``"minilm"``.
    purpose : str, optional
        What needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"The optional dependency '{module.split('.')[0]}' is needed{what} but is not installed; "
            f"install it with: pip install 'quantmoo[{extra}]'"
        ) from exc


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlong = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def brief(value: Any) -> str:
    """A short one-line repr of a bad value, for messages (a fuzzed file may hold megabytes)."""
    try:
        return _REPR.repr(value)
    except Exception:  # pragma: no cover - a repr that fails must not hide the real error
        return f"<{type(value).__name__}>"


def allowed(field: str, value: Any, choices: Iterable[Any], owner: str = "") -> QuantmooError:
    """Build the standard 'must be in {...}; got ...' error."""
    where = f" of {owner}" if owner else ""
    shown = ", ".join(repr(c) if isinstance(c, str) else str(c) for c in choices)
    return QuantmooError(f"The '{field}' value{where} must be one of {{{shown}}}; got {brief(value)}")


def check_choice(field: str, value: Any, choices: Iterable[Any], owner: str = "") -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :func:`allowed`."""
    choices = list(choices)
    if value not in choices:
        raise allowed(field, value, choices, owner)
    return value


def check_positive(field: str, value: Any, owner: str = "", allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is a finite positive number, else raise."""
    where = f" of {owner}" if owner else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise QuantmooError(f"The '{field}'{where} must be a number; got {brief(value)}")
    bound = ">= 0" if allow_zero else "> 0"
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range (e.g. 10**400 in a YAML file)
        raise QuantmooError(f"The '{field}'{where} must be a finite number {bound}; got {brief(value)}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not ok or not math.isfinite(v):
        raise QuantmooError(f"The '{field}'{where} must be a finite number {bound}; got {brief(value)}")
    return v
