//! `meridian-gateway admin …`: the admin API from the command line.
//!
//! Each command is one HTTP request ([`ApiCall`], built by the pure
//! [`plan`]); the JSON answer is printed pretty on stdout, an error on
//! stderr. Exit codes: 0 done, 1 the request failed (refused, unreachable,
//! unauthorized), 2 usage (bad flags, URL, retention spec). The client
//! speaks plain `http://` only: this build's HTTP client has no TLS, so
//! reach the admin port over a trusted network or a port-forward.

use std::{path::Path, process::ExitCode, time::Duration};

use clap::{Args, Subcommand};
use model::sampling::SamplingConfig;
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::error::ErrorBody;
use crate::raft::NodeId;

/// Talks to a gateway's admin API.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The gateway's HTTP port (http:// only: this client has no TLS).
    #[arg(
        long,
        env = "MERIDIAN_ADMIN_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:16686",
        global = true
    )]
    pub url: String,
    /// The gateway's admin token, sent as `Authorization: Bearer`.
    #[arg(
        long,
        env = "MERIDIAN_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Read the node's applied state without asking the leader (may lag;
    /// works without a quorum). Reads only.
    #[arg(long, global = true)]
    pub local: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// This node's Raft status: leader, term, log indexes, voters.
    Raft,
    /// Gateway nodes of the control plane.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Store shards, the shard map's epochs and shard leases.
    #[command(subcommand)]
    Shards(ShardsCommand),
    /// Clusters allowed to send spans.
    #[command(subcommand)]
    Clusters(ClustersCommand),
    /// Sampling policies pushed to agents (`*` = every cluster).
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Span retention.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Alert rules.
    #[command(subcommand)]
    AlertRules(AlertRulesCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum MembersCommand {
    /// The leader and every node with its role and addresses.
    List,
    /// Add a running node: as a learner, then (caught up) as a voter.
    Add {
        #[arg(long, value_name = "N")]
        id: NodeId,
        #[arg(long, value_name = "HOST:PORT")]
        raft_addr: String,
        /// Default: announced by the node itself.
        #[arg(long, value_name = "HOST:PORT")]
        federation_addr: Option<String>,
        /// Default: announced by the node itself.
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: Option<String>,
    },
    /// Remove a node (removing an absent one is `unchanged`).
    Remove {
        #[arg(value_name = "N")]
        id: NodeId,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ShardsCommand {
    /// Registered shards (passwords masked), shard map epochs, leases.
    List,
    /// Register a Postgres shard; new traces spread over it from a new
    /// epoch starting --start-in-secs from now.
    Add {
        /// postgres://[USER[:PASSWORD]@]HOST[:PORT]/DB.
        // Not `url`: that id is the global --url.
        #[arg(value_name = "URL")]
        shard_url: String,
        /// Default: one past the largest shard id.
        #[arg(long, value_name = "N")]
        id: Option<u32>,
        /// Default: 10.
        #[arg(long, value_name = "S")]
        start_in_secs: Option<u64>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ClustersCommand {
    /// Registered clusters and their identities.
    List,
    /// Register (or update) a cluster.
    Put {
        name: String,
        /// Default: spiffe://meridian/cluster/<NAME>.
        #[arg(long, value_name = "URI")]
        identity: Option<String>,
    },
    /// Unregister a cluster (absent: `unchanged`).
    Delete { name: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PoliciesCommand {
    /// Every policy by cluster.
    List,
    /// One cluster's policy (`*` for every cluster without its own).
    Get { cluster: String },
    /// Set a cluster's policy from a SamplingConfig file (JSON, or TOML as
    /// the agent's --sampling-config).
    Put {
        cluster: String,
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Remove a cluster's policy (absent: `unchanged`).
    Delete { cluster: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RetentionCommand {
    /// The retention policy in force.
    Get,
    /// Set retention: DEFAULT_HOURS[,CLUSTER=HOURS…], e.g. 168,eu-west=72.
    Set { spec: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AlertRulesCommand {
    /// Every alert rule by name.
    List,
    /// Create or replace a rule.
    Put {
        name: String,
        #[arg(long, value_name = "EXPR")]
        expr: String,
        #[arg(long, value_name = "S", default_value_t = 0)]
        for_secs: u64,
    },
    /// Remove a rule (absent: `unchanged`).
    Delete { name: String },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A file to send could not be read or parsed (exit 1).
    #[error("{0}")]
    Input(String),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The gateway answered with an error.
    #[error("{status}: {message}{hint}")]
    Api {
        status: reqwest::StatusCode,
        message: String,
        hint: &'static str,
    },
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// One request to the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: Method,
    /// Path segments after `/api/v1/admin/` (percent-encoded when sent).
    pub path: Vec<String>,
    pub body: Option<Value>,
    pub timeout: Duration,
}

const TIMEOUT: Duration = Duration::from_secs(30);
/// Adding a node waits until it caught up (the gateway allows 120 s).
const ADD_NODE_TIMEOUT: Duration = Duration::from_secs(150);

impl ApiCall {
    fn new(method: Method, path: &[&str], body: Option<Value>) -> Self {
        Self {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            body,
            timeout: TIMEOUT,
        }
    }

    fn get(path: &[&str]) -> Self {
        Self::new(Method::GET, path, None)
    }

    fn delete(path: &[&str]) -> Self {
        Self::new(Method::DELETE, path, None)
    }
}

/// The request a command makes (reads the policy file of `policies put`).
pub fn plan(command: &AdminCommand) -> Result<ApiCall, CliError> {
    use AdminCommand as C;
    Ok(match command {
        C::Raft => ApiCall::get(&["raft"]),
        C::Members(MembersCommand::List) => ApiCall::get(&["members"]),
        C::Members(MembersCommand::Add {
            id,
            raft_addr,
            federation_addr,
            http_addr,
        }) => {
            let body = json!({
                "id": id,
                "raft_addr": raft_addr,
                "federation_addr": federation_addr,
                "http_addr": http_addr,
            });
            let mut call = ApiCall::new(Method::POST, &["members"], Some(body));
            call.timeout = ADD_NODE_TIMEOUT;
            call
        }
        C::Members(MembersCommand::Remove { id }) => ApiCall::delete(&["members", &id.to_string()]),
        C::Shards(ShardsCommand::List) => ApiCall::get(&["shards"]),
        C::Shards(ShardsCommand::Add {
            shard_url,
            id,
            start_in_secs,
        }) => {
            let body = json!({"url": shard_url, "id": id, "start_in_secs": start_in_secs});
            ApiCall::new(Method::POST, &["shards"], Some(body))
        }
        C::Clusters(ClustersCommand::List) => ApiCall::get(&["clusters"]),
        C::Clusters(ClustersCommand::Put { name, identity }) => {
            let body = json!({ "identity": identity });
            ApiCall::new(Method::PUT, &["clusters", name], Some(body))
        }
        C::Clusters(ClustersCommand::Delete { name }) => ApiCall::delete(&["clusters", name]),
        C::Policies(PoliciesCommand::List) => ApiCall::get(&["policies"]),
        C::Policies(PoliciesCommand::Get { cluster }) => ApiCall::get(&["policies", cluster]),
        C::Policies(PoliciesCommand::Put { cluster, file }) => {
            let policy = read_policy(file)?;
            let body = serde_json::to_value(&policy)
                .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
            ApiCall::new(Method::PUT, &["policies", cluster], Some(body))
        }
        C::Policies(PoliciesCommand::Delete { cluster }) => ApiCall::delete(&["policies", cluster]),
        C::Retention(RetentionCommand::Get) => ApiCall::get(&["retention"]),
        C::Retention(RetentionCommand::Set { spec }) => {
            let policy = crate::config::parse_retention(spec).map_err(|e| {
                let fix = e.fix.map(|f| format!("; {f}")).unwrap_or_default();
                CliError::Usage(format!("retention {spec:?}: {}{fix}", e.problem))
            })?;
            let body = serde_json::to_value(&policy)
                .map_err(|e| CliError::Usage(format!("retention {spec:?}: {e}")))?;
            ApiCall::new(Method::PUT, &["retention"], Some(body))
        }
        C::AlertRules(AlertRulesCommand::List) => ApiCall::get(&["alert-rules"]),
        C::AlertRules(AlertRulesCommand::Put {
            name,
            expr,
            for_secs,
        }) => {
            let body = json!({"expr": expr, "for_secs": for_secs});
            ApiCall::new(Method::PUT, &["alert-rules", name], Some(body))
        }
        C::AlertRules(AlertRulesCommand::Delete { name }) => {
            ApiCall::delete(&["alert-rules", name])
        }
    })
}

/// A SamplingConfig file: `.json` is JSON, `.toml` TOML; otherwise JSON
/// when it starts with `{`, else TOML.
pub fn read_policy(path: &Path) -> Result<SamplingConfig, CliError> {
    let bad = |e: String| CliError::Input(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let json = match ext {
        "json" => true,
        "toml" => false,
        _ => text.trim_start().starts_with('{'),
    };
    if json {
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))
    } else {
        toml::from_str(&text).map_err(|e| bad(format!("invalid TOML: {}", e.message())))
    }
}

/// The full URL of `call` under `base`.
pub fn url_of(base: &str, call: &ApiCall, local: bool) -> Result<Url, CliError> {
    let mut url = Url::parse(base).map_err(|e| {
        CliError::Usage(format!("--url {base:?}: {e}; e.g. http://127.0.0.1:16686"))
    })?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(CliError::Usage(format!(
                "--url {base:?}: https is not supported by this client (no TLS in this build); \
                 use http:// over a trusted network or a port-forward"
            )));
        }
        other => {
            return Err(CliError::Usage(format!(
                "--url {base:?}: unsupported scheme {other:?}; use http://HOST:PORT"
            )));
        }
    }
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| CliError::Usage(format!("--url {base:?}: not a base URL")))?;
        segments
            .pop_if_empty()
            .extend(["api", "v1", "admin"])
            .extend(&call.path);
    }
    url.set_query(None);
    if local && call.method == Method::GET && call.path.first().is_some_and(|p| p != "raft") {
        url.set_query(Some("consistency=local"));
    }
    Ok(url)
}

/// A hint added to an error answer.
fn hint(status: reqwest::StatusCode) -> &'static str {
    match status.as_u16() {
        401 => " (give the admin token with --token or MERIDIAN_ADMIN_TOKEN)",
        503 => " (no leader or quorum right now; retry shortly)",
        _ => "",
    }
}

/// The message of an error answer: its `{"error"}`, else its text.
pub fn error_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.error;
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    match (text.is_empty(), status.as_u16()) {
        (true, 404) => "not found (is --url a gateway with the control plane?)".into(),
        (true, _) => status
            .canonical_reason()
            .unwrap_or("no explanation")
            .to_owned(),
        (false, _) => text.chars().take(500).collect(),
    }
}

/// Sends the command's request; the answer's JSON.
pub async fn execute(args: &AdminArgs) -> Result<Value, CliError> {
    let call = plan(&args.command)?;
    let url = url_of(&args.url, &call, args.local)?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(call.timeout)
        .build()
        .map_err(|e| CliError::Usage(format!("cannot build the HTTP client: {e}")))?;
    let mut req = client.request(call.method.clone(), url.clone());
    if let Some(token) = &args.token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = &call.body {
        req = req.json(body);
    }
    let unreachable = |e: reqwest::Error| CliError::Unreachable {
        url: url.to_string(),
        reason: error_chain(&e),
    };
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(CliError::Api {
            status,
            message: error_message(status, &body),
            hint: hint(status),
        });
    }
    Ok(serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())))
}

/// The causes of a reqwest error on one line (its own message only
/// repeats the URL).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Runs one admin command as the binary does.
pub async fn run(args: AdminArgs) -> ExitCode {
    match execute(&args).await {
        Ok(answer) => {
            print_json(&answer);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meridian-gateway admin: {e}");
            e.exit_code()
        }
    }
}

// The answer is the command's output: stdout is the point.
#[allow(clippy::print_stdout)]
fn print_json(answer: &Value) {
    match serde_json::to_string_pretty(answer) {
        Ok(text) => println!("{text}"),
        Err(_) => println!("{answer}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_names_and_refuse_https() {
        let call = ApiCall::get(&["alert-rules", "a b/c"]);
        let url = url_of("http://gw:16686", &call, false).expect("url");
        assert_eq!(
            url.as_str(),
            "http://gw:16686/api/v1/admin/alert-rules/a%20b%2Fc"
        );
        let call = ApiCall::get(&["policies", "*"]);
        let url = url_of("http://gw:16686/prefix/", &call, true).expect("url");
        assert_eq!(
            url.as_str(),
            "http://gw:16686/prefix/api/v1/admin/policies/*?consistency=local"
        );
        // --local changes reads only.
        let url = url_of("http://gw", &ApiCall::delete(&["policies", "eu"]), true).expect("url");
        assert_eq!(url.query(), None);
        for bad in ["https://gw:16686", "gw:16686", "ftp://gw", "not a url"] {
            assert!(
                matches!(url_of(bad, &call, false), Err(CliError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn commands_become_requests() {
        let c = plan(&AdminCommand::Members(MembersCommand::Add {
            id: 4,
            raft_addr: "gw-4:4321".into(),
            federation_addr: None,
            http_addr: Some("gw-4:16686".into()),
        }))
        .expect("plan");
        assert_eq!((c.method, c.path), (Method::POST, vec!["members".into()]));
        assert_eq!(c.timeout, ADD_NODE_TIMEOUT);
        assert_eq!(c.body.as_ref().map(|b| b["id"].clone()), Some(json!(4)));

        let c = plan(&AdminCommand::Retention(RetentionCommand::Set {
            spec: "168,eu-west=72".into(),
        }))
        .expect("plan");
        assert_eq!(
            c.body,
            Some(json!({"default_hours": 168, "clusters": {"eu-west": 72}}))
        );
        let bad = plan(&AdminCommand::Retention(RetentionCommand::Set {
            spec: "forever".into(),
        }));
        assert!(matches!(bad, Err(CliError::Usage(m)) if m.contains("forever")));
    }

    #[test]
    fn policy_files_are_json_or_toml() {
        let dir = tempfile::tempdir().expect("tempdir");
        let json = dir.path().join("p.json");
        std::fs::write(&json, r#"{"head":{"default_probability":0.25}}"#).expect("write");
        let toml = dir.path().join("p.conf");
        std::fs::write(&toml, "[head]\ndefault_probability = 0.5\n").expect("write");
        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "[hed]\n").expect("write");
        let p = |f: &Path| read_policy(f).map(|c| c.head.default_probability);
        assert_eq!(p(&json).ok(), Some(0.25));
        assert_eq!(p(&toml).ok(), Some(0.5));
        assert!(matches!(p(&typo), Err(CliError::Input(m)) if m.contains("typo.toml")));
        assert!(matches!(
            p(&dir.path().join("none")),
            Err(CliError::Input(_))
        ));
    }

    #[test]
    fn error_answers_give_their_message() {
        let s = reqwest::StatusCode::UNAUTHORIZED;
        assert_eq!(error_message(s, br#"{"error":"no"}"#), "no");
        assert_eq!(error_message(s, b""), "Unauthorized");
        assert!(error_message(reqwest::StatusCode::NOT_FOUND, b"").contains("--url"));
        assert!(hint(s).contains("--token"));
    }
}
