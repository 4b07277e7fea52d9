"""Benchmark: τ³-airline tool results against the official environment, call for call.

Replays seeded random sequences of tool calls (over the 50 tasks and the 14 tools, valid and
invalid arguments: gold actions, real ids, wrong types, missing and extra arguments, names the
runner binds itself, calculate expressions) through upstream's `Environment.get_response` and
through `harness.airline.tools.call_tool`, and prints how many results are byte-identical (text
and error flag) and how many final databases are equal, with the first differences.

Needs a tau2-bench checkout at the pinned commit (a2c024725189; its `src/` directory) and the
packages upstream imports on the way to its airline tools, on PYTHONPATH (never installed into
the project): `pip install --target /tmp/tau2deps loguru toml addict deepdiff`. Run:
  PYTHONPATH=/tmp/tau2deps .venv/bin/python benchmarks/airline_parity.py --upstream TAU2/src
An upstream call still running after --timeout seconds (`9**9**9` in calculate) is recorded as
`<timeout>`. README "τ³ scoring" lists the differences kept on purpose.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import random
import signal
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.airline.domain import load_domain  # noqa: E402
from harness.airline.tools import call_tool  # noqa: E402

EXTRA_ARGS = ["self", "db", "tool_name", "requestor", "kwargs", "foo"]
EXPRESSIONS = ["2 ** 400", "2**(1+1)", "(174 + 30) * 2 / 3", "10 / 3", "1/0", "()", "...", "1(2)", "1(*1)", "  1+2",
               "", "1..2", "(1", "007", "2**5000", "9**9**9", "(-8)**(1/3)", "1 +", "1//0", "0**-1", "10.0**400",
               "2**100000/2**99990", "7**400000//7**399999", "-()", "1e5", "3 * 4.5 - 1"]  # fmt: skip
ODD_VALUES = [None, "X", "", 5, 2.0, 1.5, True, False, [], {}, ["X"], {"a": 1}, "AB", {"a": 1, "b": 2}, -3, 1e20, "ünï",
              [{"first_name": "A"}], [{"flight_number": "HAT001"}], [{"payment_id": "x", "amount": "5"}], [None]]  # fmt: skip


class Sequences:
    """Seeded call sequences drawn from the task data (ids, flights, payment methods)."""

    def __init__(self, domain: Any):
        self.db = domain.db.tables
        self.tasks = list(domain.tasks.values())
        self.params = {s["function"]["name"]: list(s["function"]["parameters"]["properties"]) for s in domain.tool_schemas}
        self.airports = sorted({f["origin"] for f in self.db["flights"].values()})

    def sequence(self, seed: int) -> list[tuple[str, dict[str, Any]]]:
        rng = random.Random(seed)
        task = self.tasks[seed % len(self.tasks)]
        text = json.dumps(task.user_scenario)
        user = next((u for u in self.db["users"] if u in text), rng.choice(list(self.db["users"])))
        res = rng.choice(self.db["users"][user]["reservations"] or list(self.db["reservations"]))
        gold = [(a.name, copy.deepcopy(a.arguments)) for a in task.actions]
        calls = list(gold) if rng.random() < 0.2 else []
        for _ in range(rng.randint(1, 7)):
            calls.append(self._call(rng, user, res, gold))
        return calls

    def _call(self, rng: random.Random, user: str, res: str, gold: list) -> tuple[str, dict[str, Any]]:
        if gold and rng.random() < 0.4:
            name, args = copy.deepcopy(rng.choice(gold))
        else:
            name = rng.choice(list(self.params) + ["fly_me", "_get_user"] if rng.random() < 0.05 else list(self.params))
            args = {p: self._value(rng, p, user, res) for p in self.params.get(name, [])}
        if args and rng.random() < 0.35:
            key = rng.choice(list(args))
            if rng.random() < 0.25:
                del args[key]
            else:
                args[key] = rng.choice(ODD_VALUES + [str(args[key]), [args[key]]])
        if rng.random() < 0.08:
            args[rng.choice(EXTRA_ARGS)] = rng.choice(["v", 1, None])
        return name, args

    def _value(self, rng: random.Random, param: str, user: str, res: str) -> Any:
        db = self.db
        methods = list(db["users"][user]["payment_methods"]) + ["credit_card_0"]
        flights = list(db["flights"])
        if param == "user_id":
            return rng.choice([user, user, rng.choice(list(db["users"])), "nobody"])
        if param == "reservation_id":
            return rng.choice([res, res, rng.choice(db["users"][user]["reservations"] or [res]), "HATHAT", "ZZZZZZ"])
        if param in ("origin", "destination"):
            return rng.choice(self.airports + ["XXX"])
        if param == "date":
            return rng.choice([f"2024-05-{rng.randint(1, 30):02d}", "2024-05-5", "tomorrow"])
        if param == "flight_number":
            return rng.choice(flights + ["HAT999"])
        if param == "flight_type":
            return rng.choice(["one_way", "round_trip", "return"])
        if param == "cabin":
            return rng.choice(["economy", "business", "basic_economy", "first"])
        if param == "insurance":
            return rng.choice(["yes", "no", "maybe"])
        if param in ("total_baggages", "nonfree_baggages"):
            return rng.choice([0, 1, 2, 3, 1.0, 2.0, 1.5, -1])
        if param == "amount":
            return rng.choice([0, 50, 100, 150.0, 99.5, -10])
        if param == "payment_id":
            return rng.choice(methods)
        if param == "expression":
            if rng.random() < 0.4:
                return "".join(rng.choice("0123456789+-*/(). ") for _ in range(rng.randint(0, 14)))
            return rng.choice(EXPRESSIONS)
        if param == "flights":
            if rng.random() < 0.6:
                out = [{"flight_number": f["flight_number"], "date": f["date"]} for f in db["reservations"][res]["flights"]]
            else:
                out = [{"flight_number": rng.choice(flights), "date": f"2024-05-{rng.randint(1, 30):02d}"}
                       for _ in range(rng.randint(0, 3))]  # fmt: skip
            if out and rng.random() < 0.5:
                out[-1]["date"] = f"2024-05-{rng.randint(1, 30):02d}"
            return out
        if param == "passengers":
            n = rng.choice([len(db["reservations"][res]["passengers"])] * 2 + [1, 2])
            return [{"first_name": rng.choice(["Ann", "Bo"]), "last_name": "Lee", "dob": "1990-01-01"} for _ in range(n)]
        if param == "payment_methods":
            return [{"payment_id": rng.choice(methods), "amount": rng.choice([100, 200, 500, 1000, 150.0])}
                    for _ in range(rng.randint(0, 2))]  # fmt: skip
        return "user wants help"


def import_upstream(src: Path) -> Any:
    """Upstream's airline environment pieces, importing `tau2` without its package __init__
    (which pulls in the LLM stack)."""
    if not (src / "tau2" / "domains" / "airline" / "tools.py").is_file():
        sys.exit(f"--upstream {src}: no tau2/domains/airline/tools.py there; pass a tau2-bench checkout's src/")
    from loguru import logger

    logger.remove()
    pkg = types.ModuleType("tau2")
    pkg.__path__ = [str(src / "tau2")]
    sys.modules["tau2"] = pkg
    try:
        from tau2.data_model.message import ToolCall
        from tau2.domains.airline.data_model import FlightDB
        from tau2.domains.airline.tools import AirlineTools
        from tau2.environment.environment import Environment
    except ModuleNotFoundError as e:
        sys.exit(f"upstream needs {e.name!r}: pip install --target DIR loguru toml addict deepdiff; PYTHONPATH=DIR")
    return types.SimpleNamespace(ToolCall=ToolCall, FlightDB=FlightDB, AirlineTools=AirlineTools, Environment=Environment)


class _Timeout(BaseException):  # not an Exception: upstream catches those
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", type=Path, required=True, help="tau2-bench checkout's src/ directory")
    ap.add_argument("--sequences", type=int, default=3200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds before an upstream call counts as hung")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    up = import_upstream(args.upstream.resolve())
    domain = load_domain()
    pristine = up.FlightDB.load(str(domain.data_dir / "db.json"))
    work = pristine.model_copy(deep=True)
    env = up.Environment(domain_name="airline", policy="", tools=up.AirlineTools(work))
    gen = Sequences(domain)

    def on_alarm(*_: Any) -> None:
        raise _Timeout

    signal.signal(signal.SIGALRM, on_alarm)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    examples: list[tuple] = []
    db_equal = 0
    t0 = time.perf_counter()
    for seed in range(args.seed, args.seed + args.sequences):
        calls = gen.sequence(seed)
        state = domain.db.new_state()
        for name, arguments in calls:
            ours = call_tool(state, name, copy.deepcopy(arguments))
            signal.setitimer(signal.ITIMER_REAL, args.timeout)
            try:
                msg = env.get_response(up.ToolCall(id="c", name=name, arguments=copy.deepcopy(arguments), requestor="assistant"))
                theirs = (msg.content, msg.error)
            except _Timeout:
                theirs = ("<timeout>", True)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            same = ours == theirs
            counts[name]["calls"] += 1
            counts[name]["identical"] += same
            if not same and len(examples) < 8:
                examples.append((seed, name, json.dumps(arguments)[:80], theirs[0][:90], ours[0][:90]))
        db_equal += _compare_and_restore(pristine, work, state, calls)
    elapsed = time.perf_counter() - t0
    restored = json.dumps(work.model_dump(), sort_keys=True) == json.dumps(pristine.model_dump(), sort_keys=True)

    console = Console()
    table = Table(title=f"τ³-airline tool results vs upstream ({args.sequences} sequences, seed {args.seed}, {elapsed:.0f} s)")
    for col in ("tool", "calls", "byte-identical", "differ"):
        table.add_column(col, justify="left" if col == "tool" else "right")
    total = collections.Counter()
    for name in sorted(counts):
        c = counts[name]
        total.update(c)
        table.add_row(name, str(c["calls"]), str(c["identical"]), str(c["calls"] - c["identical"]))
    table.add_row("all", str(total["calls"]), f"{total['identical']} ({total['identical'] / total['calls']:.2%})",
                  str(total["calls"] - total["identical"]))  # fmt: skip
    console.print(table)
    console.print(f"final databases equal: {db_equal} of {args.sequences} (upstream DB restored between sequences: {restored})")
    for ex in examples:
        console.print(f"seed {ex[0]} {ex[1]} {ex[2]}\n  upstream: {ex[3]!r}\n  ours:     {ex[4]!r}")


def _compare_and_restore(pristine: Any, work: Any, state: Any, calls: list) -> bool:
    """Compare every record the sequence may have touched (ids in its arguments, their users and
    flights, new reservation ids, what our state wrote), then put upstream's copies back."""
    strings: set[str] = set()

    def collect(obj: Any) -> None:
        if isinstance(obj, str):
            strings.add(obj)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                strings.add(k)
                collect(v)
        elif isinstance(obj, list):
            for v in obj:
                collect(v)

    collect([a for _, a in calls])
    keys = {t: {k for k in strings if k in getattr(pristine, t)} for t in ("users", "reservations", "flights")}
    keys["reservations"] |= {"HATHAT", "HATHAU", "HATHAV"}
    for rid in list(keys["reservations"]):
        if rid in pristine.reservations:
            keys["users"].add(pristine.reservations[rid].user_id)
            keys["flights"] |= {f.flight_number for f in pristine.reservations[rid].flights}
    for table, key in state.touched():
        keys[table].add(key)
    equal = True
    snapshot = state.snapshot()
    for table, ids in keys.items():
        for key in ids:
            theirs = getattr(work, table).get(key)
            theirs = theirs.model_dump() if theirs is not None else None
            equal &= json.dumps(theirs, sort_keys=True, default=str) == json.dumps(snapshot[table].get(key), sort_keys=True, default=str)
            if key in getattr(pristine, table):
                getattr(work, table)[key] = getattr(pristine, table)[key].model_copy(deep=True)
            else:
                getattr(work, table).pop(key, None)
    return equal


if __name__ == "__main__":
    main()
