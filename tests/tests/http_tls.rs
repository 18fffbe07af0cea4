//! HTTPS on the `--http` port (issue 18) against the real gateway process
//! with real TLS: a private CA issues the server certificate, the API
//! answers over HTTPS to a client trusting that CA, plain HTTP to the TLS
//! port gets no answer, and the real `admin` CLI creates a token over
//! HTTPS with `--ca` and fails with a certificate error without it. The
//! `--zipkin-http` and `--tempo-http` ports are served over HTTPS with the
//! same certificate.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use anyhow::Context;
use gateway::admin_cli::https::HttpsClient;
use integration_tests::{
    process::{GatewayProcess, LOG_LINES},
    wait_for,
};
use mtls::certs::{self, Subject};
use reqwest::{Method, StatusCode, Url};

const GATEWAY: &str = env!("CARGO_BIN_EXE_sut-gateway");
const ADMIN: &str = "https-test-bootstrap-admin";

/// A private CA in `dir/ca` and a server certificate for localhost and
/// 127.0.0.1 it signed: (CA certificate, server certificate, key).
fn private_ca(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let ca_dir = dir.join("ca");
    let ca = certs::init_ca(&ca_dir)?.cert;
    let out = dir.join("web");
    let server = certs::issue(
        &ca_dir,
        &Subject::Node {
            name: "web".into(),
            hosts: Vec::new(),
        },
        &out,
    )?;
    Ok((ca, server.cert, server.key))
}

fn gateway_args(dir: &Path, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_owned(),
        dir.join("data").display().to_string(),
        "--raft".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    for flag in ["--http", "--federation", "--otlp-grpc", "--otlp-http"] {
        args.push(flag.into());
        args.push("127.0.0.1:0".into());
    }
    args.extend_from_slice(extra);
    args
}

