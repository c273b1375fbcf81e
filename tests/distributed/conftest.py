"""Fixtures for distributed runs; the helpers are in distributed_support.py."""

from __future__ import annotations

import pytest
from distributed_support import Scenario


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("distributed").resolve()
    made = Scenario(root)
    made.workdir.mkdir()
    return made
