"""The brief's facade (quantmoo.brief): names, mapping onto the core, the async engine.

The three usage examples of the product brief run here with only the import line changed and
a model named; each gives the same front as the equivalent quantmoo.search call.
Async tests use asyncio.run (no pytest-asyncio).
"""
import asyncio
import concurrent.futures
import json
import time

import numpy as np
import pytest

import quantmoo
from quantmoo import QuantConfig, QuantmooError, SearchSpace
from quantmoo.accuracy.tables import AccuracyTable, prior_table
from quantmoo.brief import (CalibrationMethod, HardwareTarget, LayerQuantConfig, QuantizationEvolutionConfig,
                            QuantizationEvolutionEngine, QuantizationGenome, QuantizationGranularity,
                            QuantizationScheme, SensitivityReport)
from quantmoo.config import LayerQuant

# GPT-2's layer table has no separate embedding: its token embedding is tied to lm_head.
# These stand for the brief's ["embedding", "attention", "ffn", "output"].
GPT2_LAYERS = ["h.0.attn.c_attn", "h.0.mlp.c_fc", "h.0.mlp.c_proj", "lm_head"]
FP16_PIN = {"weight_bits": 16, "activation_bits": 16, "weight_scheme": "symmetric",
            "activation_scheme": "asymmetric", "granularity": "per_channel"}


def same_front(engine, res):
    assert np.array_equal(engine.result.X, res.X)
    assert np.array_equal(engine.result.F, res.F)
    assert [h["hypervolume"] for h in engine.history] == [h["hypervolume"] for h in res.history]


def best_by_weights(res, config):
    w = {"accuracy_loss": config.accuracy_weight, "latency_ms": config.latency_weight,
         "size_mb": config.compression_weight, "energy_mj": config.energy_weight}
    return res.best(weights={k: v for k, v in w.items() if v > 0})


# -- the brief's three examples ---------------------------------------------------------------
def test_example_basic_evolution_needs_a_model_for_bare_layer_names():
    async def main():
        config = QuantizationEvolutionConfig(population_size=20, max_generations=30,
                                             hardware_target=HardwareTarget.ARM_NEON)
        engine = QuantizationEvolutionEngine(config)
        await engine.run_evolution(["embedding", "attention", "ffn", "output"])

    with pytest.raises(QuantmooError, match=r"bare layer names .*no model to look them up in.*"
                                            r"does not invent layer sizes.*model='gpt2'"):
        asyncio.run(main())


def test_example_basic_evolution_brief_names_are_not_layers_of_a_real_model():
    async def main():
        config = QuantizationEvolutionConfig(population_size=20, max_generations=30,
                                             hardware_target=HardwareTarget.ARM_NEON, model="gpt2")
        engine = QuantizationEvolutionEngine(config)
        await engine.run_evolution(["embedding", "attention", "ffn", "output"])

    with pytest.raises(QuantmooError, match=r"Unknown layer name\(s\) \['embedding', 'attention', 'ffn', "
                                            r"'output'\] for model 'gpt2'; its 49 layers are h.0.attn.c_attn"):
        asyncio.run(main())


