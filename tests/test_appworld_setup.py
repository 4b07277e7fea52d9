"""AppWorld set-up and data checks, CLI refusals, prompt and tool schema (no AppWorld needed)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.appworld import install
from harness.appworld.cli import appworld
from harness.appworld.install import (
    AppWorldSetupError,
    check_split_sizes,
    require_data,
    require_venv,
)
from harness.appworld.prompt import EXECUTE_CODE_TOOL, Supervisor, system_prompt, task_message

HARNESS_APPWORLD = Path(install.__file__).parent
APPWORLD_SIDE = {"server_main.py", "fixture_builder.py"}  # run by the AppWorld venv's python only


def _fake_data(root: Path, splits: dict[str, list[str]], fixture: bool = False) -> None:
    data = root / "data"
    for sub in ("tasks", "datasets", "base_dbs", "api_docs"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    for name, ids in splits.items():
        (data / "datasets" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    if fixture:
        (data / install.FIXTURE_MARKER).write_text("{}")


def test_missing_venv_names_the_setup_command(tmp_path):
    with pytest.raises(AppWorldSetupError, match="sgcd-bench appworld setup"):
        require_venv(tmp_path / "nope")
    (tmp_path / "half" / "bin").mkdir(parents=True)
    (tmp_path / "half" / "bin" / "python").touch()
    with pytest.raises(AppWorldSetupError, match="incomplete.*--force"):
        require_venv(tmp_path / "half")


def test_missing_data_names_both_commands(tmp_path):
    with pytest.raises(AppWorldSetupError) as e:
        require_data(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "data") in msg
    assert "sgcd-bench appworld setup" in msg and "sgcd-bench appworld data" in msg


def test_locations_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_APPWORLD_VENV", str(tmp_path / "v"))
    monkeypatch.setenv("SGCD_APPWORLD_ROOT", str(tmp_path / "r"))
    assert install.venv_dir() == tmp_path / "v" and install.root_dir() == tmp_path / "r"
    monkeypatch.delenv("SGCD_APPWORLD_VENV")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert install.venv_dir() == tmp_path / "cache" / "sgcd-bench" / "appworld" / "venv"
    env = install.appworld_env(tmp_path / "r")
    assert env["APPWORLD_ROOT"] == str((tmp_path / "r").resolve())
    assert not any(k.startswith("PYTHON") for k in env)


def test_data_command_refuses_to_delete_existing_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_APPWORLD_ROOT", str(tmp_path))
    monkeypatch.setenv("SGCD_APPWORLD_VENV", str(tmp_path / "no-venv"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("x")
    result = CliRunner().invoke(appworld, ["data"])
    assert result.exit_code != 0 and "--force" in result.output
    assert (tmp_path / "data" / "keep.txt").exists()
    # --force gets past the refusal and then needs the venv, which is missing here.
    result = CliRunner().invoke(appworld, ["data", "--force"])
    assert result.exit_code != 0 and "sgcd-bench appworld setup" in result.output
    assert (tmp_path / "data" / "keep.txt").exists()


def test_check_command_reports_missing_pieces(tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_APPWORLD_VENV", str(tmp_path / "no-venv"))
    result = CliRunner().invoke(appworld, ["check", "--root", str(tmp_path)])
    assert result.exit_code != 0 and "sgcd-bench appworld setup" in result.output


def test_splits_labels_and_released_sizes(tmp_path):
    _fake_data(tmp_path, {"train": ["aaaaaaa_1", "aaaaaaa_2:tag"], "dev": ["bbbbbbb_1"]})
    info = require_data(tmp_path)
    assert info.benchmark == "appworld" and not info.fixture
    assert info.splits["train"] == ["aaaaaaa_1", "aaaaaaa_2"]
    problems = check_split_sizes(info)
    assert "split train has 2 tasks, expected 90" in problems and len(problems) == 4
    _fake_data(tmp_path, {}, fixture=True)
    info = require_data(tmp_path)
    assert info.benchmark == "appworld-fixture" and check_split_sizes(info) == []


def test_prompt_and_tool_schema():
    schema = EXECUTE_CODE_TOOL["function"]
    assert EXECUTE_CODE_TOOL["type"] == "function" and schema["name"] == "execute_code"
    assert schema["parameters"]["required"] == ["code"]
    json.dumps(EXECUTE_CODE_TOOL)
    text = system_prompt(
        Supervisor("Ada", "Quill", "ada@example.com", "555"), "2023-05-18T12:00:00"
    )
    needles = ["Ada Quill", "ada@example.com", "555", "2023-05-18 12:00:00", "execute_code"]
    needles += ["apis.api_docs.show_app_descriptions", "apis.api_docs.show_api_doc"]
    needles += ["apis.supervisor.show_account_passwords", "apis.supervisor.complete_task("]
    for needle in needles:
        assert needle in text
    assert task_message("  Do X. ").endswith("Do X.")


def test_harness_side_never_imports_appworld():
    """Only the two scripts run by the AppWorld venv may import `appworld`; at module level
    none may (nothing heavy at import time, and the harness venv has no appworld)."""
    for path in HARNESS_APPWORLD.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] == "appworld":
                    assert path.name in APPWORLD_SIDE, f"{path.name} imports {name}"
        if path.name in APPWORLD_SIDE:
            top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
            assert all("appworld" not in ast.dump(n) for n in top), (
                f"{path.name} imports appworld at module level"
            )


def _fake_venv(path: Path, script: str) -> Path:
    """A venv stand-in whose `appworld` command is a shell script (no network, no AppWorld)."""
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").touch()
    (path / install.READY_MARKER).write_text("{}")
    appworld_cmd = path / "bin" / "appworld"
    appworld_cmd.write_text("#!/bin/sh\n" + script)
    appworld_cmd.chmod(0o755)
    return path


FAIL = "echo 'ConnectionError: cannot reach the host' >&2; exit 1\n"
SUCCEED = """\
root="$4"  # appworld download data --root ROOT
rm -rf "$root/data"
mkdir -p "$root/data/tasks" "$root/data/datasets" "$root/data/base_dbs" "$root/data/api_docs"
echo "aaaaaaa_1" > "$root/data/datasets/train.txt"
"""


def test_failed_download_keeps_existing_data(tmp_path):
    venv = _fake_venv(tmp_path / "venv", FAIL)
    root = tmp_path / "root"
    _fake_data(root, {"dev": ["bbbbbbb_1"]})
    with pytest.raises(AppWorldSetupError, match="unchanged") as e:
        install.download_data(root, venv=venv, force=True)
    assert "cannot reach the host" in str(e.value)
    assert require_data(root).splits == {"dev": ["bbbbbbb_1"]}
    assert sorted(p.name for p in root.iterdir()) == ["data"]


def test_forced_download_replaces_data_when_complete(tmp_path):
    venv = _fake_venv(tmp_path / "venv", SUCCEED)
    root = tmp_path / "root"
    _fake_data(root, {"dev": ["bbbbbbb_1"]})
    info = install.download_data(root, venv=venv, force=True)
    assert info.splits == {"train": ["aaaaaaa_1"]} and info.benchmark == "appworld"
    assert sorted(p.name for p in root.iterdir()) == ["data"]


def test_containment_fails_closed_without_landlock(monkeypatch):
    from harness.appworld import sandbox

    monkeypatch.setattr(sandbox, "landlock_abi", lambda: 3)
    with pytest.raises(sandbox.SandboxUnavailable, match="Landlock ABI 3.*>= 4"):
        sandbox.check()
    monkeypatch.setattr(sandbox.platform, "machine", lambda: "riscv64")
    with pytest.raises(sandbox.SandboxUnavailable, match="riscv64"):
        sandbox.check()


def test_seccomp_filter_is_a_whole_bpf_program():
    from harness.appworld import sandbox

    prog = sandbox.seccomp_filter()
    assert len(prog) % 8 == 0 and 0 < len(prog) // 8 < 4096  # sock_filter entries, BPF_MAXINSNS
