"""The SGCD credit audit: is the external credit informative, and does it move the weights?

The reading side of the credit files. The trainer writes them (sgcd/method.py, write_audit: one
runs/NAME/train/credit/step-N.json per step with its groups, trajectories and weight statistics);
this module reads them for the report and the experiment header, without importing the trainer.
The parsed / fallback counts are harness.credit_counts.credit_counts, the function the trainer's
step metrics use, applied to the groups the files hold (they hold the groups, not their counts).

Read from the files training writes:
  groups / parsed share    how many groups got a reference that parsed (the rest fell back to zero)
  credit-success corr.     Pearson (point-biserial) correlation between a step's credit and its
                           trajectory's success, over all credited steps (scipy.stats.pearsonr)
  steps with credit        share of agent turns in kept groups that received a non-zero credit
  provider agreement       Spearman rank correlation between the main and the audit provider's
                           credits on the same (group, trajectory, turn) steps, when both exist;
                           with audit_provider = "oracle" it says whether the main provider's credit
                           is right. Never computed for a provider against itself (n/a).
  weight spread            mean per-update SD of the token weights, and their min / max
The `zero` and `random` controls are runs of their own; their audits sit beside the real one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.credit_counts import credit_counts


def _steps(ref: dict[str, Any] | None) -> dict[tuple[int, int], float]:
    if not ref:
        return {}
    return {(int(s["trajectory"]), int(s["turn"])): float(s["credit"]) for s in ref.get("steps", [])}  # fmt: skip


def summarize_audit(train_dir: Path) -> dict[str, Any] | None:
    """Audit figures for one training run, or None when it wrote no credit files."""
    from scipy import stats

    files = sorted(Path(train_dir).glob("credit/step-*.json"), key=lambda p: int(p.stem.split("-")[1]))  # fmt: skip
    if not files:
        return None
    turns_total = turns_credited = 0
    all_groups: list[dict[str, Any]] = []
    credits, successes, main_c, audit_c, w_sd, w_min, w_max = [], [], [], [], [], [], []
    provider = audit_provider = None
    for f in files:
        rec = json.loads(f.read_text())
        w = rec.get("weights") or {}
        if w.get("weight_std") is not None:
            w_sd.append(w["weight_std"])
            w_min.append(w["weight_min"])
            w_max.append(w["weight_max"])
        turns_of = {t["traj"]: t for t in rec.get("trajectories", [])}
        for g in rec.get("groups", []):
            all_groups.append(g)
            provider = provider or g.get("provider")
            steps = _steps(g.get("reference"))
            for local, traj in enumerate(g["trajectories"]):
                n_turns = int(turns_of.get(traj, {}).get("turns", 0) or 0)
                turns_total += n_turns
                turns_credited += sum(1 for (t, _), c in steps.items() if t == local and c != 0)
            for (local, _turn), c in steps.items():
                credits.append(c)
                successes.append(float(g["success"][local]))
            audit_rec = g.get("audit") or {}
            audit_provider = audit_provider or audit_rec.get("provider")
            if audit_rec.get("provider") == g.get("provider"):
                continue  # one provider against itself measures nothing
            audit = _steps(audit_rec.get("reference"))
            for key in sorted(steps.keys() & audit.keys()):
                main_c.append(steps[key])
                audit_c.append(audit[key])

    counts = credit_counts(all_groups)

    def corr(x, y, fn):
        if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
            return None
        return float(fn(x, y)[0])

    return {
        "provider": provider,
        "audit_provider": audit_provider,
        "updates": len(files),
        **counts,
        "parsed_share": counts["parsed"] / counts["groups"] if counts["groups"] else None,
        "credited_steps": len(credits),
        "credit_success_corr": corr(credits, successes, stats.pearsonr),
        "steps_with_credit_share": turns_credited / turns_total if turns_total else None,
        "provider_rank_agreement": corr(main_c, audit_c, stats.spearmanr),
        "agreement_steps": len(main_c),
        "weight_sd_mean": sum(w_sd) / len(w_sd) if w_sd else None,
        "weight_min": min(w_min) if w_min else None,
        "weight_max": max(w_max) if w_max else None,
    }


def audit_markdown(audits: dict[str, dict[str, Any] | None]) -> str:
    """A table of audits by run label; missing figures are said to be missing, not zero."""

    def fmt(v: Any, pct: bool = False) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        if pct:
            return f"{100 * v:.0f}%"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [
        "## Credit audit (SGCD runs)",
        "",
        "Computed from the credit files each SGCD run wrote (reports/credit_audit.py). corr = Pearson between a "
        "step's credit and its trajectory's success; agreement = Spearman between two providers on the "
        "same steps (n/a without an audit provider); with the oracle as audit provider, agreement says "
        "whether the provider's credit is right. n/a where the run gives too few values.",
        "",
        "| run | provider | groups | parsed | credit–success corr. | steps with credit | audit provider "
        "| agreement (Spearman, steps) | weight SD (mean) | weight range |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, a in audits.items():
        if a is None:
            rows.append(f"| {label} | no credit files | | | | | | | | |")
            continue
        agree = f"{fmt(a['provider_rank_agreement'])} ({a.get('agreement_steps', 0)})" if a.get("audit_provider") else "n/a"  # fmt: skip
        rows.append(
            f"| {label} | {a['provider']} | {a['groups']} | {fmt(a['parsed_share'], True)} | "
            f"{fmt(a['credit_success_corr'])} | {fmt(a['steps_with_credit_share'], True)} | "
            f"{a.get('audit_provider') or 'none'} | {agree} | {fmt(a['weight_sd_mean'])} | "
            f"{fmt(a['weight_min'])} to {fmt(a['weight_max'])} |"
        )
    return "\n".join(rows) + "\n"
