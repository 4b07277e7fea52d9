"""A scripted OpenAI-compatible chat server on 127.0.0.1 that plays τ³-airline conversations.

It answers both sides through the real harness (inspect's `openai-api` provider):
- as the user (a request whose system prompt holds "<scenario>"), it names its task, then says
  ###STOP### once the agent says "All done.";
- as the agent, it plays the task's gold actions as tool calls, then says each communicate_info
  string, then "All done." With `wrong=True` it skips the write actions.
Every request's `seed` is recorded. Bounded: it serves only until the test stops it.

Adversarial replies (`fault=`, to the agent's first turn of the tasks in `fault_tasks`, default
all; `fault_times` limits how many replies it spoils): "surrogate_args" (a lone surrogate inside
the tool-call JSON), "surrogate_text" (one in the text), "no_choices" (`choices: []`),
"bad_json" (a body that is not JSON), "bad_args" (tool-call arguments that are not JSON),
"odd_shapes" (arguments as an object, a call without id, unknown tools), "null_message", "huge" (a 2 MB text reply), "http500" (a server error;
"http500_surrogate": one whose message holds a lone surrogate), "drop" (the connection closes
without a reply).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedServer:
    def __init__(self, domain, wrong: bool = False, delay: float = 0.0, fault: str | None = None,
                 fault_tasks: set[str] | None = None, fault_times: int | None = None):  # fmt: skip
        self.domain = domain
        self.wrong = wrong
        self.delay = delay
        self.fault, self.fault_tasks, self.fault_times = fault, fault_tasks, fault_times
        self.faults_sent = 0
        self.tasks_started: list[str] = []
        self.seeds: list[tuple[str, Any]] = []
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    print("BAD", self.path, dict(self.headers), raw[:200])
                    raise
                reply = server.respond(body)
                if reply is _DROP:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(reply, tuple):  # (status, raw body)
                    status, data = reply
                else:
                    status, data = 200, json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ the script

    def respond(self, body: dict[str, Any]) -> Any:
        self.requests += 1
        if self.delay:
            time.sleep(self.delay)
        msgs = body["messages"]
        system = next((m["content"] for m in msgs if m["role"] == "system"), "") or ""
        if isinstance(system, list):
            system = "".join(p.get("text", "") for p in system)
        if "<scenario>" in system:
            self.seeds.append(("user", body.get("seed")))
            return self._message(self._user_turn(system, msgs))
        self.seeds.append(("agent", body.get("seed")))
        first_user = next((message_text(m) for m in msgs if m["role"] == "user"), "")
        task = re.search(r"task (\d+)", first_user)
        if self._spoil(task.group(1) if task else "", msgs):
            return self._fault()
        return self._agent_turn(msgs)

    def _spoil(self, task_id: str, msgs: list[dict]) -> bool:
        if self.fault is None or (self.fault_tasks is not None and task_id not in self.fault_tasks):
            return False
        if sum(m["role"] == "assistant" for m in msgs) > 1 and self.fault not in ("http500", "http500_surrogate", "drop"):
            return False  # only the agent's first turn after its greeting
        if self.fault_times is not None and self.faults_sent >= self.fault_times:
            return False
        self.faults_sent += 1
        return True

    def _fault(self) -> Any:
        kind = self.fault
        if kind == "surrogate_args":
            call = {"id": "call_x", "type": "function",
                    "function": {"name": "get_user_details", "arguments": '{"user_id": "\ud83d", "note": "\\ud83d"}'}}  # fmt: skip
            return self._message(None, [call])
        if kind == "surrogate_text":
            return self._message("Hello \ud83d there")
        if kind == "bad_args":  # tool-call arguments that are not JSON
            call = {"id": "call_x", "type": "function", "function": {"name": "get_user_details", "arguments": '{"user_id": '}}
            return self._message(None, [call])
        if kind == "odd_shapes":  # arguments as an object, no call id, an unknown tool, content as parts
            calls = [{"type": "function", "function": {"name": "no_such_tool", "arguments": {"a": 1}}},
                     {"id": "c2", "type": "function", "function": {"name": "", "arguments": "null"}}]  # fmt: skip
            return {**self._message(None, calls), "usage": None}
        if kind == "null_message":
            return {**self._message(None), "choices": [{"index": 0, "message": None, "finish_reason": None}]}
        if kind == "no_choices":
            return {**self._message("x"), "choices": []}
        if kind == "bad_json":
            return 200, b'{"id": "chatcmpl-1", "choices": [{"index": 0, "message": '
        if kind == "huge":
            return self._message("A" * 2_000_000)
        if kind in ("http500", "http500_surrogate"):
            msg = "internal error" + (" \ud83d" if kind == "http500_surrogate" else "")
            return 500, json.dumps({"error": {"message": msg, "type": "server_error"}}).encode()
        if kind == "drop":
            return _DROP
        raise ValueError(f"unknown fault {kind!r}")

    def _task_for_scenario(self, system: str):
        for task in self.domain.tasks.values():
            if self.domain.user_system_prompt(task) == system:
                return task
        raise AssertionError("unknown scenario")

    def _user_turn(self, system: str, msgs: list[dict]) -> str:
        task = self._task_for_scenario(system)
        said = [m for m in msgs if m["role"] == "user"]  # the agent's words, flipped
        if said and message_text(said[-1]) == "All done.":
            return "Thanks! ###STOP###"
        if len(msgs) <= 2:
            self.tasks_started.append(task.id)
            return f"I am calling about task {task.id}."
        return "ok"

    def _agent_turn(self, msgs: list[dict]) -> dict[str, Any]:
        first_user = next(message_text(m) for m in msgs if m["role"] == "user")
        task = self.domain.task(re.search(r"task (\d+)", first_user).group(1))
        actions = [a for a in task.actions if not (self.wrong and a.name in _WRITES)]
        n_calls = sum(len(m.get("tool_calls") or []) for m in msgs if m["role"] == "assistant")
        if n_calls < len(actions):
            a = actions[n_calls]
            call = {"id": f"call_{n_calls}", "type": "function",
                    "function": {"name": a.name, "arguments": json.dumps(a.arguments)}}  # fmt: skip
            return self._message(None, [call])
        n_texts = sum(1 for m in msgs if m["role"] == "assistant" and message_text(m) and not m.get("tool_calls")) - 1
        infos = list(task.communicate_info)
        return self._message(infos[n_texts] if n_texts < len(infos) else "All done.")

    def _message(self, content: str | None, tool_calls: list | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            msg["tool_calls"] = tool_calls
        return {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


_DROP = object()

_WRITES = {"book_reservation", "cancel_reservation", "update_reservation_flights", "update_reservation_baggages",
           "update_reservation_passengers", "send_certificate"}  # fmt: skip


def message_text(m: dict) -> str:
    """The text of an OpenAI chat message (a string, or the text parts of a list)."""
    c = m.get("content")
    if isinstance(c, list):
        return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""
