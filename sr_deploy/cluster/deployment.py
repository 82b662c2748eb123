"""``sr-deploy serve`` on a Ray cluster: the HTTP service of :mod:`sr_deploy.serve` as a Ray Serve deployment.

Each replica opens its own :class:`~sr_deploy.serve.service.UpscaleService` (one model per replica, loaded
as ``serve`` loads it) and hands Ray Serve the app :func:`~sr_deploy.serve.create_app` builds around it
(Serve's late-bound ingress: ``__serve_build_asgi_app__``), so endpoints, limits, the bearer token,
cross-request batching, warm-up (``/readyz``) and metrics are the local server's, per replica. Serve's
proxy listens on the config's host and port and spreads requests over the replicas.

Replicas: a fixed number, or autoscaling between ``min_replicas`` and ``max_replicas`` on the requests in
flight (target: ``max_batch`` per replica, the batch a replica can fill). Each replica admits up to
``max_queue`` requests itself and answers 503 + ``Retry-After`` beyond (Serve lets one more through so the
app's own answer is the one clients see); at most ``max_queue`` more wait in each Serve caller's queue (the
proxy's: ``max_queued_requests``), and Serve answers 503 beyond that. ``GET /metrics`` answers from the
replica the request reached (Prometheus should scrape each replica, or read Ray's own metrics, which cover
every replica).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from types import FrameType
from typing import Any

from sr_deploy.cluster.connect import AUTO_ADDRESS, connected, require_ray
from sr_deploy.serve import ServeConfig, UpscaleService, create_app

#: the Ray Serve application's name
APP_NAME = "sr-deploy"


@dataclass(frozen=True)
class Scaling:
    """How many replicas: ``replicas`` fixed, or autoscaling within ``min_replicas``..``max_replicas`` when
    either bound is given; ``gpus``/``cpus``: each replica's share of a node (0 GPUs: CPU replicas)."""

    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    gpus: float = 0.0
    cpus: float = 1.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        low, high = self.min_replicas, self.max_replicas
        if low is not None and low < 0 or high is not None and high < 1:
            raise ValueError(f"autoscaling bounds must be min >= 0 and max >= 1, got {low} and {high}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_replicas ({low}) is above max_replicas ({high})")

    def options(self, config: ServeConfig) -> dict[str, Any]:
        """Ray Serve deployment options for ``config``."""
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.cpus, "num_gpus": self.gpus},
            "max_ongoing_requests": config.max_queue + 1, "max_queued_requests": config.max_queue,
            "graceful_shutdown_timeout_s": config.grace_s,
        }
        if self.min_replicas is None and self.max_replicas is None:
            options["num_replicas"] = self.replicas
        else:
            low = self.min_replicas if self.min_replicas is not None else 1
            high = self.max_replicas if self.max_replicas is not None else max(low, self.replicas)
            options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high,
                                             "initial_replicas": min(max(self.replicas, low), high),
                                             "target_ongoing_requests": config.max_batch}
        return options


def build_application(config: ServeConfig, scaling: Scaling) -> Any:
    """The Ray Serve application (a bound deployment) serving ``config`` with ``scaling``."""
    require_ray()
    from ray import serve as ray_serve

    class Replica:
        """One replica: one model and its batcher; the app is built around it once it is loaded."""

        def __init__(self, config: ServeConfig) -> None:
            self.service = UpscaleService.open(config)

        def __serve_build_asgi_app__(self) -> Any:
            return create_app(self.service)

    deployment = ray_serve.deployment(name="upscale", **scaling.options(config))(ray_serve.ingress()(Replica))
    return deployment.bind(config)


def start(config: ServeConfig, scaling: Scaling) -> None:
    """Deploy on the Ray this process is connected to, with Serve's proxy on ``config.host:config.port``;
    returns once every replica has started (``/readyz`` says when each has warmed up)."""
    require_ray()
    from ray import serve as ray_serve

    ray_serve.start(http_options={"host": config.host, "port": config.port})
    ray_serve.run(build_application(config, scaling), name=APP_NAME, route_prefix="/")


def serve_cluster(config: ServeConfig, scaling: Scaling, address: str = AUTO_ADDRESS) -> None:
    """Connect to the cluster at ``address``, deploy, and serve until SIGINT/SIGTERM; then Serve is shut
    down, which gives each replica ``config.grace_s`` seconds to finish the requests in flight."""
    from ray import serve as ray_serve

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    with connected(address):
        previous = signal.signal(signal.SIGTERM, stop)  # after Ray's start-up, which installs its own
        try:
            start(config, scaling)
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            ray_serve.shutdown()
