"""The toy task generator: a task id ("L2-0042") rebuilds its task from a seeded RNG alone.

Each task hides a small table of three-letter keys; the agent reads it only through the
`lookup` tool and answers with `submit`. Three difficulty levels:

    level 1  one lookup, submit the value                    "What is the value of fox? ..."
    level 2  two lookups, submit their sum                   "Submit the sum of fox and owl."
    level 3  a lookup whose value is a key, one more lookup, submit a sum (three lookups)

Values are 2-digit ints (sums stay below 100). The questions repeat across tasks while the
hidden values change, so a question alone never gives away its answer: tools are required.

Splits are fixed index ranges per level, interleaved by level (so a prefix stays balanced):
train = indices 0..1999, test = indices 9000..9039 (120 held-out tasks over three levels).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

GENERATOR_VERSION = "toy-1"
LEVELS = (1, 2, 3)
TABLE_SIZE = 6
WORDS = (
    "ant", "ape", "bat", "bee", "cat", "cod", "cow", "dog", "eel", "elk",
    "emu", "fox", "gnu", "hen", "jay", "owl", "pig", "ram", "rat", "yak",
)  # fmt: skip
SPLITS: dict[str, range] = {"train": range(0, 2000), "test": range(9000, 9040)}
_ID = re.compile(r"^L([1-9])-(\d{4})$")


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
            f"not a toy task id: {tid!r} (expected L<level 1-3>-<4 digits>, e.g. L1-0042)"
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
    if level == 1:
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


def split_ids(split: str, levels: tuple[int, ...] = LEVELS) -> list[str]:
    """The fixed ids of a split, interleaved by level: L1-0000, L2-0000, L3-0000, L1-0001, …"""
    if split not in SPLITS:
        raise ValueError(f"unknown toy split {split!r}; known: {', '.join(SPLITS)}")
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        raise ValueError(f"unknown toy level(s) {bad}; known: {list(LEVELS)}")
    return [task_id(lv, i) for i in SPLITS[split] for lv in sorted(set(levels))]
