"""Turning a finished pymoo run into a SearchResult (front, infeasibility report, provenance)."""
from __future__ import annotations

import time
import warnings

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from ..models.zoo import file_provenance
from ..results.result import SearchResult, Solution, environment_info


def average_weight_bits(enc, model, C: np.ndarray) -> np.ndarray:
    """(N,) parameter-weighted mean weight bits of choice matrices ``C`` (N, L).

    Nominal bits for quantmoo's own grids; for llama.cpp types the stored bits per weight
    (e.g. Q4_K 4.5, scales included; llama.cpp's fallback type where a row does not fit).
    """
    n = np.asarray(model.arrays()["n_params"], dtype=np.float64)
    if enc.space.llama_cpp_types:
        from ..quant.ggml import type_bytes
        cols = model.arrays()["in_features"]
        per = np.stack([type_bytes(f, n.astype(np.int64), cols) * 8.0 / np.maximum(n, 1)
                        for f in enc.choice_value["weight_format"]], axis=1)      # (L, n_choices)
        wbits = per[np.arange(enc.n_layers)[None, :], C]
    else:
        wbits = enc.choice_value["weight_bits"][C]
    return (wbits * n[None, :]).sum(axis=1) / max(n.sum(), 1.0)


def solutions_from_genomes(problem, X: np.ndarray, feasible: bool = True) -> list:
    """Solutions (config + every objective value) for the rows of ``X``."""
    vals = problem.evaluate_all(X)
    enc, model = problem.encoding, problem.model
    C = enc.choices(np.asarray(X, dtype=np.int64))
    avg_bits = average_weight_bits(enc, model, C)
    fp32_bytes = model.fp32_mb * 1e6
    out = []
    for i, x in enumerate(np.asarray(X, dtype=np.int64)):   # result assembly, after the search
        objs = {k: float(v[i]) for k, v in vals.items()}
        out.append(Solution(config=enc.decode(x, hardware=problem.hardware.name), objectives=objs,
                            compression_ratio=fp32_bytes / (objs["size_mb"] * 1e6),
                            avg_weight_bits=float(avg_bits[i]), x=x.copy(), feasible=feasible))
    return out


def front_genomes(problem, X: np.ndarray):
    """Unique, feasible, non-dominated rows of ``X`` (on the searched objectives), sorted by size.

    Returns ``(X_front, feasible)``; when nothing is feasible, the least-violating row.
    """
    X = np.unique(np.rint(np.asarray(X)).astype(np.int64), axis=0)
    vals = problem.evaluate_all(X)
    F = np.column_stack([vals[o] for o in problem.objectives])
    G = problem.constraint_values(vals)
    cv = np.zeros(len(X)) if G is None else np.maximum(G, 0).sum(axis=1)
    feas = cv <= 0
    if not feas.any():
        return X[[int(np.argmin(cv))]], False
    X, F = X[feas], F[feas]
    nd = NonDominatedSorting().do(F, only_non_dominated_front=True)
    X, F = X[nd], F[nd]
    # genomes that differ only where no objective looks (e.g. the scheme of a 16-bit layer) give the
    # same objective vector: keep one per vector (the smallest genome, so the choice is reproducible)
    _, first = np.unique(F, axis=0, return_index=True)
    X, F = X[np.sort(first)], F[np.sort(first)]
    key = problem.objectives.index("size_mb") if "size_mb" in problem.objectives else 0
    order = np.lexsort(F.T[::-1]) if key == 0 else np.argsort(F[:, key], kind="stable")
    return X[order], True


def infeasibility_message(problem, sol) -> str:
    parts = []
    for k, b in problem.constraints.items():
        v = sol.objectives[k]
        if v > b:
            parts.append(f"{k} = {v:.4g} > {b:g}")
    if sol.objectives.get("evaluation_failed", 0) > 0:
        parts.append("its accuracy evaluation failed (every evaluation failed; see meta['failed_evaluations'])")
    return ("No configuration met the constraints; the closest one found violates " + ", ".join(parts)
            + ". Relax these bounds or widen the search space.")


def evaluation_table(problem, evaluated, chunk: int = 1024) -> dict:
    """Every evaluated genome as columns: generation, every objective, feasibility, per-layer bits.

    ``evaluated`` is a list with one (N_g, n_var) genome array per generation (generation 1 is the
    initial population). One vectorised evaluation; the per-layer bits are gathered, not decoded.
    """
    if not evaluated:
        return {}
    X = np.concatenate(evaluated)
    gen = np.concatenate([np.full(len(e), g + 1, dtype=np.int32) for g, e in enumerate(evaluated)])
    cv = problem.encoding.choice_value
    parts = []
    # in chunks: the per-layer intermediates of 10,000 genomes of a 405B model would take GBs at once
    for s in range(0, len(X), chunk):
        Xc = X[s:s + chunk].astype(np.int64)
        vals = problem.evaluate_all(Xc)
        C = problem.encoding.choices(Xc)
        parts.append({**{k: np.asarray(v, dtype=float) for k, v in vals.items()},
                      "feasible": problem.feasible_mask(vals),
                      "weight_bits": cv["weight_bits"][C].astype(np.int8),
                      "activation_bits": cv["activation_bits"][C].astype(np.int8)})
    return {"generation": gen, **{k: np.concatenate([p[k] for p in parts]) for k in parts[0]}}


