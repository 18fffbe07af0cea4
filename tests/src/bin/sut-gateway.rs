//! The gateway under test: exactly `meridian-gateway`, built as a binary of
//! this package so integration tests can run it as a real process.

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
