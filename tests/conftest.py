"""Shared fixtures: the pulled τ³-airline data (`make test` pulls it first)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import settings

from harness.airline.domain import load_domain

settings.register_profile("ci", deadline=None, max_examples=200, derandomize=True)
settings.load_profile("ci")
sys.path.insert(0, str(Path(__file__).parent))  # scripted_server, credit_server


@pytest.fixture(scope="session")
def domain():
    """The verified τ³-airline data; a missing copy fails with the command that fixes it."""
    return load_domain()


@pytest.fixture()
def state(domain):
    return domain.db.new_state()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, domain):
    """A tiny random Llama whose tokenizer was trained on the airline policy and tool schemas."""
    import json

    import torch

    from harness.tiny_model import build_tiny_model

    torch.set_num_threads(2)
    corpus = [domain.policy, domain.user_guidelines, json.dumps(domain.tool_schemas)] * 3
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)


@pytest.fixture()
def scripted_env(monkeypatch, domain):
    """A scripted OpenAI-compatible server on 127.0.0.1, reachable as openai-api/scripted/..."""
    from scripted_server import ScriptedServer

    servers = []

    def start(**kwargs):
        srv = ScriptedServer(domain, **kwargs).__enter__()
        servers.append(srv)
        monkeypatch.setenv("SCRIPTED_BASE_URL", srv.base_url)
        monkeypatch.setenv("SCRIPTED_API_KEY", "test-key")
        return srv

    yield start
    for srv in servers:
        srv.__exit__(None, None, None)


@pytest.fixture(scope="session")
def toy_tiny_dir(tmp_path_factory):
    """A tiny random Llama whose tokenizer was trained on rendered toy conversations."""
    import torch

    from harness.tiny_model import build_tiny_model
    from harness.toy.benchmark import scripted_corpus

    torch.set_num_threads(2)
    return build_tiny_model(tmp_path_factory.mktemp("toy_tiny") / "model", scripted_corpus(200), vocab_size=512,
                            max_context=1024)  # fmt: skip


@pytest.fixture(scope="session")
def appworld_python() -> Path:
    """The AppWorld venv's Python (built once per machine if missing: about a minute)."""
    from harness.appworld.install import AppWorldSetupError, require_venv, setup_venv

    try:
        return require_venv()
    except AppWorldSetupError:
        setup_venv()
        return require_venv()


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory, appworld_python) -> Path:
    """An AppWorld-format data folder built at test time (never committed), shared by the
    engine and the eval tests so it is built once per session."""
    from harness.appworld.fixture import build_fixture

    root = tmp_path_factory.mktemp("appworld-fixture")
    build_fixture(root)
    return root
