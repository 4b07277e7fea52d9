"""Shared fixtures: the pulled τ³-airline data (`make test` pulls it first)."""

from __future__ import annotations

import pytest
from hypothesis import settings

from harness.airline.domain import load_domain

settings.register_profile("ci", deadline=None, max_examples=200, derandomize=True)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def domain():
    """The verified τ³-airline data; a missing copy fails with the command that fixes it."""
    return load_domain()


@pytest.fixture()
def state(domain):
    return domain.db.new_state()
