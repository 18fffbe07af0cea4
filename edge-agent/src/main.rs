//! The `meridian-agent` binary: all in [`edge_agent::cli`].

fn main() -> std::process::ExitCode {
    edge_agent::cli::main()
}
