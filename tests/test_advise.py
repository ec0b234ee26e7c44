"""`scalebench.advise` / `scalebench next` and `fit --at-flops`: budgets, admissible candidates, identification,
interval coverage and sweep extensions (the end-to-end extension run is in test_advise_sweep.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import tomllib
from hypothesis import example, given, settings
from hypothesis import strategies as st

import scalebench
from scalebench.advisor import advise
from scalebench.advisor.simulate import REPLICATES, simulated_log_widths
from scalebench.cli import main
from scalebench.errors import ConfigError
from scalebench.laws import fit_frame, get_law, load_data
from scalebench.laws.intervals import interval
from scalebench.laws.optimum import huber_variance, optimum_at, target_log

FORM = get_law("chinchilla")
TRUTH = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
THETA = FORM.from_public(TRUTH)


def runs(params, tokens, *, sigma=0.01, seed=0) -> pd.DataFrame:
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    rng = np.random.default_rng(seed)
    log_l = FORM.log_predict(THETA, np.log(np.vstack([n, d])))[0] + rng.normal(0, sigma, n.size)
    return pd.DataFrame({"params": n, "tokens": d, "flops": 6 * n * d, "loss": np.exp(log_l)})


def ladder(seed=0, sigma=0.01) -> pd.DataFrame:
    sizes = np.repeat(np.geomspace(2e6, 2e7, 4), 3)
    return runs(sizes, sizes * np.tile([5.0, 20.0, 80.0], 4), sigma=sigma, seed=seed)


def quick_fit(frame: pd.DataFrame, bootstrap: int = 0, seed: int = 0):
    # start from the truth and a coarse grid: these tests are about the advisor, not the optimiser
    starts = np.vstack([THETA, FORM.init_grid({"e": (0.0, 1.0), "a": (5.0, 10.0), "b": (5.0, 10.0),
                                               "alpha": (0.3, 0.5), "beta": (0.3, 0.5)})])
    return fit_frame(frame, FORM, grid=starts, n_refine=4, bootstrap=bootstrap, seed=seed)


# --- basic properties ------------------------------------------------------------------------------------
def test_huber_variance_limits():
    # least squares when delta >> sigma, least absolute deviations ((pi/2) sigma^2) when delta << sigma
    assert huber_variance(0.01, 10.0) == pytest.approx(1e-4, rel=1e-6)
    assert huber_variance(0.01, 1e-7) == pytest.approx(0.5 * math.pi * 1e-4, rel=1e-3)


# replicates=0 (the candidates ranked by the linearisation) where a test is not about the final choice: the
# simulated refits pick among the same candidates, and cost seconds per advice
@pytest.mark.parametrize(("budget", "replicates"), [(3e14, 0), (3e15, 0), (3e16, REPLICATES), (3e17, 0)])
def test_proposal_never_exceeds_the_budget(budget, replicates):
    data = ladder()
    res = quick_fit(data, bootstrap=8)
    advice = advise(data, fit=res, target_flops=1e20, budget_flops=budget, max_runs=40, replicates=replicates)
    assert advice.runs, "a budget this size buys some runs"
    assert advice.total_cost <= budget
    assert all(r.cost > 0 and r.flops == pytest.approx(6 * r.params * r.tokens) for r in advice.runs)
    summary = json.loads(json.dumps(advice.summary(), allow_nan=False))
    assert {"runs", "current_width", "expected_width", "target"} <= set(summary)
    assert set(summary["runs"][0]) >= {"params", "tokens", "flops", "cost"}
    assert summary["expected_width"] < summary["current_width"]


_LADDER_FIT: dict[str, object] = {}


@settings(max_examples=12, deadline=None)
@given(log_budget=st.floats(12.0, 18.0), max_runs=st.integers(2, 30),
       kinds=st.sets(st.sampled_from(["tokens", "tokens_per_param", "flops"]), min_size=1),
       target=st.sampled_from(["params", "tokens", "loss"]))
@example(log_budget=12.0, max_runs=2, kinds={"tokens"}, target="params")  # nothing affordable: no runs, no error
def test_no_budget_max_runs_or_kind_makes_a_proposal_overspend(log_budget, max_runs, kinds, target):
    if not _LADDER_FIT:
        _LADDER_FIT["fit"] = quick_fit(ladder(), bootstrap=8)
    budget = 10.0**log_budget
    advice = advise(ladder(), fit=_LADDER_FIT["fit"], target_flops=1e20, target=target, budget_flops=budget,
                    max_runs=max_runs, kinds=tuple(sorted(kinds)), replicates=0)
    assert advice.total_cost <= budget and len(advice.runs) <= max_runs
    assert advice.design_kind in (kinds if advice.runs else {None})
    assert len(advice.runs) == 0 or len(advice.design_sizes) >= 2  # a sweep ladder has two sizes at least


def test_on_a_seeded_simulation_the_advice_is_no_wider_than_a_larger_size():
    """Measured as a user measures it: the bootstrap interval `fit --at-flops --bootstrap` prints after the
    new runs, against the person's design of the same cost (one larger size at the ladder's ratios). The
    advisor may propose that design itself (it is one of the candidates its simulated refits compare)."""
    data = ladder()
    res = quick_fit(data, bootstrap=20)
    big = 2e7 * 10 ** (1 / 3)
    budget = sum(6 * big * big * r for r in (5, 20, 80))
    advice = advise(data, fit=res, target_flops=1e20, budget_flops=budget, confidence=0.9)
    assert advice.width_method == "bootstrap" and advice.total_cost <= budget
    compared = dict(advice.candidates)
    assert {"advisor", "larger size", "ratios extended"} <= set(compared)
    assert advice.design_name in ("advisor", "larger size", "ratios extended")
    person = pd.concat([data, runs([big] * 3, [big * r for r in (5, 20, 80)], seed=1)], ignore_index=True)
    mine = pd.concat([data, runs([r.params for r in advice.runs], [r.tokens for r in advice.runs], seed=1)],
                     ignore_index=True)

    def width(frame):
        iv = interval(quick_fit(frame, bootstrap=20), "params", 1e20, 0.9)
        assert iv.method == "bootstrap" and iv.determined
        return math.log(iv.high / iv.low)

    # 1% slack: the advisor's larger size is the ladder's rule's count to 3 digits (2.15e7 against 2.154e7)
    assert width(mine) <= 1.01 * width(person)


def test_simulated_refits_are_paired_and_see_a_better_design():
    """The same design twice gets the same simulated widths (common random numbers); a design with runs
    spread over sizes towards the target is narrower than one run more at the ladder's top."""
    data = ladder()
    res = quick_fit(data, bootstrap=20)
    wide = (np.array([2e7]), np.array([2e7 * 40.0]))
    spread = (np.repeat([4e7, 8e7, 1.6e8], 3), np.repeat([4e7, 8e7, 1.6e8], 3) * np.tile([5.0, 20.0, 80.0], 3))
    widths = simulated_log_widths(res, data, [wide, spread, wide], sigma=0.01, target="params", target_flops=1e20,
                                  confidence=0.9, replicates=2, seed=0)
    assert widths.shape == (3, 2) and np.all(np.isfinite(widths))
    np.testing.assert_array_equal(widths[0], widths[2])
    assert np.mean(np.log(widths[1])) < np.mean(np.log(widths[0]))


