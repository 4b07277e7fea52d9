"""Builds a small AppWorld-format data folder from a JSON spec (runs in the AppWorld venv only).

    <appworld venv>/bin/python -I fixture_builder.py SPEC.json ROOT

Everything is generated from the installed package at build time, into ROOT/data:
  base_dbs/<app>.db      empty app databases (AppWorld's own schemas, `SQLModel.create_db`),
                         plus the supervisor in admin and the API docs in the api_docs app
  api_docs/standard/     API docs built by the package from its own app code
  tasks/<id>/specs.json  instruction, supervisor, date-time, DB version
  tasks/<id>/dbs/        the task's start state as AppWorld "changes" files over base_dbs
  tasks/<id>/ground_truth/  our own evaluation.py (AppWorld's `evaluate(test, ...)` contract),
                         answer, test list and metadata
  datasets/<split>.txt   the splits
  sgcd_fixture.json      the marker that labels results `appworld-fixture`
Nothing here is AppWorld's released data; none of it may be committed (it is derived from
the package's bundles). The spec (tasks and their known answers) is
harness.appworld.fixture.FIXTURE.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

EVAL_ANSWER = '''\
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    with test("""The task is marked complete with the correct answer."""):
        task = models.end.supervisor.Task.all()[0]
        test.case(task.status, "==", "success")
        test.answer(json.loads(task.answer), ground_truth_answer)
'''

EVAL_NEW_NOTE = '''\
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    with test("""The task is marked complete without an answer."""):
        task = models.end.supervisor.Task.all()[0]
        test.case(task.status, "==", "success")
        test.case(json.loads(task.answer), "==", None)
    with test("""Exactly one note has the requested title, with the requested content."""):
        notes = models.end.simple_note.Note.find_all(title=public_data.title)
        test.case(len(notes), "==", 1)
        test.case(notes[0].content.strip(), "==", public_data.content)
    with test("""No other note was created or deleted."""):
        test.case(models.end.simple_note.Note.size(), "==", public_data.notes_before + 1)
'''


DOC_FIELDS = ("api_name", "path", "method", "description", "parameters", "response_schemas")


def _requirements(code: str) -> list[str]:
    return [line.split('"""')[1] for line in code.splitlines() if "with test(" in line]


