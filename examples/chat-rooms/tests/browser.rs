//! The page in a real browser: runs `tests/browser/test.js` (playwright-core driving Debian's headless Chromium)
//! against the built binary. Two pages chat in one room, one leaves, the server is killed and restarted on the
//! same port, and the page reconnects by itself. A missing Node, npm or Chromium fails the test.
//!
//! The screenshot of the two users chatting goes to `CARGO_TARGET_TMPDIR/demo.png`; with `UPDATE_DEMO_PNG=1` it
//! replaces `docs/demo.png`, the image the README shows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// `npm ci` in `dir` when its `playwright-core` is missing.
fn install_node_modules(dir: &Path) {
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
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

#[test]
fn two_pages_chat_and_one_reconnects_after_a_server_restart_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "the browser test needs Chromium at {chromium} (`apt-get install chromium`, or set CHROMIUM)"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    install_node_modules(&dir);

    let screenshot = screenshot_path();
    let _ = std::fs::remove_file(&screenshot);
    let began = Instant::now();
    let output = Command::new("node")
        .arg(dir.join("test.js"))
        .current_dir(&dir)
        .env("CHAT_BIN", env!("CARGO_BIN_EXE_example-chat-rooms"))
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", &screenshot)
        .output()
        .expect("node must be installed to run the browser test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.lines().any(|l| l == "ok"), "no `ok` in:\n{stdout}");
    let size = std::fs::metadata(&screenshot).map_or(0, |m| m.len());
    assert!(size > 0, "no screenshot at {}", screenshot.display());
    println!(
        "{stdout}browser test took {:.1} s; screenshot {} ({size} bytes)",
        began.elapsed().as_secs_f64(),
        screenshot.display()
    );
}
