//! Real agent processes for crash tests: started with `--log-format json`,
//! their bound addresses read from the "agent started" log line, killed
//! with SIGKILL on demand and always on drop.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail};

/// A running `sut-agent` (the real `meridian-agent`).
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub admin: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl AgentProcess {
    /// Starts the agent binary at `exe` with `args` (ports should be
    /// `127.0.0.1:0`) and waits for its start line.
    pub fn start(exe: &str, args: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .args(args)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the agent")?;
        let stderr = child.stderr.take().context("agent stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut proc = Self {
            child,
            otlp_grpc: SocketAddr::from(([0, 0, 0, 0], 0)),
            otlp_http: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            lines,
        };
        loop {
            let line = match proc.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => l,
                Err(_) => bail!("the agent did not report its start within 30 s"),
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &v["fields"];
            if fields["message"] == "agent started" {
                let addr = |k: &str| -> anyhow::Result<SocketAddr> {
                    fields[k]
                        .as_str()
                        .with_context(|| format!("{k} in {line}"))?
                        .parse()
                        .with_context(|| format!("{k} in {line}"))
                };
                proc.otlp_grpc = addr("otlp_grpc")?;
                proc.otlp_http = addr("otlp_http")?;
                proc.admin = addr("admin")?;
                return Ok(proc);
            }
            if v["level"] == "ERROR" {
                bail!("agent failed: {line}");
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Resident memory of the process, bytes (Linux `/proc`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS")?;
        Ok(kb * 1024)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of a Prometheus sample `name{labels}` in a text exposition.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name_and_labels).then(|| v.parse().ok())?
    })
}
