"""The stamp-keyed store both frame caches use: grid ticks, generations, buffer, hit/near/miss lookup."""

from __future__ import annotations

from synctva_ros.streaming.stamp_store import StampStore


def test_grid_generation_buffer_and_lookup() -> None:
    st: StampStore[str] = StampStore(period_s=0.2, buffer_s=1.0, gap_tolerance_s=0.1)
    due = [t for t in (0.0, 0.05, 0.1, 0.2, 0.25, 0.41, 0.61, 2.0, 2.1, 2.2) if st.due(t)]
    assert due == [0.0, 0.2, 0.41, 0.61, 2.0, 2.2]  # ticks 0.2 apart; after the gap the grid restarts at 2.0
    st.put(0.0, "a", gen=0)
    st.put(0.2, "b", gen=0)
    st.put(0.4, "stale", gen=1)  # computed for another generation: dropped
    assert len(st) == 2
    assert st.lookup([0.2, 0.27, 0.5], tolerance_s=0.1) == [("b", "hit"), ("b", "near"), (None, "miss")]
    assert st.lookup([0.27], tolerance_s=0.1, exact=True) == [(None, "miss")]
    st.put(1.5, "c", gen=0)  # 0.0 and 0.2 are older than buffer_s before 1.5
    assert st.lookup([0.0, 1.5], tolerance_s=0.0) == [(None, "miss"), ("c", "hit")]
    assert not st.due(1.5)  # already stored
    assert st.due(-5.0) and len(st) == 0  # time went back by more than a second: cleared, grid restarted
    st.reset(3)
    st.put(0.0, "d", gen=0)
    assert len(st) == 0  # the old generation's result is refused after the reset


def test_tick_slack_accepts_round_off() -> None:
    exact, slack = StampStore(0.1, 5.0, 0.0), StampStore(0.1, 5.0, 0.0, tick_slack_s=1e-9)
    for st in (exact, slack):
        assert st.due(0.0)
    assert not exact.due(0.1 - 1e-10) and slack.due(0.1 - 1e-10)