/// `meridian-gateway admin --url URL [--ca CA] --token ADMIN ARGS`.
async fn cli(url: &str, ca: Option<&Path>, rest: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec!["admin".to_owned(), "--url".to_owned(), url.to_owned()];
    if let Some(ca) = ca {
        args.extend(["--ca".to_owned(), ca.display().to_string()]);
    }
    args.extend(["--token".to_owned(), ADMIN.to_owned()]);
    args.extend(rest.iter().map(|s| (*s).to_owned()));
    Ok(tokio::task::spawn_blocking(move || {
        Command::new(GATEWAY)
            .env_remove("MERIDIAN_ADMIN_URL")
            .env_remove("MERIDIAN_ADMIN_TOKEN")
            .env_remove("MERIDIAN_ADMIN_CA")
            .args(args)
            .output()
    })
    .await??)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_over_https_with_a_private_ca() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = private_ca(dir.path())?;
    let extra: Vec<String> = [
        "--auth",
        "tokens",
        "--admin-token",
        ADMIN,
        "--http-tls-cert",
        &cert.display().to_string(),
        "--http-tls-key",
        &key.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let args = gateway_args(dir.path(), &extra);
    let gw =
        tokio::task::spawn_blocking(move || GatewayProcess::start("gw", GATEWAY, &args)).await??;
    let base = format!("https://{}", gw.http);
    assert!(
        gw.log_tail(LOG_LINES)
            .iter()
            .any(|l| l.contains("gateway started") && l.contains("https")),
        "the start line names the scheme"
    );

    // A client that trusts the private CA (the admin CLI's HTTPS client).
    let trusting = HttpsClient::new(Some(&ca))?;
    let get = |path: &str, token: Option<&'static str>| {
        let trusting = trusting.clone();
        let url = Url::parse(&format!("{base}{path}"));
        async move {
            let url = url?;
            let (status, _) = trusting
                .send(Method::GET, &url, token, None, Duration::from_secs(30))
                .await?;
            anyhow::Ok(status)
        }
    };
    assert_eq!(get("/healthz", None).await?, StatusCode::OK);
    // The access layer runs behind TLS as before: no token, 401.
    assert_eq!(get("/api/services", None).await?, StatusCode::UNAUTHORIZED);
    wait_for("a leader", Duration::from_secs(20), || async {
        (get("/api/v1/admin/tokens", Some(ADMIN)).await.ok()? == StatusCode::OK).then_some(())
    })
    .await?;
    for path in ["/api/services", "/metrics", "/api/v1/clusters"] {
        assert_eq!(get(path, Some(ADMIN)).await?, StatusCode::OK, "{path}");
    }
    // --zipkin-http takes the same certificate and the same access layer.
    let zipkin = format!("https://{}", gw.zipkin_http.context("--zipkin-http")?);
    for (path, token, want) in [
        ("/api/v2/services", Some(ADMIN), StatusCode::OK),
        ("/zipkin/api/v2/services", Some(ADMIN), StatusCode::OK),
        ("/api/v2/services", None, StatusCode::UNAUTHORIZED),
    ] {
        let (status, _) = trusting
            .send(
                Method::GET,
                &Url::parse(&format!("{zipkin}{path}"))?,
                token,
                None,
                Duration::from_secs(30),
            )
            .await?;
        assert_eq!(status, want, "{path}");
    }
    // So does --tempo-http.
    let tempo = format!("https://{}", gw.tempo.context("--tempo-http")?);
    for (path, token, want) in [
        ("/api/echo", Some(ADMIN), StatusCode::OK),
        ("/api/search?q=%7B%7D", Some(ADMIN), StatusCode::OK),
        ("/api/echo", None, StatusCode::UNAUTHORIZED),
    ] {
        let (status, _) = trusting
            .send(
                Method::GET,
                &Url::parse(&format!("{tempo}{path}"))?,
                token,
                None,
                Duration::from_secs(30),
            )
            .await?;
        assert_eq!(status, want, "tempo {path}");
    }

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let refused = plain
        .get(format!("http://{}/healthz", gw.http))
        .send()
        .await;
    assert!(refused.is_err(), "plain HTTP answered: {refused:?}");
    // A client without the CA refuses the certificate.
    let untrusting = HttpsClient::new(None)?;
    let err = untrusting
        .send(
            Method::GET,
            &Url::parse(&format!("{base}/healthz"))?,
            None,
            None,
            Duration::from_secs(30),
        )
        .await
        .expect_err("an unknown issuer");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // The admin CLI over HTTPS with --ca: a token, usable over HTTPS.
    let out = cli(
        &base,
        Some(&ca),
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
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let secret = stdout.trim_end().rsplit('\n').next().context("a secret")?;
    assert!(secret.starts_with("mrd_"), "{stdout}");
    let (status, _) = trusting
        .send(
            Method::GET,
            &Url::parse(&format!("{base}/api/services"))?,
            Some(secret),
            None,
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let list = cli(&base, Some(&ca), &["tokens", "list"]).await?;
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(text(&list.stdout).contains("\"reader\""));

    // Without --ca: exit 1 and an error that says what is wrong.
    let out = cli(&base, None, &["tokens", "list"]).await?;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("certificate") && err.contains("--ca"), "{err}");
    // http:// to the TLS port fails too.
    let out = cli(
        &format!("http://{}", gw.http),
        Some(&ca),
        &["tokens", "list"],
    )
    .await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("use https://"),
        "{}",
        text(&out.stderr)
    );
    // A --ca file that is not PEM is a usage error.
    let out = cli(
        &base,
        Some(&cert.with_extension("missing")),
        &["tokens", "list"],
    )
    .await?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let log = gw.log_tail(LOG_LINES).join("\n");
    assert!(
        !log.contains(ADMIN) && !log.contains(secret),
        "a secret in the log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_its_key_is_refused_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (_, cert, key) = private_ca(dir.path())?;
    for (extra, named) in [
        (
            vec!["--http-tls-cert".to_owned(), cert.display().to_string()],
            "http-tls-key",
        ),
        (
            vec!["--http-tls-key".to_owned(), key.display().to_string()],
            "http-tls-cert",
        ),
        (
            vec![
                "--http-tls-cert".to_owned(),
                dir.path().join("absent.pem").display().to_string(),
                "--http-tls-key".to_owned(),
                key.display().to_string(),
            ],
            "absent.pem",
        ),
    ] {
        let child = tokio::process::Command::new(GATEWAY)
            .args(gateway_args(dir.path(), &extra))
            .env_remove("MERIDIAN_HTTP_TLS_CERT")
            .env_remove("MERIDIAN_HTTP_TLS_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .context("the gateway did not exit: it started")??;
        assert!(!out.status.success(), "{extra:?}");
        let err = text(&out.stderr);
        assert!(err.contains(named), "{extra:?}: {err}");
    }
    Ok(())
}
