"""Jobs submitted and finished, by kind and outcome; run time and queue wait, by kind.

A subscriber of the event bus: it reads the job a ``job_created`` or a final event was made
from (never rendering it), so a job costs two dictionary increments and, when it ends, two
histogram observations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from ..events import JOB_CANCELLED, JOB_COMPLETED, JOB_CREATED, JOB_FAILED, Event
from ..events_wire import is_remote
from ..records.job import Job
from .frozen import LoopCollector
from .histogram import JOB_SECONDS, Histogram

_WATCHED = frozenset({JOB_CREATED, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})


class JobMetrics(LoopCollector):
    """Counts and timings of jobs, fed by :meth:`on_event`."""

    def __init__(self) -> None:
        # defaultdicts: ``d[key] += 1`` stays in C, the cheapest count there is.
        self.submitted: defaultdict[str, int] = defaultdict(int)
        self.finished: defaultdict[tuple[str, str], int] = defaultdict(int)
        #: kind → (run time, queue wait) histograms
        self.timings: dict[str, tuple[Histogram, Histogram]] = {}

    def __repr__(self) -> str:
        return (f"<JobMetrics submitted={sum(self.submitted.values())} "
                f"finished={sum(self.finished.values())}>")

    def freeze(self) -> JobMetrics:
        frozen = JobMetrics()
        frozen.submitted, frozen.finished = self.submitted.copy(), self.finished.copy()
        frozen.timings = {kind: (run.copy(), wait.copy())
                          for kind, (run, wait) in self.timings.items()}
        return frozen

    def on_event(self, event: Event) -> None:
        """The bus subscriber (returns at once). Each node counts the jobs it published:
        another node's events (whose body is JSON, never the job) are that node's count."""
        if event.type not in _WATCHED or is_remote(event):
            return
        job = event.subject
        if not isinstance(job, Job):
            return
        if event.type == JOB_CREATED:
            self.submitted[job.kind] += 1
        else:
            self._finished(job)

    def _finished(self, job: Job) -> None:
        self.finished[job.kind, job.status] += 1  # a StrEnum member is its value as a key
        started = job.started_at
        if started is None:  # cancelled before it ever ran
            return
        timings = self.timings.get(job.kind)
        if timings is None:
            timings = self.timings[job.kind] = (Histogram(JOB_SECONDS), Histogram(JOB_SECONDS))
        if job.completed_at is not None:
            timings[0].observe((job.completed_at - started) / 1000)
        # The wait of the attempt that ended the job: from when it was due to its start.
        waited = started - (job.scheduled_for or job.created_at)
        timings[1].observe(waited / 1000 if waited > 0 else 0.0)

    def collect(self) -> Iterator[Any]:
        submitted = CounterMetricFamily(
            "toombos_jobs_submitted", "Jobs accepted, by kind.", labels=["kind"])
        for kind, n in sorted(self.submitted.items()):
            submitted.add_metric([kind], n)
        finished = CounterMetricFamily(
            "toombos_jobs_finished",
            "Jobs that reached a final state, by kind and outcome "
            "(completed, partial, failed, cancelled).",
            labels=["kind", "outcome"],
        )
        for (kind, outcome), n in sorted(self.finished.items()):
            finished.add_metric([kind, str(outcome)], n)
        yield submitted
        yield finished
        run = HistogramMetricFamily(
            "toombos_job_run_seconds", "Run time of the last attempt of finished jobs, by kind.",
            labels=["kind"])
        wait = HistogramMetricFamily(
            "toombos_job_queue_wait_seconds",
            "Time finished jobs waited between being due and starting, by kind.",
            labels=["kind"])
        for kind, (ran, waited) in sorted(self.timings.items()):
            run.add_metric([kind], ran.buckets(), ran.sum)
            wait.add_metric([kind], waited.buckets(), waited.sum)
        yield run
        yield wait
