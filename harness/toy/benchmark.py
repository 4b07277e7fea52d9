"""The toy benchmark (`Toy`) for the registry, and scripted solutions for the SFT warm start."""

from __future__ import annotations

from typing import Any

from harness.benchmarks import Benchmark, EvalProtocol, register
from harness.records import EndReason, Message, ToolCall
from harness.toy.episode import ToyEpisode
from harness.toy.tasks import (
    DEFAULT_LEVELS,
    GENERATOR_VERSION,
    LEVELS,
    SPLITS,
    make_task,
    parse_task_id,
    split_ids,
)


def parse_levels(levels: str | int | tuple[int, ...] | list[int] | None) -> tuple[int, ...]:
    """Levels from a tuple/list, an int or text like "1,2"; None means levels 1-3 (level 0 on request)."""
    if levels is None:
        return DEFAULT_LEVELS
    if isinstance(levels, int):
        levels = (levels,)
    elif isinstance(levels, str):
        try:
            levels = tuple(int(x) for x in levels.replace(" ", "").split(",") if x)
        except ValueError:
            raise ValueError(f"toy levels must look like '1,2'; got {levels!r}") from None
    out = tuple(sorted(set(int(x) for x in levels)))
    bad = [lv for lv in out if lv not in LEVELS]
    if bad or not out:
        raise ValueError(f"unknown toy level(s) {bad or levels!r}; known: {list(LEVELS)}")
    return out


@register
class Toy(Benchmark):
    """The toy tasks (no simulated user): look values up with a tool, submit the answer.

    levels: restrict the splits to these difficulty levels (e.g. "1" for a first curriculum
    stage); any valid task id still starts an episode.
    """

    name = "toy"
    protocol = EvalProtocol(max_steps=12, max_errors=3, max_tokens=64, user=False)
    components = ("lookups_ok", "submitted", "answer_ok")
    has_floor = True  # the agent that only stops
    has_scripted = True
    has_oracle = True
    default_split = "test"

    def __init__(self, levels: str | int | tuple[int, ...] | None = None):
        self.levels = parse_levels(levels)

    def split_ids(self, split: str) -> list[str]:
        return split_ids(split, self.levels)

    def episode(self, task_id: str) -> ToyEpisode:
        return ToyEpisode(make_task(task_id))

    def null_success(self, task_id: str) -> bool:
        ep = self.episode(task_id)
        return ep.finish(ep.reset().messages, EndReason.AGENT_STOP).success  # the agent that only stops

    def task_facts(self, task_id: str) -> dict[str, Any]:
        return {"scenario_id": "", "level": parse_task_id(task_id)[0], "null_success": self.null_success(task_id)}

    def scripted_messages(self, task_id: str) -> list[Message]:
        """The ideal conversation (for the supervised warm start)."""
        return scripted_messages(task_id)

    def oracle_credit(self, task_id: str, trajectories: list[tuple[list[Message], list[int]]],
                      successes: list[bool]) -> dict[str, Any]:  # fmt: skip
        """Credit from the scripted solution (harness/toy/oracle.py), for the `oracle` provider."""
        from harness.toy.oracle import oracle_credit

        return oracle_credit(task_id, trajectories, successes)

    def manifest(self) -> dict[str, Any]:
        return {
            "generator_version": GENERATOR_VERSION,
            "data_version": f"generator {GENERATOR_VERSION}",
            "levels": list(self.levels),
            "split_sizes": {s: len(self.split_ids(s)) for s in SPLITS},
            "split_indices": {s: f"{r.start}..{r.stop - 1}" for s, r in SPLITS.items()},
        }


def scripted_messages(task_id: str) -> list[Message]:
    """The ideal conversation as the loop records it: the opening user message, then one
    assistant turn per tool call (each lookup, then submit) with its tool result after it.

    Call ids follow the local provider's convention (turn t's first call is "call_t_0").
    Rendered with `harness.toolcalls.to_template_messages`, this is one SFT example.
    """
    task = make_task(task_id)
    ep = ToyEpisode(task)
    msgs = list(ep.reset().messages)
    calls = [("lookup", {"key": k}) for k in task.lookups] + [("submit", {"answer": task.answer})]
    for turn, (name, args) in enumerate(calls, start=1):
        call = ToolCall(f"call_{turn}_0", name, args)
        result = ep.step(call)
        msgs.append(Message(role="assistant", content=None, tool_calls=[call]))
        msgs.append(
            Message(role="tool", content=result.content, tool_call_id=call.id, error=result.error)
        )
    return msgs


def scripted_corpus(n: int = 200, levels: str | None = "0,1,2,3") -> list[str]:
    """Rendered scripted conversations of the first `n` train tasks: text to train a tiny
    tokenizer on, so tiny test models tokenize toy prompts compactly."""
    from harness.toolcalls import to_template_messages

    bench = Toy(levels)
    out = []
    for tid in bench.split_ids("train")[:n]:
        start = bench.episode(tid).reset()
        msgs = to_template_messages(start.system_prompt, start.tools, scripted_messages(tid))
        out.append("\n".join(m["content"] for m in msgs))
    return out
