"""One-sentence verdicts that never claim more than the test shows (and never "prove" anything).

A difference is claimed only when the paired BCa CI excludes 0 and the paired-t p (Holm-adjusted
when the report makes several comparisons) is below 0.05; otherwise the sentence says no
significant difference was detected and gives the minimum detectable effect.
"""

from __future__ import annotations

import math

from reports.analysis import Comparison, Improvement, RunSummary
from reports.stats import ALPHA, Interval

MIN_RUNS = 5  # fewer training seeds per method: stratified bootstrap intervals are not trusted


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for prose and tables; '—' for missing values."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ci(ci: Interval) -> str:
    return f"95% CI {fmt(ci.low)} to {fmt(ci.high)}"


def comparison_verdict(c: Comparison) -> str:
    """The sentence for run b against run a."""
    r = c.result
    holm = c.p_holm is not None
    p = c.p_holm if c.p_holm is not None else r.p_ttest
    p_text = f"paired t p{'' if p < 0.001 else '='}{fmt_p(p)}" + (", Holm-adjusted" if holm else "")
    where = f"over {c.n_tasks} tasks × {c.n_seeds} eval seed{'s' if c.n_seeds != 1 else ''}"
    if not math.isfinite(r.p_ttest):
        return (
            f"Every task's {c.metric} difference between {c.b} and {c.a} is {fmt(r.diff)} {where}; "
            "with no variation the t-test is undefined, so no significance is claimed."
        )
    if not math.isfinite(r.mde):  # every difference is zero: nothing varies to size an effect by
        return (
            f"No significant difference detected between {c.b} and {c.a}: every task's {c.metric} "
            f"difference is {fmt(r.diff)} {where}; with no variation every test gives p = 1 and the minimum "
            "detectable effect is undefined."
        )
    if r.ci.excludes(0.0) and p < ALPHA:
        direction = "higher" if r.diff > 0 else "lower"
        return (
            f"{c.b} scores {direction} than {c.a} by {fmt(abs(r.diff))} mean {c.metric} "
            f"({_ci(r.ci)}, {p_text}) {where}."
        )
    disagree = r.ci.excludes(0.0) or p < ALPHA
    tail = " (the interval and the test disagree, so no difference is claimed)" if disagree else ""
    return (
        f"No significant difference detected between {c.b} and {c.a} (difference {r.diff:+.3f}, "
        f"{_ci(r.ci)}, {p_text}){tail}; the minimum detectable effect at 80% power is "
        f"{fmt(r.mde)} {where}."
    )


def notes_beside_verdict(c: Comparison) -> list[str]:
    """The comparison's notes that its verdict does not already say: with no variation (every
    difference the same) the verdict says the tests are undefined or give p = 1, so the note that
    says so is not repeated beside it (the JSON keeps every note)."""
    if math.isfinite(c.result.mde):
        return list(c.result.notes)
    return [n for n in c.result.notes if not n.startswith("every ")]


def run_verdict(s: RunSummary) -> str:
    """The sentence for one run: its score, CI and where the CI lies against the null floor."""
    seeds = f"{s.n_seeds} eval seed{'s' if s.n_seeds != 1 else ''}"
    head = (
        f"{s.name} ({s.model}) scores {fmt(s.mean)} mean {s.metric} "
        f"(95% t CI {fmt(s.ci_t.low)} to {fmt(s.ci_t.high)}) over {s.n_tasks} tasks × {seeds}"
    )
    f = s.floor.value
    if f is None:
        return head + "; no null-agent floor is available for this benchmark."
    if s.ci_t.low > f:
        where = "lies above"
    elif s.ci_t.high < f:
        where = "lies below"
    else:
        where = "includes"
    return head + f"; the interval {where} the null-agent floor of {fmt(f)}."


def improvement_verdict(imp: Improvement) -> str:
    """The sentence for P(x > y) over training seeds."""
    text = f"P({imp.x} > {imp.y}) = {fmt(imp.p, 2)} ({_ci(imp.ci)})"
    if min(imp.n_x, imp.n_y) < MIN_RUNS:
        return (
            f"{text}, from {imp.n_x} vs {imp.n_y} training seeds: too few runs for a bootstrap "
            "interval "
            f"to be trusted (fewer than {MIN_RUNS}), so no claim is made."
        )
    if imp.ci.low > 0.5:
        return f"{text}: {imp.x} tends to beat {imp.y} across training seeds."
    if imp.ci.high < 0.5:
        return f"{text}: {imp.y} tends to beat {imp.x} across training seeds."
    return f"{text}: the interval includes 0.5, so neither method is shown to beat the other."
