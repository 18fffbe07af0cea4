//! The README's run command: `meridian-gateway demo` starts a gateway and
//! agents of three clusters over mTLS and its printed trace URL shows one
//! trace stitched across all three clusters.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Kills the demo if the test fails half-way, so no process outlives it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_a_stitched_multi_cluster_trace() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian-gateway"))
        .args([
            "demo",
            "--http",
            "127.0.0.1:0",
            "--rate",
            "20",
            "--duration",
            "60",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("demo output");
        if let Some(url) = line.trim().strip_prefix("a stitched trace: ") {
            break url.to_owned();
        }
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace = loop {
        let body: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        if body["data"][0]["spans"].as_array().map(Vec::len) == Some(7) {
            break body["data"][0].clone();
        }
        assert!(Instant::now() < deadline, "trace never complete: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let clusters: BTreeSet<String> = trace["processes"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p["tags"].as_array().unwrap().iter())
        .filter(|t| t["key"] == "k8s.cluster.name")
        .map(|t| t["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        clusters.into_iter().collect::<Vec<_>>(),
        ["ap-south", "eu-west", "us-east"]
    );
    // A graceful stop on SIGTERM.
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            assert!(s.success(), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
