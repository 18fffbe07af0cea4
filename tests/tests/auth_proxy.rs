//! `--auth proxy` (issue 18, trusted-proxy identity) against real gateway
//! processes: group mappings made with the real `admin groups` CLI, a
//! proxied user from a trusted peer sees only its groups' clusters (spans
//! of three clusters, read back through the Jaeger API), an unmapped user
//! is refused 403, an admin group writes the admin API, and a gateway that
//! trusts only 10.0.0.0/8 refuses the same headers from 127.0.0.1 (401),
//! even next to a valid token, while tokens alone still work.

use std::{
    process::{Command, Output},
    time::Duration,
};

use integration_tests::{
    process::{GatewayProcess, LOG_LINES, gateway_args},
    wait_for,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
const ADMIN: &str = "proxy-test-bootstrap-admin";
const T0: u64 = 1_700_000_000_000_000_000;

async fn start(dir: &std::path::Path, trusted: &str) -> anyhow::Result<GatewayProcess> {
    let args = gateway_args(
        dir,
        &[
            "--auth",
            "proxy",
            "--auth-proxy-trusted",
            trusted,
            "--admin-token",
            ADMIN,
            "--otlp-trust-cluster-attribute",
        ],
    );
    tokio::task::spawn_blocking(move || GatewayProcess::start("gw", GATEWAY, &args)).await?
}

/// `meridian-gateway admin --url … --token ADMIN ARGS`.
async fn cli(gw: &GatewayProcess, rest: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec![
        "admin".to_owned(),
        "--url".to_owned(),
        gw.url(""),
        "--token".to_owned(),
        ADMIN.to_owned(),
    ];
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Who a request claims to be.
#[derive(Clone, Copy)]
enum As<'a> {
    /// A proxied user and its groups header.
    User(&'a str, &'a str),
    /// A bearer token.
    Token(&'a str),
    /// Both: a proxied user and a token.
    Both(&'a str, &'a str, &'a str),
    Nobody,
}

async fn call(
    http: &reqwest::Client,
    gw: &GatewayProcess,
    method: reqwest::Method,
    path: &str,
    who: As<'_>,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = http.request(method, gw.url(path));
    let (user, groups, token) = match who {
        As::User(u, g) => (Some(u), Some(g), None),
        As::Token(t) => (None, None, Some(t)),
        As::Both(u, g, t) => (Some(u), Some(g), Some(t)),
        As::Nobody => (None, None, None),
    };
    if let Some(u) = user {
        req = req.header("X-Forwarded-User", u);
    }
    if let Some(g) = groups {
        req = req.header("X-Forwarded-Groups", g);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text(&bytes)));
    Ok((status, value))
}

async fn get(
    http: &reqwest::Client,
    gw: &GatewayProcess,
    path: &str,
    who: As<'_>,
) -> anyhow::Result<(StatusCode, Value)> {
    call(http, gw, reqwest::Method::GET, path, who, None).await
}

/// One span of service `svc-<cluster>` in each cluster.
fn spans_of(clusters: &[&str]) -> Value {
    let resources: Vec<Value> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": format!("svc-{c}")}},
                    {"key": "k8s.cluster.name", "value": {"stringValue": c}}]},
                "scopeSpans": [{"spans": [{
                    "traceId": format!("{:032x}", 0xa0 + i),
                    "spanId": format!("{:016x}", 0xb0 + i),
                    "name": "op", "kind": 2,
                    "startTimeUnixNano": T0.to_string(),
                    "endTimeUnixNano": (T0 + 1_000_000).to_string()}]}]
            })
        })
        .collect();
    json!({ "resourceSpans": resources })
}

