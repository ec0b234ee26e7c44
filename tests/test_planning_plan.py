"""plan(): constraints, compute-optimal split under published laws, over-training, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalebench.errors import ConfigError
from scalebench.laws.presets import get_preset
from scalebench.planning import estimate
from scalebench.planning.plan import plan


def test_flops_budget_is_law_frontier():
    p = plan(flops=5.76e23, gpu="H100-SXM", num_gpus=1024, law="chinchilla")
    row = get_preset("chinchilla").compute_optimal(5.76e23).iloc[0]
    assert p.params == pytest.approx(row["params"]) and p.tokens == pytest.approx(row["tokens"])
    assert p.flops == pytest.approx(5.76e23) and p.estimate.flops == pytest.approx(5.76e23)
    assert p.predicted_loss == pytest.approx(row["loss"])
    assert "Hoffmann" in p.citation


def test_epoch_law_wants_about_20_tokens_per_param():
    p = plan(flops=1e23, gpu="H100-SXM", num_gpus=256, law="chinchilla-epoch")
    assert 15 < p.tokens_per_param < 30  # Besiroglu et al. 2024 recover the ~20 tokens/param rule
    assert "Besiroglu" in p.citation


@pytest.mark.parametrize("constraint,value,metric", [
    ("budget_usd", 1e6, "cost_usd"), ("gpu_hours", 1e5, "gpu_hours"),
])
def test_budget_constraints_round_trip(constraint, value, metric):
    p = plan(gpu="H100-SXM", law="chinchilla-epoch", **{constraint: value})
    # the modelled step time steps where the layout or the inferred shape changes: the largest run within the
    # budget may fall a little short of it, never over
    assert 0.9 * value <= getattr(p.estimate, metric) <= value * (1 + 1e-12)
    again = estimate(params=p.params, tokens=p.tokens, gpu="H100-SXM")
    assert again.cost_usd == pytest.approx(p.estimate.cost_usd) and again.flops == pytest.approx(p.flops)


def test_deadline_on_n_gpus():
    p = plan(deadline_s=30 * 86400, num_gpus=256, gpu="H100-SXM", law="chinchilla")
    assert p.estimate.num_gpus == 256 and p.estimate.wall_clock_s == pytest.approx(30 * 86400, rel=1e-6)
    with pytest.raises(ConfigError, match="needs num_gpus"):
        plan(deadline_s=86400, gpu="H100-SXM")


def test_target_loss():
    p = plan(target_loss=2.0, gpu="A100-80GB", law="chinchilla")
    assert p.predicted_loss == pytest.approx(2.0, rel=1e-6)
    with pytest.raises(ConfigError, match="unreachable"):
        plan(target_loss=1.5, gpu="A100-80GB", law="chinchilla")  # below E = 1.69


def test_over_trained_fixed_size_and_ratio():
    p = plan(params=8e9, tokens_per_param=200, gpu="H100-SXM", law="chinchilla")
    assert (p.params, p.tokens) == (8e9, 1.6e12) and p.flops == pytest.approx(6 * 8e9 * 1.6e12)
    q = plan(params=8e9, budget_usd=1e5, gpu="H100-SXM", num_gpus=64, law=None)
    assert q.params == 8e9 and q.estimate.cost_usd == pytest.approx(1e5, rel=1e-6) and q.predicted_loss is None
    r = plan(tokens_per_param=100, flops=1e22, gpu="H100-SXM")
    assert r.tokens_per_param == pytest.approx(100) and r.flops == pytest.approx(1e22)
    s = plan(params=1e9, target_loss=2.3, gpu="H100-SXM", law="chinchilla")
    assert s.params == 1e9 and s.predicted_loss == pytest.approx(2.3, rel=1e-6)


def test_fitresult_accepted_as_is():
    fit = get_preset("chinchilla-epoch")
    a = plan(flops=1e22, gpu="H100-SXM", law=fit)
    b = plan(flops=1e22, gpu="H100-SXM", law="chinchilla-epoch")
    assert a.params == pytest.approx(b.params) and a.law == "chinchilla-epoch"


def test_to_dict_and_text():
    p = plan(budget_usd=1e5, gpu="H100-SXM", law="chinchilla")
    d = p.to_dict()
    assert d["constraint"] == "budget_usd" and d["estimate"]["cost_usd"] == pytest.approx(1e5, rel=1e-6)
    assert "compute-optimal" in str(p)


@pytest.mark.parametrize("kw,match", [
    (dict(), "needs one constraint"),
    (dict(flops=1e22, budget_usd=1e6), "one constraint"),
    (dict(budget_usd=-5), "budget_usd must be a positive"),
    (dict(flops=1e22, law=None), "needs a law"),
    (dict(flops=1e22, params=1e9, tokens_per_param=20), "drop the constraint"),
    (dict(flops=1e22, tokens=1e9), "chooses tokens"),
    (dict(flops=1e22, law="kaplan-2099"), "known presets"),
    (dict(budget_usd=1e-9), "too small"),
])
def test_bad_plans(kw, match):
    kw.setdefault("gpu", "H100-SXM")
    with pytest.raises(ConfigError, match=match):
        plan(**kw)


@settings(max_examples=15, deadline=None)
@given(budget=st.floats(1e3, 1e8), gpu=st.sampled_from(["H100-SXM", "A100-80GB", "H200"]))
def test_plan_then_estimate_round_trips(budget, gpu):
    p = plan(budget_usd=budget, gpu=gpu, law="chinchilla-epoch")
    e = estimate(params=p.params, tokens=p.tokens, gpu=gpu, law="chinchilla-epoch")
    assert e.to_dict() == p.estimate.to_dict()
    assert e.predicted_loss == pytest.approx(p.predicted_loss)
    # never over budget; below it only where cost jumps (one more GPU, or full recomputation switching on)
    assert 0.7 * budget <= e.cost_usd <= budget * (1 + 1e-12)


def test_budget_beyond_what_fits_is_an_error_not_a_smaller_plan():
    # above ~1e29 FLOPs the compute-optimal model fits on no number of H100s: the budget cannot be spent
    with pytest.raises(ConfigError, match="buys more than any configuration that fits"):
        plan(budget_usd=1e40, gpu="H100-SXM")
    with pytest.raises(ConfigError, match="buys more than any configuration that fits"):
        plan(gpu_hours=1e30, gpu="A100-80GB", law="chinchilla-epoch")


def test_numpy_numbers_are_numbers():
    import numpy as np

    a = plan(params=np.int64(7_000_000_000), tokens_per_param=np.int64(20), gpu="H100-SXM")
    b = plan(params=7e9, tokens_per_param=20, gpu="H100-SXM")
    assert a.flops == pytest.approx(b.flops) == pytest.approx(6 * 20 * 7e9**2)  # no int64 overflow in N²
    c = plan(budget_usd=np.float32(1e5), gpu="H100-SXM")
    assert 0.9e5 <= c.estimate.cost_usd <= 1e5 * (1 + 1e-6)
    with pytest.raises(ConfigError, match="params must be a positive number"):
        plan(params=np.bool_(True), tokens_per_param=20, gpu="H100-SXM")
