"""A scripted OpenAI-compatible credit-reference server on 127.0.0.1 for SGCD tests.

mode "good": credit +0.8 for every turn of a SUCCESS trajectory, -0.8 for a FAILURE one.
mode "flaky": an unparsable answer first, then a good one (tests the retry).
mode "bad": always unparsable (tests the fallback to zero). Records every prompt it saw.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def good_answer(prompt: str) -> str:
    steps = []
    for block in re.split(r"^# Trajectory ", prompt, flags=re.M)[1:]:
        head = block.splitlines()[0]
        traj = int(head.split()[0])
        credit = 0.8 if "SUCCESS" in head else -0.8
        for turn in re.findall(r"^\[turn (\d+)\]", block, flags=re.M):
            steps.append({"trajectory": traj, "turn": int(turn), "credit": credit, "why": "scripted"})
    return json.dumps({"summary": "successes looked the value up before submitting", "steps": steps})


class CreditServer:
    def __init__(self, mode: str = "good"):
        self.mode, self.prompts, self.calls, self.auth = mode, [], 0, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.auth.append(self.headers.get("Authorization"))
                prompt = body["messages"][-1]["content"]
                server.prompts.append(prompt)
                server.calls += 1
                bad = server.mode == "bad" or (server.mode == "flaky" and server.calls % 2 == 1)
                text = "I think the first one was better." if bad else good_answer(prompt)
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "credit",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": text}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