def test_the_advice_starts_from_the_interval_fit_reports():
    data = ladder()
    res = quick_fit(data, bootstrap=20)
    advice = advise(data, fit=res, target_flops=1e20, budget_flops=1e16, confidence=0.9, replicates=0)
    one = interval(res, "params", 1e20, 0.9)  # the one definition, which `fit --at-flops` prints
    opt = optimum_at(res, 1e20, confidence=0.9)
    assert advice.width_method == one.method == opt["ci_method"] == "bootstrap"
    assert advice.current_interval == (one.low, one.high) and advice.estimate == one.point
    assert list(advice.current_interval) == opt["ci"]["params"]


def test_bad_inputs_are_config_errors():
    data = ladder()
    with pytest.raises(ConfigError, match="exactly one budget"):
        advise(data, target_flops=1e20, budget_flops=1e15, budget_usd=10)
    with pytest.raises(ConfigError, match="exactly one budget"):
        advise(data, target_flops=1e20, budget_hours=1.0, budget_gpu_hours=1.0)
    with pytest.raises(ConfigError, match="exactly one budget"):
        advise(data, target_flops=1e20)
    with pytest.raises(ConfigError, match="target must be"):
        advise(data, target_flops=1e20, target="width", budget_flops=1e15)
    with pytest.raises(ConfigError, match="frontier"):
        advise(data, law="power-params", target_flops=1e20, budget_flops=1e15)
    with pytest.raises(ConfigError, match="gpu="):
        advise(data, target_flops=1e20, budget_gpu_hours=3.0)
    with pytest.raises(ConfigError, match="max_runs"):
        advise(data, target_flops=1e20, budget_flops=1e15, max_runs=1)
    with pytest.raises(ConfigError, match="sweep folder"):
        advise(data, fit=quick_fit(data), target_flops=1e20, budget_flops=1e16, replicates=0).extension_toml()
    with pytest.raises(ConfigError, match="replicates must be an integer >= 0"):
        advise(data, target_flops=1e20, budget_flops=1e16, replicates=-1)


