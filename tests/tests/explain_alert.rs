//! A firing alert explains itself (issue 22): an `error_ratio` rule on
//! `cart` fires over a window in which `cart` 1.4.2 fails; the leader
//! runs explain for the firing window against the window before, and the
//! notification, received by a real HTTP server in both formats
//! (Alertmanager webhook and generic JSON), names
//! `resource.service.version=1.4.2` first.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use integration_tests::{
    Sandbox,
    explain_load::{Batch, Plant, Rng, Sampling, Scenario, generate},
    wait_for,
};
use metrics_alerts::alerts::{Webhook, WebhookFormat};
use model::red::{Aggregate, SeriesKey};
use prost::Message;
use serde_json::{Value, json};
use store::{Record, RecordKind};
use telemetry::clock::ManualClock;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn receiver() -> anyhow::Result<(String, Received, tokio::task::JoinHandle<()>)> {
    let got: Received = Arc::default();
    let hook = |path: &'static str| {
        post(
            move |State(got): State<Received>, Json(body): Json<Value>| async move {
                got.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((path.to_owned(), body));
                "ok"
            },
        )
    };
    let app = Router::new()
        .route("/am", hook("am"))
        .route("/json", hook("json"))
        .with_state(Arc::clone(&got));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", l.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((base, got, task))
}

/// 10 s RED windows of cart@us-east over [from, to): half of 100 calls fail.
fn red_windows(from: i64, to: i64) -> Vec<Record> {
    let mut recs = Vec::new();
    let mut t = from;
    while t < to {
        for (status, n) in [("ERROR", 50u64), ("OK", 50)] {
            let mut agg = Aggregate::default();
            for i in 0..n {
                agg.observe(5_000_000, status == "ERROR", Some(&[i as u8 + 1; 16]));
            }
            let series = SeriesKey {
                cluster: "us-east".into(),
                service: "cart".into(),
                operation: "POST /cart".into(),
                span_kind: "server".into(),
                status_code: status.into(),
            };
            recs.push(Record {
                kind: RecordKind::Red10s,
                key: metrics_alerts::red::keys::key(&series, t, "test-agent.1"),
                time_ms: t,
                value: metrics_alerts::red::keys::encode_value(&agg),
                trace: None,
            });
        }
        t += 10_000;
    }
    recs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_error_rule_names_the_failing_version() -> anyhow::Result<()> {
    let (hooks, got, hook_task) = receiver().await?;
    // An hour ago, aligned to 10 s.
    let base = (telemetry::clock::unix_nanos() / 1_000_000) as i64 / 10_000 * 10_000 - 3_600_000;
    let now = ManualClock::at_unix_ms(base);
    let sb = Sandbox::start_with(&[], {
        let now = now.clone();
        move |cfg: &mut gateway::GatewayConfig| {
            cfg.red.clock = now.shared();
            cfg.alerts.interval = Duration::from_millis(200);
            cfg.alerts.ui_url = "http://ui.example".into();
            cfg.alerts.webhooks = vec![
                Webhook {
                    url: format!("{hooks}/am"),
                    format: WebhookFormat::Alertmanager,
                },
                Webhook {
                    url: format!("{hooks}/json"),
                    format: WebhookFormat::Json,
                },
            ];
        }
    })
    .await?;

    // Spans: the firing window [base − 80 s, base − 20 s) has 1.4.2
    // failing; the window before has no planted cause.
    let mut rng = Rng(2222);
    let mut bodies = Vec::new();
    let mut spans = 0;
    let mut batch = Batch::default();
    for (plant, start_ms) in [
        (Plant::Nothing, base - 140_000),
        (Plant::Version, base - 80_000),
    ] {
        let sc = Scenario {
            tag: 0x40,
            plant,
            sampling: Sampling::NONE,
            n: 300,
            t0: start_ms as u64 * 1_000_000,
            spacing_ms: 190,
        };
        let mut flush = |r: proto::otlp::ExportTraceServiceRequest| {
            spans += proto::otlp::span_count(&r);
            bodies.push(r.encode_to_vec());
        };
        generate(&mut rng, &sc, &mut batch, &mut flush);
        flush(batch.take());
    }
    for body in bodies {
        let r = sb
            .http
            .post(format!("http://{}/v1/traces", sb.gateway.otlp_http_addr))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "otlp: {}", r.text().await?);
    }
    wait_for("the spans stored", Duration::from_secs(60), || async {
        let (_, body) = sb.get_json("/api/v1/storage").await.ok()?;
        (body["spans"].as_u64()? >= spans as u64).then_some(())
    })
    .await?;
    sb.gateway
        .store
        .put_records(&red_windows(base - 600_000, base + 600_000))
        .await?;

    let r = sb
        .http
        .put(sb.url("/api/v1/admin/alert-rules/cart-errors"))
        .json(&json!({"expr": r#"error_ratio{cluster="us-east",service="cart"}[1m] > 0.1"#, "for_secs": 0}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);

    let received = wait_for("both notifications", Duration::from_secs(60), || async {
        let got = got.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (got.len() >= 2).then_some(got)
    })
    .await?;
    let am = &received
        .iter()
        .find(|(p, _)| p == "am")
        .map(|(_, b)| b.clone())
        .unwrap_or_default();
    let js = &received
        .iter()
        .find(|(p, _)| p == "json")
        .map(|(_, b)| b.clone())
        .unwrap_or_default();

    let annotations = &am["alerts"][0]["annotations"];
    let top = annotations["explain_top"].as_str().unwrap_or_default();
    assert!(
        top.starts_with("resource.service.version=1.4.2 (100% vs "),
        "{am}"
    );
    assert!(
        annotations["explain_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://ui.example/explain?service=cart&")),
        "{am}"
    );
    assert_eq!(js["status"], "firing");
    assert_eq!(
        js["explain"]["dimensions"][0]["key"], "resource.service.version",
        "{js}"
    );
    assert_eq!(js["explain"]["dimensions"][0]["value"], "1.4.2", "{js}");
    assert_eq!(
        js["explain"]["dimensions"][0]["selectionShare"], 1.0,
        "{js}"
    );
    assert!(
        js["explain"]["dimensions"]
            .as_array()
            .is_some_and(|d| d.len() <= 3)
    );

    // The link opens the UI's page for the same explanation: the
    // gateway serves the page and answers its API call.
    let url = annotations["explain_url"].as_str().unwrap_or_default();
    let page = url.trim_start_matches("http://ui.example");
    let html = sb.http.get(sb.url(page)).send().await?;
    assert_eq!(html.status().as_u16(), 200);
    let params = page.trim_start_matches("/explain");
    let (status, answer) = sb.get_json(&format!("/api/v1/explain{params}")).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dimensions"][0]["value"], "1.4.2");

    // The Alerts page's data links the same explanation while it fires.
    let (_, alerts) = sb.get_json("/api/v1/alerts").await?;
    assert_eq!(alerts["rules"][0]["status"]["state"], "firing", "{alerts}");
    assert_eq!(
        alerts["rules"][0]["explain"].as_str(),
        Some(url),
        "{alerts}"
    );

    sb.gateway.shutdown(Duration::from_secs(5)).await;
    hook_task.abort();
    Ok(())
}
