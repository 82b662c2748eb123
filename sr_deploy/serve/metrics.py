"""The service's Prometheus metrics, in a registry of its own (so several apps in one process do not mix).

- ``sr_deploy_requests_total{status}``: finished HTTP requests by status code (every endpoint but ``/metrics``)
- ``sr_deploy_request_seconds``: latency of the admitted ``POST /v1/upscale`` requests (histogram, seconds)
- ``sr_deploy_queue_requests``: upscale requests admitted and not finished; ``sr_deploy_queue_windows``:
  windows waiting for a batch
- ``sr_deploy_batch_size``: windows per batch run (histogram)
- ``sr_deploy_model_seconds_total``: seconds spent inside the model (``Upscaler.run``)
- ``sr_deploy_dropped_windows_total``: windows of cancelled requests (client gone, timeout) never run
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: the content type of :meth:`Metrics.render`
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """The metrics of one service; ``max_batch`` sets the batch-size buckets, ``pending_windows`` is read
    when the metrics are rendered."""

    def __init__(self, max_batch: int, pending_windows: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("sr_deploy_requests", "Finished HTTP requests by status code", ["status"],
                                registry=r)
        self.latency = Histogram("sr_deploy_request_seconds", "Latency of POST /v1/upscale (s)",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.queue = Gauge("sr_deploy_queue_requests", "Upscale requests admitted and not finished", registry=r)
        windows = Gauge("sr_deploy_queue_windows", "Windows waiting for a batch", registry=r)
        windows.set_function(lambda: float(pending_windows()))
        self.batch_size = Histogram("sr_deploy_batch_size", "Windows per batch",
                                    buckets=tuple(float(b) for b in range(1, max_batch + 1)), registry=r)
        self.model_seconds = Counter("sr_deploy_model_seconds", "Seconds inside the model", registry=r)
        self.dropped = Counter("sr_deploy_dropped_windows", "Windows of cancelled requests never run", registry=r)

    def batch(self, size: int, seconds: float) -> None:
        """Record one batch of ``size`` windows that took ``seconds`` in the model."""
        self.batch_size.observe(size)
        self.model_seconds.inc(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
