//! The admin API over real HTTP in front of an in-process 3-node control
//! plane (the in-memory Raft network of `raft_cluster.rs`), and the
//! `meridian-gateway admin` CLI against it.

use std::{
    net::SocketAddr,
    process::Output,
    sync::Arc,
    time::{Duration, Instant},
};

use control_plane::{
    access::{self, Access, AccessPolicy, AuthMode},
    admin,
    raft::{NodeId, node::PlaneConfig},
};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "s3cret-admin-token";

use control_plane::testkit as common;

/// The shared in-process cluster, plus the admin HTTP servers in front of it.
struct Cluster {
    inner: common::Cluster,
    /// Stops every HTTP server started by [`Cluster::serve`].
    servers: CancellationToken,
}

impl std::ops::Deref for Cluster {
    type Target = common::Cluster;
    fn deref(&self) -> &common::Cluster {
        &self.inner
    }
}

impl std::ops::DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut common::Cluster {
        &mut self.inner
    }
}

fn fast() -> PlaneConfig {
    PlaneConfig {
        heartbeat: Duration::from_millis(100),
        election_timeout_min: Duration::from_millis(500),
        election_timeout_max: Duration::from_millis(1_000),
        lease_ttl: Duration::from_millis(1_500),
        snapshot_every: 1_000,
        write_timeout: Duration::from_secs(3),
        ..PlaneConfig::default()
    }
}

impl Cluster {
    async fn start() -> Self {
        Self {
            inner: common::Cluster::start(3, fast()).await,
            servers: CancellationToken::new(),
        }
    }

    /// The two followers of the current leader.
    async fn followers(&self) -> (NodeId, NodeId) {
        let leader = self.wait_leader(&[1, 2, 3]).await;
        let f: Vec<NodeId> = (1..=3).filter(|id| *id != leader).collect();
        (f[0], f[1])
    }

    /// Serves node `id`'s admin router on a real port, merged into another
    /// router as the gateway's `--http` port does.
    async fn serve(&self, id: NodeId, token: Option<&str>) -> Api {
        let plane = Arc::clone(&self.nodes[&id]);
        // As the gateway assembles it: the access layer in front, an
        // anonymous caller an admin only without an admin token.
        let policy = match token {
            Some(t) => AccessPolicy::new(
                AuthMode::Open {
                    anonymous_admin: false,
                },
                Some(t),
            ),
            None => AccessPolicy::open(),
        };
        let reader = Arc::clone(&plane) as Arc<dyn control_plane::ControlReader>;
        let access = Access::new(policy, reader, Arc::clone(plane.clock()));
        let admin = access::layer(admin::router(plane), access);
        let router = web::router().merge(admin);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = self.servers.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Api::new(addr, token)
    }

    async fn stop(self) {
        self.servers.cancel();
        for plane in self.nodes.values() {
            plane.shutdown().await;
        }
    }
}

/// A client of one node's admin API.
struct Api {
    addr: SocketAddr,
    client: reqwest::Client,
    token: Option<String>,
}

