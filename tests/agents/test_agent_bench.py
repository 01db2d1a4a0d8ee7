"""The bus bench measures what it says: throughput beside raw redis-py on the same server, and a
consumer process killed with SIGKILL while holding messages loses none of them."""

from __future__ import annotations

from emergent.agents.bench import bench_bus


def test_the_bus_bench_compares_with_raw_redis_and_loses_nothing_when_a_consumer_is_killed(redis_url: str) -> None:
    got = bench_bus(redis_url, n=600, rounds=1)
    assert got["bus_msgs_per_s"] > 0 and got["raw_redis_msgs_per_s"] > 0 and got["bus_rounds"] == 1
    assert abs(got["bus_ratio"] - got["bus_msgs_per_s"] / got["raw_redis_msgs_per_s"]) < 0.002  # one round
    assert got["bus_held_by_killed_consumer"] > 0  # it died holding unacknowledged messages
    assert got["bus_redelivered_after_kill"] >= got["bus_held_by_killed_consumer"]
    assert got["bus_lost_after_kill"] == 0
