"""OpenTelemetry for every stage: traces carried across Kafka in W3C trace-context headers,
and metrics, exported as settings say.

:func:`setup_telemetry` builds a :class:`Telemetry` (tracer and meter providers) from
settings: ``C2C_OTEL_EXPORTER`` = none, console, otlp-http or otlp-grpc (with
``C2C_OTEL_ENDPOINT``) for traces, and for metrics unless ``C2C_METRICS_PORT`` is set: then
metrics are served on that port for Prometheus to scrape instead (one way out, so that no
series is counted twice). With ``none`` and no port the providers are the API's no-ops:
instrumented code then costs next to nothing. Stages use :meth:`Telemetry.inject` and
:meth:`Telemetry.extract` to carry the trace in message headers, so one event's spans share
one trace id from producer to sink; :attr:`Telemetry.metrics` holds the process's
instruments (c2c.metrics). Sampling follows the SDK's own variables
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``OTEL_TRACES_SAMPLER_ARG=0.01``): later
stages follow the producer's decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import Meter, NoOpMeterProvider
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracer, NoOpTracerProvider, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from c2c.errors import ConfigError, ServiceError
from c2c.metrics import Instruments
from c2c.settings import Settings

__all__ = ["Headers", "Telemetry", "records_spans", "setup_telemetry"]

Headers = list[tuple[str, str | bytes | None]]
_PROPAGATOR = TraceContextTextMapPropagator()


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier.append((key, value.encode()))


class _HeaderGetter(Getter[Sequence[tuple[str, Any]]]):
    def get(self, carrier: Sequence[tuple[str, Any]], key: str) -> list[str] | None:
        values = [
            # a header that is not UTF-8 is no trace context: one that does not parse
            v.decode(errors="replace") if isinstance(v, bytes) else str(v)
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
    metrics: Instruments = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Instruments(self.meter)

    @classmethod
    def disabled(cls) -> Telemetry:
        """No traces, no metrics: what a stage uses when given no telemetry."""
        tracer_provider, meter_provider = NoOpTracerProvider(), NoOpMeterProvider()
        return cls(
            tracer_provider.get_tracer("c2c"),
            meter_provider.get_meter("c2c"),
            tracer_provider,
            meter_provider,
        )

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded (a no-op tracer provider records none)."""
        return not isinstance(self.tracer_provider, NoOpTracerProvider)

    @property
    def measuring(self) -> bool:
        """Whether metrics are collected (a no-op meter provider collects none)."""
        return not isinstance(self.meter_provider, NoOpMeterProvider)

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


def records_spans(telemetry: Telemetry | None) -> bool:
    """Whether ``telemetry`` records spans: a no-op tracer records none and injects no
    headers, so a span a message would cost time for nothing."""
    return telemetry is not None and not isinstance(telemetry.tracer, NoOpTracer)


def _exporter(settings: Settings) -> SpanExporter | None:
    kind = settings.otel_exporter
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=_otlp_endpoint(settings, "traces"))
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )
    except ImportError as exc:
        raise _grpc_missing() from exc
    grpc: SpanExporter = GrpcExporter(endpoint=settings.otel_endpoint or "http://127.0.0.1:4317")
    return grpc


def _otlp_endpoint(settings: Settings, signal: str) -> str | None:
    """The OTLP/HTTP URL for ``signal`` (traces, metrics): C2C_OTEL_ENDPOINT may name the
    collector (http://host:4318) or its traces path (…/v1/traces), as it did before
    metrics were exported too."""
    endpoint = settings.otel_endpoint or "http://127.0.0.1:4318"
    base = endpoint.rstrip("/").removesuffix("/v1/traces")
    return f"{base}/v1/{signal}"


def _metric_reader(settings: Settings) -> MetricReader | None:
    """The periodic metric exporter C2C_OTEL_EXPORTER names (the SDK's interval,
    OTEL_METRIC_EXPORT_INTERVAL, 60 s by default), or None."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    kind = settings.otel_exporter
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if kind == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=_otlp_endpoint(settings, "metrics"))
        )
    try:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )
    except ImportError as exc:
        raise _grpc_missing() from exc
    return PeriodicExportingMetricReader(
        GrpcMetricExporter(endpoint=settings.otel_endpoint or "http://127.0.0.1:4317")
    )


def _grpc_missing() -> ConfigError:
    return ConfigError(
        "C2C_OTEL_EXPORTER=otlp-grpc needs the package opentelemetry-exporter-otlp-proto-grpc "
        "(pip install opentelemetry-exporter-otlp-proto-grpc), or use otlp-http",
        code="config.otel",
    )


def _prometheus_reader(settings: Settings, port: int) -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=settings.metrics_host)
    except OSError as exc:
        raise ServiceError(
            f"cannot serve metrics on {settings.metrics_host}:{port} (C2C_METRICS_PORT): "
            f"{exc.strerror or exc}; is another process using the port? Give each process "
            "its own C2C_METRICS_PORT",
            code="metrics.port",
        ) from exc
    return PrometheusMetricReader()


def setup_telemetry(
    settings: Settings,
    service: str,
    *,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Telemetry for the process named ``service`` (producer, worker, sink...).

    ``span_exporter`` and ``metric_readers`` replace what settings choose (tests pass
    in-memory ones); spans are then exported synchronously. ServiceError if the metrics
    port cannot be served.
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
    if not readers:
        # one way out, so that no series reaches Prometheus twice: scraped when a port is
        # set, else pushed by the exporter C2C_OTEL_EXPORTER names
        reader = (
            _prometheus_reader(settings, settings.metrics_port)
            if settings.metrics_port is not None
            else _metric_reader(settings)
        )
        if reader is not None:
            readers.append(reader)
    meter_provider: Any = (
        MeterProvider(resource=resource, metric_readers=readers) if readers else NoOpMeterProvider()
    )
    return Telemetry(
        tracer=tracer_provider.get_tracer("c2c"),
        meter=meter_provider.get_meter("c2c"),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