def test_example_basic_evolution_on_arm_neon(capsys):
    async def main():
        config = QuantizationEvolutionConfig(
            population_size=20,
            max_generations=30,
            hardware_target=HardwareTarget.ARM_NEON,
            model="gpt2",                               # added: the model the layer names belong to
        )
        engine = QuantizationEvolutionEngine(config)
        best_genome = await engine.run_evolution(GPT2_LAYERS)
        print(f"Best compression: {best_genome.compression_ratio:.2f}x")
        print(f"Accuracy: {best_genome.accuracy}")
        return engine, best_genome

    engine, best = asyncio.run(main())
    out = capsys.readouterr().out
    assert f"Best compression: {best.compression_ratio:.2f}x" in out
    # the prior's accuracy_loss is not an accuracy: the brief's field stays empty
    assert "Accuracy: None" in out and best.accuracy_kind == "prior" and best.accuracy_loss > 0

    gpt2 = quantmoo.zoo.load("gpt2")
    space = SearchSpace(pinned={n: FP16_PIN for n in gpt2.layer_names if n not in GPT2_LAYERS})
    res = quantmoo.search("gpt2", "arm_neon", space=space, pop_size=20, n_gen=30, seed=0, progress=False)
    same_front(engine, res)
    assert len(engine.history) == 30 and engine.history[0]["n_eval"] == 20
    # the layers not named stay fixed (fp16) in every front point
    for g in engine.pareto_front:
        for n, lc in g.layer_configs.items():
            if n not in GPT2_LAYERS:
                assert (lc.weight_bits, lc.activation_bits) == (16, 16)
    assert any(g.layer_configs["lm_head"].weight_bits < 16 for g in engine.pareto_front)
    # the weighted choice is SearchResult.best with the config's weights mapped onto objectives
    sol = best_by_weights(res, engine.config)
    assert best.to_quant_config().to_dict() == sol.config.to_dict()
    assert best.inference_latency_ms == sol.objectives["latency_ms"]


def test_example_mobile_deployment_with_latency_target():
    async def main():
        config = QuantizationEvolutionConfig(
            population_size=20,
            max_generations=30,
            hardware_target=HardwareTarget.QUALCOMM_HEXAGON,
            target_latency_ms=50.0,
            latency_weight=0.4,
            accuracy_weight=0.6,
        )
        engine = QuantizationEvolutionEngine(config)
        best_genome = await engine.run_evolution("bert-base")     # named model
        print(f"Latency: {best_genome.inference_latency_ms:.1f} ms, "
              f"memory: {best_genome.memory_footprint_mb:.1f} MB")
        return engine, best_genome

    engine, best = asyncio.run(main())
    res = quantmoo.search("bert-base", "hexagon", constraints={"latency_ms": 50.0}, pop_size=20, n_gen=30,
                          seed=0, progress=False)
    same_front(engine, res)
    assert engine.result.meta["constraints"] == {"latency_ms": 50.0}
    assert all(g.inference_latency_ms <= 50.0 for g in engine.pareto_front)
    # the bound binds: some uniform configs fall back to the CPU and miss it
    assert any(b["objectives"]["latency_ms"] > 50.0 for b in res.baselines)
    assert best.to_quant_config().to_dict() == best_by_weights(res, engine.config).config.to_dict()


def test_example_extreme_compression_int2_int4():
    async def main():
        config = QuantizationEvolutionConfig(
            population_size=20,
            max_generations=30,
            hardware_target=HardwareTarget.ARM_NEON,
            min_bits=2,
            max_bits=4,
            compression_weight=0.7,
            accuracy_weight=0.3,
            latency_weight=0.0,
        )
        engine = QuantizationEvolutionEngine(config)
        best_genome = await engine.run_evolution(quantmoo.zoo.load("tinyllama-1.1b"))   # named model
        print(f"Compression: {best_genome.compression_ratio:.1f}x")
        return engine, best_genome

    engine, best = asyncio.run(main())
    res = quantmoo.search("tinyllama-1.1b", "arm_neon", space=SearchSpace(weight_bits=(2, 3, 4)), pop_size=20,
                          n_gen=30, seed=0, progress=False)
    same_front(engine, res)
    bits = {lc.weight_bits for g in engine.pareto_front for lc in g.layer_configs.values()}
    assert bits <= {2, 3, 4}
    assert engine.result.meta["space"]["activation_bits"] == [4, 8, 16]   # bounded below only
    assert best.compression_ratio > 7.0
    assert best.to_quant_config().to_dict() == best_by_weights(res, engine.config).config.to_dict()


