"""The plan section's "next runs": the advisor's proposal for the sweep (``advisor.sweep_proposal``),
formatted for the page. Nothing is computed here beyond formatting; a sweep the advisor cannot serve gets
the reason instead of a table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from scalebench.errors import ScalebenchError
from scalebench.report import narrative

__all__ = ["advice_context"]


def _si(x: float) -> str:
    return narrative.si(x) if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def advice_context(sweep_dir: str | Path, *, fit: Any = None, loss_col: str | None = None) -> dict[str, Any]:
    """``{"missing": reason}`` or the proposal's numbers as strings for ``templates/advice.html``; ``fit``
    and ``loss_col``: the report's own fit of the sweep, reused."""
    from scalebench.advisor import REPORT_TARGET_FACTOR, sweep_proposal

    try:
        advice = sweep_proposal(sweep_dir, fit=fit, loss_col=loss_col)
    except ScalebenchError as exc:  # too few runs, no frontier, nothing to fit: say so, keep the page
        return {"missing": f"no proposal: {exc}"}
    lo, hi = advice.current_interval
    ratio = (advice.current_width / advice.expected_width
             if advice.runs and math.isfinite(advice.expected_width) and advice.expected_width > 0 else None)
    return {
        "missing": None,
        "target": advice.target, "target_flops": _si(advice.target_flops), "factor": f"{REPORT_TARGET_FACTOR:g}",
        "budget": _si(advice.budget), "cost": _si(advice.total_cost), "unit": advice.cost_unit,
        "estimate": _si(advice.estimate), "interval": f"[{_si(lo)}, {_si(hi)}]",
        "confidence": f"{100 * advice.confidence:g}%", "method": advice.width_method,
        "ratio": None if ratio is None else f"{ratio:.2f}", "verdict": advice.verdict,
        "reasons": list(advice.reasons), "notes": list(advice.notes), "kind": advice.design_kind,
        "command": (f"scalebench next {sweep_dir} --target-flops {advice.target_flops:.3g} "
                    f"--budget-flops {advice.budget:.3g} --write next.toml"),
        "rows": [{"params": _si(r.params), "tokens": _si(r.tokens), "flops": _si(r.flops),
                  "ratio": f"{r.tokens / r.params:.3g}", "epochs": f"{r.epochs:.2f}"} for r in advice.runs],
    }
