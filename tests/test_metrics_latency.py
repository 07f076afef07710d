"""The numbers derived from the metrics: latency percentiles for analytics, the request
rate and the CPU share of the dashboard JSON, each from known observations."""

from __future__ import annotations

import pytest

from toombos_edge.metrics import Metrics, RateWindow
from toombos_edge.metrics.histogram import REQUEST_SECONDS, Histogram
from toombos_edge.metrics.process import AppGauges


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_quantiles_interpolate_inside_the_bucket_like_promql() -> None:
    histogram = Histogram((0.01, 0.1, 1.0))
    for _ in range(50):
        histogram.observe(0.005)  # bucket le=0.01
    for _ in range(50):
        histogram.observe(0.05)  # bucket le=0.1
    # rank 95 is the 45th of 50 in (0.01, 0.1]: 0.01 + 0.09 * 45/50
    assert histogram.quantile(0.95) == pytest.approx(0.091)
    assert histogram.quantile(0.5) == pytest.approx(0.01)
    assert histogram.quantile(0.25) == pytest.approx(0.005)
    assert histogram.buckets() == [("0.01", 50.0), ("0.1", 100.0), ("1.0", 100.0),
                                   ("+Inf", 100.0)]


def test_an_observation_on_a_bound_falls_in_that_bucket() -> None:
    histogram = Histogram((0.01, 0.1))
    histogram.observe(0.01)
    assert histogram.counts == [1, 0, 0]


def test_quantiles_beyond_the_last_bound_report_that_bound() -> None:
    histogram = Histogram((0.01, 0.1))
    histogram.observe(7.0)
    assert histogram.quantile(0.99) == 0.1
    assert Histogram((1.0,)).quantile(0.99) == 0.0  # empty


def test_request_latency_for_analytics_from_known_observations() -> None:
    metrics = Metrics()
    requests = metrics.requests
    jobs = requests.meter("GET", "/api/jobs")
    health = requests.meter("GET", "/health")
    # 100 requests: 90 at 0.4 ms, 8 at 20 ms, 2 failing (503) at 2 s.
    for _ in range(90):
        health.record(200, 0.0004)
    for _ in range(8):
        jobs.record(200, 0.02)
    for _ in range(2):
        jobs.record(503, 2.0)
    jobs.record(101, 60.0)  # a WebSocket's lifetime: not a request latency
    latency = metrics.latency()
    assert latency["avg_ms"] == pytest.approx((90 * 0.4 + 8 * 20 + 2 * 2000) / 100)
    # p95: rank 95 is the 5th of 8 in (10 ms, 25 ms]: 10 + 15 * 5/8 = 19.375 ms.
    assert latency["p95_ms"] == pytest.approx(19.375)
    # p99: rank 99 is the 1st of 2 in (1 s, 2.5 s]: 1000 + 1500 * 1/2 = 1750 ms.
    assert latency["p99_ms"] == pytest.approx(1750.0)
    assert latency["error_rate"] == 0.02
    assert requests.total() == (100, 2, pytest.approx(90 * 0.0004 + 8 * 0.02 + 4.0))


def test_latency_with_no_requests_is_zeros() -> None:
    assert Metrics().latency() == {"avg_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0,
                                   "error_rate": 0.0}


def test_request_buckets_start_below_a_millisecond() -> None:
    # /health answers in tens of microseconds: its percentiles need buckets down there.
    assert REQUEST_SECONDS[0] <= 0.00025 and list(REQUEST_SECONDS) == sorted(REQUEST_SECONDS)


def test_requests_per_second_over_the_last_minute() -> None:
    clock = Clock()
    window = RateWindow(clock, span=60.0)
    clock.now += 10
    assert window.per_second(50) == 5.0  # since the start
    clock.now += 10
    assert window.per_second(250) == 12.5  # 250 over 20 s
    clock.now += 60  # the start and the first sample fall out of the minute
    assert window.per_second(850) == pytest.approx((850 - 250) / 60)


def test_cpu_percent_is_cpu_seconds_over_wall_seconds() -> None:
    clock, cpu = Clock(), Clock(5.0)
    gauges = AppGauges(clock, cpu)
    clock.now += 2.0
    cpu.now += 1.0
    assert gauges.cpu_percent() == 50.0
    clock.now += 0.5  # under a second later: the last figure, not a noisy one
    cpu.now += 0.5
    assert gauges.cpu_percent() == 50.0
    clock.now += 1.5
    cpu.now += 0.5
    assert gauges.cpu_percent() == 50.0  # 1 s of CPU over the 2 s since the last figure
    assert gauges.uptime() == 4.0


def test_a_scrape_encodes_a_copy_taken_on_the_loop() -> None:
    """What the thread encodes cannot change under it: later requests are not in it."""
    metrics = Metrics()
    meter = metrics.requests.meter("GET", "/health")
    meter.record(200, 0.001)
    frozen = metrics.requests.freeze()
    meter.record(200, 0.001)
    meter.record(500, 0.001)
    assert frozen.total()[0] == 1 and metrics.requests.total()[0] == 3
    jobs = metrics.jobs
    jobs.submitted["noop"] = 1
    frozen_jobs = jobs.freeze()
    jobs.submitted["noop"] = 2
    (family, *_rest) = list(frozen_jobs.collect())
    assert [s.value for s in family.samples] == [1]