# -- fitness fields ------------------------------------------------------------------------------
def test_genome_fitness_is_the_core_objectives():
    config = QuantizationEvolutionConfig(population_size=12, max_generations=4, hardware_target="arm_dot",
                                         model="resnet18")
    engine = QuantizationEvolutionEngine(config)
    asyncio.run(engine.run_evolution())
    front = engine.pareto_front
    assert len(front) == len(engine.result.front) > 1
    for g, s in zip(front, engine.result.front):
        o = s.objectives
        assert g.accuracy_loss == o["accuracy_loss"] and g.size_mb == o["size_mb"]
        assert g.inference_latency_ms == o["latency_ms"] and g.energy_per_inference_mj == o["energy_mj"]
        assert g.memory_footprint_mb == o["memory_mb"]          # not searched, still computed by the core
        assert g.compression_ratio == s.compression_ratio
        assert g.accuracy is None and g.accuracy_kind == "prior" and g.baseline_accuracy is None
        assert g.calibration_method == CalibrationMethod(s.config.calibration)
        assert g.to_quant_config().to_dict() == s.config.to_dict()
        assert (g.model, g.hardware) == ("resnet18", "arm_dot")
        vals = quantmoo.evaluate("resnet18", "arm_dot", g.to_quant_config())
        assert vals["latency_ms"] == pytest.approx(g.inference_latency_ms, rel=1e-12)


def test_measured_accuracy_on_digits():
    config = QuantizationEvolutionConfig(population_size=12, max_generations=3, hardware_target="arm_dot",
                                         model="digits", measure_accuracy=True)
    engine = QuantizationEvolutionEngine(config)
    best = asyncio.run(engine.run_evolution())
    ev = engine.search_run.problem.model.evaluator
    assert best.baseline_accuracy == pytest.approx(ev.fp32_accuracy_pct) and 90 < best.baseline_accuracy <= 100
    for g in engine.pareto_front:
        d = ev.details(g.to_quant_config())
        assert g.accuracy == d["accuracy_pct"] and g.measured["loss"] == d["loss"]
        assert g.accuracy_kind == "proxy"       # searched with the default proxy (real weights: never the prior)
    assert engine.result.meta["measured_with"] == ev.name


def test_measure_accuracy_needs_an_evaluator():
    engine = QuantizationEvolutionEngine(QuantizationEvolutionConfig(population_size=8, max_generations=1,
                                                                     measure_accuracy=True))
    with pytest.raises(QuantmooError, match="measure_accuracy=True needs a model with a real evaluator"):
        asyncio.run(engine.run_evolution("resnet18"))


# -- progress, non-blocking, cancellation -------------------------------------------------------
def small_config(**kw):
    args = dict(population_size=16, max_generations=12, hardware_target=HardwareTarget.ARM_DOT, seed=5,
                model="resnet18")
    args.update(kw)
    return QuantizationEvolutionConfig(**args)


def small_search(stop_after=None, n_gen=12):
    """The equivalent quantmoo.search call; a run stopped after k generations is the same 12-generation
    run stopped by its callback."""
    cb = None if stop_after is None else (lambda rec: rec["n_gen"] < stop_after)
    return quantmoo.search("resnet18", "arm_dot", pop_size=16, n_gen=n_gen, seed=5, progress=False, callback=cb)


def test_progress_callbacks_sync_and_async():
    engine = QuantizationEvolutionEngine(small_config())
    calls, acalls = [], []
    engine.add_progress_callback(lambda *a: calls.append(a))

    async def acb(gen, n_evals, front_size, hv, best):
        await asyncio.sleep(0)
        acalls.append(gen)

    engine.add_progress_callback(acb)
    asyncio.run(engine.run_evolution())
    assert [c[0] for c in calls] == list(range(1, 13)) == acalls
    for (gen, n_evals, front_size, hv, best), h in zip(calls, engine.history):
        assert (gen, n_evals, front_size, hv) == (h["n_gen"], h["n_eval"], h["n_front"], h["hypervolume"])
        assert isinstance(best, QuantizationGenome)
    # the last generation's best genome is the final choice
    assert calls[-1][4].to_quant_config().to_dict() == engine.get_best_genome().to_quant_config().to_dict()
    same_front(engine, small_search())


