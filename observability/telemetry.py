"""OpenTelemetry for every stage: traces carried across Kafka in W3C trace-context headers,
and metrics, exported as settings say.

:func:`setup_telemetry` builds a :class:`Telemetry` (tracer and meter providers) from
settings: ``C2C_OTEL_EXPORTER`` = none, console, otlp-http or otlp-grpc (with
``C2C_OTEL_ENDPOINT``), and ``C2C_METRICS_PORT`` for a Prometheus scrape endpoint. With
``none`` the providers are the API's no-ops: instrumented code then costs next to nothing.
Stages use :meth:`Telemetry.inject` and :meth:`Telemetry.extract` to carry the trace in
message headers, so one event's spans share one trace id from producer to sink.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import Meter, NoOpMeterProvider
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracerProvider, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from c2c.errors import ConfigError
from c2c.settings import Settings

__all__ = ["Headers", "Telemetry", "setup_telemetry"]

Headers = list[tuple[str, str | bytes | None]]
_PROPAGATOR = TraceContextTextMapPropagator()


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier.append((key, value.encode()))


class _HeaderGetter(Getter[Sequence[tuple[str, Any]]]):
    def get(self, carrier: Sequence[tuple[str, Any]], key: str) -> list[str] | None:
        values = [
            v.decode() if isinstance(v, bytes) else str(v)
            for k, v in carrier
            if k == key and v is not None
        ]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, Any]]) -> list[str]:
        return [k for k, _ in carrier]


@dataclass
class Telemetry:
    """The tracer and meter of one process, and how to carry context in headers."""

    tracer: Tracer
    meter: Meter
    tracer_provider: Any
    meter_provider: Any

    def inject(self, headers: Headers | None = None) -> Headers:
        """``headers`` plus the current trace context (traceparent, tracestate)."""
        carrier: Headers = list(headers or [])
        _PROPAGATOR.inject(carrier, setter=_HeaderSetter())
        return carrier

    @staticmethod
    def extract(headers: Iterable[tuple[str, Any]] | None) -> Context:
        """The trace context carried in a consumed message's headers."""
        return _PROPAGATOR.extract(list(headers or []), getter=_HeaderGetter())

    def shutdown(self) -> None:
        """Flush and stop exporters (call at process exit)."""
        for provider in (self.tracer_provider, self.meter_provider):
            shutdown = getattr(provider, "shutdown", None)
            if shutdown is not None:
                shutdown()


def _exporter(settings: Settings) -> SpanExporter | None:
    kind = settings.otel_exporter
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_endpoint or "http://127.0.0.1:4318/v1/traces"
        return OTLPSpanExporter(endpoint=endpoint)
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )
    except ImportError as exc:
        raise ConfigError(
            "C2C_OTEL_EXPORTER=otlp-grpc needs the package opentelemetry-exporter-otlp-proto-grpc "
            "(pip install opentelemetry-exporter-otlp-proto-grpc), or use otlp-http",
            code="config.otel",
        ) from exc
    grpc: SpanExporter = GrpcExporter(endpoint=settings.otel_endpoint or "http://127.0.0.1:4317")
    return grpc


def setup_telemetry(
    settings: Settings,
    service: str,
    *,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Telemetry for the process named ``service`` (producer, worker, sink...).

    ``span_exporter`` and ``metric_readers`` replace what settings choose (tests pass
    in-memory ones); spans are then exported synchronously.
    """
    resource = Resource.create(
        {"service.name": f"c2c-{service}", "deployment.environment": settings.environment}
    )
    exporter = span_exporter if span_exporter is not None else _exporter(settings)
    tracer_provider: Any
    if exporter is None:
        tracer_provider = NoOpTracerProvider()
    else:
        tracer_provider = TracerProvider(resource=resource)
        processor = (
            SimpleSpanProcessor(exporter)
            if span_exporter is not None
            else BatchSpanProcessor(exporter)
        )
        tracer_provider.add_span_processor(processor)
    readers = list(metric_readers)
    if not readers and settings.metrics_port is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        readers.append(PrometheusMetricReader())
    meter_provider: Any = (
        MeterProvider(resource=resource, metric_readers=readers) if readers else NoOpMeterProvider()
    )
    return Telemetry(
        tracer=tracer_provider.get_tracer("c2c"),
        meter=meter_provider.get_meter("c2c"),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
