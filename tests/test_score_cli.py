"""`sgcd-bench score tau3-airline`: every line answered, malformed ones with an error field."""

from __future__ import annotations

import json

from click.testing import CliRunner

from harness.airline.trajectories import gold_trajectory, null_trajectory, to_line
from harness.cli import main


def test_score_file_scores_good_lines_and_flags_bad_ones(domain, tmp_path):
    lines = [
        to_line(gold_trajectory(domain, domain.task("8"))),
        "{not json",
        json.dumps({"id": "x", "task_id": "999", "termination_reason": "user_stop", "messages": []}),
        json.dumps({"id": "y", "task_id": "8", "messages": []}),
        json.dumps({"id": "z", "task_id": "8", "termination_reason": "user_stop", "messages": [{"role": "robot"}]}),
        to_line(null_trajectory(domain.task("8"))),
        to_line(null_trajectory(domain.task("0"))),
    ]
    inp, out = tmp_path / "t.jsonl", tmp_path / "s.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["score", "tau3-airline", "--input", str(inp), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 7
    assert rows[0] == {"id": "gold-8", "task_id": "8", "reward": 1.0, "success": True, "db_match": True, "communicate_ok": True}
    assert "not valid JSON" in rows[1]["error"]
    assert rows[2]["id"] == "x" and "unknown τ³-airline task id '999'" in rows[2]["error"]
    assert "termination_reason" in rows[3]["error"]
    assert "unknown role" in rows[4]["error"]
    assert rows[5] == {"id": "null-8", "task_id": "8", "reward": 0.0, "success": False, "db_match": False, "communicate_ok": True}
    assert rows[6]["success"] is True


def test_score_accepts_openai_wire_tool_calls_and_string_arguments(domain, tmp_path):
    task = domain.task("8")
    gold = task.actions[3]
    msgs = [
        {"role": "assistant", "content": "Hi! How can I help you today?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": gold.name, "arguments": json.dumps(gold.arguments)}}]},
        {"role": "tool", "content": "{}", "tool_call_id": "c1", "error": False},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c2", "name": "book_reservation", "arguments": "{oops"}]},
        {"role": "tool", "content": "Error: bad", "tool_call_id": "c2", "error": True},
        {"role": "user", "content": "###STOP###"},
    ]  # fmt: skip
    inp, out = tmp_path / "t.jsonl", tmp_path / "s.jsonl"
    inp.write_text(json.dumps({"id": 1, "task_id": "8", "termination_reason": "user_stop", "messages": msgs}) + "\n")
    CliRunner().invoke(main, ["score", "tau3-airline", "--input", str(inp), "--output", str(out)])
    assert json.loads(out.read_text())["reward"] == 1.0


def test_score_refuses_to_write_over_its_input(domain, tmp_path):
    inp = tmp_path / "t.jsonl"
    inp.write_text(to_line(gold_trajectory(domain, domain.task("8"))) + "\n")
    before = inp.read_bytes()
    link = tmp_path / "same.jsonl"
    link.symlink_to(inp)
    for out in (inp, link, tmp_path / "." / "t.jsonl"):
        result = CliRunner().invoke(main, ["score", "tau3-airline", "--input", str(inp), "--output", str(out)])
        assert result.exit_code != 0 and "is the input file" in result.output, result.output
        assert inp.read_bytes() == before


def test_hostile_lines_get_error_lines_and_the_rest_is_scored(domain, tmp_path):
    """A string `function`, JSON nested past the recursion limit, non-UTF-8 bytes, odd ids: each
    gets an error line; the good lines around them are still scored."""
    good = to_line(gold_trajectory(domain, domain.task("8"))).encode()
    deep = b'{"id": "deep", "task_id": "8", "messages": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    deep_args = json.dumps({"id": "deep-args", "task_id": "8", "termination_reason": "user_stop", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c", "name": "get_user_details",
                                              "arguments": "[" * 100_000 + "]" * 100_000}]}]}).encode()  # fmt: skip
    string_fn = json.dumps({"id": "s", "task_id": "8", "termination_reason": "user_stop", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": "get_user_details"}]}]}).encode()  # fmt: skip
    odd_id = json.dumps({"id": {"x": [1]}, "task_id": ["8"], "termination_reason": 3, "messages": []}).encode()
    lines = [good, string_fn, deep, b'{"id": "\xff\xfe", "task_id": "8"}', deep_args, odd_id, b"[1, 2]", good]
    inp, out = tmp_path / "t.jsonl", tmp_path / "s.jsonl"
    inp.write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(main, ["score", "tau3-airline", "--input", str(inp), "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == len(lines)
    assert rows[0]["success"] is True and rows[-1]["success"] is True
    assert rows[1]["id"] == "s" and "function must be an object" in rows[1]["error"]
    assert "nested too deeply" in rows[2]["error"]
    assert "not UTF-8" in rows[3]["error"]
    assert rows[4]["id"] == "deep-args" and "error" in rows[4]
    assert "error" in rows[5] and isinstance(rows[5]["id"], str)
    assert "JSON object" in rows[6]["error"]
    assert "scored 2 trajectories (2 successes), 6 malformed lines" in result.output
