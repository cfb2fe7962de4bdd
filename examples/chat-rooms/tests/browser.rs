//! The page in a real browser: runs `tests/browser/test.js` (playwright-core driving Debian's headless Chromium)
//! against the built binary. Two pages chat in one room, one leaves, the server is killed and restarted on the
//! same port, and the page reconnects by itself. The same pages also chat through the binary's stateless mode
//! (Pushpin and two workers on Redis). A missing Node, npm, Chromium or Pushpin fails the test.
//!
//! The page's generated client with the TypeScript compiler of the same Node package: the committed
//! `static/client/channels.gen.js` is `channels.gen.ts` compiled (`tests/browser/tsconfig.client.json`), a program
//! using the client as the page does compiles under `--strict`, and `tests/browser/wrong-say.ts`, which passes
//! wrong inputs, fails at each of its marked lines and nowhere else.
//!
//! The screenshot of the two users chatting goes to `CARGO_TARGET_TMPDIR/demo.png`; with `UPDATE_DEMO_PNG=1` it
//! replaces `docs/demo.png`, the image the README shows.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// Held while `npm ci` runs, since the tests of this file run in parallel.
static INSTALL: Mutex<()> = Mutex::new(());

/// `tests/browser`, the Node package of these tests.
fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `npm ci` in `dir` when its `playwright-core` or `typescript` is missing.
fn install_node_modules(dir: &Path) {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if ["playwright-core", "typescript"].iter().all(|m| {
        dir.join("node_modules")
            .join(m)
            .join("package.json")
            .exists()
    }) {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("npm must be installed to run the browser test");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

fn screenshot_path() -> PathBuf {
    if std::env::var_os("UPDATE_DEMO_PNG").is_some_and(|v| v != "0") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/demo.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo.png")
    }
}

/// Runs `tests/browser/test.js` in Chromium against the built binary, with `env` added; returns its output once
/// it printed `ok`.
fn run_browser_script(env: &[(&str, &OsStr)]) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "the browser test needs Chromium at {chromium} (`apt-get install chromium`, or set CHROMIUM)"
    );
    let dir = node_dir();
    install_node_modules(&dir);
    let mut command = Command::new("node");
    command
        .arg(dir.join("test.js"))
        .current_dir(&dir)
        .env("CHAT_BIN", env!("CARGO_BIN_EXE_example-chat-rooms"))
        .env("CHROMIUM", &chromium);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .output()
        .expect("node must be installed to run the browser test");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.lines().any(|l| l == "ok"), "no `ok` in:\n{stdout}");
    stdout
}

#[test]
fn two_pages_chat_and_one_reconnects_after_a_server_restart_in_chromium() {
    let screenshot = screenshot_path();
    let _ = std::fs::remove_file(&screenshot);
    let began = Instant::now();
    let stdout = run_browser_script(&[("SCREENSHOT", screenshot.as_os_str())]);
    let size = std::fs::metadata(&screenshot).map_or(0, |m| m.len());
    assert!(size > 0, "no screenshot at {}", screenshot.display());
    println!(
        "{stdout}browser test took {:.1} s; screenshot {} ({size} bytes)",
        began.elapsed().as_secs_f64(),
        screenshot.display()
    );
}

#[test]
fn two_pages_chat_behind_pushpin_with_two_stateless_workers_in_chromium() {
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-stateless.png");
    let stdout = run_browser_script(&[
        ("SCREENSHOT", screenshot.as_os_str()),
        ("STATELESS", OsStr::new("redis://127.0.0.1:6379")),
    ]);
    println!("{stdout}");
}

/// A fresh scratch directory under `CARGO_TARGET_TMPDIR`.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chat-rooms-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Runs the package's TypeScript compiler in `cwd` with `args`.
fn tsc(cwd: &Path, args: &[&str]) -> Output {
    let dir = node_dir();
    install_node_modules(&dir);
    Command::new("node")
        .arg(dir.join("node_modules/typescript/bin/tsc"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("node must be installed to run tsc")
}

/// stdout and stderr of `output`, for messages.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Type-checks `files` of `tests/browser` against the generated client, strictly and with neither DOM nor Node
/// types (the generated file needs none).
fn type_check(name: &str, files: &[&str]) -> Output {
    let dir = scratch(name);
    let files: Vec<PathBuf> = files.iter().map(|f| node_dir().join(f)).collect();
    let config = serde_json::json!({
        "compilerOptions": {
            "strict": true,
            "noEmit": true,
            "pretty": false,
            "target": "es2022",
            "lib": ["es2022"],
            "module": "esnext",
            "moduleResolution": "bundler",
            "types": [],
            "exactOptionalPropertyTypes": true,
            "noUncheckedIndexedAccess": true,
        },
        "files": files,
    });
    std::fs::write(dir.join("tsconfig.json"), config.to_string()).expect("write tsconfig.json");
    let output = tsc(&dir, &["-p", "tsconfig.json"]);
    let _ = std::fs::remove_dir_all(&dir);
    output
}

#[test]
fn the_committed_javascript_client_is_the_compiled_typescript_client() {
    let out = scratch("tsc-client");
    let config = node_dir().join("tsconfig.client.json");
    let output = tsc(
        &node_dir(),
        &[
            "-p",
            &config.to_string_lossy(),
            "--outDir",
            &out.to_string_lossy(),
        ],
    );
    assert!(output.status.success(), "tsc failed:\n{}", text(&output));
    let compiled =
        std::fs::read_to_string(out.join("channels.gen.js")).expect("tsc wrote channels.gen.js");
    let committed_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("static/client/channels.gen.js");
    let committed =
        std::fs::read_to_string(&committed_path).expect("read the committed channels.gen.js");
    assert!(
        compiled == committed,
        "{} is not channels.gen.ts compiled: run `bash scripts/regenerate-clients.sh`",
        committed_path.display()
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_program_using_the_client_as_the_page_does_passes_tsc_strict() {
    let output = type_check("tsc-usage", &["client-usage.ts"]);
    assert!(output.status.success(), "tsc failed:\n{}", text(&output));
}

#[test]
fn wrong_inputs_fail_to_compile_at_the_route_they_name() {
    let source =
        std::fs::read_to_string(node_dir().join("wrong-say.ts")).expect("read wrong-say.ts");
    let output = type_check("tsc-wrong", &["wrong-say.ts"]);
    assert!(!output.status.success(), "tsc accepted wrong inputs");
    let diagnostics = String::from_utf8_lossy(&output.stdout).into_owned();

    // Each line marked `// error: <route>` names its route and gets an error; no other line does.
    let lines: Vec<&str> = source.lines().collect();
    let expected: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let (code, route) = line.split_once("// error: ")?;
            let route = route.trim();
            assert!(code.contains(route), "line {} does not name {route}", i + 1);
            Some((i + 1, route))
        })
        .collect();
    assert!(!expected.is_empty(), "wrong-say.ts marks no line");
    let mut got: Vec<usize> = diagnostics
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("wrong-say.ts(")?;
            rest.split(',').next()?.parse().ok()
        })
        .collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(
        got,
        expected.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "errors on other lines than the marked ones:\n{diagnostics}"
    );
    for (line, route) in expected {
        assert!(
            diagnostics
                .lines()
                .any(|d| d.contains(&format!("wrong-say.ts({line},")) && d.contains("error TS")),
            "no error for {route} at line {line}:\n{diagnostics}"
        );
    }
    // The first mistake, a misspelt member of `say`'s input, is reported against that input's type.
    assert!(
        diagnostics.contains("'txt' does not exist in type 'Say'"),
        "{diagnostics}"
    );
}
