"""Prometheus metrics of the daemon (served at ``GET /metrics`` by the HTTP API).

One registry per process, defined here so every feature records under the same names.
Gauges that mirror database state (backlog, anomalies open, outbox by status) are refreshed
from the store by the API just before each scrape.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["REGISTRY"]

REGISTRY = CollectorRegistry(auto_describe=True)

polls = Counter("notifier_polls_total", "Carrier tracking requests by outcome",
                ["carrier", "outcome"], registry=REGISTRY)
rate_limited = Counter("notifier_carrier_429_total", "HTTP 429 answers from carriers",
                       ["carrier"], registry=REGISTRY)
circuit_state = Gauge("notifier_carrier_circuit_open", "1 while a carrier circuit is open",
                      ["carrier"], registry=REGISTRY)
due_backlog = Gauge("notifier_due_shipments", "Shipments due for polling now", ["carrier"],
                    registry=REGISTRY)
anomalies_open = Gauge("notifier_anomalies_open", "Open anomalies by kind", ["kind"],
                       registry=REGISTRY)
outbox = Gauge("notifier_outbox", "Notifications by status", ["status"], registry=REGISTRY)
sends = Counter("notifier_sends_total", "Notification send attempts by channel and outcome",
                ["channel", "outcome"], registry=REGISTRY)
send_latency = Histogram("notifier_send_latency_seconds",
                         "From outbox row creation to acceptance by the channel (real seconds)",
                         ["channel"], registry=REGISTRY,
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
digest_last_sent = Gauge("notifier_digest_last_sent_timestamp_seconds",
                         "Unix time of the last digest sent", registry=REGISTRY)
ticks = Counter("notifier_job_runs_total", "Periodic job runs", ["job"], registry=REGISTRY)