def test_gpu_hours_from_a_file_use_the_catalog_peak():
    data = ladder()
    advice = advise(data, fit=quick_fit(data), target_flops=1e20, budget_gpu_hours=0.5, gpu="H100-SXM", mfu=0.4,
                    replicates=0)
    peak = scalebench.get_gpu("H100-SXM").peak_for("bf16")
    for r in advice.runs:
        assert r.cost == pytest.approx(r.flops / (peak * 0.4) / 3600)
    assert advice.total_cost <= 0.5 and advice.cost_unit == "GPU-hours"


def test_candidates_respect_family_shapes_memory_and_epochs():
    data = ladder()
    res = quick_fit(data, bootstrap=8)
    family = scalebench.get_family("gpt")
    context = {"vocab_size": 256, "seq_len": 256}
    free = advise(data, fit=res, target_flops=1e20, budget_flops=3e17, family="gpt", shape_context=context,
                  replicates=0)
    biggest = max(r.params for r in free.runs)
    cap = 16 * biggest * 0.3  # fp32 AdamW model states alone of the free proposal's largest run exceed this
    max_epochs = 2.0
    corpus = max(r.tokens for r in free.runs) / (2 * max_epochs)  # its longest run would repeat it 4 times
    assert any(r.memory_bytes > cap for r in free.runs)
    advice = advise(data, fit=res, target_flops=1e20, budget_flops=3e17, family="gpt", shape_context=context,
                    memory_bytes=cap, corpus_tokens=corpus, max_epochs=max_epochs, replicates=0)
    assert advice.runs
    for r in advice.runs:
        shape = family.shape_for_params(r.size, **context)
        assert r.params == family.params(shape) and r.shape == shape.as_dict()  # the family's own rule
        assert r.flops == pytest.approx(family.flops_per_token(shape) * r.tokens)
        assert r.memory_bytes <= cap
        assert r.tokens / corpus <= max_epochs and r.epochs == pytest.approx(r.tokens / corpus)
    assert max(r.params for r in advice.runs) < biggest


def test_unidentified_parameter_gets_runs_that_identify_it():
    """Two token budgets cannot separate E, B and beta (E + B/D^beta at two D): the advisor must say so and
    propose runs at other token counts; after them the target is determined and beta is found."""
    sizes = np.repeat(np.geomspace(1e6, 1e7, 4), 2)
    data = runs(sizes, np.tile([2e7, 6e7], 4), sigma=0.003)
    advice = advise(data, target_flops=1e20, budget_flops=float(data["flops"].sum()), bootstrap=16)
    assert advice.verdict == "undetermined" and "beta" in advice.reasons[0]
    new_tokens = {r.tokens for r in advice.runs}
    assert new_tokens - {2e7, 6e7}, "it must add token counts"
    more = pd.concat([data, runs([r.params for r in advice.runs], [r.tokens for r in advice.runs], sigma=0.003,
                                 seed=1)], ignore_index=True)
    again = advise(more, target_flops=1e20, budget_flops=float(data["flops"].sum()), bootstrap=16, replicates=0)
    assert again.verdict == "determined"
    refit = quick_fit(more)
    assert refit.params["beta"] == pytest.approx(TRUTH["beta"], abs=0.1)


