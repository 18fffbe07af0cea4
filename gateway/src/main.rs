fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
