"""Operators' tools: `c2c status` (status.py) and the collector, Prometheus and Grafana
configuration (config/). Traces and metrics themselves are made on the ground floor
(c2c/telemetry.py, c2c/metrics.py), by every stage."""
