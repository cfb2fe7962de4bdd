//! `pikku-codegen --description <file.json> --out <dir> [--check] [--title <title>]`: writes (or, with `--check`,
//! compares) `channels.gen.ts`, `channels.schema.json` and `asyncapi.json`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: pikku-codegen --description <file.json> --out <dir> [--check] [--title <title>]";

fn main() -> ExitCode {
    let mut description = None;
    let mut out = None;
    let mut check = false;
    let mut title = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--description" => description = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--title" => title = args.next(),
            "--check" => check = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(description), Some(out)) = (description, out) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let options = pikku_codegen::Options {
        title: title.unwrap_or_else(|| pikku_codegen::Options::default().title),
    };
    let files = match pikku_codegen::generate_file(&description, &options) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("pikku-codegen: {err}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        match files.stale(&out) {
            Ok(stale) if stale.is_empty() => ExitCode::SUCCESS,
            Ok(stale) => {
                for name in stale {
                    eprintln!("{} is out of date: regenerate it", out.join(name).display());
                }
                ExitCode::FAILURE
            }
            Err(err) => {
                eprintln!("pikku-codegen: {err}");
                ExitCode::FAILURE
            }
        }
    } else {
        match files.write(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("pikku-codegen: {err}");
                ExitCode::FAILURE
            }
        }
    }
}
