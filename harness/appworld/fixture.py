"""A tiny synthetic AppWorld data folder with known answers, built on demand from the package.

Tests and the pool benchmark need the real engine but cannot use AppWorld's data (it comes
only from AppWorld's host, and its licence forbids committing it or anything derived from
it). `build_fixture(root)` runs `fixture_builder.py` in the AppWorld venv, which writes an
AppWorld-format data folder under `root` with the tasks below: two scenarios of three tasks
over the supervisor's SimpleNote notes (count them, name the pinned one, create one). Each
task carries a `solution` (code that solves it) and a `wrong` attempt (code that completes it
wrongly), so scripted agents can check that success and failure are scored right. Results on
it are labelled benchmark `appworld-fixture` (the folder carries a marker), never `appworld`.
Building takes about 15-20 s (mostly AppWorld's imports); nothing it writes may be committed.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.appworld.install import (
    AppWorldSetupError,
    DataInfo,
    appworld_env,
    require_data,
    require_venv,
)

BUILDER = Path(__file__).with_name("fixture_builder.py")

SUPERVISOR = {
    "first_name": "Ada", "last_name": "Quill", "email": "ada.quill@example.com",
    "phone_number": "5550100001", "birthday": "1990-04-02", "sex": "female",
    "simple_note_password": "quill-notes-42",
}  # fmt: skip
DATETIME = "2023-05-18T12:00:00"

_LOGIN = """\
accounts = apis.supervisor.show_account_passwords()
password = next(a["password"] for a in accounts if a["account_name"] == "simple_note")
email = apis.supervisor.show_profile()["email"]
token = apis.simple_note.login(username=email, password=password)["access_token"]
notes = apis.simple_note.search_notes(access_token=token, page_limit=20)
"""


@dataclass(frozen=True)
class FixtureTask:
    """One synthetic task: start notes (title, content, pinned), answer or note to create, code."""

    task_id: str
    instruction: str
    notes: tuple[tuple[str, str, bool], ...]
    answer: int | str | None  # the ground-truth answer; None when the task asks for an action
    new_note: tuple[str, str] | None  # (title, content) the task asks to create
    solution: str
    wrong: str


def _count(task_id: str, notes: tuple[tuple[str, str, bool], ...]) -> FixtureTask:
    return FixtureTask(
        task_id, "How many notes do I have in SimpleNote?", notes, len(notes), None,
        _LOGIN + "apis.supervisor.complete_task(answer=len(notes))",
        _LOGIN + "apis.supervisor.complete_task(answer=len(notes) + 1)",
    )  # fmt: skip


def _pinned(task_id: str, notes: tuple[tuple[str, str, bool], ...]) -> FixtureTask:
    pinned = [title for title, _, pin in notes if pin]
    return FixtureTask(
        task_id, "What is the title of my pinned note in SimpleNote?", notes, pinned[0], None,
        _LOGIN + 'pinned = [n["title"] for n in notes if n["pinned"]]\n'
        "apis.supervisor.complete_task(answer=pinned[0])",
        _LOGIN + 'apis.supervisor.complete_task(answer=[n["title"] for n in notes][-1])',
    )  # fmt: skip


def _create(
    task_id: str, notes: tuple[tuple[str, str, bool], ...], title: str, content: str
) -> FixtureTask:
    make = f"apis.simple_note.create_note(access_token=token, title={title!r}, content=%r)\n"
    return FixtureTask(
        task_id, f"Create a note in SimpleNote titled '{title}' whose content is '{content}'.",
        notes, None, (title, content),
        _LOGIN + make % content + "apis.supervisor.complete_task()",
        _LOGIN + make % (content + " (draft)") + "apis.supervisor.complete_task()",
    )  # fmt: skip


_NOTES_A = (
    ("Groceries", "milk, eggs", False),
    ("Travel plans", "Rome in June", True),
    ("Books", "Dune", False),
)
_NOTES_B = tuple((f"Idea {i}", f"idea number {i}", False) for i in range(1, 7)) + (
    ("Recipes", "pasta", True),
)

FIXTURE_TASKS: tuple[FixtureTask, ...] = (
    _count("5ca1ab1_1", _NOTES_A),
    _pinned("5ca1ab1_2", _NOTES_A),
    _create("5ca1ab1_3", _NOTES_A, "Packing", "passport"),
    _count("5ca1ab2_1", _NOTES_B),  # 7 notes: more than one page of the default page size (5)
    _pinned("5ca1ab2_2", _NOTES_B),
    _create("5ca1ab2_3", _NOTES_B, "Chores", "laundry"),
)
FIXTURE_SPLITS = {
    "train": [t.task_id for t in FIXTURE_TASKS],
    "dev": [t.task_id for t in FIXTURE_TASKS[3:]],
}
TASKS_BY_ID = {t.task_id: t for t in FIXTURE_TASKS}


def fixture_spec() -> dict:
    return {
        "name": "sgcd-appworld-fixture-v1",
        "supervisor": SUPERVISOR,
        "datetime": DATETIME,
        "tasks": [asdict(t) for t in FIXTURE_TASKS],
        "splits": FIXTURE_SPLITS,
    }


def build_fixture(root: Path, venv: Path | None = None) -> tuple[DataInfo, float]:
    """Write the fixture under `root` (replacing root/data); returns its DataInfo and seconds."""
    python = require_venv(venv)
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(fixture_spec(), f)
        spec_path = f.name
    try:
        proc = subprocess.run(
            [str(python), "-I", str(BUILDER), spec_path, str(root)],
            env=appworld_env(root, venv), cwd=root, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        Path(spec_path).unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise AppWorldSetupError(f"building the AppWorld fixture in {root} failed:\n{tail}")
    return require_data(root), time.perf_counter() - t0
