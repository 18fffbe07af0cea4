//! The real `meridian-agent` binary: config errors exit 2 naming the key.

use std::process::Command;

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meridian-agent"));
    for var in ["MERIDIAN_CLUSTER", "MERIDIAN_GATEWAY", "RUST_LOG"] {
        c.env_remove(var);
    }
    c
}

#[test]
fn missing_required_settings_exit_2_naming_the_key() {
    let out = agent().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`cluster`"));

    let out = agent().env("MERIDIAN_CLUSTER", "east").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`gateway`"));

    let out = agent()
        .args(["--cluster", "east", "--gateway", "http://insecure:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("https"), "{err}");
}

#[test]
fn the_config_file_fills_what_flags_and_env_leave_unset() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "cluster = \"from-file\"\ngateway = [\"https://127.0.0.1:1\"]\nlog-format = \"yaml\"\n",
    )
    .unwrap();
    // The file is read (its bad log-format is reported), and a flag wins.
    let out = agent().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`log-format`"));
    let out = agent()
        .arg("--config")
        .arg(&file)
        .args(["--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`tls-ca`"), "next missing key: {err}");
}

#[test]
fn help_names_env_variables() {
    let out = agent().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for env in [
        "MERIDIAN_CLUSTER",
        "MERIDIAN_GATEWAY",
        "MERIDIAN_OTLP_GRPC",
        "MERIDIAN_OTLP_HTTP",
        "MERIDIAN_ZIPKIN",
        "MERIDIAN_ADMIN",
        "MERIDIAN_BUFFER_DIR",
    ] {
        assert!(help.contains(env), "{env}");
    }
}
