//! The `meridian-agent` binary: all in [`edge_agent::cli`].

// The agent runs on every node: mimalloc (as the gateway) cut the
// allocator's share of its CPU (BENCHMARKS.md, "Agent performance").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    edge_agent::cli::main()
}
