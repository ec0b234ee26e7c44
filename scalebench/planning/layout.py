"""Parallel layouts: tensor (tp), pipeline (pp), context/sequence (cp), expert (ep) and data (dp)
parallelism with ZeRO over dp, in memory and time, and the search for the fastest layout that fits.

GPUs = tp · pp · cp · dp; ep splits the dp ranks' experts (ep divides dp). Ranks are ordered tp innermost,
then cp, ep within dp, then pp (Megatron-LM's order), so a group of k ranks at stride s stays inside one
node when s·k ≤ node_size and uses the catalog's intra-node bandwidth, otherwise the inter-node one.

Memory per GPU (bytes, before the allocator overhead f):

    model states   ([(P − E − V·h) + E/ep] / pp + V·h) · u / tp  +  ((P − V·h) / pp + V·h) · z / (tp·cp·dp)
    activations    A(mode) · min(1, m/pp) / (tp·cp)

with P all parameters, E the routed experts' parameters, u the bytes per parameter ZeRO leaves whole and
z those it shards over the dp·cp ranks (Rajbhandari et al. 2020, §5; experts shard over dp·cp/ep ranks of
ep-times fewer parameters, which comes to the same P·z term). A(mode) is one micro-batch's activations for
all layers (Korthikanti et al. 2022, eq. 1, in :mod:`~scalebench.memory`): with sequence
parallelism beside tensor parallelism (Korthikanti §4.2.2, eq. 5) every term divides by tp; context
parallelism divides the sequence by cp; under the 1F1B pipeline schedule the first stage keeps pp
micro-batches of L/pp layers in flight (Korthikanti §4.2.3), i.e. one micro-batch of all layers, or m/pp
of that when only m < pp micro-batches exist. The first stage holds the V·h embedding beside its 1/pp of the
layers (Megatron-LM's placement; with an untied head the last stage holds as much), and the first stage is
the one that must fit.

Time of one optimizer step of B sequences (m = B / (dp·micro_batch) micro-batches per rank):

    compute        T_c = flops_per_step / (GPUs · peak · mfu)
    bubble         T_c · (pp − 1) / m                                 (1F1B; Narayanan et al. 2021, §2.2)
    tensor         8 · (tp−1)/tp · 2·s·b·h/cp bytes per layer and micro-batch (4 all-gathers + 4
                   reduce-scatters of sequence-parallel activations, Korthikanti §4.2.2), not overlapped
    expert         4 · (ep−1)/ep · 2·s·b·h·top_k/cp bytes per MoE layer and micro-batch (dispatch and
                   combine all-to-alls, forward and backward), not overlapped
    pipeline       2 · 2·s·b·h/(tp·cp) bytes per micro-batch (activations forward, gradients back)
    context        3 · (cp−1) · 2·(s/cp)·b·kv bytes per layer and micro-batch (ring attention passes the
                   K/V blocks forward and K/V plus their gradients backward; Liu et al. 2023)
    data           k · (dp·cp − 1)/(dp·cp) · 2 bytes · parameters per rank per step: k = 2 for ZeRO 0-1
                   (reduce-scatter + all-gather, the all-reduce volume; ZeRO §7), m + 1 for ZeRO-2
                   (sharded gradients are reduce-scattered every micro-batch), 2m + 1 for ZeRO-3/FSDP
                   (weights gathered for every micro-batch's forward and backward) — 2, 2, 3 at m = 1

Without a ZeRO stage the search tries 1, 2 and 3 (stage 0 only on request: stage 1 moves the same bytes
and holds less).

Data- and context-parallel traffic overlaps with compute (bucketed gradients, ring attention); only what
exceeds T_c is exposed. The layout's modelled loss is ``(bubble + tensor + expert + pipeline + exposed) /
T_c``. The default MFU comes from published at-scale runs, which already paid the overheads of their own
well-tuned layouts; so a layout only slows the run when its loss exceeds ``LOSS_ALLOWANCE`` (30% of
compute time — an assumption, stated in every estimate):

    time factor = max(1, (1 + loss) / (1 + LOSS_ALLOWANCE))

This keeps a published MFU meaning what it says on a sensible layout, while a forced bad layout, or a
GPU count the global batch cannot feed, costs time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from scalebench.planning import throughput

__all__ = ["LOSS_ALLOWANCE", "LayoutInputs", "candidates", "search", "DEFAULT_GLOBAL_BATCH_TOKENS",
           "usable_memory_bytes", "DEFAULT_RESERVE_BYTES"]

LOSS_ALLOWANCE = 0.30
DEFAULT_GLOBAL_BATCH_TOKENS = 4 * 2**20  # Llama 1/2: 4M tokens per step (Touvron et al. 2023)
DEFAULT_RESERVE_BYTES = float(2**30)  # CUDA context, cuBLAS and NCCL workspaces: 0.5-1 GiB measured per process
_TP = (1, 2, 4, 8, 16, 32, 64)
_PP = (1, 2, 4, 8, 16, 32, 64, 128)
_CP = (1, 2, 4, 8, 16, 32)
_EP = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MIN_CP_CHUNK = 2048  # context parallelism only for chunks of at least this many tokens


def usable_memory_bytes(memory_bytes, reserve_bytes=DEFAULT_RESERVE_BYTES):
    """Card memory less the per-process reserve no allocation can use (documented above)."""
    return np.asarray(memory_bytes, dtype=float) - np.asarray(reserve_bytes, dtype=float)


@dataclass(frozen=True, kw_only=True)
class LayoutInputs:
    """Per-scenario arrays (length n) the search needs; see the module docstring for the symbols."""

    params_total: np.ndarray
    expert_params: np.ndarray
    weight_bpp: np.ndarray  # bytes per parameter: weights, gradients, optimizer state
    grad_bpp: np.ndarray
    optimizer_bpp: np.ndarray
    zero: np.ndarray  # ZeRO stage per row, -1 to search
    activations: dict  # mode -> A(mode), bytes of one micro-batch over all layers
    usable_bytes: np.ndarray
    allocator_overhead: np.ndarray
    flops_per_step: np.ndarray
    peak: np.ndarray
    mfu_by_mode: dict  # mode -> the MFU to time with
    n_layer: np.ndarray
    moe_layers: np.ndarray
    d_model: np.ndarray
    kv_dim: np.ndarray
    top_k: np.ndarray
    seq_len: np.ndarray
    micro_batch: np.ndarray
    global_batch: np.ndarray
    n_head: np.ndarray
    n_experts: np.ndarray
    node_size: np.ndarray
    bw_intra: np.ndarray  # inf where unknown (not costed; the estimate says so)
    bw_inter: np.ndarray
    num_gpus: np.ndarray  # NaN: choose
    fixed: dict  # "tp"/"pp"/"cp"/"ep" -> array (NaN: search)
    modes: np.ndarray  # requested checkpointing per row: none/selective/full/auto
    # the hardware model (planning.throughput), used where ``modelled`` (no utilisation given)
    modelled: np.ndarray
    d_ff: np.ndarray
    swiglu: np.ndarray
    vocab: np.ndarray
    q_dim: np.ndarray  # n_head · head_dim
    flash: np.ndarray
    bandwidth: np.ndarray  # HBM bytes/s
    units: np.ndarray  # SMs/CUs, NaN where unknown
    gemm_eff: np.ndarray
    attn_eff: np.ndarray
    act_bytes: np.ndarray
    kernel_efficiency: np.ndarray  # share of the kernel model's rate reached in training (planning.evidence)
    embedding_params: np.ndarray  # held whole by the first pipeline stage beside its layers


def candidates(max_tp: int, max_pp: int, max_cp: int, max_ep: int, fixed: dict) -> np.ndarray:
    """(G, 4) grid of (tp, pp, cp, ep) worth trying, plus any fixed values the caller asked for."""
    def axis(values, cap, key):
        extra = fixed.get(key)
        given = {int(v) for v in np.unique(extra[~np.isnan(extra)])} if extra is not None else set()
        return sorted({v for v in values if v <= cap} | given)

    grid = np.array(np.meshgrid(axis(_TP, max_tp, "tp"), axis(_PP, max_pp, "pp"), axis(_CP, max_cp, "cp"),
                                axis(_EP, max_ep, "ep"), indexing="ij")).reshape(4, -1).T
    return grid.astype(float)


def _bandwidth(group, stride, inp):
    inside = stride * group <= inp.node_size[:, None]
    return np.where(inside, inp.bw_intra[:, None], inp.bw_inter[:, None])


def _split(inp: LayoutInputs, zero: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, z): bytes per parameter ZeRO stage ``zero`` leaves whole and shards (Rajbhandari et al. 2020, §5)."""
    w, g, o = inp.weight_bpp, inp.grad_bpp, inp.optimizer_bpp
    sharded = o * (zero >= 1) + g * (zero >= 2) + w * (zero >= 3)
    return w + g + o - sharded, sharded