async fn wait_leader(http: &reqwest::Client, gw: &GatewayProcess) -> anyhow::Result<()> {
    wait_for("a leader", Duration::from_secs(20), || async {
        let (s, _) = get(http, gw, "/api/v1/admin/groups", As::Token(ADMIN))
            .await
            .ok()?;
        (s == StatusCode::OK).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_user_gets_its_groups_role_and_clusters() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let gw = start(dir.path(), "127.0.0.0/8").await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_leader(&http, &gw).await?;

    // Group mappings from the CLI.
    for args in [
        &[
            "groups",
            "set",
            "team-ab",
            "--role",
            "read",
            "--clusters",
            "a,b",
        ][..],
        &[
            "groups",
            "set",
            "team-c",
            "--role",
            "read",
            "--clusters",
            "c",
        ],
        &["groups", "set", "sre", "--role", "admin", "--clusters", "*"],
    ] {
        let out = cli(&gw, args).await?;
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let list = cli(&gw, &["groups", "list"]).await?;
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed: Value = serde_json::from_slice(&list.stdout)?;
    assert_eq!(
        listed["team-ab"],
        json!({"role": "read", "clusters": ["a", "b"]})
    );
    assert_eq!(listed["sre"]["role"], "admin");

    // Spans of three clusters.
    let resp = http
        .post(format!("http://{}/v1/traces", gw.otlp_http))
        .json(&spans_of(&["a", "b", "c"]))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await?);
    let services = |v: &Value| v["data"].clone();
    wait_for("the spans stored", Duration::from_secs(20), || async {
        let (_, body) = get(&http, &gw, "/api/services", As::Token(ADMIN))
            .await
            .ok()?;
        (services(&body) == json!(["svc-a", "svc-b", "svc-c"])).then_some(())
    })
    .await?;

    // alice (team-ab and a group nobody mapped) reads clusters a and b only.
    let alice = As::User("alice@example.com", "unmapped, team-ab");
    let (s, body) = get(&http, &gw, "/api/services", alice).await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(services(&body), json!(["svc-a", "svc-b"]));
    // Two groups: the union of their clusters.
    let both = As::User("bob", "team-ab,team-c");
    let (_, body) = get(&http, &gw, "/api/services", both).await?;
    assert_eq!(services(&body), json!(["svc-a", "svc-b", "svc-c"]));
    // A read user may not use the admin API.
    let (s, _) = get(&http, &gw, "/api/v1/admin/groups", alice).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A user none of whose groups is mapped: authenticated, refused (403).
    for carol in [As::User("carol", "unmapped"), As::User("carol", "")] {
        let (s, body) = get(&http, &gw, "/api/services", carol).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("groups")
        );
    }
    // No user, no token: 401.
    let (s, _) = get(&http, &gw, "/api/services", As::Nobody).await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // An admin group writes the admin API.
    let sre = As::User("dana", "sre");
    let (s, body) = call(
        &http,
        &gw,
        reqwest::Method::PUT,
        "/api/v1/admin/groups/team-d",
        sre,
        Some(json!({"role": "read", "clusters": ["d"]})),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, groups) = get(&http, &gw, "/api/v1/admin/groups", sre).await?;
    assert_eq!(groups["team-d"]["clusters"], json!(["d"]));
    let (s, _) = get(&http, &gw, "/api/services", sre).await?;
    assert_eq!(s, StatusCode::OK);

    // Deleting a mapping takes the access away.
    let out = cli(&gw, &["groups", "delete", "team-ab"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("alice refused", Duration::from_secs(5), || async {
        let (s, _) = get(&http, &gw, "/api/services", alice).await.ok()?;
        (s == StatusCode::FORBIDDEN).then_some(())
    })
    .await?;

    // The admin token never reached the log.
    let log = gw.log_tail(LOG_LINES).join("\n");
    assert!(!log.contains(ADMIN), "a secret in the gateway's log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_from_an_untrusted_peer_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // This test connects from 127.0.0.1, outside the trusted network.
    let gw = start(dir.path(), "10.0.0.0/8").await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_leader(&http, &gw).await?;
    let out = cli(
        &gw,
        &["groups", "set", "sre", "--role", "admin", "--clusters", "*"],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));

    for (path, who) in [
        ("/api/services", As::User("mallory", "sre")),
        ("/api/v1/admin/groups", As::User("mallory", "sre")),
        // Headers next to a valid token are refused too.
        ("/api/services", As::Both("mallory", "sre", ADMIN)),
    ] {
        let (s, body) = get(&http, &gw, path, who).await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("trusted proxy"),
            "{body}"
        );
    }
    // A groups header alone is an identity claim as well.
    let resp = http
        .get(gw.url("/api/services"))
        .header("X-Forwarded-Groups", "sre")
        .bearer_auth(ADMIN)
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Tokens alone still work in proxy mode.
    let (s, _) = get(&http, &gw, "/api/v1/admin/groups", As::Token(ADMIN)).await?;
    assert_eq!(s, StatusCode::OK);
    Ok(())
}
