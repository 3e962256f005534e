"""An on-disk cache of measured evaluations, keyed by evaluator, model and config hash.

One small JSON file per evaluation::

    <directory>/<evaluator name>/<model key>/<config hash>.json

holding ``{"format", "evaluator", "model_key", "config_hash", "details", "checksum"}``, where
``checksum`` is the SHA-256 of the canonical JSON of the other fields. Files are written
atomically (a temporary file in the same directory, then ``os.replace``), so a reader never sees
half an entry; a file that is nevertheless unreadable, truncated, not valid JSON or whose
checksum does not match (e.g. edited by hand, or written by an interrupted copy) is treated as a
miss, counted in ``corrupt``, and overwritten by the next :meth:`EvalCache.put`.

The model key (:func:`model_key`) is the model's ``spec_hash()`` plus a digest of its fp32
weights, so a retrained model with the same layer table never reads stale results.

The default directory is ``$QUANTMOO_CACHE`` if set, else ``~/.cache/quantmoo/evals``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import QuantmooError
from ..io import atomic_write_text

__all__ = ["EvalCache", "default_cache_dir", "model_key", "weights_digest", "jsonable_details", "CACHE_FORMAT"]

#: Version 2: the grids round half to even (ONNX QuantizeLinear) and dequantize in float32, so
#: measurements cached by version 1 may differ on rounding ties; they are misses now.
CACHE_FORMAT = "quantmoo-eval/2"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_cache_dir() -> Path:
    """``$QUANTMOO_CACHE`` if set, else ``~/.cache/quantmoo/evals``."""
    env = os.environ.get("QUANTMOO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "quantmoo" / "evals"


def weights_digest(model, evaluator=None) -> str:
    """A 16-hex-digit digest of a model's fp32 weights (a strided sample plus every layer's sum).

    Reads ``evaluator.fp32_weight`` when an evaluator is given (no copy), else ``model.weights``;
    ``"noweights"`` for a model without weights.
    """
    get = getattr(evaluator, "fp32_weight", None) if evaluator is not None else None
    if get is None:
        get = getattr(model, "weights", None)
    if get is None:
        return "noweights"
    h = hashlib.sha256()
    for name in model.layer_names:
        w = np.ascontiguousarray(get(name), dtype=np.float32).reshape(-1)
        h.update(name.encode())
        h.update(np.int64(w.size).tobytes())
        h.update(w[:: max(1, w.size // 65536)].tobytes())
        h.update(np.float64(np.sum(w, dtype=np.float64)).tobytes())
    return h.hexdigest()[:16]


def model_key(model, evaluator=None) -> str:
    """``"<spec_hash>-<weights digest>"``: identifies the model an evaluation ran on."""
    return f"{model.spec_hash()}-{weights_digest(model, evaluator)}"


def jsonable_details(details) -> dict:
    """A details dict with NumPy scalars/arrays turned into plain Python (JSON-ready) values."""
    def conv(v):
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, np.ndarray):
            return conv(v.tolist())
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return float(v)
        return v
    return conv(dict(details))


def _checksum(entry: dict) -> str:
    blob = json.dumps({k: v for k, v in entry.items() if k != "checksum"}, sort_keys=True, allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _config_hash(config) -> str:
    if isinstance(config, str):
        return config
    h = getattr(config, "config_hash", None)
    if h is None:
        raise QuantmooError(f"Expected a QuantConfig or a config hash; got {type(config).__name__}")
    return h()


class EvalCache:
    """Measured details of configs on disk (see the module docstring).

    Parameters
    ----------
    directory : path, optional
        Default :func:`default_cache_dir`. Created on the first write.

    Attributes
    ----------
    hits, misses, corrupt, writes : int
        Counters since creation (``corrupt`` entries also count as misses).
    """

    def __init__(self, directory: Union[str, os.PathLike, None] = None):
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self.corrupt = 0
        self.writes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EvalCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"

    def __getstate__(self):  # picklable (the lock is not)
        d = dict(self.__dict__)
        d.pop("_lock", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = threading.Lock()

    # -- paths ----------------------------------------------------------------------------------
    def path(self, evaluator: str, model_key: str, config) -> Path:
        """The file of one entry."""
        ev = _SAFE.sub("_", str(evaluator)) or "_"
        mk = _SAFE.sub("_", str(model_key)) or "_"
        ch = _SAFE.sub("_", _config_hash(config))
        return self.directory / ev / mk / f"{ch}.json"

    # -- access -----------------------------------------------------------------------------------
    def get(self, evaluator: str, model_key: str, config) -> Optional[dict]:
        """The cached details of ``config`` (a QuantConfig or its hash), or None (a miss)."""
        p = self.path(evaluator, model_key, config)
        entry = None
        bad = False
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError):
            text, bad = None, True
        if text is not None:
            try:
                entry = json.loads(text)
                ok = (isinstance(entry, dict) and entry.get("format") == CACHE_FORMAT
                      and isinstance(entry.get("details"), dict)
                      and entry.get("config_hash") == _config_hash(config)
                      and entry.get("checksum") == _checksum(entry))
            except (ValueError, TypeError):
                ok = False
            if not ok:
                entry, bad = None, True
        with self._lock:
            if entry is None:
                self.misses += 1
                self.corrupt += int(bad)
                return None
            self.hits += 1
        return dict(entry["details"])

    def put(self, evaluator: str, model_key: str, config, details: dict) -> Path:
        """Store ``details`` for ``config`` (atomically; replaces a corrupt or older entry)."""
        p = self.path(evaluator, model_key, config)
        entry = {"format": CACHE_FORMAT, "evaluator": str(evaluator), "model_key": str(model_key),
                 "config_hash": _config_hash(config), "details": jsonable_details(details)}
        entry["checksum"] = _checksum(entry)
        text = json.dumps(entry, sort_keys=True, allow_nan=True)
        try:
            atomic_write_text(p, text)
        except OSError as e:
            raise QuantmooError(f"Cannot write to the evaluation cache {self.directory}: {e.strerror}") from None
        with self._lock:
            self.writes += 1
        return p

    # -- bookkeeping ------------------------------------------------------------------------------
    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else math.nan

    def stats(self) -> dict:
        """``{hits, misses, corrupt, writes, hit_rate}``."""
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt, "writes": self.writes,
                "hit_rate": self.hit_rate}

    def reset_stats(self) -> None:
        with self._lock:
            self.hits = self.misses = self.corrupt = self.writes = 0

    def __len__(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(1 for _ in self.directory.glob("*/*/*.json"))

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        n = 0
        if self.directory.is_dir():
            for f in self.directory.glob("*/*/*.json"):
                try:
                    f.unlink()
                    n += 1
                except OSError:
                    pass
        return n
