"""Multi-start L-BFGS-B with analytic gradients, pre-screened on the full start grid.

Hoffmann et al. (2022, D.2) run L-BFGS from every point of a 4,500-point grid. Most of those starts sit in
the same few basins, so we (1) evaluate the objective at *every* grid point at once (one vectorised pass,
~20 ms for 4,500 starts × 240 points), (2) refine the ``n_refine`` best of them with L-BFGS and analytic
gradients (all at once, ``refine_rows``), and (3) report the best objective, how many *refined* starts reached it (within ``reach_rtol``)
and whether it sits on a bound. ``n_refine=None`` refines every grid point (slow, complete).

``refine_rows`` is the same local search for many independent problems at once (a bootstrap's resamples, a
leave-one-out's refits): a projected L-BFGS whose every step evaluates all unfinished rows in one vectorised
pass, so the per-call overhead of a scalar optimiser is paid once per step instead of once per problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from scalebench.laws.forms import LawForm
from scalebench.laws.objective import (
    delta_mass,
    objective_and_grad,
    objective_and_grad_rows,
    objective_values,
)

# L-BFGS-B's ftol is absolute for objectives below 1, and a Huber objective with δ = 1e-3 is ~1e-3:
# the scipy default (2.2e-9) would stop early, the pitfall Besiroglu et al. (2024) found in the original fit.
LBFGS_OPTIONS = {"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-11, "maxcor": 20}
# A line search that stalls where the projected gradient is this small (relative to δ·Σw, the gradient
# scale of one unit of log-x per point) has reached a stationary point: count it as converged.
STATIONARY_RTOL = 1e-6


@contextmanager
def blas_single_thread() -> Iterator[None]:
    """Run L-BFGS-B with one BLAS thread. Its BLAS calls are on 5-vectors: with OpenBLAS's thread pool on
    shared cores each call can stall for ~1 ms (measured 35x slower under load). Needs threadpoolctl;
    without it this does nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True, kw_only=True, eq=False)
class MultiStartOutcome:
    theta: np.ndarray  # best raw parameters, shape (P,)
    objective: float
    success: bool
    message: str
    n_grid: int  # grid points screened
    n_refined: int  # starts refined by L-BFGS-B
    n_at_best: int  # refined starts whose optimum reached the best objective (within reach_rtol)
    reach_rtol: float
    on_bound: tuple[str, ...]  # raw parameters at a bound at the optimum
    optima: np.ndarray  # distinct local optima, best first, shape (K, P)


@dataclass(frozen=True, kw_only=True, eq=False)
class _Local:
    theta: np.ndarray
    objective: float
    success: bool
    message: str


def refine(
    form: LawForm,
    theta0: np.ndarray,
    logx: np.ndarray,
    logy: np.ndarray,
    delta: float,
    weights: np.ndarray | None = None,
) -> _Local:
    """One L-BFGS-B run from ``theta0`` (clipped into the bounds)."""
    lo, hi = np.array(form.bounds).T
    x0 = np.clip(np.asarray(theta0, dtype=float), lo, hi)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        res = minimize(
            lambda t: objective_and_grad(form, t, logx, logy, delta, weights),
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=form.bounds,
            options=LBFGS_OPTIONS,
        )
    obj = float(res.fun) if np.isfinite(res.fun) else np.inf
    message = res.message if isinstance(res.message, str) else res.message.decode()
    success = bool(res.success)
    if not success and np.isfinite(obj) and "ABNORMAL" in message:
        grad = np.asarray(res.jac, dtype=float)
        grad = np.where(((res.x <= lo) & (grad > 0)) | ((res.x >= hi) & (grad < 0)), 0.0, grad)
        scale = float(delta_mass(delta, weights, logy.size))
        pg = float(np.max(np.abs(grad)))
        if pg <= STATIONARY_RTOL * scale:
            success = True
            message = f"line search stalled at a stationary point (max |projected gradient| {pg:.2g})"
    return _Local(theta=np.asarray(res.x, dtype=float), objective=obj, success=success, message=message)


