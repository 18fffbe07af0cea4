//! Real agent and gateway processes for crash and cluster tests: started
//! with `--log-format json`, their bound addresses read from the "agent
//! started" / "gateway started" log line, killed with SIGKILL on demand and
//! always on drop.
//!
//! Each process's stderr is kept in a bounded ring ([`LOG_LINES`] lines,
//! oldest dropped) that tests can wait on or print when something fails;
//! with `MERIDIAN_TEST_LOGS=1` every line is also echoed to the test's
//! stderr, prefixed with the process's name.
//!
//! With `MERIDIAN_TEST_LOG_DIR=DIR` (`scripts/test.sh` sets it) every line
//! is also appended to `DIR/<name>-<pid>.log`, and the secrets given on
//! the command line (`--admin-token`, a password in a `--store` URL) to
//! `DIR/secrets.txt`, so that `scripts/check-log-secrets.sh` can show no
//! secret reached any log of the whole run.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

/// Log lines kept per process.
pub const LOG_LINES: usize = 4_000;
/// How long a process may take to report its start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct LogRing {
    lines: VecDeque<String>,
    /// Index (since the start) of `lines[0]`.
    first: usize,
    /// The process closed its stderr (exited).
    closed: bool,
}

/// A process's stderr, kept as it arrives.
#[derive(Debug, Default)]
pub struct Log {
    ring: Mutex<LogRing>,
    grew: Condvar,
}

impl Log {
    fn push(&self, line: String) {
        if let Ok(mut r) = self.ring.lock() {
            r.lines.push_back(line);
            if r.lines.len() > LOG_LINES {
                r.lines.pop_front();
                r.first += 1;
            }
        }
        self.grew.notify_all();
    }

