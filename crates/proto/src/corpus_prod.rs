//! A "production-shaped" span corpus for benchmarks (issue 20): spans of
//! about 2 KB encoded, 20 to 40 attributes each (HTTP, RPC, database and
//! messaging semantic conventions, high-cardinality values), 0 to 3 events
//! (logs, exceptions with stack traces), 12-span traces across 6 services
//! with one resource of 10 attributes each. Deterministic for a seed.

use crate::corpus::{kv_int, xorshift};
use crate::otlp::{
    AnyValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans,
    ScopeSpans, Span, Status, any_value, span::Event, string_kv,
};

/// Spans per trace in the corpus.
pub const PROD_TRACE_SPANS: usize = 12;
const SERVICES: [&str; 6] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "inventory",
    "email",
];
const ROUTES: [&str; 6] = [
    "/api/v2/checkout/{orderId}/confirm",
    "/api/v2/cart/{cartId}/items",
    "/api/v2/catalog/products/{sku}",
    "/api/v2/payments/{paymentId}/capture",
    "/api/v2/inventory/reservations",
    "/api/v2/users/{userId}/notifications",
];
const TABLES: [&str; 4] = ["orders", "cart_items", "products", "payments"];
const STACK: &str = "java.lang.IllegalStateException: reservation expired\n\tat com.shop.inventory.ReservationService.confirm(ReservationService.java:214)\n\tat com.shop.inventory.api.ReservationController.post(ReservationController.java:88)\n\tat io.grpc.stub.ServerCalls$UnaryServerCallHandler.onHalfClose(ServerCalls.java:182)";

fn boolean(key: &str, v: bool) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(v)),
        }),
        ..Default::default()
    }
}

/// Generates requests; every call continues the sequence.
#[derive(Debug, Clone)]
pub struct ProdGenerator {
    state: u64,
    spans: u64,
}

