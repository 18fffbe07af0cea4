//! The admin commands and the one request each makes.

use std::{path::Path, time::Duration};

use clap::Subcommand;
use model::sampling::SamplingConfig;
use reqwest::Method;
use serde_json::{Value, json};

use super::CliError;
use control_state::{NodeId, Role};

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
    /// The certificate deny list (agents and gateway nodes).
    #[command(subcommand)]
    Certs(CertsCommand),
    /// API tokens for the --http port (`Authorization: Bearer TOKEN`).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// SSO group → role and clusters, for `--auth proxy`.
    #[command(subcommand)]
    Groups(GroupsCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum GroupsCommand {
    /// Every group mapping: role and clusters.
    List,
    /// Map a group (as the proxy sends it) to a role and clusters,
    /// replacing its mapping if it has one.
    Set {
        #[arg(value_name = "GROUP")]
        group: String,
        /// `read` (the clusters' data) or `admin` (also the admin API, when
        /// --clusters is *).
        #[arg(long, value_name = "read|admin")]
        role: Role,
        /// The clusters its members may read, comma separated, or * for
        /// every cluster.
        #[arg(long, value_name = "A,B|*", value_delimiter = ',', required = true)]
        clusters: Vec<String>,
    },
    /// Remove a group's mapping (absent: `unchanged`).
    Delete {
        #[arg(value_name = "GROUP")]
        group: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum CertsCommand {
    /// Deny a certificate by its serial (hex, `:` separators allowed, as
    /// `openssl x509 -noout -serial` prints it): its holder is refused on
    /// every call within seconds, open connections included.
    Revoke {
        #[arg(long, value_name = "HEX")]
        serial: String,
    },
    /// The revoked serials.
    Revoked,
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

#[derive(Debug, Clone, Subcommand)]
pub enum TokensCommand {
    /// Every token: name, role, clusters, expiry (never a secret).
    List,
    /// Make a token. Its secret is shown once: alone on the last line of
    /// stdout, after the token's record.
    Create {
        #[arg(long, value_name = "NAME")]
        name: String,
        /// `read` (the clusters' data) or `admin` (also the admin API, when
        /// --clusters is *).
        #[arg(long, value_name = "read|admin")]
        role: Role,
        /// The clusters whose data it may read, comma separated, or * for
        /// every cluster.
        #[arg(long, value_name = "A,B|*", value_delimiter = ',', required = true)]
        clusters: Vec<String>,
        /// Valid for this long: 90s, 30m, 24h, 7d [default: until revoked].
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// Revoke a token (refused as soon as each gateway applies it; absent:
    /// `unchanged`).
    Revoke { name: String },
}

/// Parses `--ttl`: a whole number of seconds (`s`), minutes (`m`), hours
/// (`h`) or days (`d`), e.g. `24h`.
pub fn parse_ttl(spec: &str) -> Result<u64, String> {
    let spec = spec.trim();
    let bad = || format!("--ttl {spec:?}: expected a number and s, m, h or d, e.g. 24h");
    let split = spec.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = spec.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(per) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(bad()),
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
    pub(super) fn new(method: Method, path: &[&str], body: Option<Value>) -> Self {
        Self {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            body,
            timeout: TIMEOUT,
        }
    }

    pub(super) fn get(path: &[&str]) -> Self {
        Self::new(Method::GET, path, None)
    }

    pub(super) fn delete(path: &[&str]) -> Self {
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
        C::Certs(CertsCommand::Revoke { serial }) => {
            let body = json!({ "serial": serial });
            ApiCall::new(Method::POST, &["certs", "revoked"], Some(body))
        }
        C::Certs(CertsCommand::Revoked) => ApiCall::get(&["certs", "revoked"]),
        C::Tokens(TokensCommand::List) => ApiCall::get(&["tokens"]),
        C::Tokens(TokensCommand::Create {
            name,
            role,
            clusters,
            ttl,
        }) => {
            let ttl_secs = ttl
                .as_deref()
                .map(parse_ttl)
                .transpose()
                .map_err(CliError::Usage)?;
            let clusters: Vec<&str> = clusters.iter().map(|c| c.trim()).collect();
            let body = json!({
                "name": name,
                "role": role,
                "clusters": clusters,
                "ttl_secs": ttl_secs,
            });
            ApiCall::new(Method::POST, &["tokens"], Some(body))
        }
        C::Tokens(TokensCommand::Revoke { name }) => ApiCall::delete(&["tokens", name]),
        C::Groups(GroupsCommand::List) => ApiCall::get(&["groups"]),
        C::Groups(GroupsCommand::Set {
            group,
            role,
            clusters,
        }) => {
            let clusters: Vec<&str> = clusters.iter().map(|c| c.trim()).collect();
            let body = json!({ "role": role, "clusters": clusters });
            ApiCall::new(Method::PUT, &["groups", group], Some(body))
        }
        C::Groups(GroupsCommand::Delete { group }) => ApiCall::delete(&["groups", group]),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn token_commands_carry_scope_and_ttl() {
        let create = |ttl: Option<&str>| {
            plan(&AdminCommand::Tokens(TokensCommand::Create {
                name: "grafana".into(),
                role: Role::Read,
                clusters: vec!["a".into(), " b".into()],
                ttl: ttl.map(Into::into),
            }))
        };
        let c = create(Some("24h")).expect("plan");
        assert_eq!((c.method, c.path), (Method::POST, vec!["tokens".into()]));
        assert_eq!(
            c.body,
            Some(
                json!({"name": "grafana", "role": "read", "clusters": ["a", "b"], "ttl_secs": 86_400})
            )
        );
        assert_eq!(
            create(None)
                .expect("plan")
                .body
                .map(|b| b["ttl_secs"].clone()),
            Some(Value::Null)
        );
        assert!(matches!(create(Some("soon")), Err(CliError::Usage(_))));
        for (spec, secs) in [
            ("90s", Some(90)),
            ("30m", Some(1_800)),
            ("7d", Some(604_800)),
        ] {
            assert_eq!(parse_ttl(spec).ok(), secs, "{spec}");
        }
        for bad in ["", "h", "0h", "24", "1w", "-1s", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        let r = plan(&AdminCommand::Tokens(TokensCommand::Revoke {
            name: "a b".into(),
        }));
        assert_eq!(r.expect("plan").path, ["tokens", "a b"]);
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
}
