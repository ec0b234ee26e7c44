"""`FitResult`: a fitted (or published) scaling law, its uncertainty and what can be computed from it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scalebench.errors import FitError
from scalebench.laws.forms import LawForm, get_law
from scalebench.laws.frontier import log_flops_for_loss, optimal_log

if TYPE_CHECKING:
    from scalebench.laws.backtest import BacktestResult
    from scalebench.laws.diagnostics import Diagnostics

FIT_FILE = "fit.json"  # where `scalebench fit DIR` saves its result in a sweep folder

ArrayLike = Any  # scalars, sequences or arrays; broadcast together


def json_float(x: Any) -> float | None:
    """A JSON-safe float: NaN and ±inf become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _percentiles(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):
        low, high = np.nanpercentile(samples, [tail, 100.0 - tail], axis=axis)
    return low, high


@dataclass(frozen=True, kw_only=True, eq=False)
class FitResult:
    """A scaling law with its parameters; from ``fit`` (with data) or ``from_params`` (published values).

    ``params`` holds the public parameters (for Chinchilla ``E``, ``A``, ``B``, ``alpha``, ``beta``);
    ``intervals`` maps each parameter and ``a``, ``b`` to a percentile bootstrap interval at
    ``confidence`` (empty without a bootstrap). ``n_at_best`` counts the refined starts (of ``n_refined``,
    pre-screened from ``n_starts`` grid points) whose optimum reached the best objective.
    """

    law: str
    form: LawForm = field(repr=False)
    theta: np.ndarray = field(repr=False)  # raw optimiser parameters
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float = 0.95
    objective: float = math.nan
    success: bool = True
    message: str = ""
    n_points: int = 0
    n_starts: int = 0
    n_refined: int = 0
    n_at_best: int = 0
    on_bound: tuple[str, ...] = ()
    huber_delta: float = 1e-3
    residuals: pd.DataFrame | None = field(default=None, repr=False)
    bootstrap_thetas: np.ndarray | None = field(default=None, repr=False)  # (B, P) raw parameters
    backtest: BacktestResult | None = field(default=None, repr=False)
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    diagnostics: Diagnostics | None = field(default=None, repr=False)

    @property
    def verdict(self) -> str | None:
        """``reliable``, ``weak`` or ``undetermined`` (None for laws given, not fitted)."""
        return None if self.diagnostics is None else self.diagnostics.verdict

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    def from_params(
        cls,
        law: str | LawForm,
        params: Mapping[str, float],
        *,
        source: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> FitResult:
        """A result without data (e.g. a published law) that can predict and give the frontier."""
        form = get_law(law)
        theta = form.from_public(params)
        public = {k: float(params[k]) for k in form.param_names}  # as given, not round-tripped
        return cls(
            law=form.name,
            form=form,
            theta=theta,
            params=public,
            success=True,
            message="parameters given, not fitted",
            source=source,
            metadata=dict(metadata or {}),
        )

    # --- derived quantities -------------------------------------------------------------------------
    @property
    def exponents(self) -> tuple[float, float] | None:
        ab = self.form.exponents(self.theta)
        return None if ab is None else (float(ab[0]), float(ab[1]))

    @property
    def a(self) -> float | None:
        """N_opt ∝ C^a (None for laws without a compute-optimal frontier)."""
        ab = self.exponents
        return None if ab is None else ab[0]

    @property
    def b(self) -> float | None:
        """D_opt ∝ C^b."""
        ab = self.exponents
        return None if ab is None else ab[1]

    # --- prediction ---------------------------------------------------------------------------------
    def _logx(
        self, params: ArrayLike, tokens: ArrayLike, flops: ArrayLike, extra: Mapping[str, ArrayLike] | None = None
    ) -> tuple[np.ndarray, tuple[int, ...]]:
        variables = self.form.variables
        given = {"params": params, "tokens": tokens, "flops": flops, **dict(extra or {})}
        unknown = [k for k in (extra or {}) if k not in variables]
        if unknown:
            raise FitError(f"law {self.law!r} predicts from {list(variables)}; unknown {unknown}")
        for v in variables:
            given.setdefault(v, None)
        if "tokens" in variables and tokens is None and flops is not None and params is not None:
            given["tokens"] = np.asarray(flops, dtype=float) / (6.0 * np.asarray(params, dtype=float))
        if "flops" in variables and flops is None and params is not None and tokens is not None:
            given["flops"] = 6.0 * np.asarray(params, dtype=float) * np.asarray(tokens, dtype=float)
        missing = [v for v in variables if given[v] is None]
        if missing:
            raise FitError(f"law {self.law!r} predicts from {list(variables)}; missing {missing}")
        arrays = np.broadcast_arrays(*(np.asarray(given[v], dtype=float) for v in variables))
        shape = arrays[0].shape
        if any(np.any(~(x > 0)) for x in arrays):
            raise FitError(f"predict needs positive, finite {list(variables)}")
        return np.log(np.vstack([x.ravel() for x in arrays])), shape

    def _log_predict_samples(self, thetas: np.ndarray, logx: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return self.form.log_predict(np.atleast_2d(thetas), logx)

    def predict(
        self, params: ArrayLike = None, tokens: ArrayLike = None, flops: ArrayLike = None, **variables: ArrayLike
    ) -> Any:
        """Predicted loss, broadcast over the inputs (a float for scalar inputs). For two-variable laws,
        ``tokens`` may be replaced by ``flops`` (tokens = flops / (6·params)); a law's other variables are
        given by name (``unique_tokens=...``)."""
        logx, shape = self._logx(params, tokens, flops, variables)
        out = np.exp(self._log_predict_samples(self.theta, logx)[0]).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def _need_bootstrap(self) -> np.ndarray:
        if self.bootstrap_thetas is None or len(self.bootstrap_thetas) == 0:
            raise FitError("no bootstrap samples: fit with bootstrap=N (e.g. 200) to get intervals")
        return self.bootstrap_thetas

    def predict_interval(
        self,
        params: ArrayLike = None,
        tokens: ArrayLike = None,
        flops: ArrayLike = None,
        *,
        confidence: float | None = None,
        **variables: ArrayLike,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap interval (low, high) of the predicted loss."""
        thetas = self._need_bootstrap()
        logx, shape = self._logx(params, tokens, flops, variables)
        low, high = _percentiles(
            np.exp(self._log_predict_samples(thetas, logx)), confidence or self.confidence
        )
        return low.reshape(shape), high.reshape(shape)

    # --- frontier -----------------------------------------------------------------------------------
    def compute_optimal(self, flops: ArrayLike) -> pd.DataFrame:
        """Compute-optimal allocation at each budget C (FLOPs, C = 6·N·D): columns ``flops``, ``params``,
        ``tokens``, ``tokens_per_param``, ``loss``, and ``<col>_low``/``<col>_high`` with the intervals of
        ``laws.intervals`` (the one definition) when the fit carries refits or residuals."""
        from scalebench.laws.intervals import intervals_at, method_of

        c = np.atleast_1d(np.asarray(flops, dtype=float)).ravel()
        if np.any(~(c > 0)):
            raise FitError("compute_optimal needs positive, finite FLOP budgets")
        if method_of(self) != "none":
            return intervals_at(self, c).drop(columns="method")
        log_n, log_d, log_l = optimal_log(self.form, self.theta, np.log(c))
        return pd.DataFrame(
            {
                "flops": c,
                "params": np.exp(log_n[0]),
                "tokens": np.exp(log_d[0]),
                "tokens_per_param": np.exp(log_d[0] - log_n[0]),
                "loss": np.exp(log_l[0]),
            }
        )

    def compute_for_loss(self, target_loss: ArrayLike) -> pd.DataFrame:
        """Least compute that reaches each target loss, at the compute-optimal allocation: columns ``loss``
        (the target), ``flops`` (+inf where unreachable, e.g. at or below E), ``params``, ``tokens``,
        ``tokens_per_param`` (NaN for laws in compute alone), ``flops_low``/``flops_high`` when bootstrapped."""
        targets = np.atleast_1d(np.asarray(target_loss, dtype=float)).ravel()
        if np.any(~(targets > 0)):
            raise FitError("compute_for_loss needs positive, finite target losses")
        log_c = log_flops_for_loss(self.form, self.theta, targets)[0]
        frame = pd.DataFrame({"loss": targets, "flops": np.exp(log_c)})
        frame["params"] = frame["tokens"] = frame["tokens_per_param"] = np.nan
        finite = np.isfinite(log_c)
        if self.form.has_frontier and finite.any():
            log_n, log_d, _ = optimal_log(self.form, self.theta, log_c[finite])
            frame.loc[finite, "params"] = np.exp(log_n[0])
            frame.loc[finite, "tokens"] = np.exp(log_d[0])
            frame.loc[finite, "tokens_per_param"] = np.exp(log_d[0] - log_n[0])
        if self.bootstrap_thetas is not None and len(self.bootstrap_thetas):
            low, high = _percentiles(
                np.exp(log_flops_for_loss(self.form, self.bootstrap_thetas, targets)), self.confidence
            )
            frame["flops_low"], frame["flops_high"] = low, high
        return frame

    # --- output -------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """JSON-safe dict: ``law``, ``params``, ``a``, ``b``, ``objective``, ``n_points``, ``ci``,
        ``backtest``, ``diagnostics`` (``verdict``, ``reasons``, ``suggestions``) and optimiser details.
        NaN/inf are written as null."""
        constraints = getattr(self.form, "constraints", None)
        return {
            "law": self.law,
            "diagnostics": None if self.diagnostics is None else self.diagnostics.summary(),
            **({"constraints": constraints()} if constraints is not None else {}),
            "formula": self.form.formula,
            "params": {k: json_float(v) for k, v in self.params.items()},
            "a": json_float(self.a),
            "b": json_float(self.b),
            "objective": json_float(self.objective),
            "n_points": int(self.n_points),
            "ci": {k: [json_float(lo), json_float(hi)] for k, (lo, hi) in self.intervals.items()},
            "confidence": float(self.confidence),
            "n_bootstrap": 0 if self.bootstrap_thetas is None else int(len(self.bootstrap_thetas)),
            "backtest": None if self.backtest is None else self.backtest.summary(),
            "success": bool(self.success),
            "message": self.message,
            "n_starts": int(self.n_starts),
            "n_refined": int(self.n_refined),
            "n_at_best": int(self.n_at_best),
            "on_bound": list(self.on_bound),
            "huber_delta": float(self.huber_delta),
            "source": self.source,
            **({"citation": self.metadata["citation"]} if "citation" in self.metadata else {}),
        }

    def report(self) -> str:
        """A short human-readable account of the fit."""
        lines = []
        if self.diagnostics is not None:
            lines += [self.diagnostics.text(), ""]
        lines.append(f"law: {self.law}   {self.form.formula}")
        if self.source:
            lines.append(f"source: {self.source}")
        pct = f"{100 * self.confidence:g}%"
        names = [*self.params, *(["a", "b"] if self.a is not None else [])]
        values = {**self.params, "a": self.a, "b": self.b}
        for name in names:
            text = f"  {name:>8} = {values[name]:.6g}"
            if name in self.intervals:
                lo, hi = self.intervals[name]
                text += f"   [{lo:.6g}, {hi:.6g}] ({pct})"
            lines.append(text)
        if self.n_points:
            lines.append(
                f"points: {self.n_points}   objective (Huber, delta={self.huber_delta:g}): {self.objective:.6g}"
            )
            lines.append(
                f"starts: {self.n_starts} screened, {self.n_refined} refined, {self.n_at_best} reached the best objective"
            )
            lines.append(f"converged: {'yes' if self.success else 'NO'} ({self.message})")
        if self.on_bound:
            lines.append(
                f"warning: optimum on a bound for {', '.join(self.on_bound)}; widen bounds or distrust it"
            )
        noise = self.metadata.get("seed_noise")
        if noise:
            lines.append(f"weights: seed noise of {noise['replicated_cells']} repeated cells ({noise['model']}), "
                         f"noise of log loss {noise['sigma_min']:.3g}-{noise['sigma_max']:.3g}")
        if self.bootstrap_thetas is not None:
            over = "cells (a cell's seeds together)" if self.metadata.get("bootstrap_groups") == "cells" else "runs"
            lines.append(f"bootstrap: {len(self.bootstrap_thetas)} resamples over {over}")
        if self.backtest is not None:
            bt = self.backtest
            lines.append(
                f"backtest: fit on {bt.n_train} runs below {bt.below_flops:.3g} FLOPs, predicted {bt.n_test} larger: "
                f"MAPE {100 * bt.mape:.2f}%"
            )
        if "citation" in self.metadata:
            lines.append(f"citation: {self.metadata['citation']}")
        return "\n".join(lines)


# --- saving and loading ---------------------------------------------------------------------------------
def _form_spec(form: LawForm) -> dict[str, Any]:
    from scalebench.laws.constraints import ConstrainedLaw

    if isinstance(form, ConstrainedLaw):
        return {"law": form.base.name, **form.constraints()}
    return {"law": form.name, "fixed": {}, "tied": {}}


def save_fit(result: FitResult, path: Any, extra: Mapping[str, Any] | None = None) -> Any:
    """Write ``result`` as JSON (its summary plus the raw parameters, bootstrap samples, residuals and
    backtest, so that :func:`load_fit` gives back the same intervals and predictions); ``extra``: more
    top-level keys (a sweep's other analyses, see ``laws.analysis``). Returns the path."""
    import json
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        path = path / FIT_FILE
    doc = fit_doc(result)
    if extra:
        doc.update(extra)
    from scalebench._util import write_text_atomic

    # whole or not at all (exclusive, no-follow temp file); an unwritable place is a ConfigError naming it
    write_text_atomic(path, json.dumps(doc, indent=1, allow_nan=False), what="fit file")
    return path


def fit_doc(result: FitResult) -> dict[str, Any]:
    """The JSON document of ``result`` that :func:`fit_from_doc` reads back whole."""
    return {
        "format": "scalebench-fit/1",
        "summary": result.summary(),
        "form": _form_spec(result.form),
        "theta": [float(x) for x in result.theta],
        "bootstrap_thetas": None if result.bootstrap_thetas is None else [
            [float(x) for x in row] for row in result.bootstrap_thetas],
        "metadata": {k: v for k, v in result.metadata.items() if isinstance(v, (str, int, float, bool))},
        "residuals": frame_doc(result.residuals),
        "backtest": None if result.backtest is None else _backtest_doc(result.backtest),
    }


def frame_doc(frame: pd.DataFrame | None) -> dict[str, Any] | None:
    """A DataFrame as JSON-safe ``{"columns": [...], "rows": [[...], ...]}`` (NaN as null)."""
    from scalebench._util import json_safe

    if frame is None:
        return None
    return {"columns": [str(c) for c in frame.columns], "rows": json_safe(frame.to_numpy(dtype=object).tolist())}


def doc_frame(doc: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """The DataFrame of :func:`frame_doc` (null back to NaN in numeric columns)."""
    if doc is None:
        return None
    frame = pd.DataFrame(doc["rows"], columns=doc["columns"])
    for col in frame.columns:
        if frame[col].dtype == object:
            converted = pd.to_numeric(frame[col], errors="coerce")
            if converted.notna().sum() == frame[col].notna().sum() and frame[col].notna().any():
                frame[col] = converted
    return frame


def _backtest_doc(bt: Any) -> dict[str, Any]:
    return {"law": bt.law, "below_flops": float(bt.below_flops), "n_train": int(bt.n_train),
            "n_test": int(bt.n_test), "mape": json_float(bt.mape), "errors": frame_doc(bt.errors),
            "theta": [float(x) for x in bt.fit.theta]}


def _backtest_from_doc(doc: Mapping[str, Any], form: LawForm) -> Any:
    from scalebench.laws.backtest import BacktestResult

    theta = np.asarray(doc["theta"], dtype=float)
    fit = FitResult(law=form.name, form=form, theta=theta,
                    params={k: float(v) for k, v in form.to_public(theta).items()}, n_points=int(doc["n_train"]))
    return BacktestResult(law=str(doc["law"]), below_flops=float(doc["below_flops"]), n_train=int(doc["n_train"]),
                          n_test=int(doc["n_test"]), mape=json_nan(doc["mape"]), errors=doc_frame(doc["errors"]),
                          fit=fit)


def load_fit(path: Any) -> FitResult:
    """A `FitResult` saved by :func:`save_fit` (a file, or a sweep folder holding ``fit.json``), with its
    residuals and backtest (files written before they were saved give None for those)."""
    import json
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        path = path / FIT_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FitError(f"{path}: not a saved scalebench fit ({exc}); refit with `scalebench fit`") from exc
    return fit_from_doc(doc, path)


def fit_from_doc(doc: Any, path: Any = "fit") -> FitResult:
    """The `FitResult` of a :func:`fit_doc` document; FitError naming ``path`` when it is not one."""
    from scalebench.laws.constraints import constrain
    from scalebench.laws.diagnostics import Diagnostics

    try:
        spec, summary = doc["form"], doc["summary"]
        form = constrain(spec["law"], spec.get("fixed") or None, spec.get("tied") or None)
        theta = np.asarray(doc["theta"], dtype=float)
        boot = doc.get("bootstrap_thetas")
        residuals = doc_frame(doc.get("residuals"))
        backtest = None if not doc.get("backtest") else _backtest_from_doc(doc["backtest"], form)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FitError(f"{path}: not a saved scalebench fit ({exc}); refit with `scalebench fit`") from exc
    if theta.shape != (form.n_params,):
        raise FitError(f"{path}: {theta.size} raw parameters for law {form.name!r}, which has {form.n_params}")
    shown = summary.get("params") if isinstance(summary, dict) else None
    shown = list(shown.values()) if isinstance(shown, dict) else []
    if not np.isfinite(theta).all() or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in shown):
        raise FitError(f"{path}: its parameters are not finite numbers (damaged or edited); refit with "
                       "`scalebench fit`")
    diag = summary.get("diagnostics")
    return FitResult(
        law=form.name,
        form=form,
        theta=theta,
        params={k: float(v) for k, v in form.to_public(theta).items()},
        intervals={k: (json_nan(v[0]), json_nan(v[1])) for k, v in (summary.get("ci") or {}).items()},
        confidence=float(summary.get("confidence", 0.95)),
        objective=json_nan(summary.get("objective")),
        success=bool(summary.get("success", True)),
        message=str(summary.get("message", "")),
        n_points=int(summary.get("n_points", 0)),
        n_starts=int(summary.get("n_starts", 0)),
        n_refined=int(summary.get("n_refined", 0)),
        n_at_best=int(summary.get("n_at_best", 0)),
        on_bound=tuple(summary.get("on_bound") or ()),
        huber_delta=float(summary.get("huber_delta", 1e-3)),
        bootstrap_thetas=None if boot is None else np.asarray(boot, dtype=float).reshape(-1, form.n_params),
        residuals=residuals,
        backtest=backtest,
        source=str(summary.get("source", "")),
        metadata={**dict(doc.get("metadata") or {}), "saved_backtest": summary.get("backtest"),
                  "loaded_from": str(path)},
        diagnostics=None if diag is None else Diagnostics.from_summary(diag),
    )


def json_nan(x: Any) -> float:
    return math.nan if x is None else float(x)
