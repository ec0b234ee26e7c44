"""The plan section's "next runs": the proposal `scalebench next DIR` saved (``DIR/next.json``), formatted for
the page. The advisor does not run here: without a saved proposal the section says how to get one. The
"now" interval is the page's fit at the proposal's target by ``laws.intervals`` (the one definition), so it
is the interval the predictions show."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from scalebench.errors import ScalebenchError
from scalebench.laws.analysis import NEXT_FILE
from scalebench.report import narrative

__all__ = ["NEXT_FILE", "advice_context"]
_BUDGET_FLAG = {"FLOPs": "--budget-flops", "GPU-hours": "--budget-gpu-hours", "USD": "--budget-usd"}


def _si(x: Any) -> str:
    return narrative.si(x) if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def advice_context(sweep_dir: str | Path, *, fit: Any = None, max_flops: float | None = None) -> dict[str, Any]:
    """``{"missing": reason}`` or the saved proposal's numbers as strings for ``templates/advice.html``;
    ``fit``: the page's fit (its interval at the target is the one shown as "now")."""
    from scalebench.laws.intervals import interval

    path = Path(sweep_dir) / NEXT_FILE
    how = (f"run `scalebench next {sweep_dir} --target-flops C --budget-flops B` (C: the compute you plan for, "
           "e.g. 100× the largest run; B: the FLOPs you can spend on new runs); it saves its proposal in "
           f"{NEXT_FILE}, which this section then shows")
    if not path.is_file():
        return {"missing": f"no proposal saved: {how}"}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        target, target_flops = str(saved["target"]), float(saved["target_flops"])
        runs = list(saved.get("runs") or [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"missing": f"{path} is not a saved proposal ({exc}); {how}"}
    now = None
    if fit is not None and fit.form.has_frontier:
        try:
            now = interval(fit, target, target_flops, saved.get("confidence"))
        except ScalebenchError:
            now = None
    ratio = saved.get("width_ratio")
    design = saved.get("design") or {}
    return {
        "missing": None,
        "target": target, "target_flops": _si(target_flops),
        "factor": f"{target_flops / max_flops:.3g}" if max_flops else "?",
        "budget": _si(saved.get("budget")), "cost": _si(saved.get("total_cost")), "unit": saved.get("cost_unit"),
        "estimate": _si(now.point if now else saved.get("estimate")),
        "interval": f"[{_si(now.low)}, {_si(now.high)}]" if now else "[no interval]",
        "confidence": f"{100 * (now.confidence if now else saved.get('confidence', 0.95)):g}%",
        "method": now.method if now else "none",
        "ratio": None if not isinstance(ratio, (int, float)) else f"{ratio:.2f}",
        "verdict": saved.get("verdict"), "reasons": list(saved.get("reasons") or []),
        "notes": list(saved.get("notes") or []), "kind": design.get("kind"),
        "command": (f"scalebench next {sweep_dir} --target-flops {target_flops:.3g} "
                    f"{_BUDGET_FLAG.get(str(saved.get('cost_unit')), '--budget-flops')} "
                    f"{float(saved.get('budget') or 0):.3g} --target {target} --write next.toml"),
        "rows": [{"params": _si(r.get("params")), "tokens": _si(r.get("tokens")), "flops": _si(r.get("flops")),
                  "ratio": f"{r['tokens'] / r['params']:.3g}" if r.get("params") else "–",
                  "epochs": f"{r['epochs']:.2f}" if isinstance(r.get("epochs"), (int, float)) else "–"}
                 for r in runs],
    }
