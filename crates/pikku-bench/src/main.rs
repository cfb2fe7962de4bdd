//! `pikku-bench`: the load generator (see the crate docs and `docs/benchmarks.md`).

use std::process::ExitCode;

use pikku_bench::args::Args;

const USAGE: &str = "\
usage: pikku-bench <scenario> [flags]
       pikku-bench table --results <dir>

scenarios:
  echo     --connections 50 --window 4 --payload 64
  fanout   --subscribers 1000 --window 8 [--rate 0 --topic t --publisher-url URL
           --publisher-pid PID --broker-pid PID]
  idle     --connections 15000 --topics 100 --sample 100 [--concurrency 64] [--active 0]
  connect  [--concurrency 32]
  attack   --mode header|partial|drip|json-hold --connections N --hold 10 [--concurrency 64]
           header: [--declared-bytes 1000000]   partial: [--frame-bytes 1048576 --partial-bytes N
           --write-timeout 10]   drip: [--declared-bytes 1000000 --drip-ms 1000]
           json-hold: [--messages 4 --payload 2097152 --message JSON --linger-ms 200]
  flood    --subscribers 1000 --flood-rate 4500 [--flood-topic flood --flood-message JSON
           --sub-message JSON --bystander-url URL --echo-message JSON --echo-every-ms 5
           --connect-every-ms 100]
  soak     --connections 15000 --duration-secs 1800 --sample-secs 10 --out FILE.csv
           [--topics 100 --echoers 300 --echo-every-ms 100 --publish-rate 50 --churn-per-s 50]
  broadcast --role subscribe --subscribers 1000 --count 10 [--topic all --settle 10]
           --role publish --count 10 --rate 1 [--topic all]
message templates: JSON with placeholders {t} (send time µs), {seq}, {topic}, {conn}, {payload}
common flags:
  --url ws://127.0.0.1:8080/bench  --server-pid PID  --duration 5  --warmup 1  --source-ips 16

Prints the numbers, then one `RESULT {json}` line. Exit status: 0 ok, 3 the run had failures
(errors, dead connections), 1 the run could not complete, 64 bad usage.";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(command) = argv.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    if command == "--help" || command == "-h" || command == "help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match Args::parse(argv) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("pikku-bench: {e}\n\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    if command == "table" {
        return match table(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pikku-bench table: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !pikku_bench::scenario::NAMES.contains(&command.as_str()) {
        eprintln!("pikku-bench: unknown command `{command}`\n\n{USAGE}");
        return ExitCode::from(64);
    }
    println!("pikku-bench {command}");
    match pikku_bench::scenario::run(&command, args) {
        Ok(report) => {
            report.print();
            if report.get("ok").and_then(|v| v.as_bool()) == Some(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("pikku-bench {command}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn table(mut args: Args) -> pikku_bench::Result<()> {
    let dir: std::path::PathBuf = args.required("results")?;
    args.finish()?;
    print!("{}", pikku_bench::table::render(&dir)?);
    Ok(())
}
