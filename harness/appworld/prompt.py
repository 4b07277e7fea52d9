"""The AppWorld agent's system prompt (ReAct style, our own wording) and its one tool schema.

The agent works in AppWorld's Python REPL through `execute_code`: app APIs are called as
`apis.<app>.<api>(...)`, API documentation is looked up with the `apis.api_docs.*` APIs (it
is not pasted into the prompt), credentials and personal details come from the supervisor
app, and `apis.supervisor.complete_task(...)` ends the task. No AppWorld text, API docs or
data are reproduced here (AppWorld's licence forbids redistributing them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOOL_NAME = "execute_code"

EXECUTE_CODE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": (
            "Run Python code in the task's persistent Python REPL and return what it printed "
            "(or the error traceback). Variables persist between calls. Call app APIs as "
            "apis.<app_name>.<api_name>(**arguments); print anything you want to see."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "The Python code to run."},
            },
            "required": ["code"],
        },
    },
}


@dataclass
class Supervisor:
    """The person the agent acts for, as the environment server reports them."""

    first_name: str
    last_name: str
    email: str
    phone_number: str

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


_PROMPT = """\
You are an autonomous assistant acting on behalf of your supervisor, {name} \
(email: {email}, phone: {phone}). Your supervisor gives you one task that you must carry out \
completely on their behalf, using the APIs of the apps they use (for example a note-taking \
app, a music app, a payments app, email, a file system).

You work in a Python REPL through the `{tool}` tool. Each call runs your code and shows you \
what it printed, or the traceback if it failed. Variables, imports and functions persist \
from one call to the next. Every app is reachable as `apis.<app_name>.<api_name>(...)` with \
keyword arguments; each call returns plain Python data (dicts and lists) or raises an \
exception that explains what went wrong.

How to proceed, step by step:
1. Find out which apps exist with `print(apis.api_docs.show_app_descriptions())`.
2. List an app's APIs with `print(apis.api_docs.show_api_descriptions(app_name="..."))`.
3. Before calling an API, read its specification (parameters, defaults, response shape) \
with `print(apis.api_docs.show_api_doc(app_name="...", api_name="..."))`.
4. Call the APIs, printing results, and look at the outputs before deciding the next step. \
Write small pieces of code; never guess names, ids, argument values or response fields.
5. Many list and search APIs return one page at a time: loop over pages until a page comes \
back empty, so that you see every item.

Credentials and personal details:
- Your supervisor's passwords for their app accounts are listed by \
`apis.supervisor.show_account_passwords()`. Log in with the app's login API (the username is \
usually the supervisor's email or phone number) to get an access token, then pass that \
token to the app's other APIs.
- Their profile, addresses and payment cards come from the `apis.supervisor` app as well.

Rules:
- Act autonomously: you cannot ask your supervisor anything, and `input()` is disabled. \
When the task is ambiguous, choose the most reasonable reading and carry it out.
- Do only what the task asks; do not change or delete anything else.
- Only the Python standard library modules the REPL allows may be imported; system \
access (files, processes, network) is blocked.
- The current date and time in this world is {datetime}; use it for anything relative \
("today", "last month").

Finishing: when the task is done, call `apis.supervisor.complete_task()`. If the task asks \
a question, pass the answer: `apis.supervisor.complete_task(answer=...)`, concise and \
exact (a number, a name, yes/no, or a short entity, not a sentence). If you are sure the \
task cannot be done, call `apis.supervisor.complete_task(status="fail")`. Completing the \
task ends your work: nothing you do afterwards counts.
"""


def system_prompt(supervisor: Supervisor, datetime: str) -> str:
    """The agent's system prompt for one task world."""
    return _PROMPT.format(
        name=supervisor.name,
        email=supervisor.email,
        phone=supervisor.phone_number,
        tool=TOOL_NAME,
        datetime=datetime.replace("T", " "),
    )


def task_message(instruction: str) -> str:
    """The first user message: the supervisor's task."""
    return f"My task for you:\n{instruction.strip()}"
