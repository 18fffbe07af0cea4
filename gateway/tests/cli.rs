//! The real `meridian-gateway` binary: config errors exit 2 naming the key,
//! the file/env/flag layers, and the certificate commands.

use std::process::Command;

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meridian-gateway"));
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn invalid_config_exits_2_naming_the_key() {
    let out = gateway()
        .args(["--http", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`http`") && err.contains("fix"), "{err}");

    let out = gateway()
        .env("MERIDIAN_STORE", "mysql://x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`store`"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.toml");
    std::fs::write(&file, "htpp = \":1\"\n").unwrap();
    let out = gateway().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("htpp"), "an unknown key is named: {err}");

    let out = gateway().args(["--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_every_flag_with_its_env_variable() {
    let out = gateway().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--data-dir", "MERIDIAN_DATA_DIR"),
        ("--store", "MERIDIAN_STORE"),
        ("--http", "MERIDIAN_HTTP"),
        ("--federation", "MERIDIAN_FEDERATION"),
        ("--otlp-grpc", "MERIDIAN_OTLP_GRPC"),
        ("--otlp-http", "MERIDIAN_OTLP_HTTP"),
        ("--zipkin-http", "MERIDIAN_ZIPKIN_HTTP"),
        ("--tls-ca", "MERIDIAN_TLS_CA"),
        ("--tls-cert", "MERIDIAN_TLS_CERT"),
        ("--tls-key", "MERIDIAN_TLS_KEY"),
        ("--config", "MERIDIAN_CONFIG"),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        assert!(help.contains(env), "{env} missing from --help");
    }
}

#[test]
fn certs_commands_create_a_ca_and_identities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        gateway()
            .args(["certs", "init", "--out", d])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        gateway()
            .args(["certs", "issue", "--cluster", "us-east", "--out", d])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        gateway()
            .args([
                "certs",
                "issue",
                "--node",
                "gw-1",
                "--host",
                "gw.internal",
                "--out",
                d
            ])
            .status()
            .unwrap()
            .success()
    );
    for f in [
        "ca.pem",
        "ca-key.pem",
        "cluster-us-east.pem",
        "cluster-us-east-key.pem",
        "node-gw-1.pem",
        "node-gw-1-key.pem",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    // A second init must not overwrite the CA.
    let out = gateway()
        .args(["certs", "init", "--out", d])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Invalid cluster names are refused.
    let out = gateway()
        .args(["certs", "issue", "--cluster", "Not Valid", "--out", d])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
