//! Alert lifecycle across a 3-node gateway cluster with an injected clock:
//! pending, firing, resolved; one notification per transition, received by
//! a real HTTP server, including when the leader is killed between firing
//! and resolution.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use gateway::Gateway;
use integration_tests::{Sandbox, wait_for};
use metrics_alerts::alerts::{Webhook, WebhookFormat};
use model::red::{Aggregate, SeriesKey};
use serde_json::Value;
use store::{Record, RecordKind};
use telemetry::clock::ManualClock;

type Received = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> anyhow::Result<(String, Received, tokio::task::JoinHandle<()>)> {
    let got: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(got): State<Received>, Json(body): Json<Value>| async move {
                    got.lock().unwrap_or_else(|p| p.into_inner()).push(body);
                    "ok"
                },
            ),
        )
        .with_state(Arc::clone(&got));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((url, got, task))
}

fn count(got: &Received, status: &str) -> usize {
    got.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|b| b["status"] == status)
        .count()
}

/// 10 s windows of checkout@east over [from, to) with `errors` of 100 calls.
async fn windows(gw: &Gateway, from: i64, to: i64, errors: u64) -> anyhow::Result<()> {
    let mut recs = Vec::new();
    let mut t = from;
    while t < to {
        for (status, n) in [("ERROR", errors), ("OK", 100 - errors)] {
            let mut agg = Aggregate::default();
            for i in 0..n {
                agg.observe(5_000_000, status == "ERROR", Some(&[i as u8 + 1; 16]));
            }
            let series = SeriesKey {
                cluster: "east".into(),
                service: "checkout".into(),
                operation: "pay".into(),
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
    gw.store.put_records(&recs).await?;
    Ok(())
}

async fn alert(gw: &Gateway, http: &reqwest::Client) -> Option<Value> {
    let body: Value = http
        .get(format!("http://{}/api/v1/alerts", gw.http_addr))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(body)
}

async fn wait_state(
    gws: &[&Gateway],
    http: &reqwest::Client,
    state: &str,
    notified: u64,
) -> anyhow::Result<()> {
    wait_for(
        &format!("the alert {state} (notified {notified}) on every gateway"),
        Duration::from_secs(30),
        || async {
            for gw in gws {
                let body = alert(gw, http).await?;
                let st = &body["rules"][0]["status"];
                if st["state"] != state || st["notified"].as_u64() != Some(notified) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_notification_per_transition_across_a_leader_kill() -> anyhow::Result<()> {
    let (url, got, hook_task) = receiver().await?;
    let base: i64 = 1_800_000_000_000; // aligned to 10 s
    let now = ManualClock::at_unix_ms(base);
    let configure = {
        let now = now.clone();
        move |cfg: &mut gateway::GatewayConfig| {
            cfg.red.clock = now.shared();
            cfg.alerts.interval = Duration::from_millis(200);
            cfg.alerts.ui_url = "http://ui.example".into();
            cfg.alerts.webhooks = vec![Webhook {
                url: url.clone(),
                format: WebhookFormat::Alertmanager,
            }];
        }
    };
    let sb = Sandbox::start_with(&[], configure.clone()).await?;
    let b = sb.start_peer_gateway_with("b", configure.clone()).await?;
    let c = sb.start_peer_gateway_with("c", configure).await?;
    let http = sb.http.clone();

    // A bad rule is refused with the reason.
    let put = |name: &str, body: Value| {
        http.put(sb.url(&format!("/api/v1/admin/alert-rules/{name}")))
            .json(&body)
            .send()
    };
    let r = put(
        "bad",
        serde_json::json!({"expr": "latency > 3", "for_secs": 60}),
    )
    .await?;
    assert_eq!(r.status().as_u16(), 400);
    let err: Value = r.json().await?;
    assert!(
        err["error"].as_str().is_some_and(|e| e.contains("metric")),
        "{err}"
    );

    windows(&sb.gateway, base - 600_000, base + 600_000, 50).await?;
    let r = put(
        "checkout-errors",
        serde_json::json!({"expr": r#"error_ratio{cluster="east",service="checkout"}[1m] > 0.1"#, "for_secs": 60}),
    )
    .await?;
    assert_eq!(r.status().as_u16(), 200);

    let Sandbox {
        dir, gateway: a, ..
    } = sb;
    let mut gws = vec![a, b, c];
    {
        let all: Vec<&Gateway> = gws.iter().collect();
        wait_state(&all, &http, "pending", 0).await?;
        assert_eq!(
            got.lock().unwrap_or_else(|p| p.into_inner()).len(),
            0,
            "pending does not notify"
        );
        now.set_unix_ms(base + 61_000);
        wait_state(&all, &http, "firing", 1).await?;
    }
    assert_eq!(count(&got, "firing"), 1);
    let body = got.lock().unwrap_or_else(|p| p.into_inner())[0].clone();
    assert_eq!(body["version"], "4");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "checkout-errors");
    assert_eq!(body["alerts"][0]["labels"]["service"], "checkout");
    assert!(body["alerts"][0]["generatorURL"].as_str().is_some_and(|u| {
        u.starts_with("http://ui.example/dashboards?cluster=east&service=checkout")
    }));
    assert!(
        !body["alerts"][0]["annotations"]["exemplar_trace_ids"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );

    // Kill the leader between firing and resolution.
    let leader = gws
        .iter()
        .position(|g| g.plane.is_leader())
        .ok_or_else(|| anyhow::anyhow!("no leader"))?;
    let dead = gws.remove(leader);
    dead.shutdown(Duration::from_secs(5)).await;

    // The errors stop; the new leader resolves and notifies once.
    windows(&gws[0], base + 120_000, base + 600_000, 0).await?;
    now.set_unix_ms(base + 300_000);
    let all: Vec<&Gateway> = gws.iter().collect();
    wait_state(&all, &http, "resolved", 2).await?;
    assert_eq!(count(&got, "firing"), 1, "no second firing notification");
    assert_eq!(count(&got, "resolved"), 1);
    let body = alert(&gws[0], &http).await.unwrap_or_default();
    let notes = body["notifications"].as_array().map_or(0, Vec::len);
    assert_eq!(notes, 2, "{body}");

    for g in gws {
        g.shutdown(Duration::from_secs(5)).await;
    }
    hook_task.abort();
    drop(dir);
    Ok(())
}
