"""The vectorised hardware cost model.

Everything that depends on one layer and its own choice is precomputed once per
(model, profile, space) as dense ``(n_layers, n_choices)`` tables (:class:`CostTables`).
Evaluating a population is then one stacked gather plus the three non-separable terms,
all vectorised over the population (:func:`evaluate_costs`).

Model, per layer ``l`` running choice ``c`` (DESIGN.md section 5):

* The profile resolves ``(weight_bits, activation_bits)`` to ``(device, mode, precision)``:
  ``native``, ``unpacked`` to a wider native type, or ``fallback`` to another device.
  A llama.cpp type (``weight_format``) executes as ``(its nominal bits, 8)``: llama.cpp's CPU
  kernels quantize the matmul input to 8-bit blocks (Q8_0/Q8_K) and run an integer dot product
  (e.g. Q4_K unpacked to int8 for SDOT); F16 runs as ``(16, 16)``.
* Weight bytes are :func:`quantmoo.quant.packed_bytes` plus the layer's bias at fp16.
* Activations are stored at the layer's activation bits when it runs ``native``; otherwise at
  the width of the precision it executes in (hardware cannot keep e.g. 4-bit activations it
  does not compute in). Input and output activations both count.
* Latency (roofline) = max(MACs / achievable rate(precision), bytes moved / achievable bandwidth)
  + per-layer overhead + (unpacked only) n_params * unpack cost per weight. Achievable = peak *
  the device's ``compute_fraction`` / ``bandwidth_fraction`` (1.0 when a profile gives none).
* An ``embedding`` row is a lookup: it reads one row per token (``act_in`` ids), not the whole
  table; the table is still resident (size, memory). A tied LM head reads the whole matrix.
* Energy = MACs * e_mac(precision) + DRAM bytes * e_dram + on-chip bytes * e_sram
  + static power * latency. Every byte moved is read from DRAM once and written to and
  read back from on-chip SRAM once (on-chip bytes = 2 * bytes moved): a documented estimate.

What a runtime runs around the layers (profiles measured with ``--runtime onnxruntime`` carry a
``runtime_ops`` block; the shipped profiles do not): per layer and choice, the QDQ export's
DequantizeLinear at its weight format's measured cost (or onnxruntime's fused MatMulNBits rate for an
``x @ W`` MatMul with a float input), the activation QuantizeLinear/Clip/DequantizeLinear or Cast round
trip per input element, one light-node overhead per such node, the fp32 conv/MatMul rates for constant
vs dequantized weights, a conv's unfused bias Add once its weight is dequantized, and kernels that read
the weights at the width they run them (from the cache when the model's float32 weights fit in it).
Per model, one constant (:func:`graph_ops_cost`): the graph's non-layer work (``meta["graph_ops"]``:
elementwise, normalisation, pooling, activation x activation matmuls) and the per-inference overhead.

Non-separable terms, per individual:

* a convert (requantize) op wherever consecutive layers differ in activation bits; it costs
  ``convert_s_per_element`` and ``convert_pj_per_element`` per element of the boundary
  tensor (the input of the second layer);
* a partition boundary wherever consecutive layers run on different devices: a fixed sync
  cost plus the boundary tensor (input of the second layer, at its storage width) over the
  partition link;
* peak memory = all resident parameters + the KV cache + the largest live activation set (one
  layer's input plus output, or the attention's score tensor).

Decoder LLMs (``model.meta["family"] == "decoder"``) add the attention of every block, which has
no weights and no gene, so it is one constant per (model, profile, space) (:func:`decoder_attention`):
the score (q.K) and value (p.V) matmuls against a KV cache of ``context`` entries, the cache
read at the space's ``kv_cache_bits``, the new tokens' K/V written, and the fp32 score tensor
written and read once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..config import LAYER_ATTRS

PRECISION_BITS = {"int4": 4, "int8": 8, "int16": 16, "fp8": 8, "fp16": 16, "fp32": 32}
MODE_CODES = {"native": 0, "unpacked": 1, "fallback": 2}
#: Bytes per cached K/V element per KV precision. Quantized caches carry one fp16 scale per block
#: of 32 elements, as llama.cpp's ``q8_0`` (2 + 32 B) and ``q4_0`` (2 + 16 B) cache types
#: (ggml/src/ggml-common.h, ``block_q8_0`` / ``block_q4_0``); fp16 has no scale.
KV_BYTES_PER_ELEMENT = {16: 2.0, 8: 34 / 32, 4: 18 / 32}
#: Bytes per attention score element: softmax runs in fp32 (llama.cpp ``soft_max`` and PyTorch SDPA
#: math path both keep the scores in fp32).
SCORE_BYTES = 4.0
#: Order of the columns of the stacked per-layer table.
COLUMNS = ("weight_bytes", "latency_s", "energy_pj", "live_act_bytes", "partition_s", "partition_pj",
           "activation_bits", "device")


@dataclass
class CostTables:
    """Per-(layer, choice) tables for one (model, profile, space).

    Attributes
    ----------
    stacked : ndarray (n_layers * n_choices, len(COLUMNS))
        Row ``l * n_choices + c`` holds layer ``l`` under choice ``c``; gathered in one pass.
    abits : ndarray (n_choices,)
        Activation bits of each choice (for the convert-op term).
    device : ndarray (n_layers, n_choices) of int8
        0 = main device, 1 = fallback device.
    mode : ndarray (n_layers, n_choices) of int8
        ``MODE_CODES`` of how the layer runs.
    convert_s, convert_pj : ndarray (n_layers,)
        Convert-op cost at the boundary *into* each layer (index 0 unused).
    resident_bytes : float
        Bytes of parameters that are never quantized (norms etc., fp16).
    static_w : float
        Static power of the main device (charged to non-separable latency).
    """

    n_layers: int
    n_choices: int
    stacked: np.ndarray
    abits: np.ndarray
    device: np.ndarray
    mode: np.ndarray
    precision: np.ndarray
    convert_s: np.ndarray
    convert_pj: np.ndarray
    resident_bytes: float
    static_w: float
    storage_bits: np.ndarray = None
    partition_sync_s: float = 0.0
    partition_s_per_bit: np.ndarray = None
    partition_pj_per_bit: np.ndarray = None
    #: decoder attention + KV cache (constant per individual; zeros for other models)
    fixed_latency_s: float = 0.0
    fixed_energy_pj: float = 0.0
    kv_cache_bytes: float = 0.0
    fixed_live_bytes: float = 0.0
    attention: Optional[dict] = None
    #: the graph's non-layer work and the per-inference overhead (:func:`graph_ops_cost`)
    graph: Optional[dict] = None

    def __post_init__(self):
        # flat, contiguous copies of each column for the population gathers
        self.flat = {name: np.ascontiguousarray(self.stacked[:, i]) for i, name in enumerate(COLUMNS)}
        self.row_offsets = np.arange(self.n_layers, dtype=np.int64) * self.n_choices
        self.abits_small = self.abits.astype(np.int16)
        self.device_small = np.ascontiguousarray(self.device[0]).astype(np.int8)
        self.has_fallback = bool(self.device.any())
        self.storage_bits_small = np.asarray(self.storage_bits, dtype=np.float64)

    def column(self, name: str) -> np.ndarray:
        """One table as (n_layers, n_choices)."""
        return self.stacked[:, COLUMNS.index(name)].reshape(self.n_layers, self.n_choices)


def build_cost_tables(model, profile, encoding) -> CostTables:
    """Precompute the per-(layer, choice) cost tables. Vectorised over layers x choices."""
    from ..quant import packed_bytes

    enc, sp = encoding, encoding.space
    L, C = model.n_layers, enc.n_choices
    cols = model.arrays()
    wb = enc.choice_value["weight_bits"].astype(np.int64)
    ab_stored = enc.choice_value["activation_bits"].astype(np.int64)
    fmt = enc.choice_value["weight_format"]
    # llama.cpp types run with 8-bit (Q8) activations in the dot product; see the module notes
    ab = np.where((fmt != "int") & (wb < 16), 8, ab_stored).astype(np.int64)

    # Resolve each distinct (w, a) pair once; broadcast to choices.
    pairs = sorted(set(zip(wb.tolist(), ab.tolist())))
    devices = [profile.main] + ([profile.fallback] if profile.fallback is not None else [])
    dev_names = [d.name for d in devices]
    res = {p: profile.resolve(*p) for p in pairs}

    def per_choice(fn, dtype=np.float64):
        table = {p: fn(*res[p]) for p in pairs}
        return np.array([table[(w, a)] for w, a in zip(wb.tolist(), ab.tolist())], dtype=dtype)

    dev_idx = per_choice(lambda d, m, p: dev_names.index(d), np.int8)
    mode = per_choice(lambda d, m, p: MODE_CODES[m], np.int8)
    prec_bits = per_choice(lambda d, m, p: PRECISION_BITS[p])
    dev_of = lambda d: devices[dev_names.index(d)]
    peak = per_choice(lambda d, m, p: dev_of(d).peak_macs_per_s[p] * dev_of(d).compute_fraction)
    e_mac = per_choice(lambda d, m, p: dev_of(d).e_mac_pj[p])
    bw = per_choice(lambda d, m, p: dev_of(d).bandwidth_bytes_per_s * dev_of(d).bandwidth_fraction)
    overhead = per_choice(lambda d, m, p: dev_of(d).layer_overhead_s)
    unpack = per_choice(lambda d, m, p: dev_of(d).unpack_s_per_weight if m == "unpacked" else 0.0)
    e_dram = per_choice(lambda d, m, p: dev_of(d).e_dram_pj_per_byte)
    e_sram = per_choice(lambda d, m, p: dev_of(d).e_sram_pj_per_byte)
    static = per_choice(lambda d, m, p: dev_of(d).static_power_w)
    precision = np.array([res[(w, a)][2] for w, a in zip(wb.tolist(), ab.tolist())])

    # What a runtime runs around each layer, where the profile measured it (``runtime_ops``).
    devs = [dev_of(d) for d in per_choice(lambda d, m, p: d, object)]   # the device of each choice
    rts = [dv.runtime_ops for dv in devs]
    rt_unpack, rt_act, rt_nodes, rt_key = runtime_layer_ops(enc, rts, wb, ab_stored, mode)
    dequantized = ~np.isnan(rt_unpack)
    # an x @ W MatMul layer keeps its weight (in, out): per-channel / per-group dequantization runs along the
    # other axis ("_kn" formats, where measured); with a float (16-bit) input onnxruntime fuses
    # DequantizeLinear + MatMul into MatMulNBits: no separate dequantize, the fused kernel's rate
    is_mm = np.isin([l.name for l in model.layers], list((model.meta or {}).get("matmul_layers", ())))
    dq_tab = [r.get("dequantize_s_per_weight", {}) for r in rts]
    unpack_kn = np.array([t.get(k + "_kn", u) if k and "per_t" not in k else u
                          for t, k, u in zip(dq_tab, rt_key, rt_unpack)])
    nbits = np.array([r.get("nbits_macs_per_s", {}).get(k, np.nan) if k and ab_stored[c] >= 16 else np.nan
                      for c, (r, k) in enumerate(zip(rts, rt_key))])
    fused = is_mm[:, None] & ~np.isnan(nbits)[None, :]
    rt_unpack_lc = np.where(fused, 0.0, np.where(is_mm[:, None], unpack_kn[None, :], rt_unpack[None, :]))
    unpack = np.where(np.isnan(rt_unpack_lc), unpack[None, :], rt_unpack_lc)
    op_overhead = np.array([r.get("op_overhead_s", o) for r, o in zip(rts, overhead)])
    # a conv's separate bias Add (meta["bias_add_layers"]) is fused into the conv only while its weight is
    # a constant: a dequantized weight leaves it as an elementwise node over the float32 output
    ew = np.array([r.get("elementwise_bytes_per_s", np.inf) for r in rts])
    bias_add = np.isin([l.name for l in model.layers], list((model.meta or {}).get("bias_add_layers", ())))
    t_bias = np.where(bias_add[:, None] & dequantized[None, :],
                      op_overhead[None, :] + 8.0 * cols["act_out"][:, None] / ew[None, :], 0.0)
    overhead = overhead[None, :] + (rt_nodes[None, :] - fused) * op_overhead[None, :]   # fused: no DQ node
    kinds = np.array([l.kind for l in model.layers])
    conv_rate = kernel_rates(model, devs, precision, wb)
    peak = np.where(np.isnan(conv_rate), peak[None, :], conv_rate)
    peak = np.where(fused, nbits[None, :] * np.array([dv.compute_fraction for dv in devs])[None, :], peak)

    # Activation storage width: requested bits when native, else the executed precision's width.
    act_bits = np.where(mode == MODE_CODES["native"], ab, prec_bits).astype(np.float64)

    n = cols["n_params"][:, None]
    wbytes = packed_bytes(n, wb[None, :], enc.choice_value["weight_scheme"][None, :],
                          enc.choice_value["granularity"][None, :], sp.group_size,
                          out_channels=cols["out_channels"][:, None],
                          in_features=cols["in_features"][:, None], weight_format=fmt[None, :]).astype(np.float64)
    wbytes = wbytes + 2.0 * cols["extra_params"][:, None]  # biases stay fp16
    act_in_b = cols["act_in"][:, None] * act_bits[None, :] / 8.0
    act_out_b = cols["act_out"][:, None] * act_bits[None, :] / 8.0
    # an embedding lookup reads one row per id, not the table
    read = np.array([min(l.act_in, l.out_channels) / l.out_channels if l.kind == "embedding" else 1.0
                     for l in model.layers])
    # a runtime that materialises weights (onnxruntime folds fp16 Casts, dequantizes into float32 buffers)
    # runs its kernels on n_params x the precision's width; a model whose float32 weights fit in its
    # cache reads them from there on every run
    materialised = np.array([bool(r) for r in rts])
    kernel_wbytes = np.where(materialised[None, :], n * prec_bits[None, :] / 8.0 + 2.0 * cols["extra_params"][:, None],
                             wbytes)
    fp32_bytes = 4.0 * float(np.sum(cols["n_params"]) + np.sum(cols["extra_params"]))
    bw = np.array([r["cache_bytes_per_s"] if "cache_bytes" in r and fp32_bytes <= r["cache_bytes"] else b
                   for r, b in zip(rts, bw)])
    moved = kernel_wbytes * read[:, None] + act_in_b + act_out_b
    macs = cols["macs"][:, None]
    t_compute = macs / peak
    t_memory = moved / bw[None, :]
    # only the weights read are unpacked (one row per id for a lookup), except where the runtime dequantizes
    # whole tensors (a QDQ DequantizeLinear in front of a Gather dequantizes the entire table on every run)
    unpacked_share = np.where(dequantized[None, :], 1.0, read[:, None])
    latency = (np.maximum(t_compute, t_memory) + overhead + (n * unpacked_share) * unpack
               + np.where(kinds == "embedding", 0.0, cols["act_in"])[:, None] * rt_act[None, :] + t_bias)
    energy = (macs * e_mac[None, :] + moved * e_dram[None, :] + 2.0 * moved * e_sram[None, :]
              + static[None, :] * latency * 1e12)
    # Partition boundary *into* layer l: sync + its input tensor over the partition link.
    part_s = profile.partition_sync_s + act_in_b / profile.partition_bytes_per_s
    part_pj = act_in_b * profile.main.e_dram_pj_per_byte + profile.main.static_power_w * part_s * 1e12
    live = act_in_b + act_out_b

    ab_t = np.broadcast_to(ab_stored[None, :].astype(np.float64), (L, C))
    dev_t = np.broadcast_to(dev_idx[None, :].astype(np.float64), (L, C))
    # One row of 8 float64 per (layer, choice): the population gather reads one cache line each.
    stacked = np.stack([wbytes, latency, energy, live, part_s, part_pj, ab_t, dev_t],
                       axis=-1).reshape(L * C, len(COLUMNS))
    conv_s = cols["act_in"] * profile.convert_s_per_element
    conv_pj = cols["act_in"] * profile.convert_pj_per_element + profile.main.static_power_w * conv_s * 1e12
    device = np.broadcast_to(dev_idx[None, :], (L, C)).copy()
    att = decoder_attention(model, profile, getattr(sp, "kv_cache_bits", 16))
    fixed = {} if att is None else dict(
        fixed_latency_s=att["latency_s"], fixed_energy_pj=att["energy_pj"],
        kv_cache_bytes=att["kv_cache_bytes"], fixed_live_bytes=att["live_bytes"], attention=att)
    g = graph_ops_cost(model, profile)
    fixed["fixed_latency_s"] = fixed.get("fixed_latency_s", 0.0) + g["latency_s"]
    fixed["fixed_energy_pj"] = fixed.get("fixed_energy_pj", 0.0) + g["energy_pj"]
    fixed["graph"] = g
    return CostTables(**fixed, n_layers=L, n_choices=C, stacked=np.ascontiguousarray(stacked), abits=ab_stored,
                      device=device, mode=np.broadcast_to(mode[None, :], (L, C)).copy(),
                      precision=np.broadcast_to(precision[None, :], (L, C)).copy(),
                      convert_s=conv_s, convert_pj=conv_pj,
                      # parameters never quantized (norms): fp16, or F32 as llama.cpp's GGUF files keep them
                      resident_bytes=float(model.other_params * (4 if sp.llama_cpp_types else 2)),
                      static_w=profile.main.static_power_w,
                      storage_bits=act_bits, partition_sync_s=profile.partition_sync_s,
                      partition_s_per_bit=cols["act_in"] / 8.0 / profile.partition_bytes_per_s,
                      partition_pj_per_bit=cols["act_in"] / 8.0 * profile.main.e_dram_pj_per_byte)


def runtime_layer_ops(enc, runtime_ops, wb, ab, mode):
    """Per-choice costs of the ops a runtime runs around a layer (a profile's ``runtime_ops``).

    What quantmoo's QDQ export (:mod:`quantmoo.export.onnx_qdq`) puts around each layer, costed at
    the device's measured rates:

    * a dequantized weight (``weight_bits < 16`` run ``unpacked``): one ``DequantizeLinear`` at
      the measured cost per weight of its format, ``{u}int{8|4}_{granularity}`` (2-4 bits are
      stored as INT4, 5-8 bits as INT8, asymmetric as the unsigned type);
    * the layer's input: ``QuantizeLinear -> [Clip] -> DequantizeLinear`` per element for integer
      activations (the ``Clip`` where the grid is narrower than the type: symmetric grids and
      under 8 bits), a ``Cast`` to fp16 and back for 16-bit ones.

    Returns
    -------
    unpack : ndarray (n_choices,)
        Seconds per weight, NaN where the profile has no measured format (its
        ``unpack_ns_per_weight`` applies).
    act : ndarray (n_choices,)
        Seconds per input element of the layer.
    nodes : ndarray (n_choices,)
        Extra runtime nodes per layer (each costs the device's per-op overhead).
    keys : list of str or None
        The weight format key of each dequantized choice.
    """
    C = len(wb)
    unpack, act, nodes = np.full(C, np.nan), np.zeros(C), np.zeros(C)
    keys = [None] * C
    fmt = enc.choice_value["weight_format"]
    wsch, gran = enc.choice_value["weight_scheme"], enc.choice_value["granularity"]
    asch = enc.choice_value["activation_scheme"]
    for c in range(C):   # per choice (a few dozen), not per layer or individual
        rt = runtime_ops[c]
        dq = rt.get("dequantize_s_per_weight")
        if dq is not None and fmt[c] == "int" and wb[c] < 16 and mode[c] == MODE_CODES["unpacked"]:
            key = f"{'u' if wsch[c] == 'asymmetric' else ''}int{4 if wb[c] <= 4 else 8}_{gran[c]}"
            if key in dq:
                unpack[c], nodes[c], keys[c] = dq[key], 1.0, key
        a = rt.get("activation_s_per_element")
        if a is not None:
            if ab[c] >= 16:
                act[c], nodes[c] = a.get("cast_fp16", 0.0), nodes[c] + 2
            else:
                clip = asch[c] != "asymmetric" or ab[c] < 8
                act[c] = a.get("quantize", 0.0) + a.get("dequantize", 0.0) + (a.get("clip", 0.0) if clip else 0.0)
                nodes[c] += 3 if clip else 2
    return unpack, act, nodes, keys


def kernel_rates(model, devices, precision, wb):
    """(n_layers, n_choices) MAC/s of ``conv`` and ``linear`` layers at fp32 where the device measured its
    kernels (``runtime_ops.kernel_macs_per_s``): ``constant_weight_*`` for 16-bit weights (an
    initializer: prepacked, onnxruntime's NCHWc path for convs with its reorders included),
    ``runtime_weight_*`` for weights dequantized on every run (packed on every run); ``*_1x1`` for
    pointwise convolutions, ``*_kxk`` for other convolutions, ``*_matmul`` for linear layers.
    NaN elsewhere (the device's peak applies)."""
    out = np.full((model.n_layers, len(wb)), np.nan)
    kind = np.array([l.kind for l in model.layers])
    pointwise = np.array([int(np.prod(l.weight_shape[2:])) == 1 for l in model.layers])
    sel = {"1x1": (kind == "conv") & pointwise, "kxk": (kind == "conv") & ~pointwise, "matmul": kind == "linear"}
    for c, dev in enumerate(devices):
        rates = dev.runtime_ops.get("kernel_macs_per_s")
        if rates and precision[c] == "fp32":
            key = "constant_weight" if wb[c] >= 16 else "runtime_weight"
            for k, rows in sel.items():
                if f"{key}_{k}" in rates:
                    out[rows, c] = rates[f"{key}_{k}"] * dev.compute_fraction
    return out


def graph_ops_cost(model, profile) -> dict:
    """Latency and energy of the graph's non-layer work, one constant per (model, profile).

    ``model.meta["graph_ops"]`` (recorded by the ONNX importer from onnxruntime's run) gives per
    op type the node count, activation bytes read + written and the MACs of activation x
    activation matmuls. Each node costs the main device's per-op overhead plus the roofline of
    its bytes (at ``runtime_ops.elementwise_bytes_per_s`` where measured, else the achievable
    bandwidth) and its MACs (fp32 rate, else the fastest); the profile's per-inference
    ``run_overhead_s`` is added once.
    """
    dev = profile.main
    rt = dev.runtime_ops
    ops = (getattr(model, "meta", None) or {}).get("graph_ops") or {}
    bw = rt.get("elementwise_bytes_per_s") or dev.bandwidth_bytes_per_s * dev.bandwidth_fraction
    prec = "fp32" if "fp32" in dev.peak_macs_per_s else max(dev.peak_macs_per_s, key=dev.peak_macs_per_s.get)
    rate = dev.peak_macs_per_s[prec] * dev.compute_fraction
    nodes = sum(int(o.get("nodes", 0)) for o in ops.values())
    nbytes = sum(float(o.get("bytes", 0)) for o in ops.values())
    macs = sum(float(o.get("macs", 0)) for o in ops.values())
    t = (rt.get("run_overhead_s", 0.0) + nodes * rt.get("op_overhead_s", dev.layer_overhead_s)
         + sum(max(float(o.get("macs", 0)) / rate, float(o.get("bytes", 0)) / bw) for o in ops.values()))
    e = (macs * dev.e_mac_pj[prec] + nbytes * (dev.e_dram_pj_per_byte + 2.0 * dev.e_sram_pj_per_byte)
         + dev.static_power_w * t * 1e12)
    return {"latency_s": t, "energy_pj": e, "nodes": nodes, "bytes": nbytes, "macs": macs}


def evaluate_costs(tables: CostTables, C: np.ndarray, rows: np.ndarray = None) -> dict:
    """Objectives of a population of choice matrices.

    Parameters
    ----------
    tables : CostTables
    C : ndarray (N, n_layers) of int
        Choice id of every layer of every individual.
    rows : ndarray (N, n_layers), optional
        ``C + layer * n_choices`` if the caller already has it.

    Returns
    -------
    dict of ndarray (N,)
        ``size_mb``, ``latency_ms``, ``energy_mj``, ``memory_mb``.

    Notes
    -----
    One flat gather-and-sum pass per separable output (the bare minimum), then the
    non-separable terms: activation bits and device depend on the choice only, so they are
    gathered from tiny per-choice arrays (cache-resident); partition costs are gathered only at
    the (usually few) boundaries.
    """
    C = np.asarray(C)
    N, L = C.shape
    if rows is None:
        rows = C + tables.row_offsets[:L][None, :]
    flat = tables.flat
    wbytes = flat["weight_bytes"][rows].sum(axis=1)
    latency = flat["latency_s"][rows].sum(axis=1)
    latency += tables.fixed_latency_s
    energy = flat["energy_pj"][rows].sum(axis=1)
    energy += tables.fixed_energy_pj
    peak_act = np.maximum(flat["live_act_bytes"][rows].max(axis=1), tables.fixed_live_bytes)

    if L > 1:
        # convert ops where consecutive activation bits differ (cast once, not inside each product)
        A = tables.abits_small[C]
        switch = (A[:, 1:] != A[:, :-1]).astype(np.float64)
        latency += switch @ tables.convert_s[1:L]
        energy += switch @ tables.convert_pj[1:L]
        # partition boundaries where consecutive layers run on different devices
        if tables.has_fallback:
            D = tables.device_small[C]
            boundary = D[:, 1:] != D[:, :-1]
            if boundary.any():
                # boundary into layer l costs sync + act_in[l] * storage_bits(c_l) / 8 over the link
                n_b = np.count_nonzero(boundary, axis=1)
                bits_b = tables.storage_bits_small[C][:, 1:]     # a contiguous gather, then the view
                bits_b *= boundary
                t_part = n_b * tables.partition_sync_s + bits_b @ tables.partition_s_per_bit[1:L]
                latency += t_part
                energy += bits_b @ tables.partition_pj_per_bit[1:L] + tables.static_w * t_part * 1e12

    resident = wbytes + tables.resident_bytes
    return {
        "size_mb": resident / 1e6,
        "latency_ms": latency * 1e3,
        "energy_mj": energy * 1e-9,
        "memory_mb": (resident + tables.kv_cache_bytes + peak_act) / 1e6,
    }


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, context: int, batch: int = 1,
                   kv_bits: int = 16) -> float:
    """Bytes of a KV cache: ``2 * n_layers * n_kv_heads * head_dim * context * batch`` elements
    (K and V) at ``KV_BYTES_PER_ELEMENT[kv_bits]``.

    >>> kv_cache_bytes(32, 32, 128, 4096)  # llama2-7b, fp16, 4,096 tokens
    2147483648.0
    """
    return 2.0 * n_layers * n_kv_heads * head_dim * context * batch * KV_BYTES_PER_ELEMENT[kv_bits]


def decoder_attention(model, profile, kv_bits: int = 16) -> Optional[dict]:
    """Cost of every block's attention of a decoder LLM (None for other models).

    Per block, for ``tokens`` new tokens (``batch`` when decoding) attending to ``context`` keys:

    * MACs ``pairs * head_dim * n_heads * 2`` (scores q.K and values p.V over the causal (query,
      key) pairs, :func:`quantmoo.models.transformer.attention_pairs`: ``batch * context`` when
      decoding, the triangle in prefill; as ``meta["attention_macs_per_layer"]``);
    * bytes: the cache read (``2 * batch * context * n_kv_heads * head_dim`` elements at the KV
      precision), the new tokens' K/V written (``2 * tokens * n_kv_heads * head_dim``), the fp32
      score tensor (``tokens * n_heads * context``) written and read once, and q in / output out
      at the compute precision's width;
    * time: the roofline of those MACs and bytes on the device the profile resolves
      ``(kv_bits, 16 if kv_bits == 16 else 8)`` to (a quantized cache is read by an integer dot
      product with 8-bit queries, as llama.cpp does; an fp16 cache by an fp16 one), + two op
      overheads (the two matmuls; softmax taken as fused), + the unpack cost of every cached
      element read when the device widens it (int4).

    Returns
    -------
    dict or None
        ``latency_s``, ``energy_pj`` (all blocks), ``kv_cache_bytes`` (resident cache of
        ``context`` entries), ``live_bytes`` (one block's score tensor + q + output), ``macs``,
        ``bytes_moved``, ``kv_read_bytes``, ``device``, ``mode``, ``precision``, ``kv_bits``.
    """
    meta = getattr(model, "meta", None) or {}
    if meta.get("family") != "decoder" or "architecture" not in meta or "context" not in model.workload:
        return None
    if kv_bits not in KV_BYTES_PER_ELEMENT:
        from ..errors import QuantmooError
        raise QuantmooError(f"The 'kv_cache_bits' must be in {{4, 8, 16}}; got {kv_bits!r}")
    arch = meta["architecture"]
    L, nh, nkv, hd = (int(arch[k]) for k in ("n_layers", "n_heads", "n_kv_heads", "head_dim"))
    batch, keys = int(model.workload.get("batch", 1)), int(model.workload["context"])
    tokens = int(meta.get("tokens", batch))
    bpe = KV_BYTES_PER_ELEMENT[kv_bits]
    dev_name, mode, prec = profile.resolve(kv_bits, 16 if kv_bits == 16 else 8)
    dev = profile.devices[dev_name]
    act_b = PRECISION_BITS[prec] / 8.0
    from ..models.transformer import attention_pairs
    macs = float(attention_pairs(batch, max(tokens // batch, 1), keys)) * hd * nh * 2
    kv_read = 2.0 * batch * keys * nkv * hd
    kv_write = 2.0 * tokens * nkv * hd
    scores = float(tokens) * nh * keys * SCORE_BYTES
    q_out = 2.0 * tokens * nh * hd * act_b
    moved = (kv_read + kv_write) * bpe + 2.0 * scores + q_out
    t = (max(macs / (dev.peak_macs_per_s[prec] * dev.compute_fraction),
             moved / (dev.bandwidth_bytes_per_s * dev.bandwidth_fraction))
         + 2.0 * dev.layer_overhead_s + (kv_read * dev.unpack_s_per_weight if mode == "unpacked" else 0.0))
    e = (macs * dev.e_mac_pj[prec] + moved * dev.e_dram_pj_per_byte + 2.0 * moved * dev.e_sram_pj_per_byte
         + dev.static_power_w * t * 1e12)
    return {"latency_s": L * t, "energy_pj": L * e,
            "kv_cache_bytes": kv_cache_bytes(L, nkv, hd, keys, batch, kv_bits),
            "live_bytes": scores + q_out, "macs": L * macs, "bytes_moved": L * moved,
            "kv_read_bytes": L * kv_read * bpe, "device": dev_name, "mode": mode, "precision": prec,
            "kv_bits": kv_bits}


def layer_breakdown(tables: CostTables, model, c: np.ndarray) -> list:
    """Per-layer costs of one individual (choice vector ``c`` of length n_layers)."""
    c = np.asarray(c, dtype=np.int64)
    out = []
    modes = {v: k for k, v in MODE_CODES.items()}
    for l, layer in enumerate(model.layers):
        row = tables.stacked[l * tables.n_choices + c[l]]
        out.append({
            "layer": layer.name,
            "device": "fallback" if tables.device[l, c[l]] else "main",
            "mode": modes[int(tables.mode[l, c[l]])],
            "precision": str(tables.precision[l, c[l]]),
            "weight_bytes": float(row[0]),
            "latency_ms": float(row[1] * 1e3),
            "energy_mj": float(row[2] * 1e-9),
            "live_act_bytes": float(row[3]),
            "convert_in": bool(l > 0 and tables.abits[c[l]] != tables.abits[c[l - 1]]),
            "partition_in": bool(l > 0 and tables.device[l, c[l]] != tables.device[l - 1, c[l - 1]]),
        })
    return out
