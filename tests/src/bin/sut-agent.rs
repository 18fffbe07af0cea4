//! The agent under test: exactly `meridian-agent`, built as a binary of this
//! package so integration tests can start, kill -9 and restart it as a real
//! process (`CARGO_BIN_EXE_sut-agent`).

fn main() -> std::process::ExitCode {
    edge_agent::cli::main()
}