def _memory(inp: LayoutInputs, grid: np.ndarray, dp: np.ndarray, mode: str, zero: int) -> np.ndarray:
    """Bytes per GPU for every (row, candidate) (the memory half of :func:`_evaluate`)."""
    tp, pp, cp, ep = (grid[:, i][None, :] for i in range(4))
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    P, E = col(inp.params_total), col(inp.expert_params)
    m = col(inp.global_batch) / (dp * col(inp.micro_batch))
    u, z = _split(inp, zero)
    emb = col(inp.embedding_params)
    states = (((P - E - emb) + E / ep) / pp + emb) * col(u) / tp + ((P - emb) / pp + emb) * col(z) / (tp * cp * dp)
    act = col(inp.activations[mode]) * np.minimum(1.0, m / pp) / (tp * cp)
    return (states + act) * (1.0 + col(inp.allocator_overhead))


def _evaluate(inp: LayoutInputs, grid: np.ndarray, dp: np.ndarray, mode: str, zero: int) -> dict:
    """Memory and time terms for every (row, candidate) at data-parallel size ``dp`` (n, G)."""
    tp, pp, cp, ep = (grid[:, i][None, :] for i in range(4))
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    P, E = col(inp.params_total), col(inp.expert_params)
    m = col(inp.global_batch) / (dp * col(inp.micro_batch))
    u, z = _split(inp, zero)
    emb = col(inp.embedding_params)
    states = (((P - E - emb) + E / ep) / pp + emb) * col(u) / tp + ((P - emb) / pp + emb) * col(z) / (tp * cp * dp)
    act = col(inp.activations[mode]) * np.minimum(1.0, m / pp) / (tp * cp)
    f = col(inp.allocator_overhead)
    total = (states + act) * (1.0 + f)
    gpus = tp * pp * cp * dp
    t_c = col(inp.flops_per_step) / (gpus * col(inp.peak) * col(inp.mfu_by_mode[mode]))
    s, b, h = col(inp.seq_len), col(inp.micro_batch), col(inp.d_model)
    layers = col(inp.n_layer) / pp
    with np.errstate(divide="ignore", invalid="ignore"):
        t_tp = 8 * (tp - 1) / tp * 2 * s * b * h / cp * layers * m / _bandwidth(tp, 1, inp)
        t_ep = 4 * (ep - 1) / ep * 2 * s * b * h * col(inp.top_k) / cp * col(inp.moe_layers) / pp * m \
            / _bandwidth(ep, tp * cp, inp)
        t_pp = np.where(pp > 1, 2 * 2 * s * b * h / (tp * cp) * m / _bandwidth(pp, tp * cp * dp, inp), 0.0)
        t_cp = 3 * (cp - 1) * 2 * (s / cp) * b * col(inp.kv_dim) * layers * m / _bandwidth(cp, tp, inp)
        per_rank = ((P - E) + E / ep) / (tp * pp)
        k = {0: 2.0, 1: 2.0, 2: m + 1.0, 3: 2.0 * m + 1.0}[zero]
        t_dp = k * (dp * cp - 1) / (dp * cp) * 2.0 * per_rank / _bandwidth(dp * cp, tp, inp)
    use = col(inp.modelled)
    # the hardware model moves collectives at NETWORK_EFFICIENCY of the link rate
    net = np.where(use, 1.0 / throughput.NETWORK_EFFICIENCY, 1.0)
    t_tp, t_ep, t_pp, t_cp, t_dp = (t * net for t in (t_tp, t_ep, t_pp, t_cp, t_dp))
    # a given utilisation (it contains a well-tuned layout's overheads): time only past LOSS_ALLOWANCE
    bubble = t_c * (pp - 1) / m
    exposed = np.maximum(0.0, t_dp + t_cp - t_c)
    loss = (bubble + t_tp + t_ep + t_pp + exposed) / t_c
    factor = np.maximum(1.0, (1.0 + loss) / (1.0 + LOSS_ALLOWANCE))
    model = _modelled_step(inp, tp, pp, cp, m, mode, zero, states, t_tp, t_ep, t_pp, t_cp, t_dp)
    t_c = np.where(use, model["t_c"], t_c)
    keys = ("bubble", "exposed", "loss")
    bubble, exposed, loss = (np.where(use, model[k], v) for k, v in zip(keys, (bubble, exposed, loss), strict=True))
    # modelled rows: factor = step time over the shape's model FLOPs at the full peak (1/MFU; mfu_by_mode = 1)
    factor = np.where(use, model["step_s"] / model["ideal_s"], factor)
    slow = np.where(use, loss > LOSS_ALLOWANCE, factor > 1.0 + 1e-9)
    step = np.where(use, model["step_s"], t_c * factor)
    return {"total": total, "states": states, "act": act, "t_c": t_c, "bubble": bubble / t_c,
            "tp_comm": t_tp / t_c, "ep_comm": t_ep / t_c, "pp_comm": t_pp / t_c, "cp_comm": t_cp / t_c,
            "dp_comm": t_dp / t_c, "exposed": exposed / t_c, "optimizer": model["t_opt"] / t_c, "loss": loss,
            "factor": factor, "slow": slow, "step_s": step, "m": m}


