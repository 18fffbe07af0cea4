//! `meridian-gateway admin …`: the admin API from the command line.
//!
//! Each command is one HTTP request ([`ApiCall`], built by the pure
//! [`plan`]); the JSON answer is printed pretty on stdout, an error on
//! stderr. Exit codes: 0 done, 1 the request failed (refused, unreachable,
//! unauthorized), 2 usage (bad flags, URL, retention spec). The client
//! speaks `http://` (reqwest) and `https://` ([`https`], rustls): an
//! `https://` gateway's certificate is checked against the system's CA
//! bundle and, with `--ca FILE`, that private CA's certificates. There is
//! no switch to skip the check.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use reqwest::{Method, Url};
use serde_json::Value;

use control_plane::admin::ErrorBody;

mod commands;
pub mod https;

pub use commands::{
    AdminCommand, AlertRulesCommand, ApiCall, CertsCommand, ClustersCommand, GroupsCommand,
    MembersCommand, PoliciesCommand, RetentionCommand, ShardsCommand, TokensCommand, parse_ttl,
    plan, read_policy,
};

/// Talks to a gateway's admin API.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The gateway's HTTP port: http://HOST:PORT, or https://HOST:PORT
    /// for a gateway with --http-tls-cert.
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
    /// Trust this CA (PEM, one or more certificates) for an https:// --url,
    /// besides the system's roots: the CA that signed --http-tls-cert.
    #[arg(long, env = "MERIDIAN_ADMIN_CA", value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// Read the node's applied state without asking the leader (may lag;
    /// works without a quorum). Reads only.
    #[arg(long, global = true)]
    pub local: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
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
    #[error("cannot reach {url}: {reason}{hint}")]
    Unreachable {
        url: String,
        reason: String,
        hint: &'static str,
    },
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

/// The full URL of `call` under `base`.
pub fn url_of(base: &str, call: &ApiCall, local: bool) -> Result<Url, CliError> {
    let mut url = Url::parse(base).map_err(|e| {
        CliError::Usage(format!("--url {base:?}: {e}; e.g. http://127.0.0.1:16686"))
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(CliError::Usage(format!(
                "--url {base:?}: unsupported scheme {other:?}; use http://HOST:PORT or https://HOST:PORT"
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
        403 => " (this token may not use the admin API: use an admin token over every cluster)",
        503 => " (no leader or quorum right now; retry shortly)",
        _ => "",
    }
}

/// A hint for a connection that failed with `reason`.
pub(crate) fn unreachable_hint(reason: &str) -> &'static str {
    if reason.contains("certificate") || reason.contains("UnknownIssuer") {
        " (the gateway's TLS certificate is not trusted: give --ca FILE, the CA that signed its --http-tls-cert)"
    } else if reason.contains("InvalidContentType") || reason.contains("corrupt message") {
        " (is the gateway serving plain HTTP? use http://)"
    } else if reason.contains("invalid HTTP version parsed") {
        " (is the gateway serving HTTPS? use https://)"
    } else {
        ""
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
    let (status, body) = if url.scheme() == "https" {
        https::HttpsClient::new(args.ca.as_deref())?
            .send(
                call.method.clone(),
                &url,
                args.token.as_deref(),
                call.body.as_ref(),
                call.timeout,
            )
            .await?
    } else {
        plain(args, &call, &url).await?
    };
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

/// One request over plain HTTP (reqwest).
async fn plain(
    args: &AdminArgs,
    call: &ApiCall,
    url: &Url,
) -> Result<(reqwest::StatusCode, bytes::Bytes), CliError> {
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
    let unreachable = |e: reqwest::Error| {
        let reason = error_chain(&e);
        CliError::Unreachable {
            url: url.to_string(),
            hint: unreachable_hint(&reason),
            reason,
        }
    };
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(unreachable)?;
    Ok((status, body))
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
        Ok(mut answer) => {
            let created = matches!(
                args.command,
                AdminCommand::Tokens(TokensCommand::Create { .. })
            );
            let secret = if created {
                answer.as_object_mut().and_then(|o| o.remove("token"))
            } else {
                None
            };
            print_json(&answer);
            if let Some(Value::String(secret)) = secret {
                eprintln!(
                    "meridian-gateway admin: the token is shown once, on the next line; store it now"
                );
                print_secret(&secret);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meridian-gateway admin: {e}");
            e.exit_code()
        }
    }
}

/// A new token's secret, alone on the last line of stdout (scripts take
/// `| tail -n 1`).
#[allow(clippy::print_stdout)]
fn print_secret(secret: &str) {
    println!("{secret}");
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
    fn urls_encode_names_and_take_http_or_https() {
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
        let tls = url_of("https://gw:16686", &call, false).expect("https");
        assert_eq!(tls.scheme(), "https");
        for bad in ["gw:16686", "ftp://gw", "not a url"] {
            assert!(
                matches!(url_of(bad, &call, false), Err(CliError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_answers_give_their_message() {
        let s = reqwest::StatusCode::UNAUTHORIZED;
        assert_eq!(error_message(s, br#"{"error":"no"}"#), "no");
        assert_eq!(error_message(s, b""), "Unauthorized");
        assert!(error_message(reqwest::StatusCode::NOT_FOUND, b"").contains("--url"));
        assert!(hint(s).contains("--token"));
        assert!(unreachable_hint("invalid peer certificate: UnknownIssuer").contains("--ca"));
        assert!(
            unreachable_hint("client error (SendRequest): invalid HTTP version parsed")
                .contains("https://")
        );
        assert_eq!(unreachable_hint("Connection refused"), "");
    }
}
