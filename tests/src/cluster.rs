//! A gateway cluster of real processes on loopback, for tests that kill,
//! partition and restart members.
//!
//! Node `N` runs `sut-gateway --node-id N` with its Raft listener on
//! `127.0.0.(10+N):0`, so its outgoing Raft connections leave from that IP
//! ([`node_ip`]). In front of every node's Raft port sits a [`FaultProxy`];
//! the node advertises the proxy (`--raft-advertise`), so every peer reaches
//! node `N` through proxy `N`, and proxy `N` tells its callers apart by
//! source IP. [`ProcessCluster::isolate`] cuts one node off from all the
//! others that way; [`ProcessCluster::heal`] restores every link.
//!
//! All nodes share one CA (node certificates `node-gN.pem` naming
//! `127.0.0.(10+N)` too) and the `--store` URLs given. HTTP, federation and
//! OTLP ports are `127.0.0.1:0`. Processes are killed and the temporary
//! directory removed on drop.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mtls::certs::{self, Subject};
use serde_json::Value;

use crate::{
    faultproxy::FaultProxy,
    process::{AgentProcess, GatewayProcess},
    wait_for,
};

/// The admin API's bearer token in every test cluster.
pub const ADMIN_TOKEN: &str = "meridian-test-admin";
/// One HTTP request to a gateway; a node that hangs answers nothing.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The loopback IP node `id` listens and dials from.
pub fn node_ip(id: u64) -> IpAddr {
    let last = u8::try_from(10 + id).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// What `GET /api/v1/admin/raft` reports.
#[derive(Debug, Clone)]
pub struct RaftView {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub state: String,
    pub term: u64,
    pub last_applied: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub raw: Value,
}

impl RaftView {
    fn parse(v: Value) -> anyhow::Result<Self> {
        let ids = |k: &str| -> Vec<u64> {
            v[k].as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        Ok(Self {
            node_id: v["node_id"]
                .as_u64()
                .with_context(|| format!("node_id in {v}"))?,
            leader_id: v["leader_id"].as_u64(),
            state: v["state"].as_str().unwrap_or_default().to_owned(),
            term: v["term"].as_u64().unwrap_or(0),
            last_applied: v["last_applied"].as_u64(),
            voters: ids("voters"),
            learners: ids("learners"),
            raw: v,
        })
    }

    /// This node leads and says so.
    pub fn leads(&self) -> bool {
        self.state == "Leader" && self.leader_id == Some(self.node_id)
    }
}

/// Gateways over shared stores, each behind its Raft proxy.
#[derive(Debug)]
pub struct ProcessCluster {
    exe: String,
    pub stores: Vec<String>,
    pub http: reqwest::Client,
    pub gateways: BTreeMap<u64, GatewayProcess>,
    pub proxies: BTreeMap<u64, FaultProxy>,
    /// The CA certificate agents and gateways verify against.
    pub ca: PathBuf,
    ca_dir: PathBuf,
    /// Dropped last: every process is dead by then.
    pub dir: tempfile::TempDir,
}

impl ProcessCluster {
    /// A CA and no nodes yet. `exe` is the gateway binary.
    pub fn new(exe: &str, stores: Vec<String>) -> anyhow::Result<Self> {
        crate::init();
        let dir = tempfile::tempdir()?;
        let ca_dir = dir.path().join("ca");
        let ca = certs::init_ca(&ca_dir)?.cert;
        Ok(Self {
            exe: exe.to_owned(),
            stores,
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()?,
            gateways: BTreeMap::new(),
            proxies: BTreeMap::new(),
            ca,
            ca_dir,
            dir,
        })
    }

    /// Node 1 alone (it forms the cluster), then nodes 2..=n joining it;
    /// returns once all are voters and agree on node 1 as leader.
    pub async fn start(exe: &str, stores: Vec<String>, n: u64) -> anyhow::Result<Self> {
        let mut c = Self::new(exe, stores)?;
        c.start_node(1, None).await?;
        c.wait_leader(&[1], Duration::from_secs(30)).await?;
        for id in 2..=n {
            c.start_node(id, Some(1)).await?;
        }
        let all: Vec<u64> = (1..=n).collect();
        c.wait_voters(&all, Duration::from_secs(60)).await?;
        c.wait_leader(&all, Duration::from_secs(30)).await?;
        Ok(c)
    }

    /// Starts node `id` (a new one forms a one-node cluster unless it joins
    /// through node `join`'s Raft proxy) and points its proxy at it.
    pub async fn start_node(&mut self, id: u64, join: Option<u64>) -> anyhow::Result<()> {
        self.start_node_with(id, join, &[]).await
    }

    /// [`Self::start_node`] with `extra` gateway flags.
    pub async fn start_node_with(
        &mut self,
        id: u64,
        join: Option<u64>,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let ip = node_ip(id);
        let name = format!("g{id}");
        let node = certs::issue(
            &self.ca_dir,
            &Subject::Node {
                name: name.clone(),
                hosts: vec![ip.to_string()],
            },
            &self.dir.path().join(&name),
        )?;
        let proxy = FaultProxy::start().await?;
        let s = |p: &std::path::Path| p.display().to_string();
        let mut args: Vec<String> = vec![
            "--node-id".into(),
            id.to_string(),
            "--raft".into(),
            format!("{ip}:0"),
            "--raft-advertise".into(),
            proxy.addr.to_string(),
            "--data-dir".into(),
            s(&self.dir.path().join(&name).join("data")),
            "--store".into(),
            self.stores.join(","),
            "--tls-ca".into(),
            s(&self.ca),
            "--tls-cert".into(),
            s(&node.cert),
            "--tls-key".into(),
            s(&node.key),
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
        ];
        for flag in ["--http", "--federation", "--otlp-grpc", "--otlp-http"] {
            args.push(flag.into());
            args.push("127.0.0.1:0".into());
        }
        if let Some(via) = join {
            args.push("--join".into());
            args.push(self.proxy(via)?.addr.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let exe = self.exe.clone();
        let g = tokio::task::spawn_blocking(move || GatewayProcess::start(&name, &exe, &args))
            .await??;
        anyhow::ensure!(
            g.node_id == id,
            "{} reported node_id {}",
            g.name(),
            g.node_id
        );
        proxy.set_target(g.raft);
        self.proxies.insert(id, proxy);
        self.gateways.insert(id, g);
        Ok(())
    }

    /// The directory of the cluster's CA (`ca.pem`, `ca-key.pem`).
    pub fn ca_dir(&self) -> &std::path::Path {
        &self.ca_dir
    }

    pub fn gateway(&self, id: u64) -> anyhow::Result<&GatewayProcess> {
        self.gateways
            .get(&id)
            .with_context(|| format!("no gateway {id}"))
    }

    pub fn proxy(&self, id: u64) -> anyhow::Result<&FaultProxy> {
        self.proxies
            .get(&id)
            .with_context(|| format!("no proxy for {id}"))
    }

    /// SIGKILL node `id` (its proxy stays, pointing nowhere useful).
    pub fn kill9(&mut self, id: u64) -> anyhow::Result<()> {
        self.gateways
            .get_mut(&id)
            .with_context(|| format!("no gateway {id}"))?
            .kill9()
    }

    /// Restarts node `id` with the same arguments and retargets its proxy.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let mut g = self
            .gateways
            .remove(&id)
            .with_context(|| format!("no gateway {id}"))?;
        let g = tokio::task::spawn_blocking(move || g.restart().map(|()| g)).await??;
        self.proxy(id)?.set_target(g.raft);
        self.gateways.insert(id, g);
        Ok(())
    }

    /// Cuts node `id` off from every other node, both ways: the others'
    /// proxies black-hole its connections, its own proxy everyone's.
    pub fn isolate(&self, id: u64) -> anyhow::Result<()> {
        for (other, p) in &self.proxies {
            if *other != id {
                p.block_source(node_ip(id));
            }
        }
        self.proxy(id)?.block_all();
        Ok(())
    }

    /// Lifts every block.
    pub fn heal(&self) {
        for p in self.proxies.values() {
            p.heal();
        }
    }

    /// A request to node `id`'s HTTP port with the admin token; (status,
    /// JSON body or `Null`).
    pub async fn request(
        &self,
        id: u64,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, self.gateway(id)?.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// GET `path` on node `id`.
    pub async fn get_json(&self, id: u64, path: &str) -> anyhow::Result<(u16, Value)> {
        self.request(id, reqwest::Method::GET, path, None, REQUEST_TIMEOUT)
            .await
    }

    /// Node `id`'s view of the Raft cluster.
    pub async fn raft(&self, id: u64) -> anyhow::Result<RaftView> {
        let (status, v) = self.get_json(id, "/api/v1/admin/raft").await?;
        anyhow::ensure!(
            status == 200,
            "GET /api/v1/admin/raft on {id}: {status} {v}"
        );
        RaftView::parse(v)
    }

    /// The leader every node of `among` names, once they agree on one of
    /// them and it reports itself leader.
    pub async fn leader_among(&self, among: &[u64]) -> Option<u64> {
        let mut leader = None;
        for id in among {
            let v = self.raft(*id).await.ok()?;
            match (leader, v.leader_id) {
                (_, None) => return None,
                (None, Some(l)) => leader = Some(l),
                (Some(a), Some(b)) if a != b => return None,
                _ => {}
            }
        }
        let l = leader.filter(|l| among.contains(l))?;
        self.raft(l).await.ok()?.leads().then_some(l)
    }

    /// Waits for [`Self::leader_among`].
    pub async fn wait_leader(&self, among: &[u64], timeout: Duration) -> anyhow::Result<u64> {
        let res = wait_for(&format!("one leader among {among:?}"), timeout, || {
            self.leader_among(among)
        })
        .await;
        self.explain(res, among).await
    }

    /// Waits until the leader counts exactly `ids` as voters.
    pub async fn wait_voters(&self, ids: &[u64], timeout: Duration) -> anyhow::Result<()> {
        let res = wait_for(&format!("voters {ids:?}"), timeout, || async {
            let l = self.leader_among(ids).await?;
            (self.raft(l).await.ok()?.voters == ids).then_some(())
        })
        .await;
        self.explain(res, ids).await
    }

    /// A failed wait with what each node of `ids` reports now and every
    /// node's last log lines.
    async fn explain<T>(&self, res: anyhow::Result<T>, ids: &[u64]) -> anyhow::Result<T> {
        let Err(e) = res else { return res };
        let mut views = String::new();
        for id in ids {
            match self.raft(*id).await {
                Ok(v) => views.push_str(&format!("g{id}: {}\n", v.raw)),
                Err(err) => views.push_str(&format!("g{id}: {err:#}\n")),
            }
        }
        Err(anyhow::anyhow!("{e:#}\n{views}{}", self.describe()))
    }

    /// `PUT /api/v1/admin/policies/{cluster}` on node `id`.
    pub async fn put_policy(
        &self,
        id: u64,
        cluster: &str,
        policy: &Value,
        timeout: Duration,
    ) -> anyhow::Result<(u16, Value)> {
        self.request(
            id,
            reqwest::Method::PUT,
            &format!("/api/v1/admin/policies/{cluster}"),
            Some(policy),
            timeout,
        )
        .await
    }

    /// The policies node `id` reports (`GET /api/v1/admin/policies`), by
    /// cluster.
    pub async fn policies(&self, id: u64) -> anyhow::Result<serde_json::Map<String, Value>> {
        let (status, v) = self.get_json(id, "/api/v1/admin/policies").await?;
        anyhow::ensure!(
            status == 200,
            "GET /api/v1/admin/policies on {id}: {status} {v}"
        );
        let map = v.get("policies").unwrap_or(&v);
        map.as_object()
            .cloned()
            .with_context(|| format!("policies are not an object: {v}"))
    }

    /// Arguments for an agent of `cluster` (certificate issued here) whose
    /// `--gateway` list is the given nodes' federation URLs, every port
    /// `127.0.0.1:0`, its buffer in the cluster's directory.
    pub fn agent_args(&self, cluster: &str, gateways: &[u64]) -> anyhow::Result<Vec<String>> {
        let c = certs::issue(
            &self.ca_dir,
            &Subject::Cluster(cluster.into()),
            &self.dir.path().join("agent-certs"),
        )?;
        let urls = gateways
            .iter()
            .map(|id| self.gateway(*id).map(GatewayProcess::federation_url))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let s = |p: &std::path::Path| p.display().to_string();
        let mut args: Vec<String> = vec![
            "--cluster".into(),
            cluster.into(),
            "--gateway".into(),
            urls.join(","),
            "--tls-ca".into(),
            s(&self.ca),
            "--tls-cert".into(),
            s(&c.cert),
            "--tls-key".into(),
            s(&c.key),
            "--buffer-dir".into(),
            s(&self.agent_dir(cluster)),
        ];
        for flag in [
            "--otlp-grpc",
            "--otlp-http",
            "--zipkin",
            "--admin",
            "--sampling",
            "--sampling-grpc",
        ] {
            args.push(flag.into());
            args.push("127.0.0.1:0".into());
        }
        Ok(args)
    }

    /// Where the agent of `cluster` keeps its state.
    pub fn agent_dir(&self, cluster: &str) -> PathBuf {
        self.dir.path().join(format!("agent-{cluster}"))
    }

    /// Starts an agent process (`exe`: the agent binary) following the
    /// given gateways.
    pub async fn start_agent(
        &self,
        exe: &str,
        cluster: &str,
        gateways: &[u64],
    ) -> anyhow::Result<AgentProcess> {
        let args = self.agent_args(cluster, gateways)?;
        let exe = exe.to_owned();
        let name = format!("agent-{cluster}");
        tokio::task::spawn_blocking(move || AgentProcess::start_named(&name, &exe, &args)).await?
    }

    /// Waits until the agent of `cluster` remembers `n` gateway members.
    pub async fn wait_agent_members(
        &self,
        cluster: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let file = self.agent_dir(cluster).join("gateways");
        wait_for(
            &format!("agent {cluster} to learn {n} members"),
            timeout,
            || {
                let file = file.clone();
                async move {
                    let text = std::fs::read_to_string(&file).ok()?;
                    let members = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .count();
                    (members == n).then_some(())
                }
            },
        )
        .await
    }

    /// Every node's Raft view and log tail, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, g) in &self.gateways {
            out.push_str(&format!(
                "--- g{id} ({}) last lines:\n{}\n",
                g.http,
                g.log_tail(15).join("\n")
            ));
        }
        out
    }
}

/// Polls `check` until `Some` like [`wait_for`], and says how long it took.
pub async fn timed<T, F, Fut>(
    what: &str,
    timeout: Duration,
    check: F,
) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    let v = wait_for(what, timeout, check).await?;
    Ok((v, started.elapsed()))
}

/// Fails unless `status` is 2xx.
pub fn ensure_ok(what: &str, status: u16, body: &Value) -> anyhow::Result<()> {
    if !(200..300).contains(&status) {
        bail!("{what}: {status} {body}");
    }
    Ok(())
}
