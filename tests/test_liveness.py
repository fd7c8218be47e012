"""When a node may take another for dead (trio_chat/cluster/liveness.py), on
trio's MockClock: only on evidence from a time in which every node could renew."""

from __future__ import annotations

import trio
import trio.testing

from trio_chat.cluster import keys
from trio_chat.cluster.liveness import DECLARE_AGAIN_AFTER, TRUST_AFTER, Liveness

Clock = trio.testing.MockClock


async def renew_for(liveness: Liveness, seconds: float) -> None:
    """This node renews on schedule for ``seconds``."""
    end = trio.current_time() + seconds
    while trio.current_time() < end:
        await trio.sleep(keys.RENEW_EVERY)
        liveness.renewed(trio.current_time())


async def test_a_lapsed_lease_counts_once_this_node_has_renewed_for_a_lease_and_more(
    autojump_clock: Clock,
) -> None:
    liveness = Liveness(trio.current_time())
    await renew_for(liveness, TRUST_AFTER - keys.RENEW_EVERY)
    assert not liveness.may_declare(2, trio.current_time())
    await renew_for(liveness, keys.RENEW_EVERY)
    assert liveness.may_declare(2, trio.current_time())
    # Not again while its "gone" is on the way, but again after that.
    assert not liveness.may_declare(2, trio.current_time())
    assert liveness.may_declare(3, trio.current_time())
    await renew_for(liveness, DECLARE_AGAIN_AFTER)
    assert liveness.may_declare(2, trio.current_time())


async def test_after_an_outage_every_node_gets_time_to_renew(autojump_clock: Clock) -> None:
    liveness = Liveness(trio.current_time())
    await renew_for(liveness, 2 * TRUST_AFTER)
    await trio.sleep(5.0)  # Redis away (failed or stalled calls): no renewal
    liveness.outage_over(trio.current_time())
    liveness.renewed(trio.current_time())
    assert not liveness.may_declare(2, trio.current_time())
    await renew_for(liveness, TRUST_AFTER - keys.RENEW_EVERY)
    assert not liveness.may_declare(2, trio.current_time())
    await renew_for(liveness, keys.RENEW_EVERY)
    assert liveness.may_declare(2, trio.current_time())


async def test_a_slow_renewal_without_a_failure_counts_as_an_outage(
    autojump_clock: Clock,
) -> None:
    """Redis slow but within each call's deadline (or this node starved):
    the others may have missed their renewals too."""
    liveness = Liveness(trio.current_time())
    await renew_for(liveness, 2 * TRUST_AFTER)
    await trio.sleep(keys.RENEW_EVERY + keys.CALL_DEADLINE)
    liveness.renewed(trio.current_time())
    assert not liveness.may_declare(2, trio.current_time())
    await renew_for(liveness, TRUST_AFTER)
    assert liveness.may_declare(2, trio.current_time())


async def test_a_node_that_just_started_declares_nobody(autojump_clock: Clock) -> None:
    liveness = Liveness(trio.current_time())
    liveness.renewed(trio.current_time())
    assert not liveness.may_declare(1, trio.current_time())