def build(spec: dict, root: str) -> None:
    os.environ["APPWORLD_ROOT"] = root
    from appworld.common.path_store import path_store

    path_store.update_root(root)

    from appworld.apps import get_all_apps
    from appworld.apps.api_lib import set_local_date_and_time
    from appworld.apps.model_lib import CachedDBHandler
    from appworld.collections.api_docs import ApiDocCollection
    from appworld.collections.models import ModelCollection
    from appworld.common.constants import CANARY_STRING, DB_VERSION
    from appworld.common.datetime import DateTime
    from appworld.common.utils import write_json

    data = os.path.join(root, "data")
    shutil.rmtree(data, ignore_errors=True)
    apps = list(get_all_apps())
    sup = spec["supervisor"]
    person = {k: sup[k] for k in ("first_name", "last_name", "email", "phone_number")}
    when = DateTime.fromisoformat(spec["datetime"])

    # API docs, as the package builds them from its app code; AppWorld loads the "standard" files.
    docs = ApiDocCollection.build(load_apps=tuple(get_all_apps(skip_admin=True)))
    docs_dir = os.path.join(data, "api_docs", "standard")
    os.makedirs(docs_dir)
    for app, name_to_doc in docs.items():
        files = {
            name: dict(doc) | {"canary_string": CANARY_STRING} for name, doc in name_to_doc.items()
        }
        write_json(files, os.path.join(docs_dir, app + ".json"), silent=True)

    # Base DBs: built in memory (fast), then saved in full.
    freezer = set_local_date_and_time(when)
    base_mem = ":memory:sgcd_fixture_base"
    base = ModelCollection.load(
        to_db_home_path=base_mem, from_db_home_path=base_mem, load_apps=apps, create_db=True
    )
    base.admin.MainUser.create_save(**person, birthday=sup["birthday"], sex=sup["sex"])
    base.api_docs.ApiDoc.save_all(
        [
            base.api_docs.ApiDoc.create(
                app_name_=doc["app_name"], **{k: doc[k] for k in DOC_FIELDS}
            )
            for name_to_doc in docs.values()
            for doc in name_to_doc.values()
        ]
    )
    base_dir = os.path.join(data, "base_dbs")
    base.save(
        base_dir, format="full", app_names=list(apps), delete_if_exists=True, save_model_hashes=True
    )
    CachedDBHandler.reset()
    freezer.stop()

    for task in spec["tasks"]:
        task_id = task["task_id"]
        task_dir = os.path.join(data, "tasks", task_id)
        freezer = set_local_date_and_time(when)
        models = ModelCollection.load(
            to_db_home_path=f":memory:task_input-{task_id}",
            from_db_home_path=base_dir,
            load_apps=apps,
        )
        supervisor = models.supervisor.Supervisor.create_save(
            **person, birthday=sup["birthday"], sex=sup["sex"]
        )
        models.supervisor.Task.create_save(
            supervisor_id=supervisor.id, instruction=task["instruction"]
        )
        models.supervisor.AccountPassword.create_save(
            supervisor_id=supervisor.id,
            account_name="simple_note",
            password=sup["simple_note_password"],
        )
        user = models.simple_note.User.create_save(
            **{k: person[k] for k in ("first_name", "last_name", "email")},
            password=sup["simple_note_password"],
            verified=True,
        )
        for title, content, pinned in task["notes"]:
            models.simple_note.Note.create_save(
                user_id=user.id, title=title, content=content, tags=[], pinned=pinned
            )
        models.save(
            os.path.join(task_dir, "dbs"),
            format="changes",
            app_names=list(apps),
            delete_if_exists=True,
            save_model_hashes=True,
        )
        CachedDBHandler.reset(task_id)
        freezer.stop()

        write_json(
            {
                "instruction": task["instruction"],
                "supervisor": person,
                "datetime": spec["datetime"],
                "db_version": DB_VERSION,
            },
            os.path.join(task_dir, "specs.json"),
            silent=True,
        )
        gt_dir = os.path.join(task_dir, "ground_truth")
        os.makedirs(gt_dir)
        if task["new_note"] is None:
            code, public = EVAL_ANSWER, {}
        else:
            title, content = task["new_note"]
            code, public = (
                EVAL_NEW_NOTE,
                {"title": title, "content": content, "notes_before": len(task["notes"])},
            )
        with open(os.path.join(gt_dir, "evaluation.py"), "w") as f:
            f.write(code)
        with open(os.path.join(gt_dir, "answer.json"), "w") as f:
            f.write(json.dumps(task["answer"]))
        write_json(public, os.path.join(gt_dir, "public_data.json"), silent=True)
        write_json({}, os.path.join(gt_dir, "private_data.json"), silent=True)
        tests = [{"requirement": r, "label": "no_op_fail"} for r in _requirements(code)]
        write_json(tests, os.path.join(gt_dir, "test_data.json"), silent=True)
        metadata = {
            "difficulty": 1,
            "mode": "minimal",  # AppWorld then needs these counts instead of solution files
            "num_apps": 1,
            "num_apis": 3,
            "num_api_calls": 4,
            "num_solution_code_lines": len(task["solution"].splitlines()),
        }
        write_json(metadata, os.path.join(gt_dir, "metadata.json"), silent=True)

    os.makedirs(os.path.join(data, "datasets"))
    for split, ids in spec["splits"].items():
        with open(os.path.join(data, "datasets", split + ".txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    with open(os.path.join(data, "sgcd_fixture.json"), "w") as f:
        json.dump(
            {"fixture": spec["name"], "tasks": [t["task_id"] for t in spec["tasks"]]}, f, indent=1
        )


if __name__ == "__main__":
    with open(sys.argv[1]) as spec_file:
        build(json.load(spec_file), os.path.abspath(sys.argv[2]))