def _modelled_step(inp, tp, pp, cp, m, mode, zero, states, t_tp, t_ep, t_pp, t_cp, t_dp) -> dict:
    """Step time from the hardware model (planning.throughput): every rank's micro-batches, the 1F1B bubble,
    communication (already at NETWORK_EFFICIENCY of the link; tensor, expert and pipeline traffic not overlapped; data
    traffic overlapped with one micro-batch's compute — the last backward, where gradients are reduced — or
    with all of it under ZeRO-3, whose gathers run every micro-batch), and the optimizer's pass over its
    states (read and written once, memory bound)."""
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    s, b = col(inp.seq_len), col(inp.micro_batch)
    micro, ideal = throughput.compute_s(
        tokens=s * b, tp=tp, cp=cp, d_model=col(inp.d_model), q_dim=col(inp.q_dim), kv_dim=col(inp.kv_dim),
        d_ff=col(inp.d_ff), swiglu=np.asarray(inp.swiglu, dtype=bool)[:, None], vocab=col(inp.vocab), seq_len=s,
        n_layer=col(inp.n_layer), n_head=col(inp.n_head), pp=pp, mode=mode,
        flash=np.asarray(inp.flash, dtype=bool)[:, None], peak=col(inp.peak), gemm_eff=col(inp.gemm_eff),
        attn_eff=col(inp.attn_eff), bandwidth=col(inp.bandwidth), units=col(inp.units),
        act_bytes=col(inp.act_bytes))
    t_c = micro * m / col(inp.kernel_efficiency)
    window = t_c if zero >= 3 else t_c / m
    exposed = np.maximum(0.0, t_dp - window) + np.maximum(0.0, t_cp - t_c)
    bubble = t_c * (pp - 1) / m
    t_opt = 2.0 * states / (col(inp.bandwidth) * throughput.MEMORY_EFFICIENCY)
    step = t_c + bubble + t_tp + t_ep + t_pp + exposed + t_opt
    return {"t_c": t_c, "bubble": bubble, "exposed": exposed, "t_opt": t_opt, "step_s": step,
            "loss": step / t_c - 1.0, "ideal_s": ideal * m}