def test_callback_returning_false_stops_early():
    engine = QuantizationEvolutionEngine(small_config())
    engine.add_progress_callback(lambda gen, *a: gen < 4)
    best = asyncio.run(engine.run_evolution())
    assert len(engine.history) == 4 and isinstance(best, QuantizationGenome)
    assert engine.result.meta["stopped"] == {"reason": "callback", "generations": 4}
    same_front(engine, small_search(stop_after=4))


def test_event_loop_is_not_blocked():
    engine = QuantizationEvolutionEngine(small_config(max_generations=8))
    ticks, at_gen = [0], []
    engine.add_progress_callback(lambda gen, *a: at_gen.append(ticks[0]))

    async def ticker(stop):
        while not stop.is_set():
            ticks[0] += 1
            await asyncio.sleep(0)

    async def main():
        stop = asyncio.Event()
        t = asyncio.create_task(ticker(stop))
        await engine.run_evolution()
        stop.set()
        await t

    asyncio.run(main())
    # the other task ran between every two generations
    assert all(b > a for a, b in zip(at_gen, at_gen[1:]))


def test_cancel_between_generations_keeps_a_consistent_partial_result():
    engine = QuantizationEvolutionEngine(small_config())

    async def main():
        task = asyncio.current_task()
        engine.add_progress_callback(lambda gen, *a: task.cancel() if gen == 5 else None)
        await engine.run_evolution()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert len(engine.history) == 5
    assert engine.result.meta["stopped"] == {"reason": "cancelled", "generations": 5}
    same_front(engine, small_search(stop_after=5))        # exactly the first five generations
    assert engine.get_best_genome() in engine.pareto_front


class CancelDuringStep(concurrent.futures.ThreadPoolExecutor):
    """Cancels the engine's task while its generation ``at`` is running in the worker thread."""

    def __init__(self, at):
        super().__init__(max_workers=1)
        self.at, self.n, self.task, self.loop = at, 0, None, None

    def submit(self, fn, *args, **kwargs):
        if getattr(fn, "__name__", "") != "step":
            return super().submit(fn, *args, **kwargs)
        self.n += 1
        if self.n != self.at:
            return super().submit(fn, *args, **kwargs)

        def slow_step():
            self.loop.call_soon_threadsafe(self.task.cancel)
            time.sleep(0.2)          # the cancellation reaches the engine while this step runs
            return fn(*args, **kwargs)
        return super().submit(slow_step)


def test_cancel_during_a_generation_waits_for_it():
    ex = CancelDuringStep(at=3)
    engine = QuantizationEvolutionEngine(small_config(), executor=ex)

    async def main():
        ex.task, ex.loop = asyncio.current_task(), asyncio.get_running_loop()
        await engine.run_evolution()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    ex.shutdown()
    run = engine.search_run
    assert len(engine.history) == run.n_done == 3 == run.algorithm.n_gen - 1
    same_front(engine, small_search(stop_after=3))


def test_external_cancellation_with_wait_for():
    engine = QuantizationEvolutionEngine(small_config(max_generations=10_000))
    started = []

    async def main():
        engine.add_progress_callback(lambda gen, *a: started.append(gen))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(engine.run_evolution(), timeout=1.0)

    asyncio.run(main())
    n = len(engine.history)
    assert n >= 1 and engine.result.meta["stopped"]["reason"] == "cancelled"
    same_front(engine, small_search(stop_after=n, n_gen=10_000))


def test_no_second_run_while_running():
    engine = QuantizationEvolutionEngine(small_config(max_generations=3))

    async def main():
        t = asyncio.create_task(engine.run_evolution())
        await asyncio.sleep(0)
        with pytest.raises(QuantmooError, match="already running"):
            await engine.run_evolution()
        await t

    asyncio.run(main())
    assert len(engine.history) == 3


