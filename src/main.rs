//! The `ksim` binary: see `ksim --help` and contract.md.

fn main() -> std::process::ExitCode {
    ksim::cli::main()
}