def _static_valid(inp: LayoutInputs, grid: np.ndarray) -> np.ndarray:
    """(row, candidate) pairs the model's shape and the caller's fixed sizes allow, whatever dp is."""
    tp, pp, cp, ep = (grid[:, i][None, :] for i in range(4))
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    heads, L, s = col(inp.n_head), col(inp.n_layer), col(inp.seq_len)
    ok = (heads % tp == 0) & (pp <= L) & (s % cp == 0) & ((cp == 1) | (s / cp >= MIN_CP_CHUNK))
    ok &= np.where(col(inp.n_experts) > 0, col(inp.n_experts) % ep == 0, ep == 1)
    searched_tp = np.isnan(col(inp.fixed["tp"]))
    ok &= searched_tp | (tp == col(inp.fixed["tp"]))
    ok &= np.where(searched_tp, tp <= col(inp.node_size), True)  # the search keeps tensor parallelism in a node
    for key, i in (("pp", 1), ("cp", 2), ("ep", 3)):
        want = col(inp.fixed[key])
        ok &= np.isnan(want) | (grid[:, i][None, :] == want)
    return ok


def _valid(inp: LayoutInputs, grid: np.ndarray, dp: np.ndarray, static: np.ndarray) -> np.ndarray:
    ep = grid[:, 3][None, :]
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    return static & (dp >= 1) & (dp % ep == 0) & (dp == np.round(dp)) & (dp * col(inp.micro_batch) <= col(inp.global_batch))