# -- export, sensitivity ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_export_quantization_config(tmp_path, suffix):
    engine = QuantizationEvolutionEngine(small_config(max_generations=3))
    best = asyncio.run(engine.run_evolution())
    path = engine.export_quantization_config(best, tmp_path / f"best{suffix}")
    text = path.read_text()
    if suffix == ".json":
        json.loads(text)
    cfg = QuantConfig.load(path)
    assert cfg.to_dict()["layers"] == best.to_quant_config().to_dict()["layers"]
    assert (cfg.model, cfg.hardware) == ("resnet18", "arm_dot")
    assert cfg.meta["objectives"]["latency_ms"] == best.inference_latency_ms
    assert cfg.meta["accuracy_kind"] == "prior" and cfg.meta["accuracy"] is None
    vals = quantmoo.evaluate("resnet18", "arm_dot", cfg)
    assert vals["size_mb"] == pytest.approx(best.size_mb, rel=1e-12)


def test_export_rejects_unknown_extension(tmp_path):
    engine = QuantizationEvolutionEngine(small_config(max_generations=2))
    best = asyncio.run(engine.run_evolution())
    with pytest.raises(QuantmooError, match=r"extension must be one of \{.yaml, .yml, .json\}"):
        engine.export_quantization_config(best, tmp_path / "best.txt")


def test_analyze_sensitivity_prior_without_weights():
    engine = QuantizationEvolutionEngine(QuantizationEvolutionConfig(model="gpt2", min_bits=3))
    rep = asyncio.run(engine.analyze_sensitivity(["lm_head", "h.3.mlp.c_fc"]))
    assert isinstance(rep, SensitivityReport) and rep.kind == "prior" and list(rep) == ["lm_head", "h.3.mlp.c_fc"]
    model = quantmoo.zoo.load("gpt2")
    space = SearchSpace(weight_bits=(3, 4, 6, 8, 16))
    enc = space.bind(model)
    T = prior_table(model, enc).separable(0)
    for name in rep:
        for b, v in rep.by_bits[name].items():
            lq = LayerQuant(weight_bits=b, activation_bits=16)         # reference: most accurate activations
            x = enc.encode(QuantConfig({n: lq for n in model.layer_names}))
            assert v == T[model.index(name), enc.choices(x[None])[0, 0]]
        assert rep[name] == rep.by_bits[name][3]                      # score: the lowest bits
    # first/last layers weigh 3x in the prior
    assert rep["lm_head"] == pytest.approx(3 * rep["h.3.mlp.c_fc"])
    with pytest.raises(QuantmooError, match="bare layer names"):
        asyncio.run(QuantizationEvolutionEngine().analyze_sensitivity(["embedding"]))


def test_analyze_sensitivity_uses_quantmoo_sensitivity_with_weights(monkeypatch):
    seen = {}

    def fake_sensitivity(model, space=None, evaluator=None, **kw):
        seen.update(model=model.name, evaluator=evaluator, space=space)
        t = prior_table(model, space.bind(model))
        return AccuracyTable(t.table * 2, kind="proxy")

    monkeypatch.setattr(quantmoo, "sensitivity", fake_sensitivity)
    engine = QuantizationEvolutionEngine(QuantizationEvolutionConfig(model="digits"))
    rep = asyncio.run(engine.analyze_sensitivity())
    assert rep.kind == "proxy" and seen["model"] == "digits" and seen["evaluator"] is not None
    assert set(rep) == {"fc1", "fc2", "fc3", "fc4"}
    # the table plugs back into the search
    cfg = QuantizationEvolutionConfig(model="digits", accuracy=rep.table, population_size=8, max_generations=2)
    g = asyncio.run(QuantizationEvolutionEngine(cfg).run_evolution())
    assert g.accuracy_kind == "proxy"


