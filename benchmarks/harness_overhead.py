"""Benchmark: harness overhead per τ³-airline sample with an instant scripted model.

The agent and the user are an in-process model provider (`instant/gold`) that plays the gold
conversation (no network, no model compute), so the time measured is the harness:
inspect's eval machinery, the conversation loop, the tools and the scorer.
Target (issue 3): <= 0.1 s per sample. Run: `.venv/bin/python benchmarks/harness_overhead.py`.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.model import (  # noqa: E402
    ChatMessageAssistant,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    get_model,
    modelapi,
)
from inspect_ai.tool import ToolCall  # noqa: E402

from harness.airline.domain import load_domain  # noqa: E402
from harness.tasks import tau3_airline  # noqa: E402


@modelapi(name="instant")
class InstantAPI(ModelAPI):
    """Answers instantly from a Python callable (inspect's mockllm counts tokens with tiktoken,
    which downloads its encodings: not possible offline)."""

    def __init__(self, model_name, base_url=None, api_key=None, config=None, player=None, **kw):
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
        self.player = player

    async def generate(self, input, tools, tool_choice, config):
        out = self.player(input, tools, tool_choice, config)
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out


def make_player(domain):
    by_prompt = {domain.user_system_prompt(t): t for t in domain.tasks.values()}

    def play(input, tools, tool_choice, config):
        system = input[0].text if input and input[0].role == "system" else ""
        if system in by_prompt:  # the user
            task = by_prompt[system]
            last = input[-1].text if len(input) > 1 else ""
            text = "###STOP###" if last == "All done." else (f"task {task.id}" if len(input) <= 2 else "ok")
            return ModelOutput.from_content("instant/gold", text)
        first_user = next(m.text for m in input if m.role == "user")
        task = domain.task(re.search(r"task (\d+)", first_user).group(1))
        n_calls = sum(len(m.tool_calls or []) for m in input if m.role == "assistant")
        if n_calls < len(task.actions):
            a = task.actions[n_calls]
            msg = ChatMessageAssistant(content="", tool_calls=[ToolCall(id=f"c{n_calls}", function=a.name, arguments=dict(a.arguments))])
            return ModelOutput.from_message(msg, stop_reason="tool_calls")
        n_text = sum(1 for m in input if m.role == "assistant" and m.text and not m.tool_calls) - 1
        infos = list(task.communicate_info)
        return ModelOutput.from_content("instant/gold", infos[n_text] if n_text < len(infos) else "All done.")

    return play


def main() -> None:
    domain = load_domain()
    player = make_player(domain)
    model = get_model("instant/gold", player=player, memoize=False)
    rows = []
    logs = tempfile.mkdtemp(prefix="sgcd-overhead-")
    inspect_eval(tau3_airline(split="test", limit=1), model=model, model_roles={"user": model}, log_dir=logs,
                 display="none")  # warm-up: imports and the DB load are not per-sample costs  # fmt: skip
    for split, seeds, realtime in (("test", 1, True), ("base", 2, True), ("base", 2, False)):
        t0 = time.perf_counter()
        [log] = inspect_eval(tau3_airline(split=split, seeds=seeds), model=model, model_roles={"user": model},
                             log_dir=logs, display="none", log_realtime=realtime)  # fmt: skip
        dt = time.perf_counter() - t0
        n = len(log.samples)
        mean = log.results.scores[0].metrics["mean"].value
        rows.append((split, seeds, realtime, n, dt, dt / n, mean))
    table = Table(title="Harness overhead per τ³-airline sample (instant scripted model, this machine)")
    for col in ("split", "seeds", "live log", "samples", "total s", "s / sample", "pass@1 (must be 1)"):
        table.add_column(col, justify="right")
    for split, seeds, realtime, n, dt, per, mean in rows:
        table.add_row(split, str(seeds), "on" if realtime else "off", str(n), f"{dt:.2f}", f"{per:.3f}", f"{mean:.3f}")
    Console().print(table)
    shutil.rmtree(logs, ignore_errors=True)
    Console().print("target: <= 0.1 s per sample (inspect_evals' tau2 takes about 4.5 s per sample here)")


if __name__ == "__main__":
    main()
