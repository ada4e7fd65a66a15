//! The `tillgate` binary: parse the command line, set up tracing, hand over
//! to the library. Everything testable lives in `tillgate::cli`.

fn main() -> std::process::ExitCode {
    tillgate::cli::main()
}