# -- the names and their mapping ------------------------------------------------------------------
def test_enums_map_onto_core_names():
    assert {t.value for t in HardwareTarget} == set(quantmoo.hardware.names())
    assert HardwareTarget.QUALCOMM_HEXAGON.value == "hexagon"
    assert HardwareTarget.APPLE_NEURAL_ENGINE == "apple_ane" and HardwareTarget.NVIDIA_TENSORRT == "tensorrt"
    assert HardwareTarget.INTEL_VNNI.profile().name == "intel_vnni"
    assert HardwareTarget("ARM_DOT") is HardwareTarget.ARM_DOT
    assert QuantizationScheme.AFFINE is QuantizationScheme.ASYMMETRIC
    assert QuantizationScheme("affine") is QuantizationScheme.ASYMMETRIC
    assert [s.value for s in QuantizationScheme] == ["asymmetric", "symmetric", "power_of_two"]
    assert [g.value for g in QuantizationGranularity] == ["per_tensor", "per_channel", "per_group"]
    assert [c.value for c in CalibrationMethod] == ["min_max", "percentile", "mse", "entropy"]


def test_layer_quant_config_maps_onto_layer_quant():
    lc = LayerQuantConfig(weight_bits=4, activation_bits=8, weight_scheme=QuantizationScheme.AFFINE,
                          granularity=QuantizationGranularity.PER_GROUP)
    assert lc.use_symmetric is False
    lq = lc.to_layer_quant()
    assert lq == LayerQuant(4, 8, "asymmetric", "asymmetric", "per_group", 128)
    assert LayerQuantConfig.from_layer_quant(lq) == lc
    assert LayerQuantConfig(use_symmetric=False).weight_scheme is QuantizationScheme.ASYMMETRIC
    assert LayerQuantConfig().use_symmetric is True
    assert LayerQuantConfig(weight_scheme="power_of_two").use_symmetric is True
    with pytest.raises(QuantmooError, match="use_symmetric=True.*contradicts weight_scheme=ASYMMETRIC"):
        LayerQuantConfig(weight_scheme=QuantizationScheme.ASYMMETRIC, use_symmetric=True)
    with pytest.raises(QuantmooError, match=r"'weight_bits' value of LayerQuantConfig must be one of"):
        LayerQuantConfig(weight_bits=7)
    with pytest.raises(QuantmooError, match="The 'granularity' of LayerQuantConfig must be one of"):
        LayerQuantConfig(granularity="per_row")


def test_genome_maps_onto_quant_config():
    model = quantmoo.zoo.load("resnet18")
    cfg = QuantConfig.uniform(model, weight_bits=4, activation_bits=8, calibration="mse", hardware="arm_dot",
                              weight_scheme="power_of_two")
    g = QuantizationGenome.from_quant_config(cfg)
    assert g.calibration_method is CalibrationMethod.MSE and g.global_scheme is QuantizationScheme.POWER_OF_TWO
    assert g.to_quant_config().to_dict() == cfg.to_dict()
    assert g.accuracy is None and g.compression_ratio is None and g.objectives == {}
    g2 = QuantizationGenome({"a": LayerQuantConfig(weight_bits=8), "b": {"weight_bits": 4, "use_symmetric": False},
                             "c": LayerQuantConfig(weight_bits=4, weight_scheme="asymmetric")})
    assert g2.global_scheme is QuantizationScheme.ASYMMETRIC          # 2 of 3 quantized layers
    assert json.dumps(g2.to_dict())