def test_unfittable_data_get_the_smallest_design_that_makes_a_fit():
    given = [1e7, 2e7, 4e7, 8e7, 1.6e8, 3.2e8]
    data = runs([1e6] * 6, given)  # one size: the law cannot be fitted at all
    advice = advise(data, target_flops=1e20, budget_flops=1e17)
    assert advice.verdict == "undetermined" and "single model size" in advice.reasons[0]
    sizes = {r.params for r in advice.runs} | {1e6}
    tokens = {r.tokens for r in advice.runs} | set(given)
    assert len(sizes) >= 3 and len(tokens) >= 3 and len(advice.runs) + 6 >= 10
    assert advice.total_cost <= 1e17
    fit_frame(pd.concat([data, runs([r.params for r in advice.runs], [r.tokens for r in advice.runs])]), FORM,
              n_refine=4)  # now it fits


# --- the target itself: fit --at-flops -------------------------------------------------------------------
def test_at_flops_delta_intervals_cover_the_truth_at_about_their_rate():
    """40 seeded repetitions at 80%: 32 expected, sd 2.5; accept 24-38 (a 3-sd band below, and an upper
    bound that fails if the intervals are so wide that nearly every one covers)."""
    c_star, reps, confidence = 1e20, 40, 0.8
    truth = {t: float(np.exp(target_log(FORM, THETA, t, math.log(c_star))[0])) for t in ("params", "loss")}
    covered = {t: 0 for t in truth}
    for seed in range(reps):
        opt = optimum_at(quick_fit(ladder(seed=seed)), c_star, confidence=confidence)
        assert opt["ci_method"] == "delta" and opt["tokens"] == pytest.approx(c_star / (6 * opt["params"]))
        for t in truth:
            lo, hi = opt["ci"][t]
            covered[t] += lo <= truth[t] <= hi
    for t, k in covered.items():
        assert 24 <= k <= 38, f"{t}: {k} of {reps} intervals cover the truth"


def test_at_flops_bootstrap_intervals_and_confidence():
    res = quick_fit(ladder(), bootstrap=30)
    wide, narrow = optimum_at(res, 1e20, confidence=0.95), optimum_at(res, 1e20, confidence=0.5)
    assert wide["ci_method"] == "bootstrap"
    for t in ("params", "tokens", "loss"):
        assert wide["ci"][t][0] < narrow["ci"][t][0] <= narrow["ci"][t][1] < wide["ci"][t][1]
    samples = np.exp(target_log(FORM, res.bootstrap_thetas, "params", math.log(1e20)))
    np.testing.assert_allclose(wide["ci"]["params"], np.percentile(samples, [2.5, 97.5]))