impl ProdGenerator {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.max(1),
            spans: 0,
        }
    }

    fn next(&mut self) -> u64 {
        xorshift(&mut self.state)
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(n);
        s
    }

    fn attributes(&mut self, svc: usize, i: usize, error: bool) -> Vec<KeyValue> {
        let r = self.next();
        let route = ROUTES[(r as usize >> 3) % ROUTES.len()];
        let mut a = vec![
            string_kv(
                "http.request.method",
                if r.is_multiple_of(5) { "POST" } else { "GET" },
            ),
            string_kv("http.route", route),
            kv_int("http.response.status_code", if error { 500 } else { 200 }),
            string_kv("url.scheme", "https"),
            string_kv("url.path", &route.replace("{", "").replace("}", "")),
            string_kv(
                "url.query",
                &format!("session={}&page={}", self.hex(24), r % 40),
            ),
            string_kv(
                "server.address",
                &format!("{}.shop.svc.cluster.local", SERVICES[svc]),
            ),
            kv_int("server.port", 8080),
            string_kv(
                "client.address",
                &format!("10.{}.{}.{}", r % 250, (r >> 8) % 250, (r >> 16) % 250),
            ),
            kv_int("client.port", 30_000 + (r >> 24) as i64 % 30_000),
            string_kv("network.protocol.version", "1.1"),
            string_kv(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
            ),
            kv_int("http.request.body.size", (r >> 30) as i64 % 20_000),
            kv_int("http.response.body.size", (r >> 34) as i64 % 200_000),
            string_kv("enduser.id", &format!("user-{}", (r >> 40) % 100_000)),
            string_kv("session.id", &self.hex(32)),
            string_kv("app.request_id", &self.hex(36)),
            string_kv("app.tenant", &format!("tenant-{}", (r >> 44) % 50)),
            boolean("app.cache_hit", r & 1 == 0),
            string_kv(
                "thread.name",
                &format!("http-nio-8080-exec-{}", (r >> 48) % 200),
            ),
            string_kv(
                "url.full",
                &format!(
                    "https://{}.shop.example.com{}?session={}&utm_source=newsletter&utm_campaign=winter-{}",
                    SERVICES[svc],
                    route,
                    self.hex(32),
                    r % 12
                ),
            ),
            string_kv(
                "http.request.header.cookie",
                &format!("sid={}; cart={}", self.hex(48), self.hex(24)),
            ),
            string_kv(
                "http.request.header.traceparent",
                &format!("00-{}-{}-01", self.hex(32), self.hex(16)),
            ),
        ];
        let extra = (r >> 52) as usize % 21; // 20 to 40 attributes
        if i % 3 == 1 {
            a.push(string_kv("db.system", "postgresql"));
            a.push(string_kv("db.namespace", "shop"));
            a.push(string_kv(
                "db.query.text",
                &format!(
                    "SELECT id, status, total, currency, updated_at FROM {} WHERE tenant_id = $1 AND id = $2 LIMIT {}",
                    TABLES[(r as usize >> 5) % TABLES.len()],
                    1 + r % 50
                ),
            ));
        } else if i % 3 == 2 {
            a.push(string_kv("rpc.system", "grpc"));
            a.push(string_kv(
                "rpc.service",
                &format!("shop.{}.v1.{}Service", SERVICES[svc], SERVICES[svc]),
            ));
            a.push(string_kv("rpc.method", "Process"));
        }
        for k in a.len()..20 + extra {
            let v = self.next();
            a.push(if k % 2 == 0 {
                string_kv(
                    &format!("app.experiment.feature_flag_{k}"),
                    &format!("variant-{}-{}", v % 7, self.hex(24)),
                )
            } else {
                kv_int(&format!("app.request.metric_{k}"), (v % 100_000) as i64)
            });
        }
        a.truncate(40);
        a
    }

    fn events(&mut self, start: u64, error: bool) -> Vec<Event> {
        let n = (self.next() % 4) as usize;
        let mut ev: Vec<Event> = (0..n)
            .map(|k| Event {
                time_unix_nano: start + 1_000 * (k as u64 + 1) + self.next() % 1_000_000,
                name: "log".into(),
                attributes: vec![
                    string_kv("log.severity", if k == 0 { "INFO" } else { "DEBUG" }),
                    string_kv(
                        "log.message",
                        &format!("reserved {} items for order {} in warehouse eu-west-1c after {} retries", self.next() % 9 + 1, self.hex(20), self.next() % 4),
                    ),
                ],
                ..Default::default()
            })
            .collect();
        if error {
            ev.push(Event {
                time_unix_nano: start + 5_000_000,
                name: "exception".into(),
                attributes: vec![
                    string_kv("exception.type", "java.lang.IllegalStateException"),
                    string_kv("exception.message", "reservation expired"),
                    string_kv("exception.stacktrace", STACK),
                ],
                ..Default::default()
            });
        }
        ev
    }

    /// One request of `spans` spans (whole 12-span traces where it
    /// divides), one resource per service.
    pub fn request(&mut self, spans: usize) -> ExportTraceServiceRequest {
        let mut per_service: Vec<Vec<Span>> = SERVICES.iter().map(|_| Vec::new()).collect();
        let mut trace = [0u8; 16];
        let mut parent = Vec::new();
        for i in 0..spans {
            let k = i % PROD_TRACE_SPANS;
            if k == 0 {
                trace[..8].copy_from_slice(&self.next().to_be_bytes());
                trace[8..].copy_from_slice(&self.next().to_be_bytes());
                parent = Vec::new();
            }
            self.spans += 1;
            let svc = k % SERVICES.len();
            let start = 1_700_000_000_000_000_000 + self.spans * 1_000;
            let error = self.spans.is_multiple_of(40);
            let span_id = self.next().to_be_bytes().to_vec();
            let attributes = self.attributes(svc, i, error);
            let events = self.events(start, error);
            per_service[svc].push(Span {
                trace_id: trace.to_vec(),
                span_id: span_id.clone(),
                parent_span_id: parent.clone(),
                name: format!(
                    "{} {}",
                    if i % 3 == 1 { "SELECT" } else { "POST" },
                    ROUTES[svc]
                ),
                kind: if i % 3 == 0 { 2 } else { 3 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + 100_000 + self.next() % 200_000_000,
                attributes,
                events,
                status: Some(Status {
                    code: if error { 2 } else { 0 },
                    message: if error {
                        "reservation expired".into()
                    } else {
                        String::new()
                    },
                }),
                ..Default::default()
            });
            parent = span_id;
        }
        let resource_spans = per_service
            .into_iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(k, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", SERVICES[k]),
                        string_kv("service.version", "2.14.3"),
                        string_kv("service.namespace", "shop"),
                        string_kv("deployment.environment.name", "production"),
                        string_kv("k8s.namespace.name", "shop"),
                        string_kv("k8s.pod.name", &format!("{}-7d9c6b5f4-x2x9z", SERVICES[k])),
                        string_kv("k8s.node.name", "ip-10-0-12-34.eu-west-1.compute.internal"),
                        string_kv("host.arch", "amd64"),
                        string_kv("telemetry.sdk.language", "java"),
                        string_kv("telemetry.sdk.version", "1.40.0"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.spring-webmvc-6.0".into(),
                        version: "2.6.0-alpha".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_about_2_kb_with_20_to_40_attributes() {
        let mut g = ProdGenerator::new(5);
        let req = g.request(512);
        let spans: Vec<&Span> = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(spans.len(), 512);
        assert!(
            spans
                .iter()
                .all(|s| (20..=40).contains(&s.attributes.len()))
        );
        assert!(spans.iter().any(|s| !s.events.is_empty()));
        let avg = crate::corpus::span_bytes(&req) / 512;
        eprintln!("{avg} B per span");
        assert!((1_700..2_400).contains(&avg), "{avg} B per span");
        // Deterministic for a seed.
        assert_eq!(ProdGenerator::new(5).request(512), req);
    }
}