def _min_dp(inp: LayoutInputs, grid: np.ndarray, mode: str, zero: int) -> np.ndarray:
    """The least dp (a multiple of ep) whose memory fits, per (row, candidate); NaN where none does."""
    tp, pp, cp, ep = (grid[:, i][None, :] for i in range(4))
    col = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    P, E = col(inp.params_total), col(inp.expert_params)
    room = col(inp.usable_bytes) / (1.0 + col(inp.allocator_overhead))
    u, z = _split(inp, zero)
    room = room - ((P - E) + E / ep) * col(u) / (tp * pp) - col(inp.activations[mode]) / (tp * cp)
    sharded = P * col(z) / (tp * pp * cp)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(sharded > 0, np.ceil(sharded / room * (1 - 1e-12)), 1.0)
    need = np.maximum(need, 1.0)
    need = np.ceil(need / ep) * ep
    return np.where(room > 0, need, np.nan)


MODES = ("none", "selective", "full")
ZERO_ORDER = (1, 2, 3, 0)
SETTLE_LOSS = 0.05  # searched stages 1-3 (stage 0 only when asked: stage 1 has its traffic and less memory)
KEYS = ("total", "states", "act", "bubble", "tp_comm", "ep_comm", "pp_comm", "cp_comm", "dp_comm", "optimizer",
        "exposed", "loss", "factor", "slow", "step_s", "m")


def _rows(inp: LayoutInputs, idx: np.ndarray) -> LayoutInputs:
    """The same inputs for a subset of rows."""
    def take(v):
        if isinstance(v, dict):
            return {k: take(x) for k, x in v.items()}
        return np.asarray(v)[idx]

    return replace(inp, **{f.name: take(getattr(inp, f.name)) for f in fields(inp)})


def search(inp: LayoutInputs, grid: np.ndarray) -> dict:
    """For every row, the layout, ZeRO stage and checkpointing mode to use, with its memory and time terms.

    With ``num_gpus`` given: the fastest (tp, pp, cp, ep, zero, mode) that fits, ties to the lower modelled
    loss and then to less recomputation. Without it: the least recomputation that fits on some GPU count,
    then the fewest GPUs that fit under it, then the fastest. Rows where nothing fits get the layout with
    the least memory and ``fits`` False. Rows are dropped from later stages once nothing can beat them
    (given: a fitting layout at no time penalty under their lightest mode; not given: any fit under a mode).
    """
    n = len(inp.params_total)
    split = grid[:, 0] * grid[:, 1] * grid[:, 2]
    best = {k: np.full(n, np.nan) for k in (*KEYS, "tp", "pp", "cp", "ep", "dp", "num_gpus", "zero", "min_gpus")}
    best["mode"] = np.full(n, None, dtype=object)
    best["fits"] = np.zeros(n, dtype=bool)
    score = np.full(n, np.inf)  # lower is better; fitting layouts score below any non-fitting one
    rank = {mode: i for i, mode in enumerate(MODES)}
    open_rows = np.ones(n, dtype=bool)
    lightest = np.where(inp.modes == "auto", "none", inp.modes)
    static = _static_valid(inp, grid)
    given = ~np.isnan(inp.num_gpus)
    # the leanest stage first (memory only): a row that does not fit under full recomputation and ZeRO-3
    # fits nowhere; it gets that stage's least-memory layout and is closed
    lean = ((inp.modes == "auto") | (inp.modes == "full")) & ((inp.zero < 0) | (inp.zero == 3))
    idx = np.flatnonzero(lean)
    if idx.size:
        sub = _rows(inp, idx)
        dp = np.where(given[idx, None], sub.num_gpus[:, None] / split[None, :], _min_dp(sub, grid, "full", 3))
        dp_eval = np.where(np.isnan(dp), 1.0, dp)
        fits = _valid(sub, grid, dp_eval, static[idx]) & ~np.isnan(dp) \
            & (_memory(sub, grid, dp_eval, "full", 3) <= sub.usable_bytes[:, None])
        hopeless = idx[~fits.any(axis=1)]
        if hopeless.size:
            _stage(_rows(inp, hopeless), grid, split, "full", 3, rank, hopeless, best, score,
                   np.full(n, np.inf), static[hopeless])
            open_rows[hopeless] = False
    for mode in MODES:
        least = np.full(n, np.inf)
        for zero in ZERO_ORDER:
            allowed = ((inp.modes == mode) | (inp.modes == "auto")) & ((inp.zero == zero) | ((inp.zero < 0) & (zero > 0)))
            idx = np.flatnonzero(allowed & open_rows)
            if idx.size:
                _stage(_rows(inp, idx), grid, split, mode, zero, rank, idx, best, score, least, static[idx])
                # a given GPU count, fitting at no time penalty under its lightest mode: nothing beats it
                # (and little loss left to win back by another ZeRO stage's tie-break)
                open_rows &= ~(given & best["fits"] & (best["slow"] == 0) & (best["mode"] == lightest)
                               & (best["loss"] <= SETTLE_LOSS))
        took = np.isfinite(least) & (best["mode"] == mode)
        best["min_gpus"][took] = least[took]
        open_rows &= ~(best["fits"] & ~given)  # without a count: the least recomputation that fits is found
        if not open_rows.any():
            break
    return best