def _distinct(thetas: np.ndarray, objs: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    order = np.argsort(objs)
    kept: list[np.ndarray] = []
    for i in order:
        if np.isfinite(objs[i]) and all(np.max(np.abs(thetas[i] - k)) > tol for k in kept):
            kept.append(thetas[i])
    return np.array(kept) if kept else thetas[order[:1]]


def multistart(
    form: LawForm,
    logx: np.ndarray,
    logy: np.ndarray,
    *,
    delta: float,
    starts: np.ndarray,
    n_refine: int | None = 64,
    weights: np.ndarray | None = None,
    reach_rtol: float = 1e-5,
) -> MultiStartOutcome:
    """Screen ``starts`` (shape (S, P)) by objective, refine the best ``n_refine`` with L-BFGS-B."""
    starts = np.atleast_2d(starts)
    screened = objective_values(form, starts, logx, logy, delta, weights)
    order = np.argsort(screened, kind="stable")
    chosen = starts[order if n_refine is None else order[:n_refine]]
    rows_w = None if weights is None else np.broadcast_to(weights, (len(chosen), len(logy)))
    with blas_single_thread():
        rows = refine_rows(form, chosen, logx, logy, delta, rows_w)
    objs = rows.objective
    i_best = int(np.argmin(objs))
    best = _Local(theta=rows.theta[i_best], objective=float(objs[i_best]), success=bool(rows.success[i_best]),
                  message=rows.message(i_best))
    tol = reach_rtol * max(abs(best.objective), 1e-300)
    lo, hi = np.array(form.bounds).T
    edge = 1e-6 * (hi - lo)
    on_bound = tuple(
        n
        for n, t, l, h, e in zip(form.raw_names, best.theta, lo, hi, edge, strict=True)
        if t - l <= e or h - t <= e
    )
    return MultiStartOutcome(
        theta=best.theta,
        objective=best.objective,
        success=best.success and np.isfinite(best.objective),
        message=best.message,
        n_grid=starts.shape[0],
        n_refined=len(chosen),
        n_at_best=int(np.sum(objs <= best.objective + tol)),
        reach_rtol=reach_rtol,
        on_bound=on_bound,
        optima=_distinct(rows.theta, objs),
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class RowsOutcome:
    theta: np.ndarray  # (S, P) local optimum of each row
    objective: np.ndarray  # (S,)
    success: np.ndarray  # (S,) bool: converged by the same tests as ``refine`` (ftol, gtol, stationary stall)
    n_iter: int  # steps taken by the slowest row
    messages: tuple[str, ...] = ()  # (S,) why each row stopped

    def message(self, row: int) -> str:
        return self.messages[row] if self.messages else ""


ARMIJO_C1 = 1e-4  # sufficient decrease, as in L-BFGS-B's line search
MAX_BACKTRACKS = 40
HANDOFF_ROWS = 4  # unfinished rows left to the scalar L-BFGS-B (below ~5 rows a vectorised step costs more)  # halvings of a step before a row's line search counts as stalled


def _two_loop(grad: np.ndarray, s_mem: np.ndarray, y_mem: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """L-BFGS direction −H·grad per row; memory slot 0 is the newest pair, unused slots have rho = 0."""
    q = grad.copy()
    alpha = np.empty(rho.shape)
    for i in range(rho.shape[1]):
        alpha[:, i] = rho[:, i] * np.einsum("kp,kp->k", s_mem[:, i], q)
        q -= alpha[:, i, None] * y_mem[:, i]
    yy = np.einsum("kp,kp->k", y_mem[:, 0], y_mem[:, 0])
    gamma = np.where(rho[:, 0] > 0, 1.0 / np.maximum(rho[:, 0] * yy, 1e-300), 1.0)
    r = q * gamma[:, None]
    for i in reversed(range(rho.shape[1])):
        beta = rho[:, i] * np.einsum("kp,kp->k", y_mem[:, i], r)
        r += (alpha[:, i] - beta)[:, None] * s_mem[:, i]
    return -r


def refine_rows(
    form: LawForm,
    theta0: np.ndarray,
    logx: np.ndarray,
    logy: np.ndarray,
    delta: float,
    weights: np.ndarray | None = None,
    *,
    memory: int | None = None,
    max_iter: int | None = None,
) -> RowsOutcome:
    """Minimise S problems at once: row s starts at ``theta0[s]`` (S, P) and scores points with ``weights[s]``
    (S, n). Projected L-BFGS (bound-active coordinates frozen, steps clipped into the bounds) with a
    backtracking Armijo search; a row stops on L-BFGS-B's own tests (``LBFGS_OPTIONS`` ftol and gtol)."""
    memory = LBFGS_OPTIONS["maxcor"] if memory is None else memory
    max_iter = LBFGS_OPTIONS["maxiter"] if max_iter is None else max_iter
    lo, hi = np.array(form.bounds).T
    x = np.clip(np.atleast_2d(np.asarray(theta0, dtype=float)), lo, hi).copy()
    n_rows, n_par = x.shape
    why = np.full(n_rows, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT", dtype=object)
    f, g = objective_and_grad_rows(form, x, logx, logy, delta, weights)
    s_mem, y_mem = np.zeros((n_rows, memory, n_par)), np.zeros((n_rows, memory, n_par))
    rho = np.zeros((n_rows, memory))
    success = np.zeros(n_rows, dtype=bool)
    active = np.isfinite(f)
    why[~active] = "objective not finite at the start"
    scalar = np.zeros(n_rows, dtype=bool)  # rows to finish with ``refine``
    scale = delta_mass(delta, weights, logy.size, n_rows)
    ftol, gtol = LBFGS_OPTIONS["ftol"], LBFGS_OPTIONS["gtol"]
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        idx = np.flatnonzero(active)
        if idx.size <= HANDOFF_ROWS:  # a step's fixed cost outweighs a few rows: finish them one by one
            scalar[idx] = True
            active[idx] = False
            break
        xa, fa, ga = x[idx], f[idx], g[idx]
        free = ~(((xa <= lo) & (ga > 0)) | ((xa >= hi) & (ga < 0)))
        pg = np.where(free, ga, 0.0)
        small = np.max(np.abs(pg), axis=1) <= gtol
        d = _two_loop(pg, s_mem[idx], y_mem[idx], rho[idx]) * free
        slope = np.einsum("kp,kp->k", d, ga)
        fresh = (rho[idx, 0] == 0) | ~(slope < 0)  # no memory yet, or not a descent direction: steepest descent
        d[fresh] = -pg[fresh]
        rho[idx[fresh]] = 0.0
        norm = np.sqrt(np.einsum("kp,kp->k", pg, pg))
        step = np.where(fresh, np.minimum(1.0, 1.0 / np.maximum(norm, 1e-300)), 1.0)
        xn, fn, gn, moved = _line_search(form, logx, logy, delta, weights, idx, xa, fa, ga, d, step, lo, hi)
        sn, yn = xn - xa, gn - ga
        sy, yy = np.einsum("kp,kp->k", sn, yn), np.einsum("kp,kp->k", yn, yn)
        keep = moved & (sy > 2.2e-16 * yy)
        rows = idx[keep]
        s_mem[rows] = np.roll(s_mem[rows], 1, axis=1)
        y_mem[rows] = np.roll(y_mem[rows], 1, axis=1)
        rho[rows] = np.roll(rho[rows], 1, axis=1)
        s_mem[rows, 0], y_mem[rows, 0], rho[rows, 0] = sn[keep], yn[keep], 1.0 / sy[keep]
        x[idx], f[idx], g[idx] = xn, fn, gn
        reduced = (fa - fn) / np.maximum(np.maximum(np.abs(fa), np.abs(fn)), 1.0) <= ftol
        npg = np.where(~(((xn <= lo) & (gn > 0)) | ((xn >= hi) & (gn < 0))), gn, 0.0)
        npg_max = np.max(np.abs(npg), axis=1)
        stalled = ~moved & ~small
        done = small | (moved & reduced) | (npg_max <= gtol)
        success[idx] = done
        active[idx[done]] = False
        why[idx[small | (npg_max <= gtol)]] = "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL"
        why[idx[moved & reduced & ~small & (npg_max > gtol)]] = "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH"
        why[idx[stalled]] = "line search stalled at a stationary point"
        # a search that found no decrease away from a stationary point: left to L-BFGS-B's own search
        stuck = idx[stalled & (npg_max > STATIONARY_RTOL * scale[idx])]
        success[idx[stalled]] = ~np.isin(idx[stalled], stuck)
        active[idx[stalled]] = False
        scalar[stuck] = True
    for r in np.flatnonzero(scalar):
        local = refine(form, x[r], logx, logy, delta, None if weights is None else weights[r])
        if local.objective <= f[r] or not np.isfinite(f[r]):
            x[r], f[r] = local.theta, local.objective
        success[r], why[r] = local.success, local.message
    success &= np.isfinite(f)
    return RowsOutcome(theta=x, objective=np.where(np.isfinite(f), f, np.inf), success=success, n_iter=it,
                       messages=tuple(why))


def _line_search(form, logx, logy, delta, weights, idx, xa, fa, ga, d, step, lo, hi):
    """Backtracking Armijo search along d, projected onto the bounds; ``moved`` is False where no step helped."""
    xn, fn, gn = xa.copy(), fa.copy(), ga.copy()
    moved = np.zeros(idx.size, dtype=bool)
    pending = np.arange(idx.size)
    t = step.copy()
    for _ in range(MAX_BACKTRACKS):
        xt = np.clip(xa[pending] + t[pending, None] * d[pending], lo, hi)
        w = None if weights is None else weights[idx[pending]]
        ft, gt = objective_and_grad_rows(form, xt, logx, logy, delta, w)
        ok = ft <= fa[pending] + ARMIJO_C1 * np.einsum("kp,kp->k", ga[pending], xt - xa[pending])
        ok &= np.any(xt != xa[pending], axis=1)
        hit = pending[ok]
        xn[hit], fn[hit], gn[hit], moved[hit] = xt[ok], ft[ok], gt[ok], True
        pending = pending[~ok]
        if not pending.size:
            break
        t[pending] *= 0.5
    return xn, fn, gn, moved
