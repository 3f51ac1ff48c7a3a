//! The `idhost` binary. Exit codes: 0 success; 1 a source or operation failed; 2 the config or
//! the command line is invalid; 3 a plugin could not be loaded or found.

fn main() -> std::process::ExitCode {
    idhost::app::main()
}
