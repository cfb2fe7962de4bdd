//! `baseline-server --port <P> [--host <ip>] [--threads <n>]`: the bench contract with no
//! framework (see `pikku_bench::baseline`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match pikku_bench::args::Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("baseline-server: {e}");
            return ExitCode::from(64);
        }
    };
    match pikku_bench::baseline::main_with_args(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}
