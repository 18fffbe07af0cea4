"""Real OpenTelemetry Python SDK: a trace that starts in a service behind the
agent of cluster A (OTLP gRPC) and continues, via a W3C traceparent header,
in a service behind the agent of cluster B (OTLP HTTP/protobuf).

Usage: cross_cluster.py GRPC_ENDPOINT HTTP_ENDPOINT
Prints the trace id (32 hex) on stdout.
"""

import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context


def provider(service, exporter):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(BatchSpanProcessor(exporter))
    return p


def main():
    grpc_endpoint, http_endpoint = sys.argv[1], sys.argv[2]
    a = provider("py-frontend", GrpcExporter(endpoint=grpc_endpoint, insecure=True))
    b = provider("py-backend", HttpExporter(endpoint=http_endpoint + "/v1/traces"))
    ta = a.get_tracer("meridian-tests")
    tb = b.get_tracer("meridian-tests")

    with ta.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/cart")
        with ta.start_as_current_span("call py-backend", kind=SpanKind.CLIENT):
            headers = {}
            inject(headers)
        # --- the request crosses into cluster B ---
        ctx = extract(headers)
        with tb.start_as_current_span("POST /reserve", context=ctx, kind=SpanKind.SERVER) as srv:
            srv.set_attribute("items", 3)
            srv.add_event("stock checked", {"warehouse": "b-1"})
            srv.set_status(Status(StatusCode.ERROR, "out of stock"))
        trace_id = format(root.get_span_context().trace_id, "032x")

    ok_a = a.force_flush(10_000)
    ok_b = b.force_flush(10_000)
    a.shutdown()
    b.shutdown()
    if not (ok_a and ok_b):
        print("flush failed", file=sys.stderr)
        sys.exit(1)
    print(trace_id)


if __name__ == "__main__":
    main()
