//! `bench-server --port <P> [--hub <url>]`: the bench contract built on the pikku framework.
//!
//! CONTRACT (issue 3; other programs load this server with their own clients, keep it exact):
//!
//! - Serves one channel named `bench` at the path `/bench`, `auth` false, routing property
//!   `action`, on `127.0.0.1:<P>` (`--port 0` picks a free port; print the bound address).
//! - `echo`: returns its input unchanged, so `{"action":"echo","seq":1,"t":5,"p":"xx"}` is
//!   answered `{"seq":1,"t":5,"p":"xx","action":"echo"}`.
//! - `sub` `{topic}`: subscribes this channel to `topic`; no output, so the reply is
//!   `{"action":"sub"}`.
//! - `pub` `{topic, t}`: publishes `{"topic":<topic>,"data":{"t":<t>}}` to `topic` excluding the
//!   sender; no output, so the reply is `{"action":"pub"}`.
//! - `--hub <url>` selects the event-hub backend by URL once distributed backends exist;
//!   `memory` (the default) is the in-process hub.
//! - Runs until killed (SIGTERM from `bench/run.sh`); logs errors to stderr only (the
//!   `idle` 19,000-connection run checks the log for errors).
//! - `bench/run.sh` treats exit status 2 at startup as "framework pending" and skips the
//!   framework rows; once this binary serves, the script measures it against
//!   `baseline-server` with the same load.
//!
//! The framework API is still being written; this binary is filled in once it lands.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("bench-server: framework API pending");
    ExitCode::from(2)
}