impl Api {
    fn new(addr: SocketAddr, token: Option<&str>) -> Self {
        Self {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            token: token.map(Into::into),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1/admin/{path}", self.addr)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, header::HeaderMap, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header(header::CONTENT_TYPE, "application/json").body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!("{status}: not JSON: {:?}", String::from_utf8_lossy(&bytes))
        });
        (status, headers, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::GET, path, None).await;
        (s, v)
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(method, path, Some(body.to_string().into_bytes()))
            .await;
        (s, v)
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::DELETE, path, None).await;
        (s, v)
    }

    /// GETs `path` until `f` holds.
    async fn eventually(&self, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, v) = self.get(path).await;
            if status == StatusCode::OK && f(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: last answer {status} {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn done() -> Value {
    json!({"result": "done"})
}

fn unchanged() -> Value {
    json!({"result": "unchanged"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_required_when_set_and_checked() {
    let c = Cluster::start().await;
    let guarded = c.serve(2, Some(TOKEN)).await;
    let open = c.serve(3, None).await;

    let ok = guarded.get("raft").await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    assert_eq!(ok.1["node_id"], 2);
    assert_eq!(ok.1["voters"], json!([1, 2, 3]));

    let anonymous = Api::new(guarded.addr, None);
    let wrong = Api::new(guarded.addr, Some("guess"));
    for (api, error) in [(&anonymous, "Authorization: Bearer"), (&wrong, "not valid")] {
        for (method, path) in [
            (Method::GET, "raft"),
            (Method::GET, "policies"),
            (Method::PUT, "policies/eu"),
            (Method::DELETE, "members/3"),
        ] {
            let (status, headers, body) =
                api.call(method.clone(), path, Some(b"{}".to_vec())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            let challenge = headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let message = body["error"].as_str().unwrap_or_default();
            assert!(message.contains(error), "{message}");
        }
    }
    // Nothing was written by the refused requests.
    assert_eq!(guarded.get("policies").await, (StatusCode::OK, json!({})));
    assert_eq!(c.nodes[&3].status().voters, vec![1, 2, 3]);

    // Without a token the API is open.
    assert_eq!(open.get("raft").await.0, StatusCode::OK);
    // Unknown paths and methods answer JSON errors too.
    let (status, _, body) = open.call(Method::GET, "nope/x", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("admin endpoint"))
    );
    let (status, headers, body) = open.call(Method::POST, "raft", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not allowed")),
        "{body}"
    );
    let allow = headers.get(header::ALLOW).and_then(|v| v.to_str().ok());
    assert!(allow.is_some_and(|a| a.contains("GET")), "{allow:?}");
    c.stop().await;
}

/// A browser posts `text/plain`, form and multipart bodies cross-site
/// without a CORS preflight: the admin API refuses every body that is not
/// `application/json` before it is read, so such a post writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_refuse_bodies_that_are_not_json() {
    let c = Cluster::start().await;
    let api = c.serve(2, None).await;
    let before = api.get("shards").await;
    assert_eq!(before.0, StatusCode::OK, "{}", before.1);
    let evil = br#"{"url":"postgres://attacker.example/db"}"#.to_vec();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = api.client.post(api.url("shards")).body(evil.clone());
        if let Some(t) = content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(
            resp.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        let body: Value = resp.json().await.expect("a JSON error");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains("application/json"), "{message}");
    }
    assert_eq!(
        api.get("shards").await,
        before,
        "a refused post wrote nothing"
    );

    // An empty body needs no type (a cluster with the default identity);
    // JSON with a charset parameter is JSON.
    let (status, _, body) = api.call(Method::PUT, "clusters/eu", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp = api
        .client
        .put(api.url("policies/eu"))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(r#"{"head":{"default_probability":0.5}}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_put_through_a_follower_is_read_linearizably_through_another() {
    let c = Cluster::start().await;
    let (a, b) = c.followers().await;
    let (a, b) = (c.serve(a, Some(TOKEN)).await, c.serve(b, Some(TOKEN)).await);

    let policy = json!({
        "head": {
            "default_probability": 0.25,
            "rules": [{"service": "checkout", "probability": 1.0}]
        }
    });
    assert_eq!(
        a.send(Method::PUT, "policies/eu", policy.clone()).await,
        (StatusCode::OK, done())
    );
    // The default read on the other follower sees the write at once.
    let (status, read) = b.get("policies/eu").await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["head"]["default_probability"], 0.25);
    assert_eq!(read["head"]["rules"][0]["service"], "checkout");
    let star = json!({"head": {"default_probability": 0.5}});
    assert_eq!(
        b.send(Method::PUT, "policies/*", star).await,
        (StatusCode::OK, done())
    );
    let (_, all) = a.get("policies").await;
    assert_eq!(
        all.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["*".to_owned(), "eu".to_owned()])
    );

    // Invalid policies and bodies are refused with a reason, and change
    // nothing.
    let before = a.get("policies").await;
    for (path, body, reason) in [
        (
            "policies/eu",
            r#"{"head":{"default_probability":7}}"#,
            "default_probability",
        ),
        ("policies/eu", r#"{"haed":{}}"#, "unknown field"),
        ("policies/eu", r#"{"head":"#, "invalid JSON body"),
        ("policies/eu", "", "needs a JSON body"),
        ("policies/Not_A_Cluster", "{}", "cluster"),
        ("retention", r#"{"default_hours":0}"#, "at least 1"),
    ] {
        let (status, _, answer) = a
            .call(Method::PUT, path, Some(body.as_bytes().to_vec()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{path} {body}: {message}");
    }
    let huge = vec![b' '; admin::MAX_BODY_BYTES + 1];
    let (status, _, answer) = a.call(Method::PUT, "policies/eu", Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(b.get("policies").await, before);

    // A missing policy is 404; deleting one is idempotent.
    assert_eq!(b.get("policies/us").await.0, StatusCode::NOT_FOUND);
    assert_eq!(b.delete("policies/eu").await, (StatusCode::OK, done()));
    assert_eq!(a.delete("policies/eu").await, (StatusCode::OK, unchanged()));
    assert_eq!(a.get("policies/eu").await.0, StatusCode::NOT_FOUND);

    // Clusters, retention and alert rules the same way.
    assert_eq!(
        a.send(Method::PUT, "clusters/eu-west", json!({})).await,
        (StatusCode::OK, done())
    );
    let (_, clusters) = b.get("clusters").await;
    assert_eq!(
        clusters["eu-west"]["identity"],
        "spiffe://meridian/cluster/eu-west"
    );
    assert_eq!(b.delete("clusters/eu-west").await, (StatusCode::OK, done()));
    assert_eq!(
        b.delete("clusters/eu-west").await,
        (StatusCode::OK, unchanged())
    );
    let retention = json!({"default_hours": 168, "clusters": {"eu-west": 72}});
    assert_eq!(
        a.send(Method::PUT, "retention", retention.clone()).await,
        (StatusCode::OK, done())
    );
    assert_eq!(b.get("retention").await, (StatusCode::OK, retention));
    let rule = json!({"expr": "error_ratio{service=\"checkout\"}[5m] > 0.05", "for_secs": 60});
    assert_eq!(
        b.send(Method::PUT, "alert-rules/checkout errors", rule.clone())
            .await,
        (StatusCode::OK, done())
    );
    assert_eq!(a.get("alert-rules").await.1["checkout errors"], rule);
    assert_eq!(
        a.delete("alert-rules/checkout errors").await,
        (StatusCode::OK, done())
    );

    // A local read answers from the node's own state (eventually current).
    a.eventually("retention?consistency=local", "local read", |v| {
        v["default_hours"] == 168
    })
    .await;
    assert_eq!(
        a.get("retention?consistency=someday").await.0,
        StatusCode::BAD_REQUEST
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_shard_starts_a_new_epoch_in_the_near_future() {
    let c = Cluster::start().await;
    let (a, b) = c.followers().await;
    let (a, b) = (c.serve(a, None).await, c.serve(b, None).await);

    let empty = b.get("shards").await;
    assert_eq!(
        empty,
        (
            StatusCode::OK,
            json!({"shards": {}, "epochs": [], "leases": {}})
        )
    );
    let (status, first) = a
        .send(
            Method::POST,
            "shards",
            json!({"url": "postgres://meridian:pw0@pg-0/traces"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        first,
        json!({"result": "done", "shard": 0, "start_unix_nano": 0})
    );
    let (status, second) = b
        .send(
            Method::POST,
            "shards",
            json!({"url": "postgres://meridian:pw1@pg-1/traces"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(
        (&second["result"], &second["shard"]),
        (&json!("done"), &json!(1))
    );
    let starts = second["start_unix_nano"].as_u64().unwrap_or_default();

    let (_, shards) = a.get("shards").await;
    assert_eq!(
        shards["shards"],
        json!({
            "0": {"url": "postgres://meridian:***@pg-0/traces"},
            "1": {"url": "postgres://meridian:***@pg-1/traces"}
        })
    );
    assert_eq!(
        shards["epochs"],
        json!([
            {"epoch": 0, "start_unix_nano": 0, "shards": [0]},
            {"epoch": 1, "start_unix_nano": starts, "shards": [0, 1]}
        ])
    );
    // The new epoch starts in the future (10 s by default, judged by the
    // serving node's clock).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default();
    assert!(starts > now, "epoch starts at {starts}, now is {now}");

    // A retry is unchanged; a clash or a non-Postgres URL is refused.
    let (status, retry) = b
        .send(
            Method::POST,
            "shards",
            json!({"url": "postgres://meridian:pw1@pg-1/traces"}),
        )
        .await;
    assert_eq!(
        (status, &retry["result"]),
        (StatusCode::OK, &json!("unchanged"))
    );
    let clash = a
        .send(
            Method::POST,
            "shards",
            json!({"url": "postgres://pg-2/traces", "id": 1}),
        )
        .await;
    assert_eq!(clash.0, StatusCode::CONFLICT, "{}", clash.1);
    let sqlite = a
        .send(Method::POST, "shards", json!({"url": "sqlite://x.db"}))
        .await;
    assert_eq!(sqlite.0, StatusCode::BAD_REQUEST, "{}", sqlite.1);
    assert_eq!(
        b.get("shards").await.1["epochs"].as_array().map(Vec::len),
        Some(2)
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_and_removed_through_a_follower() {
    let mut c = Cluster::start().await;
    let (f, other) = c.followers().await;
    let api = c.serve(f, Some(TOKEN)).await;
    let other_api = c.serve(other, Some(TOKEN)).await;
    let four = c.open(4).await;

    let add = json!({
        "id": 4,
        "raft_addr": "node-4:4321",
        "http_addr": "node-4:16686"
    });
    assert_eq!(
        api.send(Method::POST, "members", add.clone()).await,
        (StatusCode::OK, done())
    );
    other_api
        .eventually("raft", "four voters", |v| {
            v["voters"] == json!([1, 2, 3, 4])
        })
        .await;
    let (_, members) = api.get("members").await;
    let rows = members["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 4, "{members}");
    assert_eq!(rows[3]["id"], 4);
    assert_eq!(rows[3]["role"], "voter");
    assert_eq!(rows[3]["http_addr"], "node-4:16686");
    // The new node itself learns it is a voter.
    let deadline = Instant::now() + Duration::from_secs(20);
    while four.status().voters != [1, 2, 3, 4] {
        assert!(Instant::now() < deadline, "{:?}", four.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Adding it again changes nothing; a bad request is refused.
    assert_eq!(
        api.send(Method::POST, "members", add).await,
        (StatusCode::OK, unchanged())
    );
    let bad = api
        .send(
            Method::POST,
            "members",
            json!({"id": 5, "raft_addr": "nope"}),
        )
        .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{}", bad.1);

    assert_eq!(api.delete("members/4").await, (StatusCode::OK, done()));
    other_api
        .eventually("raft", "three voters", |v| v["voters"] == json!([1, 2, 3]))
        .await;
    assert_eq!(api.delete("members/4").await, (StatusCode::OK, unchanged()));
    assert_eq!(api.delete("members/x").await.0, StatusCode::BAD_REQUEST);
    c.crash(4).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_writes_answer_503_and_local_reads_still_work() {
    let mut c = Cluster::start().await;
    let api = c.serve(3, None).await;
    assert_eq!(
        api.send(Method::PUT, "policies/eu", json!({})).await,
        (StatusCode::OK, done())
    );
    // The write is committed once a majority holds it, which need not include
    // node 3: wait until node 3 has applied it before the others go away.
    api.eventually("policies?consistency=local", "eu applied on node 3", |v| {
        v.get("eu").is_some()
    })
    .await;
    c.crash(1).await;
    c.crash(2).await;

    for (method, path) in [(Method::PUT, "policies/eu"), (Method::GET, "policies")] {
        let body = (method == Method::PUT).then(|| b"{}".to_vec());
        let (status, headers, answer) = api.call(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {answer}");
        assert_eq!(
            headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, local) = api.get("policies?consistency=local").await;
    assert_eq!(status, StatusCode::OK);
    assert!(local.get("eu").is_some(), "{local}");
    c.stop().await;
}

/// Runs the real binary (blocking, off the runtime's threads).
async fn cli(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meridian-gateway"))
            .env_remove("RUST_LOG")
            .env_remove("MERIDIAN_ADMIN_URL")
            .env_remove("MERIDIAN_ADMIN_TOKEN")
            .env_remove("MERIDIAN_CONFIG")
            .arg("admin")
            .args(args)
            .output()
            .expect("run meridian-gateway")
    })
    .await
    .expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_puts_and_gets_a_policy_and_explains_refusals() {
    let c = Cluster::start().await;
    let (f, _) = c.followers().await;
    let api = c.serve(f, Some(TOKEN)).await;
    let url = format!("http://{}", api.addr);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("eu.toml");
    std::fs::write(
        &file,
        "[head]\ndefault_probability = 0.25\n[[head.rules]]\nservice = \"checkout\"\nprobability = 1.0\n",
    )
    .expect("write policy");
    let file = file.to_string_lossy().into_owned();
    let with = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--url", &url, "--token", TOKEN]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };

    let put = cli(with(&["policies", "put", "eu", "--file", &file])).await;
    assert_eq!(put.status.code(), Some(0), "{}", text(&put.stderr));
    let answer: Value = serde_json::from_slice(&put.stdout).expect("JSON on stdout");
    assert_eq!(answer, done());

    let get = cli(with(&["policies", "get", "eu"])).await;
    assert_eq!(get.status.code(), Some(0), "{}", text(&get.stderr));
    let policy: Value = serde_json::from_slice(&get.stdout).expect("JSON on stdout");
    assert_eq!(policy["head"]["default_probability"], 0.25);
    assert_eq!(policy["head"]["rules"][0]["service"], "checkout");
    assert!(text(&get.stdout).contains("\n  "), "pretty printed");

    let retention = cli(with(&["retention", "set", "168,eu-west=72"])).await;
    assert_eq!(
        retention.status.code(),
        Some(0),
        "{}",
        text(&retention.stderr)
    );
    let got = cli(with(&["retention", "get"])).await;
    let got: Value = serde_json::from_slice(&got.stdout).expect("JSON");
    assert_eq!(
        got,
        json!({"default_hours": 168, "clusters": {"eu-west": 72}})
    );

    // Global flags may follow the subcommand; the shard URL is not --url.
    let shard = cli(vec![
        "shards".into(),
        "add".into(),
        "postgres://meridian:pw@pg-0/traces".into(),
        "--url".into(),
        url.clone(),
        "--token".into(),
        TOKEN.into(),
    ])
    .await;
    assert_eq!(shard.status.code(), Some(0), "{}", text(&shard.stderr));
    let listed = cli(with(&["shards", "list"])).await;
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(
        listed["shards"]["0"]["url"],
        "postgres://meridian:***@pg-0/traces"
    );

    // A wrong token: exit 1 and a message that says what to do.
    let wrong = cli(vec![
        "--url".into(),
        url.clone(),
        "--token".into(),
        "guess".into(),
        "policies".into(),
        "get".into(),
        "eu".into(),
    ])
    .await;
    assert_eq!(wrong.status.code(), Some(1));
    let err = text(&wrong.stderr);
    assert!(
        err.contains("401") && err.contains("not valid") && err.contains("--token"),
        "{err}"
    );
    assert!(wrong.stdout.is_empty());

    // Refused data: exit 1 with the gateway's reason.
    let missing = cli(with(&["policies", "get", "us"])).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("404"),
        "{}",
        text(&missing.stderr)
    );

    // Usage errors: exit 2.
    for args in [
        with(&["retention", "set", "forever"]),
        vec!["--url".into(), "ftp://127.0.0.1:1".into(), "raft".into()],
        with(&["policies", "frobnicate"]),
    ] {
        let out = cli(args.clone()).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Nobody listening: exit 1, naming the address (https too).
    for url in ["http://127.0.0.1:9", "https://127.0.0.1:9"] {
        let nobody = cli(vec!["--url".into(), url.into(), "raft".into()]).await;
        assert_eq!(nobody.status.code(), Some(1), "{url}");
        assert!(
            text(&nobody.stderr).contains("cannot reach"),
            "{url}: {}",
            text(&nobody.stderr)
        );
    }
    c.stop().await;
}