def _stage(inp, grid, split, mode, zero, rank, idx, best, score, least, static) -> None:
    """Evaluate one (mode, ZeRO stage) for the rows ``idx`` and keep what beats their best so far."""
    given = ~np.isnan(inp.num_gpus)
    dp_min = _min_dp(inp, grid, mode, zero)
    ok_min = _valid(inp, grid, np.where(np.isnan(dp_min), 1.0, dp_min), static) & ~np.isnan(dp_min)
    fewest = np.min(np.where(ok_min, split[None, :] * dp_min, np.inf), axis=1)
    least[idx] = np.minimum(least[idx], fewest)
    dp = np.where(given[:, None], inp.num_gpus[:, None] / split[None, :], dp_min)
    dp_eval = np.where(np.isnan(dp), 1.0, dp)
    valid = _valid(inp, grid, dp_eval, static)
    ev = _evaluate(inp, grid, dp_eval, mode, zero)
    fits = valid & ~np.isnan(dp) & (ev["total"] <= inp.usable_bytes[:, None])
    gpus = split[None, :] * dp_eval
    # one score per (row, candidate), lower is better; any fitting layout beats every other one.
    # num_gpus given: step time, ties to the lower loss, then less recomputation.
    # not given: least recomputation, then fewest GPUs, then the smallest time factor and loss.
    with_n = ev["step_s"] * (1.0 + 1e-9 * ev["loss"] + 1e-13 * rank[mode])
    # (modes come in order and a row without a count closes at its first mode that fits: no mode term)
    # fewest GPUs among layouts at full efficiency (no time penalty) when there are any, else fewest
    without_n = ev["slow"] * 1e20 + gpus * 1e3 + ev["factor"] + 1e-6 * ev["loss"] + 1e-9 * zero
    chosen = np.where(fits, np.where(given[:, None], with_n, without_n), np.where(valid, 1e60 + ev["total"], np.inf))
    j = np.argmin(chosen, axis=1)
    local = np.arange(len(idx))
    cand = chosen[local, j]
    better = cand < score[idx]
    if not better.any():
        return
    lr, jj, r = local[better], j[better], idx[better]
    score[r] = cand[better]
    for k in KEYS:
        best[k][r] = ev[k][lr, jj]
    for i, key in enumerate(("tp", "pp", "cp", "ep")):
        best[key][r] = grid[jj, i]
    best["dp"][r] = dp[lr, jj]
    best["num_gpus"][r] = np.where(np.isnan(dp[lr, jj]), np.nan, gpus[lr, jj])
    best["mode"][r] = mode
    best["zero"][r] = zero
    best["fits"][r] = fits[lr, jj]