def test_config_mapping_and_validation():
    c = QuantizationEvolutionConfig(min_bits=2, max_bits=4)
    sp = c.search_space()
    assert sp.weight_bits == (2, 3, 4) and sp.activation_bits == (4, 8, 16)
    assert QuantizationEvolutionConfig(min_bits=8).search_space().activation_bits == (8, 16)
    assert QuantizationEvolutionConfig(constraints="mobile", target_latency_ms=50).search_constraints() == \
        {"memory_mb": 1500.0, "latency_ms": 50.0}
    assert QuantizationEvolutionConfig(constraints="mobile", target_latency_ms=500).search_constraints() == \
        {"memory_mb": 1500.0, "latency_ms": 100.0}
    assert c.objective_weights() == {"accuracy_loss": 0.5, "latency_ms": 0.25, "size_mb": 0.25}
    # default weights apply to searched objectives only
    two = QuantizationEvolutionConfig(objectives=("accuracy_loss", "size_mb"))
    assert two.latency_weight == 0.0 and two.objective_weights() == {"accuracy_loss": 0.5, "size_mb": 0.25}
    assert QuantizationEvolutionConfig(hardware_target="qualcomm_hexagon").hardware == "hexagon"
    bad = [
        (dict(population_size=2), "'population_size' of QuantizationEvolutionConfig must be an integer >= 4"),
        (dict(min_bits=5, max_bits=4), "'min_bits' of QuantizationEvolutionConfig must be <= max_bits"),
        (dict(min_bits=5, max_bits=5), r"No weight bit-width of the search space \[2, 3, 4, 6, 8, 16\]"),
        (dict(hardware_target="tpu"), "'hardware_target' of QuantizationEvolutionConfig must be one of"),
        (dict(accuracy_weight=0, latency_weight=0, compression_weight=0), "must not all be 0"),
        (dict(energy_weight=1.0, objectives=("accuracy_loss", "size_mb")), "'energy_mj' is not a searched"),
        (dict(target_latency_ms=0), "'target_latency_ms' of QuantizationEvolutionConfig must be a finite"),
        (dict(algorithm="ga"), "must be one of .*multi-objective"),
    ]
    for kw, msg in bad:
        with pytest.raises(QuantmooError, match=msg):
            QuantizationEvolutionConfig(**kw)


def test_fixed_layers_option_and_search_arguments():
    cfg = QuantizationEvolutionConfig(model="gpt2", min_bits=2, max_bits=4, population_size=8,
                                      fixed_layers=LayerQuantConfig(weight_bits=4, activation_bits=8))
    engine = QuantizationEvolutionEngine(cfg)
    args = engine.search_arguments(["lm_head"], max_generations=2)
    assert args["n_gen"] == 2 and args["hardware"] == "arm_neon" and args["constraints"] is None
    pins = args["space"].pinned
    assert len(pins) == 48 and "lm_head" not in pins
    assert pins["h.0.attn.c_attn"] == {"weight_bits": 4, "activation_bits": 8, "weight_scheme": "symmetric",
                                       "activation_scheme": "asymmetric", "granularity": "per_channel"}
    # the default for the others is the most precise choice of the (restricted) space
    args = QuantizationEvolutionEngine(QuantizationEvolutionConfig(model="gpt2", max_bits=8)).search_arguments(
        ["lm_head"])
    assert args["space"].pinned["h.0.attn.c_attn"]["weight_bits"] == 8
    assert args["space"].pinned["h.0.attn.c_attn"]["activation_bits"] == 16
    bad = QuantizationEvolutionConfig(model="gpt2", max_bits=4, fixed_layers=LayerQuantConfig(weight_bits=8))
    with pytest.raises(QuantmooError, match=r"'fixed_layers.weight_bits' .* must be one of the search space's"):
        QuantizationEvolutionEngine(bad).search_arguments(["lm_head"])
    # all layers named = the whole model, no pins
    model = quantmoo.zoo.load("gpt2")
    assert not engine.search_arguments(model.layer_names)["space"].pinned


def test_results_before_a_run():
    engine = QuantizationEvolutionEngine()
    assert engine.pareto_front == [] and engine.history == []
    with pytest.raises(QuantmooError, match="No evolution has run yet"):
        engine.get_best_genome()
    with pytest.raises(QuantmooError, match="run_evolution needs a model"):
        asyncio.run(engine.run_evolution())
