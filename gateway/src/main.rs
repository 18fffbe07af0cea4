// glibc's malloc spent a fifth of the gateway's ingest CPU in the storage
// benchmark (BENCHMARKS.md, P4); mimalloc handles the many small
// per-span allocations far better.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
