from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .harness import Harness, running_server


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with running_server() as running:
        yield running
