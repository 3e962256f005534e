"""The product brief's claims, quoted (never measured, never used as results).

These are the figures the original product brief stated without evidence (summarised in the
project's ``shared/BRIEF.md``, section "The brief's claims: unverified, to be re-measured").
The benchmark scripts print them next to what quantmoo measures or derives, and say whether
each claim holds. Nothing here is a result.
"""

#: 7B transformer, one inference (the brief does not say per token; it is read as per token).
LLM_7B = {
    "fp32": {"size_gb": 7.0, "latency_ms": 450, "energy_j": 2.1, "accuracy_pct": 97.5},
    "int8": {"size_gb": 1.8, "latency_ms": 180, "energy_j": 0.8, "accuracy_pct": 95.2},
    "evolved": {"size_gb": 0.9, "latency_ms": 110, "energy_j": 0.4, "accuracy_pct": 96.4},
    "per_platform": {
        "arm_neon": {"latency_ms": 180, "energy_j": 0.8},
        "arm_dot": {"latency_ms": 120, "energy_j": 0.6},
        "hexagon": {"latency_ms": 140, "energy_j": 0.4},
        "apple_ane": {"latency_ms": 85, "energy_j": 0.5},
        "tensorrt": {"latency_ms": 60, "energy_j": 1.2},
    },
}

#: Per-architecture claims: compression ratio at an accuracy (%). The brief gives no baseline
#: accuracy, so the loss they imply is unknown; they are compared as "compression at a small loss".
ARCHITECTURES = {
    "resnet50": {"compression": 4.2, "accuracy_pct": 96.5},
    "bert-base": {"compression": 3.8, "accuracy_pct": 95.1},
    "gpt2": {"compression": 5.1, "accuracy_pct": 94.8},
    "llama2-7b": {"compression": 6.2, "accuracy_pct": 96.4},
}

#: Compression levels: (label, claimed compression (min), claimed loss range in % (lo, hi)).
#: "INT2/4 12x+ at 2-4%"; "INT8 4x <0.5%"; "INT4 8x 1-2%"; "mixed 4/8 6x <1%".
LEVELS = {
    "INT8": {"compression": 4.0, "loss": (0.0, 0.5)},
    "INT4": {"compression": 8.0, "loss": (1.0, 2.0)},
    "mixed 4/8": {"compression": 6.0, "loss": (0.0, 1.0)},
    "mixed 2/3/4": {"compression": 12.0, "loss": (2.0, 4.0)},
    "INT2": {"compression": 12.0, "loss": (2.0, 4.0)},
}

#: Search cost claims.
SEARCH = {"cache_speedup": 10.0, "cache_hit_rate": 0.78, "minutes_7b": (30.0, 60.0),
          "minutes_small": (5.0, 10.0)}