def exact_start_applies(problem, algorithm_name: str) -> bool:
    """Whether the exact front of the dynamic program is the searched front's own: two objectives, accuracy loss
    and size, an additive accuracy table (proxy or prior, not measured), and a multi-objective algorithm."""
    return (set(problem.objectives) == {"accuracy_loss", "size_mb"} and len(problem.objectives) == 2
            and not problem.measured and algorithm_name != "ga")


def exact_start_genomes(problem, strict: bool, max_points=None):
    """:func:`quantmoo.baselines.exact.exact_genomes`' genomes and front size, and the seconds it took."""
    from ..baselines.exact import exact_genomes
    t0 = time.perf_counter()
    E, n_front = exact_genomes(problem, strict=strict, max_points=max_points)
    return E, n_front, time.perf_counter() - t0


def loss_unit_of(model):
    """The model's ``accuracy_loss_unit`` (its meta; None for a model that does not say, e.g. the prior's pp)."""
    return (getattr(model, "meta", None) or {}).get("accuracy_loss_unit")


def build_result(problem, algo, history, exec_time, seed, algorithm: dict, hv_ref, baselines=True,
                 archive=None, max_front=None, evaluated=None, exact=None) -> SearchResult:
    """The :class:`SearchResult` of a run's state; ``exact``: :func:`exact_start_genomes`' triple, joined to the
    search's points before the front is taken (``meta["exact_start"]``)."""
    from ..results.scales import display_coordinates
    from .archive import thin, thin_epsilon
    from .operators.duplicates import duplicate_mask
    pop_X = algo.pop.get("X")
    if archive is not None and len(archive):
        pop_X = np.concatenate([archive.X, pop_X])
    found = pop_X
    if exact is not None:
        E, n_exact, seconds = exact
        pop_X = np.concatenate([np.asarray(pop_X, dtype=np.int64), E])
    Xf, feasible = front_genomes(problem, pop_X)
    if exact is not None:
        new = ~duplicate_mask(Xf, found)                    # front points the search itself did not evaluate
        exact = {"n_exact_front": n_exact, "n_joined": int(len(E)), "n_front": int(new.sum()),
                 "n_nondominated": int(len(Xf)), "seconds": float(seconds)}
    full = None
    thinning = None
    if feasible and max_front is not None and len(Xf) > max_front:
        vals = problem.evaluate_all(Xf)
        Ff = np.column_stack([vals[o] for o in problem.objectives])
        # an epsilon-net on the axes the front is drawn on (symlog loss): in linear loss the net would spend
        # its points on large losses and leave the near-lossless end sparse (quantmoo.results.scales)
        G, scales = display_coordinates(Ff, problem.objectives, loss_unit_of(problem.model))
        keep = thin(G, max_front)
        thinning = {"n_nondominated": int(len(Xf)), "max_front": int(max_front),
                    "epsilon": thin_epsilon(G, keep), "scales": scales}
        full = (Xf, Ff)
        Xf = Xf[keep]
    front = solutions_from_genomes(problem, Xf, feasible)
    message = ""
    if not feasible:
        message = infeasibility_message(problem, front[0])
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    model, hw = problem.model, problem.hardware
    meta = environment_info()
    meta.update({
        "seed": seed,
        "model": {"name": model.name, "n_layers": model.n_layers, "n_params": model.n_params,
                  "fp32_mb": model.fp32_mb, "workload": model.workload, "spec_hash": model.spec_hash(),
                  "accuracy_loss_unit": loss_unit_of(model), **file_provenance(model)},
        "hardware": {"name": hw.name, "title": hw.title, "reference_device": hw.reference_device,
                     "profile_hash": hw.profile_hash()},
        "space": problem.space.to_dict(),
        "algorithm": algorithm,
        "constraints": dict(problem.constraints),
        "hv_reference": [float(r) for r in hv_ref],
        "accuracy_meta": problem.accuracy.meta,
        "exec_time_s": exec_time,
        "front_thinning": thinning,
        "exact_start": exact,
    })
    if getattr(problem, "measured", False):
        meta["failed_evaluations"] = problem.accuracy.failed_records()
    base = []
    if baselines:
        from ..baselines import standard_baselines
        base = standard_baselines(problem)
    res = SearchResult(front=front, objectives=problem.objectives, history=history, baselines=base, meta=meta,
                       accuracy_kind=problem.accuracy_kind, feasible=feasible, message=message)
    res.nondominated = full   # (X, F) of every non-dominated point when the front was thinned
    res.evaluations = evaluation_table(problem, evaluated)
    res.layer_names = list(model.layer_names)
    return res