    fn close(&self) {
        if let Ok(mut r) = self.ring.lock() {
            r.closed = true;
        }
        self.grew.notify_all();
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        self.ring
            .lock()
            .map(|r| {
                r.lines
                    .iter()
                    .skip(r.lines.len().saturating_sub(n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Blocks until a line from index `from` on satisfies `pred`; returns
    /// it and the index after it. Fails on timeout or when the process
    /// exits first.
    fn wait_line(
        &self,
        mut from: usize,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<(String, usize)> {
        let deadline = Instant::now() + timeout;
        let mut ring = self
            .ring
            .lock()
            .map_err(|_| anyhow::anyhow!("log poisoned"))?;
        loop {
            from = from.max(ring.first);
            let end = ring.first + ring.lines.len();
            while from < end {
                let line = &ring.lines[from - ring.first];
                from += 1;
                if pred(line) {
                    return Ok((line.clone(), from));
                }
            }
            if ring.closed {
                bail!("the process exited");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out after {timeout:?}");
            }
            ring = self
                .grew
                .wait_timeout(ring, left)
                .map_err(|_| anyhow::anyhow!("log poisoned"))?
                .0;
        }
    }
}

/// The `fields` of a JSON log line, when it is one.
fn fields(line: &str) -> Option<Value> {
    let mut v: Value = serde_json::from_str(line).ok()?;
    Some(v.get_mut("fields")?.take())
}

/// With `MERIDIAN_TEST_LOG_DIR`: the file this process's log is copied to,
/// after recording the secrets in `args` in `secrets.txt`.
fn log_file(name: &str, pid: u32, args: &[String]) -> anyhow::Result<Option<std::fs::File>> {
    let Some(dir) = std::env::var_os("MERIDIAN_TEST_LOG_DIR").filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let secrets = secrets_in(args);
    if !secrets.is_empty() {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("secrets.txt"))?;
        // One write per line: processes start in parallel, and an
        // O_APPEND write of a short line is not interleaved with another.
        for s in secrets {
            f.write_all(format!("{s}\n").as_bytes())?;
        }
    }
    let file = std::fs::File::create(dir.join(format!("{name}-{pid}.log")))?;
    Ok(Some(file))
}

/// The secrets a command line carries: the `--admin-token` value and the
/// password of every URL in a `--store` value.
fn secrets_in(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--admin-token" if !pair[1].is_empty() => out.push(pair[1].clone()),
            "--store" => {
                for url in pair[1].split(',') {
                    let Some((_, rest)) = url.split_once("://") else {
                        continue;
                    };
                    let Some((userinfo, _)) = rest.split_once('@') else {
                        continue;
                    };
                    if let Some((_, password)) = userinfo.split_once(':')
                        && !password.is_empty()
                    {
                        out.push(password.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A child process, its command line and its stderr.
#[derive(Debug)]
struct Proc {
    name: String,
    exe: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    log: Arc<Log>,
}

impl Proc {
    fn spawn(name: &str, exe: &str, args: &[String]) -> anyhow::Result<Self> {
        let mut p = Self {
            name: name.to_owned(),
            exe: exe.into(),
            args: args.to_vec(),
            child: None,
            log: Arc::default(),
        };
        p.respawn()?;
        Ok(p)
    }

    fn respawn(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        let mut child = Command::new(&self.exe)
            .args(&self.args)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            // The gateway's default Tempo port is fixed (:3200); a test
            // gateway binds an ephemeral one unless its flags say otherwise.
            .env("MERIDIAN_TEMPO_HTTP", "127.0.0.1:0")
            // Likewise the agent's Jaeger gRPC sampling port (:5779).
            .env("MERIDIAN_SAMPLING_GRPC", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        let stderr = child.stderr.take().context("stderr")?;
        let log = Arc::new(Log::default());
        let echo = std::env::var("MERIDIAN_TEST_LOGS").is_ok_and(|v| v == "1");
        let mut file = log_file(&self.name, child.id(), &self.args)?;
        let name = self.name.clone();
        let sink = Arc::clone(&log);
        // Ends when the process's stderr closes (it exited or was killed).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("[{name}] {line}");
                }
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                sink.push(line);
            }
            sink.close();
        });
        self.child = Some(child);
        self.log = log;
        Ok(())
    }

    /// Waits for the INFO line `message`; its fields. An ERROR line or
    /// an exit first is a failure (with the log's tail).
    fn wait_start(&self, message: &str) -> anyhow::Result<Value> {
        let found = self.log.wait_line(0, START_TIMEOUT, |line| {
            fields(line).is_some_and(|f| f["message"] == message)
                || line.contains("\"level\":\"ERROR\"")
        });
        match found {
            Ok((line, _)) => match fields(&line) {
                Some(f) if f["message"] == message => Ok(f),
                _ => bail!("{} failed: {line}", self.name),
            },
            Err(e) => bail!(
                "{} did not report {message:?}: {e}; its last lines:\n{}",
                self.name,
                self.log.tail(30).join("\n")
            ),
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap; nothing when not running.
    fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take()
            && let Ok(None) = c.try_wait()
        {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// An address field of a start line.
fn addr(fields: &Value, key: &str) -> anyhow::Result<SocketAddr> {
    fields[key]
        .as_str()
        .with_context(|| format!("no {key} in {fields}"))?
        .parse()
        .with_context(|| format!("{key} in {fields}"))
}

/// A single gateway's arguments on loopback: `--data-dir DIR`, Raft,
/// HTTP, federation and both OTLP listeners on port 0, then `extra`.
pub fn gateway_args(dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--raft".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    for flag in ["--http", "--federation", "--otlp-grpc", "--otlp-http"] {
        args.push(flag.into());
        args.push("127.0.0.1:0".into());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// A running `sut-agent` (the real `meridian-agent`).
#[derive(Debug)]
pub struct AgentProcess {
    proc: Proc,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    /// The Zipkin receiver (`POST /api/v2/spans`).
    pub zipkin: SocketAddr,
    pub admin: SocketAddr,
    /// Jaeger remote sampling (`/sampling?service=`).
    pub sampling: SocketAddr,
    /// Jaeger remote sampling over gRPC (`None` when `--sampling-grpc off`).
    pub sampling_grpc: Option<SocketAddr>,
}

impl AgentProcess {
    /// Starts the agent binary at `exe` with `args` (ports should be
    /// `127.0.0.1:0`) and waits for its start line.
    pub fn start(exe: &str, args: &[String]) -> anyhow::Result<Self> {
        Self::start_named("agent", exe, args)
    }

    /// [`Self::start`], its log lines prefixed with `name`.
    pub fn start_named(name: &str, exe: &str, args: &[String]) -> anyhow::Result<Self> {
        let proc = Proc::spawn(name, exe, args)?;
        let f = proc.wait_start("agent started")?;
        Ok(Self {
            otlp_grpc: addr(&f, "otlp_grpc")?,
            otlp_http: addr(&f, "otlp_http")?,
            zipkin: addr(&f, "zipkin")?,
            admin: addr(&f, "admin")?,
            sampling: addr(&f, "sampling")?,
            sampling_grpc: addr(&f, "sampling_grpc").ok(),
            proc,
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid().unwrap_or(0)
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.proc.kill9()
    }

    /// The last `n` lines the agent logged.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        self.proc.log.tail(n)
    }

    /// Resident memory of the process, bytes (Linux `/proc`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_bytes_of(self.pid())
    }
}

/// Resident memory of process `pid`, bytes (`VmRSS` in Linux `/proc`).
pub fn rss_bytes_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// A running `sut-gateway` (the real `meridian-gateway`).
#[derive(Debug)]
pub struct GatewayProcess {
    proc: Proc,
    pub node_id: u64,
    pub http: SocketAddr,
    pub federation: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    /// `--tempo-http` as bound (`None`: off).
    pub tempo: Option<SocketAddr>,
    /// The Raft listener as bound (peers may reach it through a proxy).
    pub raft: SocketAddr,
    /// `--zipkin-http` as bound (`None` when a test turned it off).
    pub zipkin_http: Option<SocketAddr>,
}

impl GatewayProcess {
    /// Starts the gateway binary at `exe` with `args` (ports `IP:0`) and
    /// waits for its start line; its log lines are prefixed with `name`.
    /// Listeners with a fixed default port (`--zipkin-http`, :9411) get
    /// `127.0.0.1:0` unless `args` set them.
    pub fn start(name: &str, exe: &str, args: &[String]) -> anyhow::Result<Self> {
        let mut args = args.to_vec();
        if !args
            .iter()
            .any(|a| a == "--zipkin-http" || a.starts_with("--zipkin-http="))
        {
            args.extend(["--zipkin-http".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        let proc = Proc::spawn(name, exe, &args)?;
        let mut g = Self {
            proc,
            node_id: 0,
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            federation: SocketAddr::from(([0, 0, 0, 0], 0)),
            otlp_grpc: SocketAddr::from(([0, 0, 0, 0], 0)),
            otlp_http: SocketAddr::from(([0, 0, 0, 0], 0)),
            tempo: None,
            raft: SocketAddr::from(([0, 0, 0, 0], 0)),
            zipkin_http: None,
        };
        g.read_start()?;
        Ok(g)
    }

    fn read_start(&mut self) -> anyhow::Result<()> {
        let f = self.proc.wait_start("gateway started")?;
        self.http = addr(&f, "http")?;
        self.federation = addr(&f, "federation")?;
        self.otlp_grpc = addr(&f, "otlp_grpc")?;
        self.otlp_http = addr(&f, "otlp_http")?;
        self.tempo = addr(&f, "tempo_http").ok();
        self.raft = addr(&f, "raft")?;
        self.zipkin_http = match f["zipkin_http"].as_str() {
            Some("off") | None => None,
            Some(_) => Some(addr(&f, "zipkin_http")?),
        };
        self.node_id = match &f["node_id"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .with_context(|| format!("no node_id in {f}"))?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.proc.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// `http://<http addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `https://<federation addr>`, as agents take it.
    pub fn federation_url(&self) -> String {
        format!("https://{}", self.federation)
    }

    /// SIGKILL, then reap (nothing when already dead).
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.proc.kill9()
    }

    /// Kills the process if it runs and starts it again with the same
    /// arguments; the addresses are the new start line's (with port 0 they
    /// change).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.proc.respawn()?;
        self.read_start()
    }

    /// The last `n` lines the gateway logged (this run).
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        self.proc.log.tail(n)
    }

    /// Waits until the gateway logs a line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        self.proc
            .log
            .wait_line(0, timeout, |l| l.contains(needle))
            .map(|(l, _)| l)
            .with_context(|| format!("{} never logged {needle:?}", self.proc.name))
    }
}

/// The value of a Prometheus sample `name{labels}` in a text exposition.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name_and_labels).then(|| v.parse().ok())?
    })
}
