"""``GET /metrics``: the tree's metrics and the web layer's, for Prometheus.

Each application has a `CollectorRegistry` of its own (`app_registry`): the
tree's registry (see `chatter.metrics`) plus what only the web layer knows, the
open connections, read when scraped. Where the route is served is a setting:
on the main port (``CHATTER_METRICS``: on in dev and test, off in prod unless
set), or only on a listener of its own (``CHATTER_METRICS_PORT``, `metrics_app`);
see docs/OBSERVABILITY.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import tornado.web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from chatter.tree import ChatTree
from web.limits import ConnectionLimits

__all__ = ["MetricsHandler", "app_registry", "metrics_app"]


class _ConnectionsCollector(Collector):
    """Open WebSocket connections, read when scraped (the caps count them anyway)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self._limits = limits

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "chatter_connections_open",
            "WebSocket connection slots taken: open connections and upgrades in progress.",
        )
        family.add_metric([], self._limits.total)
        return [family]


def app_registry(tree: ChatTree, limits: ConnectionLimits) -> CollectorRegistry:
    """The registry ``/metrics`` serves for one application: the tree's and the web's."""
    registry = CollectorRegistry()
    registry.register(tree.metrics.registry)  # a registry is a collector of its metrics
    registry.register(_ConnectionsCollector(limits))
    return registry


class MetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: the Prometheus text format (OpenMetrics if the scraper
    asks for it). Collecting reads a few counters and sizes and never blocks."""

    def initialize(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def get(self) -> None:
        encode, content_type = choose_encoder(self.request.headers.get("Accept", ""))
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(encode(self.registry))


def metrics_app(tree: ChatTree, limits: ConnectionLimits) -> tornado.web.Application:
    """An application serving only ``GET /metrics``, for ``CHATTER_METRICS_PORT``."""
    return tornado.web.Application(
        [(r"/metrics", MetricsHandler, {"registry": app_registry(tree, limits)})],
        xsrf_cookies=False,
    )
