"""The toy task generator: a task id ("L2-0042") rebuilds its task from a seeded RNG alone.

Each task hides a small table of three-letter keys; the agent reads it only through the
`lookup` tool and answers with `submit`. Four difficulty levels:

    level 0  look up the light, submit its colour's number   (a fixed 4-way code: chance = 1/4)
    level 1  one lookup, submit the value                    "What is the value of fox? ..."
    level 2  two lookups, submit their sum                   "Submit the sum of fox and owl."
    level 3  a lookup whose value is a key, one more lookup, submit a sum (three lookups)

Values are 2-digit ints (sums stay below 100). The questions repeat across tasks while the
hidden values change, so a question alone never gives away its answer: tools are required.
Level 0 is the path to first successes for a tiny random model: once a warm start has taught
the tool-call syntax, a policy that submits any of the four numbers succeeds a quarter of the
time, so RL has mixed groups to learn the code from (the association, not copying).

Splits are fixed index ranges per level, interleaved by level (so a prefix stays balanced):
train = indices 0..1999, test = indices 9000..9095 (96 held-out tasks per level).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

GENERATOR_VERSION = "toy-2"
LEVELS = (0, 1, 2, 3)
DEFAULT_LEVELS = (1, 2, 3)
COLOURS = {"red": 1, "green": 2, "blue": 3, "gold": 4}
TABLE_SIZE = 6
WORDS = (
    "ant", "ape", "bat", "bee", "cat", "cod", "cow", "dog", "eel", "elk",
    "emu", "fox", "gnu", "hen", "jay", "owl", "pig", "ram", "rat", "yak",
)  # fmt: skip
SPLITS: dict[str, range] = {"train": range(0, 2000), "test": range(9000, 9096)}
_ID = re.compile(r"^L([0-9])-(\d{4})$")


@dataclass(frozen=True)
class ToyTask:
    """One generated task: the hidden table, the question, the ideal lookups and the answer.

    table: key -> int value, or (level 3's first key) -> another key of the table.
    lookups: the keys the ideal solution looks up, in order.
    explanation: how the answer follows from the table, e.g. "fox + owl = 37 + 52 = 89".
    """

    id: str
    level: int
    index: int
    table: dict[str, int | str]
    question: str
    lookups: tuple[str, ...]
    answer: int
    explanation: str


def task_id(level: int, index: int) -> str:
    """The id of task `index` of `level`, e.g. task_id(1, 42) == "L1-0042"."""
    if level not in LEVELS or not 0 <= index <= 9999:
        raise ValueError(
            f"no toy task for level {level}, index {index} (levels {LEVELS}, index 0..9999)"
        )
    return f"L{level}-{index:04d}"


def parse_task_id(tid: str) -> tuple[int, int]:
    """(level, index) of a toy task id; a malformed id is a ValueError that shows the format."""
    m = _ID.match(str(tid))
    if m is None or int(m.group(1)) not in LEVELS:
        raise ValueError(
            f"not a toy task id: {tid!r} (expected L<level 0-3>-<4 digits>, e.g. L1-0042)"
        )
    return int(m.group(1)), int(m.group(2))


def make_task(tid: str) -> ToyTask:
    """Rebuild a task from its id alone (random.Random(f"{level}-{index}"), stable across runs)."""
    level, index = parse_task_id(tid)
    rng = random.Random(f"{level}-{index}")
    keys = rng.sample(WORDS, TABLE_SIZE)
    hi = 99 if level == 1 else 49
    table: dict[str, int | str] = {k: rng.randint(10, hi) for k in keys}
    a, b, c = keys[:3]
    if level == 0:
        colour = rng.choice(sorted(COLOURS))
        table = {"light": colour}
        code = ", ".join(f"{k}={v}" for k, v in COLOURS.items())
        question = f"Look up the light, then submit the number of its colour ({code})."
        lookups, answer = ("light",), COLOURS[colour]
        explanation = f"light = {colour} = {answer}"
    elif level == 1:
        question = f"What is the value of {a}? Submit it."
        lookups, answer = (a,), int(table[a])
        explanation = f"{a} = {answer}"
    elif level == 2:
        question = f"Submit the sum of the values of {a} and {b}."
        lookups, answer = (a, b), int(table[a]) + int(table[b])
        explanation = f"{a} + {b} = {table[a]} + {table[b]} = {answer}"
    else:
        table[a] = b
        question = (
            f"The value of {a} is another key. "
            f"Submit the sum of that key's value and the value of {c}."
        )
        lookups, answer = (a, b, c), int(table[b]) + int(table[c])
        explanation = f"{a} = {b}, {b} + {c} = {table[b]} + {table[c]} = {answer}"
    return ToyTask(
        task_id(level, index), level, index, table, question, lookups, answer, explanation
    )


def split_ids(split: str, levels: tuple[int, ...] = DEFAULT_LEVELS) -> list[str]:
    """The fixed ids of a split, interleaved by level: L1-0000, L2-0000, L3-0000, L1-0001, …"""
    if split not in SPLITS:
        raise ValueError(f"unknown toy split {split!r}; known: {', '.join(SPLITS)}")
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise ValueError(f"unknown toy level(s) {bad}; known: {list(LEVELS)}")
    return [task_id(lv, i) for i in SPLITS[split] for lv in sorted(set(levels))]
