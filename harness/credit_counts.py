"""The one count of SGCD credit groups: how many got a reference that parsed, how many fell back.

Its home is the lowest layer because both sides of the credit files use it and neither may import
the other: the trainer (sgcd/method.py) counts a step's groups for the step's metrics row when it
writes credit/step-N.json, and the report (reports/credit_audit.py, which the experiment header
uses too) counts the groups it reads back from those files. The step files hold the groups
themselves ("reference", "provider"), not their counts, so the reader recounts them with this same
function rather than keeping a count of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def credit_counts(groups: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many credit groups there were, how many got a reference that parsed, and how many fell
    back to zero credit (no reference from a provider other than `zero`, which gives none by
    design). Each group is a credit record with "reference" and "provider": the one count the
    training step's metrics, the audit and the experiment header use."""
    out = {"groups": 0, "parsed": 0, "fallbacks": 0}
    for g in groups:
        ref = g.get("reference")
        out["groups"] += 1
        out["parsed"] += ref is not None
        out["fallbacks"] += ref is None and g.get("provider") != "zero"
    return out