def test_fit_cli_at_flops_json(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    ladder().to_csv(path, index=False)
    assert main(["fit", str(path), "--at-flops", "1e20", "--confidence", "0.9", "--json"]) == 0
    opt = json.loads(capsys.readouterr().out)["optimum"]
    assert opt["flops"] == 1e20 and opt["confidence"] == 0.9
    assert set(opt["ci"]) == {"params", "tokens", "loss"}
    for t in ("params", "tokens", "loss"):
        lo, hi = opt["ci"][t]
        assert lo < opt[t] < hi
    assert main(["fit", str(path), "--at-flops", "-1"]) == 2


def test_next_cli_on_a_csv(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    ladder().to_csv(path, index=False)
    assert main(["next", str(path), "--target-flops", "1e20", "--budget-flops", "1e16", "--json",
                 "--bootstrap", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "params" and out["runs"] and out["total_cost"] <= 1e16
    assert main(["next", str(path), "--target-flops", "1e20", "--budget-flops", "1e16", "--write",
                 str(tmp_path / "x.toml")]) == 2  # a CSV has no sweep to extend
    assert main(["next", str(path), "--target-flops", "1e20"]) == 2  # a budget is required


# --- sweep folders -----------------------------------------------------------------------------------------
SPEC = """
name = "adv"
family = "gpt"
[model]
sizes = ["debug", "100k", "200k"]
[budget]
tokens = [16384, 49152]
max_epochs = 8
[data]
source = "{corpus}"
[train]
batch_tokens = 512
seq_len = 32
compile = "off"
[devices]
device = "cpu"
cpu_workers = 1
"""


def fake_sweep(tmp_path, spec_text=SPEC):
    """A sweep folder planned by the real planner, its runs 'done' with losses from TRUTH and a measured
    throughput of 1e9 FLOP/s, so advise reads it as it reads a real one."""
    from scalebench.data import prepare_corpus
    from scalebench.store import ResultStore
    from scalebench.sweep.planner import plan_runs

    corpus_file = tmp_path / "corpus.txt"
    corpus_file.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(4000)))
    toml = tmp_path / "adv.toml"
    toml.write_text(spec_text.format(corpus=corpus_file))
    spec = scalebench.load_sweep(toml)
    corpus = prepare_corpus(spec.data, spec.eval.held_out_share)
    out = tmp_path / "sweep"
    plan = plan_runs(spec, corpus=corpus, sweep_dir=out)
    rng = np.random.default_rng(0)
    with ResultStore(out, create=True) as store:
        store.set_meta(spec=spec.to_dict(), env={"devices": [], "cuda_available": False},
                       corpus=corpus.as_dict(), plan_notes=[], sweep_name=spec.name)
        store.add_runs((r.run_id, r.spec_hash(), r.to_dict()) for r in plan.runs)
        for r in plan.runs:
            loss = float(runs([r.params], [r.tokens], seed=int(rng.integers(1e6)))["loss"][0])
            store.set_status(r.run_id, "running")
            store.set_status(r.run_id, "done", record={"eval_loss": loss, "tokens_per_s": 1e9 / r.flops_per_token,
                                                      "device": "cpu", "precision": "fp32"})
    return toml, out, corpus


def test_sweep_costs_come_from_measured_throughput_named_for_the_device(tmp_path):
    _, out, _ = fake_sweep(tmp_path)  # every run measured 1e9 FLOP/s (tokens_per_s = 1e9 / flops_per_token), on CPU
    res = quick_fit(load_data(out), bootstrap=8)
    advice = advise(out, fit=res, target_flops=1e15, budget_hours=0.5, replicates=0)
    assert advice.cost_unit == "CPU-hours" and "measured" in advice.cost_source and "on CPU" in advice.cost_source
    assert advice.runs and advice.total_cost <= 0.5 and "GPU" not in advice.report()
    for r in advice.runs:
        assert r.cost == pytest.approx(r.flops / 1e9 / 3600, rel=1e-6)  # one thread a run
    with pytest.raises(ConfigError, match="ran on CPU.*--budget-hours"):  # no GPU-hours on a CPU
        advise(out, fit=res, target_flops=1e15, budget_gpu_hours=0.5)
    with pytest.raises(ConfigError, match="price per CPU-hour"):
        advise(out, fit=res, target_flops=1e15, budget_usd=10.0)
    priced = advise(out, fit=res, target_flops=1e15, budget_usd=0.5, price_usd_per_hour=2.0, replicates=0)
    assert priced.total_cost <= 0.5 and priced.cost_unit == "USD"
    for r in priced.runs:
        assert r.cost == pytest.approx(2.0 * r.flops / 1e9 / 3600, rel=1e-6)


def original_budget(toml) -> dict:
    return scalebench.load_sweep(toml).to_dict()["budget"]


def test_extension_holds_only_what_changes_and_plans_the_proposed_runs(tmp_path):
    from scalebench.sweep.planner import plan_runs

    toml, out, corpus = fake_sweep(tmp_path)
    advice = advise(out, fit=quick_fit(load_data(out), bootstrap=8), target_flops=1e15, budget_flops=3e12,
                    max_runs=4)
    assert advice.runs and advice.total_flops <= 3e12
    path = advice.write_extension(tmp_path / "ext.toml")
    table = tomllib.loads(path.read_text())
    assert set(table) == {"extends", "model", "budget"}  # only what changes; the rest is the sweep's spec
    assert table["model"] == {"sizes": list(advice.design_sizes)}  # the ladder's own key: flavour names
    assert table["budget"] == {advice.design_kind: list(advice.design_budgets)}
    own = [k for k in ("tokens", "tokens_per_param", "flops") if original_budget(toml).get(k)]
    assert [advice.design_kind] == own  # `scalebench run` refuses an extension of another budget kind
    with pytest.raises(ConfigError, match="an extension keeps them"):
        advise(out, fit=quick_fit(load_data(out)), target_flops=1e15, budget_flops=3e12,
               kinds=tuple(k for k in ("tokens", "tokens_per_param", "flops") if k not in own), replicates=0)
    ext, original = scalebench.load_sweep(path), scalebench.load_sweep(toml)
    assert ext.name == original.name
    assert ext.to_dict() | {"model": None, "budget": None} == original.to_dict() | {"model": None, "budget": None}
    planned = plan_runs(ext, corpus=corpus, sweep_dir=out)
    assert sorted(r.run_id for r in planned.runs) == sorted(r.run_id for r in advice.runs)
    got = sorted((r.params, r.tokens, r.flops) for r in planned.runs)
    want = sorted((r.params, r.tokens, r.flops) for r in advice.runs)
    np.testing.assert_allclose(np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-9)
    assert len(set(r.run_id for r in planned.runs) & set(scalebench.load_results(out)["run_id"])) == 0


def test_an_extension_names_its_sweep_folder_or_is_refused(tmp_path):
    ext = tmp_path / "ext.toml"
    ext.write_text('extends = "nowhere"\n[budget]\ntokens = [1e5]\n')
    with pytest.raises(ConfigError, match=r"ext.toml: extends = 'nowhere'.*holds no sweep"):
        scalebench.load_sweep(ext)
    ext.write_text("extends = 3\n")
    with pytest.raises(ConfigError, match="extends must be the path of a sweep folder"):
        scalebench.load_sweep(ext)
    _, out, _ = fake_sweep(tmp_path)
    ext.write_text('extends = "sweep"\n[model]\nparams = [5e4, 9e4]\n[budget]\ntokens_per_param = [20]\n')
    spec = scalebench.load_sweep(ext)  # a ladder or budget of another kind replaces the stored one
    assert spec.model.params == (5e4, 9e4) and not spec.model.sizes and spec.budget.tokens_per_param == (20,)
    assert spec.budget.max_epochs == 8 and spec.train.batch_tokens == 512 and spec.name == "adv"


SHAPES_SPEC = SPEC.replace('sizes = ["debug", "100k", "200k"]', """shapes = [
    {{ n_layer = 2, d_model = 24, n_head = 2 }},
    {{ n_layer = 2, d_model = 48, n_head = 2 }},
    {{ n_layer = 2, d_model = 64, n_head = 2 }},
    {{ n_layer = 3, d_model = 72, n_head = 2 }},
]""")
PARAMS_SPEC = SPEC.replace('sizes = ["debug", "100k", "200k"]', "params = [2e4, 6e4, 2e5]")


@pytest.mark.parametrize("spec_text", [SHAPES_SPEC, PARAMS_SPEC], ids=["shapes", "params"])
def test_proposed_ids_and_shapes_follow_the_ladder(tmp_path, spec_text):
    """Sizes continue the ladder by its own rule (no one-layer model beside two-layer ones, nothing below
    its smallest), and each run id is the planner's: for a ladder of counts it names the real count."""
    from scalebench.sweep.planner import plan_runs

    toml, out, corpus = fake_sweep(tmp_path, spec_text)
    family = scalebench.get_family("gpt")
    done = scalebench.load_results(out)
    advice = advise(out, fit=quick_fit(load_data(out), bootstrap=8), target_flops=1e15,
                    budget_flops=float(done["flops"].sum()) * 3)
    assert advice.runs
    ladder = sorted((int(n), int(d)) for n, d in zip(done["params"], done["n_layer"], strict=True))
    for r in advice.runs:
        assert r.params >= ladder[0][0] and r.shape["n_layer"] >= min(depth for _, depth in ladder)
        assert all(r.shape["n_layer"] >= depth for n, depth in ladder if n <= r.params)
        if "params" in spec_text.split("[budget]")[0]:
            assert float(r.run_id.split("-")[1][1:]) == r.size == pytest.approx(r.params, rel=5e-3)  # gpt-p<N>-...
    planned = plan_runs(scalebench.load_sweep(advice.write_extension(tmp_path / "ext.toml")), corpus=corpus,
                        sweep_dir=out)
    assert {r.run_id: (r.params, r.shape) for r in planned.runs} == {
        r.run_id: (r.params, {**r.shape}) for r in advice.runs}
    assert all(family.params(family.make_shape(**r.shape)) == r.params for r in planned.runs)


def test_next_cli_on_a_sweep_folder(tmp_path, capsys):
    _, out, _ = fake_sweep(tmp_path)
    ext = tmp_path / "next.toml"
    assert main(["next", str(out), "--target-flops", "1e15", "--budget-flops", "3e12", "--target", "loss",
                 "--bootstrap", "8", "--write", str(ext)]) == 0
    text = capsys.readouterr().out
    assert "advice for chinchilla: loss" in text and ext.exists()


def test_report_advice_context(tmp_path):
    from scalebench.report import narrative
    from scalebench.report.advice import advice_context

    _, out, _ = fake_sweep(tmp_path)
    done = scalebench.load_results(out)
    assert "scalebench next" in advice_context(out)["missing"]  # the page never runs the advisor itself
    target, budget = 100 * done["flops"].max(), done["flops"].sum()
    scalebench.Sweep(out).next(target_flops=target, budget_flops=budget, bootstrap=8)  # saves next.json
    ctx = advice_context(out)
    assert ctx["missing"] is None and ctx["rows"]
    assert ctx["target_flops"] == narrative.si(target)
    assert ctx["budget"] == narrative.si(budget)
    assert ctx["command"].startswith(f"scalebench next {out} --target-flops")
    assert advice_context(tmp_path)["missing"].startswith("no proposal")  # not a sweep: a reason, no crash


def test_explicit_candidates_are_the_only_choices():
    data = ladder()
    sizes, tokens = [3e6, 1e7, 3e7, 6e7], [1e8, 3e8, 1e9]
    advice = advise(data, fit=quick_fit(data, bootstrap=8), target_flops=1e20, budget_flops=1e18,
                    candidates={"params": sizes, "tokens": tokens})
    assert advice.runs and advice.design_kind == "tokens"
    assert {r.params for r in advice.runs} <= set(sizes) and {r.tokens for r in advice.runs} <= set(tokens)
    with pytest.raises(ConfigError, match="candidates"):
        advise(data, target_flops=1e20, budget_flops=1e18, candidates={"params": sizes})
    with pytest.raises(ConfigError, match="positive"):
        advise(data, target_flops=1e20, budget_flops=1e18, candidates={"params": [-1.0], "tokens": tokens})


def test_report_plan_section_shows_the_proposal(tmp_path):
    from scalebench.report import write_report
    from scalebench.report.synthetic import make_synthetic_sweep

    out = make_synthetic_sweep(tmp_path / "syn", n_sizes=4, n_budgets=2)
    done = scalebench.load_results(out)
    assert main(["next", str(out), "--target-flops", str(100 * done["flops"].max()), "--budget-flops",
                 str(done["flops"].sum()), "--bootstrap", "8"]) == 0  # saves next.json, which the page shows
    html = write_report(out).read_text()
    plan = html[html.index('<section id="plan">'):html.index('<section id="reproducibility">')]
    assert 'id="next-runs-table"' in plan and "scalebench next" in plan and "narrower" in plan
