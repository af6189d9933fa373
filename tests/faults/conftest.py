"""The fault suite: a real server under live clients, a fault injected on
purpose, and the same verdict after each (`tests.faults._traffic`)."""

from __future__ import annotations

from typing import Any

import pytest

from chatter.throttle import Limit, NameClaimLimits

CROWD_CLAIMS = NameClaimLimits(per_address=Limit(1000, 100.0))
"""A crowd's clients stand for people at many addresses, but all come from
127.0.0.1: the address may take as many names as they need (each connection
keeps the contract's own limit)."""


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Every fault test's `server` lets its crowd take their names."""
    return {"name_claims": CROWD_CLAIMS}
