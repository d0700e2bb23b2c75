"""Why: throughput on a batching server comes from keeping exactly max_concurrency requests in
flight all the time. A worker pool must start a new request as soon as one finishes (not wait
for a whole wave), never exceed the bound, and spread requests over replicas by load."""

from __future__ import annotations

from engine_harness import assert_attribution, make_client, make_docs, run
from fakes.fault_injecting_openai_server import FaultInjectingOpenAIServer, delayed

from extraction_assets.engine import EngineSettings


def test_bounded_and_continuously_fed() -> None:
    # request durations vary a lot, so waves would leave slots idle
    durations = [0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.1]

    def rule(req):
        return delayed(durations[int(req.ids[0][1:])])

    settings = EngineSettings(items_per_call=1, max_concurrency=3, progress_interval_s=0.2)
    with FaultInjectingOpenAIServer(rule=rule) as server:
        summary, got = run(make_docs(12), make_client(server.url), settings)
    assert summary.items_ok == 12
    assert server.max_active == 3
    assert_attribution(got)

    # never more than 3 in flight, and a new request only once one has ended (no timing bound:
    # a busy machine delays every start alike)
    starts = sorted(s for s, _ in server.intervals)
    ends = sorted(e for _, e in server.intervals)
    for n, start in enumerate(starts[3:], start=3):
        assert sum(e <= start + 0.01 for e in ends) >= n - 2
    # not waves: short requests ran while the first long one (d0) was still in flight
    long_start, long_end = next(iv for iv in server.intervals if iv[1] - iv[0] > 0.5)
    during = [s for s, _ in server.intervals if long_start < s < long_end]
    assert len(during) >= 5


def test_requests_go_to_the_least_busy_replica() -> None:
    def slow_d0(req):
        return delayed(0.5) if req.ids[0] == "d0" else delayed(0.03)

    settings = EngineSettings(items_per_call=1, max_concurrency=2, progress_interval_s=60)
    with (
        FaultInjectingOpenAIServer(rule=slow_d0) as a,
        FaultInjectingOpenAIServer(rule=slow_d0) as b,
    ):
        summary, got = run(make_docs(8), make_client([a.url, b.url]), settings)
    assert summary.items_ok == 8
    # while d0 kept one replica busy, the other (least busy) one took the rest
    assert len(a.requests) + len(b.requests) == 8
    busy = a if any(r.ids == ["d0"] for r in a.requests) else b
    assert len(busy.requests) <= 2
    assert_attribution(got)
