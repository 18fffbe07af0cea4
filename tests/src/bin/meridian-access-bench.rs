//! Access layer benchmark (BENCHMARKS.md, "Access: the per-request token
//! check"): what `control_plane::access::resolve` costs per request, the
//! work the access layer adds in front of every API route: parse the
//! `Authorization` header, SHA-256 the bearer token, compare it with the
//! admin token's digest, look the digest up among `--tokens` API tokens of
//! the applied control state, check expiry and build the principal (its
//! scope cloned for the request's extensions).
//!
//! Cases: a valid read token scoped to two clusters, a valid `*` token, an
//! unknown token (the 401 path), the `--admin-token`, and no header on an
//! open gateway. Single thread, `--iterations` calls per case after a
//! warm-up; the figure is the mean.
//!
//! ```text
//! meridian-access-bench [--tokens 1000] [--iterations 1000000]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench tool reports on stdout

use std::{hint::black_box, time::Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use control_plane::access::{AccessPolicy, AuthMode, resolve, secret};
use control_state::{ApiToken, Command, ControlState, Role};

// The gateway binary's allocator, so the measured code runs as it ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn bearer(token: &str) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    Ok(h)
}

fn main() -> anyhow::Result<()> {
    let tokens = arg("--tokens", 1_000)?.max(2);
    let iterations = arg("--iterations", 1_000_000)?.max(1);
    let mut state = ControlState::default();
    let mut secrets = Vec::with_capacity(tokens);
    for i in 0..tokens {
        let secret = secret::generate_os()?;
        let clusters = if i == 1 {
            vec!["*".to_owned()]
        } else {
            vec![
                format!("cluster-{}", i % 50),
                format!("cluster-{}", (i + 1) % 50),
            ]
        };
        let token = ApiToken {
            name: format!("token-{i}"),
            role: Role::Read,
            clusters: clusters.into_iter().collect(),
            expires_at_ms: Some(u64::MAX),
            created_at_ms: 0,
        };
        let digest = secret::digest_hex(&secret);
        anyhow::ensure!(
            state.apply(Command::CreateToken { digest, token }) == control_state::Applied::Done
        );
        secrets.push(secret);
    }
    let tokens_mode = AccessPolicy::new(AuthMode::Tokens, Some(ADMIN));
    let open = AccessPolicy::open();
    let cases: Vec<(&str, HeaderMap, &AccessPolicy, bool)> = vec![
        (
            "read token, 2 clusters",
            bearer(&secrets[0])?,
            &tokens_mode,
            true,
        ),
        ("read token, *", bearer(&secrets[1])?, &tokens_mode, true),
        (
            "unknown token (401)",
            bearer("mrd_00000000000000000000000000000000")?,
            &tokens_mode,
            false,
        ),
        ("--admin-token", bearer(ADMIN)?, &tokens_mode, true),
        ("no header, open gateway", HeaderMap::new(), &open, true),
    ];
    println!("access::resolve over {tokens} API tokens, {iterations} calls per case");
    for (name, headers, policy, ok) in &cases {
        anyhow::ensure!(
            resolve(headers, None, policy, &state, 1).is_ok() == *ok,
            "{name}"
        );
        for _ in 0..iterations / 10 {
            black_box(resolve(black_box(headers), None, policy, &state, 1).is_ok());
        }
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(resolve(black_box(headers), None, policy, &state, 1).is_ok());
        }
        let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
        println!("{name:<28} {ns:>8.0} ns/request");
    }
    Ok(())
}
