//! Identity and access (issue 18, principals and tokens) against the real
//! gateway process: `--auth tokens` with an `--admin-token`, API tokens
//! made with the real `admin tokens` CLI and the admin API, every API
//! surface refused without a token, a read token refused by the admin
//! API, revoked and expired tokens refused, the start refused beyond
//! loopback without `--auth`, no secret in the gateway's log, and
//! `/api/v1/whoami` answering each caller (never its secret) while a
//! refusal names the auth mode.

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use anyhow::Context;
use integration_tests::{
    process::{GatewayProcess, LOG_LINES, gateway_args},
    wait_for,
};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
const ADMIN: &str = "access-test-bootstrap-admin";
/// A revoke or an expiry is in force within this bound (issue 18: 5 s).
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// Every API surface of the `--http` port, one request each.
const SURFACES: &[(&str, &str)] = &[
    ("GET", "/api/services"),
    ("GET", "/api/operations?service=checkout"),
    ("GET", "/api/traces?service=checkout"),
    ("GET", "/api/traces/0af7651916cd43dd8448eb211c80319c"),
    ("GET", "/api/v3/services"),
    ("GET", "/api/v3/operations?service=checkout"),
    ("GET", "/api/v3/traces/0af7651916cd43dd8448eb211c80319c"),
    (
        "GET",
        "/api/v3/trace-summaries?query.startTimeMin=2026-01-01T00:00:00Z&query.startTimeMax=2026-01-01T01:00:00Z",
    ),
    ("POST", "/api/transform"),
    ("GET", "/api/dependencies?endTs=0&lookback=3600000"),
    ("GET", "/api/v1/graph"),
    ("GET", "/api/v1/clusters"),
    ("GET", "/api/v1/storage"),
    ("GET", "/api/v1/explain?service=checkout"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/metrics/red"),
    ("GET", "/api/metrics/latencies?service=checkout"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/whoami"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/admin/raft"),
    ("GET", "/api/v1/admin/tokens"),
    ("POST", "/api/v1/admin/tokens"),
    ("PUT", "/api/v1/admin/policies/a"),
];

/// Every route of the `--tempo-http` port (Tempo's API), one request each.
const TEMPO_SURFACES: &[&str] = &[
    "/api/echo",
    "/api/status/buildinfo",
    "/api/search?q=%7B%7D",
    "/api/search/tags",
    "/api/v2/search/tags",
    "/api/search/tag/service.name/values",
    "/api/v2/search/tag/resource.service.name/values",
    "/api/traces/0af7651916cd43dd8448eb211c80319c",
    "/api/v2/traces/0af7651916cd43dd8448eb211c80319c",
];

async fn start(dir: &std::path::Path, auth: &[&str]) -> anyhow::Result<GatewayProcess> {
    let args = gateway_args(dir, auth);
    tokio::task::spawn_blocking(move || GatewayProcess::start("gw", GATEWAY, &args)).await?
}

/// `meridian-gateway admin --url … [--token T] ARGS`.
async fn cli(gw: &GatewayProcess, token: Option<&str>, rest: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec!["admin".to_owned(), "--url".to_owned(), gw.url("")];
    if let Some(t) = token {
        args.extend(["--token".to_owned(), t.to_owned()]);
    }
    args.extend(rest.iter().map(|s| (*s).to_owned()));
    Ok(tokio::task::spawn_blocking(move || {
        Command::new(GATEWAY)
            .env_remove("MERIDIAN_ADMIN_URL")
            .env_remove("MERIDIAN_ADMIN_TOKEN")
            .args(args)
            .output()
    })
    .await??)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, header::HeaderMap, Value)> {
        let method = Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, headers, value))
    }

    async fn status(&self, method: &str, path: &str, token: Option<&str>) -> StatusCode {
        match self.call(method, path, token, None).await {
            Ok((s, _, _)) => s,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The secret on the last line of a `tokens create`'s stdout, and the
/// record printed above it.
fn created(out: &Output) -> anyhow::Result<(String, Value)> {
    anyhow::ensure!(
        out.status.success(),
        "tokens create failed: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let (record, last) = stdout
        .trim_end()
        .rsplit_once('\n')
        .context("two parts on stdout")?;
    anyhow::ensure!(last.starts_with("mrd_") && !last.contains(' '), "{stdout}");
    Ok((last.to_owned(), serde_json::from_str(record)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scope_and_guard_every_api_surface() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = start(dir.path(), &["--auth", "tokens", "--admin-token", ADMIN]).await?;
    let c = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: gw.url(""),
    };
    // Probes and the UI stay open.
    for open in ["/healthz", "/readyz", "/"] {
        assert_eq!(c.status("GET", open, None).await, StatusCode::OK, "{open}");
    }
    // The single node leads once its bootstrap committed.
    wait_for("a leader", Duration::from_secs(20), || async {
        (c.status("GET", "/api/v1/admin/tokens", Some(ADMIN)).await == StatusCode::OK).then_some(())
    })
    .await?;

    // A read token for cluster a, from the CLI: the secret alone on the
    // last line, the record (without it) above.
    let out = cli(
        &gw,
        Some(ADMIN),
        &[
            "tokens",
            "create",
            "--name",
            "reader",
            "--role",
            "read",
            "--clusters",
            "a",
        ],
    )
    .await?;
    let (reader, record) = created(&out)?;
    assert_eq!(record["name"], "reader");
    assert_eq!(record["clusters"], json!(["a"]));
    assert!(record.get("token").is_none(), "{record}");
    // An admin token over every cluster, from the API.
    let (status, _, body) = c
        .call(
            "POST",
            "/api/v1/admin/tokens",
            Some(ADMIN),
            Some(json!({"name": "ops", "role": "admin", "clusters": ["*"]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ops = body["token"].as_str().context("token")?.to_owned();
    assert_ne!(ops, reader);
    // A name is taken once.
    let (status, _, _) = c
        .call(
            "POST",
            "/api/v1/admin/tokens",
            Some(ops.as_str()),
            Some(json!({"name": "reader", "role": "read", "clusters": ["b"]})),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);

    // Without a token (or with a wrong one) every API surface is a 401
    // with a JSON error and a Bearer challenge.
    for (method, path) in SURFACES {
        for token in [None, Some("mrd_0000"), Some(&ADMIN[1..])] {
            let (status, headers, body) = c.call(method, path, token, None).await?;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {token:?}"
            );
            let challenge = headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{method} {path}: {challenge}"
            );
            assert!(body["error"].is_string(), "{method} {path}: {body}");
            assert_eq!(body["auth"], "tokens", "{method} {path}: {body}");
        }
    }

    // The Tempo port is behind the same access layer: 401 without a
    // token, answered (200, or 404 for the unknown trace) with one.
    let tempo = Client {
        http: c.http.clone(),
        base: format!("http://{}", gw.tempo.context("the tempo port")?),
    };
    for path in TEMPO_SURFACES {
        let (status, _, body) = tempo.call("GET", path, None, None).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "tempo {path}: {body}");
        let status = tempo.status("GET", path, Some(reader.as_str())).await;
        let expected = if path.contains("/traces/") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "tempo {path}");
    }

    // whoami: each caller as the gateway sees it, never its secret.
    for (token, expected) in [
        (
            reader.as_str(),
            json!({"name": "reader", "kind": "token", "role": "read", "clusters": ["a"],
                   "expires_at_ms": null, "admin": false, "auth": "tokens"}),
        ),
        (
            ops.as_str(),
            json!({"name": "ops", "kind": "token", "role": "admin", "clusters": "*",
                   "expires_at_ms": null, "admin": true, "auth": "tokens"}),
        ),
        (
            ADMIN,
            json!({"name": "admin-token", "kind": "admin-token", "role": "admin",
                   "clusters": "*", "expires_at_ms": null, "admin": true, "auth": "tokens"}),
        ),
    ] {
        let (status, headers, body) = c.call("GET", "/api/v1/whoami", Some(token), None).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, expected);
        assert!(!body.to_string().contains(token), "a secret in {body}");
        assert_eq!(
            headers
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
    }
    // The read token reads, and is refused (403) by the admin API.
    for (method, path) in SURFACES {
        let status = c.status(method, path, Some(reader.as_str())).await;
        if path.starts_with("/api/v1/admin/") {
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        } else {
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_ne!(status, StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
    let (status, _, body) = c
        .call(
            "PUT",
            "/api/v1/admin/policies/a",
            Some(reader.as_str()),
            Some(json!({"head": {"default_probability": 0.5}})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let forbidden = cli(&gw, Some(reader.as_str()), &["tokens", "list"]).await?;
    assert_eq!(forbidden.status.code(), Some(1));
    assert!(
        text(&forbidden.stderr).contains("403"),
        "{}",
        text(&forbidden.stderr)
    );

    // /metrics: an admin sees the process-wide series; the reader of
    // cluster a sees only series labelled cluster="a" (none yet).
    let (status, _, all) = c.call("GET", "/metrics", Some(ops.as_str()), None).await?;
    assert_eq!(status, StatusCode::OK);
    let all = all.as_str().context("text")?.to_owned();
    assert!(all.contains("meridian_gateway_"), "{all}");
    let (status, _, mine) = c
        .call("GET", "/metrics", Some(reader.as_str()), None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    let mine = mine.as_str().context("text")?.to_owned();
    assert!(!mine.contains("meridian_gateway_"), "{mine}");
    assert!(
        mine.lines()
            .all(|l| l.starts_with('#') || l.contains("cluster=\"a\"")),
        "{mine}"
    );

    // A text/plain write is refused before its body is read.
    let plain = c
        .http
        .post(format!("{}/api/v1/admin/tokens", c.base))
        .bearer_auth(&ops)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(r#"{"name":"sneaky","role":"admin","clusters":["*"]}"#)
        .send()
        .await?;
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The audit trail: every admin write with its principal and outcome,
    // refusals included; never a secret; admin only.
    let (status, _, _) = c
        .call("GET", "/api/v1/admin/audit", Some(reader.as_str()), None)
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, audit) = c
        .call(
            "GET",
            "/api/v1/admin/audit?limit=1000",
            Some(ops.as_str()),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let records = audit["records"].as_array().context("records")?;
    let has = |principal: &str, action: &str, status: u16, outcome: &str| {
        records.iter().any(|r| {
            r["principal"] == principal
                && r["action"] == action
                && r["status"] == status
                && r["outcome"] == outcome
        })
    };
    assert!(
        has("admin-token", "POST /api/v1/admin/tokens", 200, "done"),
        "{audit}"
    );
    assert!(
        has("ops", "POST /api/v1/admin/tokens", 409, "failed"),
        "{audit}"
    );
    assert!(
        has("ops", "POST /api/v1/admin/tokens", 415, "refused"),
        "{audit}"
    );
    assert!(
        has(
            "reader",
            "PUT /api/v1/admin/policies/{cluster}",
            403,
            "refused"
        ),
        "{audit}"
    );
    assert!(
        has("unknown", "POST /api/v1/admin/tokens", 401, "refused"),
        "a refused credential: {audit}"
    );
    // Reads are not recorded; every record names the node that answered.
    assert!(
        records
            .iter()
            .all(|r| r["action"].as_str().is_some_and(|a| !a.starts_with("GET ")))
    );
    assert!(records.iter().all(|r| r["node"] == audit["node"]));
    let audit_text = audit.to_string();
    for secret in [ADMIN, reader.as_str(), ops.as_str()] {
        assert!(!audit_text.contains(secret), "a secret in the audit");
    }
    let (status, _, _) = c
        .call(
            "GET",
            "/api/v1/admin/audit?limit=0",
            Some(ops.as_str()),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The list shows names and scopes, never a secret or digest.
    let list = cli(&gw, Some(ops.as_str()), &["tokens", "list"]).await?;
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed: Value = serde_json::from_slice(&list.stdout)?;
    let names: Vec<&str> = listed
        .as_array()
        .context("a list")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["ops", "reader"]);
    let listed_text = text(&list.stdout);
    assert!(!listed_text.contains(&reader) && !listed_text.contains("mrd_"));

    // Revoked: refused as soon as the node applied the revoke.
    let revoke = cli(&gw, Some(ops.as_str()), &["tokens", "revoke", "reader"]).await?;
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    wait_for("the revoked token refused", REFUSED_WITHIN, || async {
        (c.status("GET", "/api/services", Some(reader.as_str()))
            .await
            == StatusCode::UNAUTHORIZED)
            .then_some(())
    })
    .await?;

    // Expired: a one-second token is refused from its expiry on.
    let out = cli(
        &gw,
        Some(ops.as_str()),
        &[
            "tokens",
            "create",
            "--name",
            "brief",
            "--role",
            "read",
            "--clusters",
            "*",
            "--ttl",
            "1s",
        ],
    )
    .await?;
    let (brief, record) = created(&out)?;
    let expires = record["expires_at_ms"].as_u64().context("an expiry")?;
    let created_at = record["created_at_ms"]
        .as_u64()
        .context("a creation time")?;
    assert_eq!(expires - created_at, 1_000);
    wait_for(
        "the expired token refused",
        REFUSED_WITHIN + Duration::from_secs(1),
        || async {
            (c.status("GET", "/api/services", Some(brief.as_str())).await
                == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await?;

    // No secret ever reached the log.
    let log = gw.log_tail(LOG_LINES).join("\n");
    assert!(log.contains("gateway started"));
    // The audit records go to their own log target too.
    assert!(
        log.lines()
            .any(|l| l.contains("meridian::audit") && l.contains("admin write")),
        "no audit record in the log"
    );
    for secret in [ADMIN, reader.as_str(), ops.as_str(), brief.as_str()] {
        assert!(!log.contains(secret), "a secret in the gateway's log");
    }
    Ok(())
}

/// Runs the gateway with `args` and waits (bounded) for it to exit; a
/// gateway that started instead is killed (on drop) and fails the test.
async fn run_to_exit(args: &[String]) -> anyhow::Result<Output> {
    let child = tokio::process::Command::new(GATEWAY)
        .args(args)
        .env_remove("MERIDIAN_AUTH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("the gateway did not exit: it started")?
        .context("waiting for the gateway")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_gateway_needs_an_auth_mode() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let wide = |auth: &[&str]| {
        let mut a = gateway_args(dir.path(), auth);
        let i = a.iter().position(|s| s == "--http").unwrap_or(0) + 1;
        a[i] = "0.0.0.0:0".into();
        a
    };
    // The Tempo port counts too: --http on loopback does not make a wide
    // --tempo-http anonymous.
    let mut tempo_wide = gateway_args(dir.path(), &[]);
    tempo_wide.extend(["--tempo-http".to_owned(), "0.0.0.0:0".to_owned()]);
    let out = run_to_exit(&tempo_wide).await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--tempo-http"),
        "{}",
        text(&out.stderr)
    );
    for auth in [&[][..], &["--auth", "proxy"][..]] {
        let out = run_to_exit(&wide(auth)).await?;
        assert_eq!(out.status.code(), Some(2), "{auth:?}");
        let err = text(&out.stderr);
        assert!(err.contains("auth"), "{auth:?}: {err}");
    }
    // `--auth none` is a deliberate choice, warned about at start.
    let gw = start(dir.path(), &["--auth", "none"]).await?;
    gw.wait_log("--auth none", Duration::from_secs(10))?;
    let http = reqwest::Client::new();
    let services = http.get(gw.url("/api/services")).send().await?;
    assert_eq!(services.status(), StatusCode::OK);
    // Anonymous, every cluster (an admin: loopback, no --admin-token),
    // and told the mode; a wrong token is still refused, naming the mode.
    let who: Value = http
        .get(gw.url("/api/v1/whoami"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        who,
        json!({"name": "anonymous", "kind": "anonymous", "role": "admin", "clusters": "*",
               "expires_at_ms": null, "admin": true, "auth": "none"})
    );
    let wrong = http
        .get(gw.url("/api/v1/whoami"))
        .bearer_auth("mrd_wrong")
        .send()
        .await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await?;
    assert_eq!(body["auth"], "none");
    Ok(())
}
