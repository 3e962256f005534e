"""Errors quantmoo raises on bad input.

Every error a user can cause is a :class:`QuantmooError`. Its message names the field that
is wrong and, where there is a finite set, the allowed values, in the style scikit-learn uses
for parameter validation. The command line turns these into one line and exit status 2.
"""
from __future__ import annotations

import importlib
from typing import Any, Iterable


class QuantmooError(ValueError):
    """Bad input: an unknown name, a malformed file, an impossible constraint, bad data."""


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


def allowed(field: str, value: Any, choices: Iterable[Any], owner: str = "") -> QuantmooError:
    """Build the standard 'must be in {...}; got ...' error."""
    where = f" of {owner}" if owner else ""
    shown = ", ".join(repr(c) if isinstance(c, str) else str(c) for c in choices)
    return QuantmooError(f"The '{field}' value{where} must be one of {{{shown}}}; got {value!r}")


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
        raise QuantmooError(f"The '{field}'{where} must be a number; got {value!r}")
    v = float(value)
    ok = v >= 0 if allow_zero else v > 0
    if not ok or v != v or v in (float("inf"), float("-inf")):
        bound = ">= 0" if allow_zero else "> 0"
        raise QuantmooError(f"The '{field}'{where} must be a finite number {bound}; got {value!r}")
    return v
