//! The `idhost` binary. Exit codes: 0 success; 1 a source or operation failed; 2 the config or
//! the command line is invalid; 3 a plugin could not be loaded or found.

/// mimalloc instead of glibc's malloc: a sync allocates and frees a page of records at a time
/// on several threads (runtime workers, SQLite's blocking tasks), and glibc's per-thread arenas
/// fragmented under that (peak RSS) and spent a fifth of the CPU in malloc/free. Plugins keep
/// their own allocator: every value that crosses the ABI is freed by the side that made it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    idhost::app::main()
}
