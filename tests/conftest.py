"""Test tiers: tests/unit (no cluster, seconds each) and tests/e2e (real control plane)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

UNIT_TIMEOUT = 10

# Properties check what is decided, not how fast: Hypothesis' 200 ms deadline per
# example fails them on a loaded machine. The per-test timeout above still holds.
settings.register_profile("alert-contacts", deadline=None)
settings.load_profile("alert-contacts")
E2E_TIMEOUT = 240


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).parts
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(E2E_TIMEOUT))
        elif item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))
