"""`sgcd-bench data pull`: hashes checked, clear errors, the upstream URL list."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from harness.airline.data import TAU3_AIRLINE
from harness.cli import main
from harness.data import DataError, pull, verify


@pytest.fixture()
def source(tmp_path, domain):
    src = tmp_path / "src"
    shutil.copytree(domain.data_dir, src)
    return src


def test_pull_from_directory_checks_and_places_every_file(source, tmp_path):
    hashes = pull("tau3-airline", source=source, dest_dir=tmp_path / "dest")
    assert set(hashes) >= {"db.json", "tasks.json", "split_tasks.json", "policy.md", "simulation_guidelines.md"}
    assert hashes["db.json"] == "1af9fea6e03ca7ca15a22bb3fcaf3e351393e3fc9070b6777947da8996f7531b"


def test_tools_json_is_optional(source, tmp_path):
    (source / "tools.json").unlink()
    hashes = pull("tau3-airline", source=source, dest_dir=tmp_path / "dest")
    assert "tools.json" not in hashes


def test_corrupt_source_is_refused_and_named(source, tmp_path):
    (source / "tasks.json").write_text("[]")
    with pytest.raises(DataError, match="tasks.json .* has sha256"):
        pull("tau3-airline", source=source, dest_dir=tmp_path / "dest")
    assert not (tmp_path / "dest" / "tasks.json").exists()


def test_missing_or_corrupt_installed_file_names_the_fix(source, tmp_path):
    dest = tmp_path / "dest"
    pull("tau3-airline", source=source, dest_dir=dest)
    (dest / "policy.md").write_text("edited")
    with pytest.raises(DataError, match=r"policy.md is corrupt.*sgcd-bench data pull tau3-airline"):
        verify("tau3-airline", dest)
    (dest / "policy.md").unlink()
    with pytest.raises(DataError, match=r"missing .*policy.md.*sgcd-bench data pull tau3-airline"):
        verify("tau3-airline", dest)


def test_missing_data_dir_is_a_clear_cli_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_DATA_DIR", str(tmp_path / "empty"))
    result = CliRunner().invoke(main, ["data", "verify", "tau3-airline"])
    assert result.exit_code != 0 and "sgcd-bench data pull tau3-airline" in result.output


def test_cli_pull_honours_sgcd_data_dir(source, tmp_path, monkeypatch):
    monkeypatch.setenv("SGCD_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["data", "pull", "tau3-airline", "--from", str(source)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "tau3-airline" / "db.json").is_file()


def test_upstream_urls_are_pinned_and_complete():
    urls = TAU3_AIRLINE.urls()
    base = "https://raw.githubusercontent.com/sierra-research/tau2-bench/a2c024725189/"
    assert urls == {
        "db.json": base + "data/tau2/domains/airline/db.json",
        "tasks.json": base + "data/tau2/domains/airline/tasks.json",
        "split_tasks.json": base + "data/tau2/domains/airline/split_tasks.json",
        "policy.md": base + "data/tau2/domains/airline/policy.md",
        "simulation_guidelines.md": base + "data/tau2/user_simulator/simulation_guidelines.md",
        "LICENSE": base + "LICENSE",
    }


def test_download_path_checks_hashes(tmp_path, monkeypatch, source):
    """The download branch, with the network replaced by a local copy of each file."""
    import harness.data as data

    def fake_download(url, dest, timeout=60.0):
        name = url.rsplit("/", 1)[-1]
        shutil.copyfile(source / name, dest)

    monkeypatch.setattr(data, "_download", fake_download)
    hashes = pull("tau3-airline", dest_dir=tmp_path / "dl")
    assert "tools.json" not in hashes and "db.json" in hashes


def test_an_explicit_data_dir_is_checked_by_sha256_too(source, tmp_path):
    """`--data-dir` used to skip the hash check: a corrupt copy was scored as if it were the data."""
    from harness.data import require_dataset

    (source / "tasks.json").write_text((source / "tasks.json").read_text().replace('"8"', '"8x"', 1))
    with pytest.raises(DataError, match=r"tasks.json is corrupt.*sgcd-bench data pull"):
        require_dataset("tau3-airline", source)
    inp = tmp_path / "t.jsonl"
    inp.write_text("{}\n")
    for args in (["score", "tau3-airline", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")],
                 ["demo"]):  # fmt: skip
        result = CliRunner().invoke(main, [*args, "--data-dir", str(source)])
        assert result.exit_code != 0 and "tasks.json is corrupt" in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "o.jsonl").exists()  # refused before any line was scored
