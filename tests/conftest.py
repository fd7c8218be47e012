from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .harness import Harness, running_server


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with running_server() as running:
        yield running


@pytest.fixture(params=[None, 2, 3], ids=["one-server", "2-nodes", "3-nodes"])
def nodes(request: pytest.FixtureRequest) -> int | None:
    """Run an end-to-end test against one server, then against clusters of 2 and
    3 nodes sharing a real Redis, with the clients spread over the nodes."""
    node_count: int | None = request.param
    return node_count
