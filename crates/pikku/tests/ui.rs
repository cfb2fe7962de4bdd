//! What the compiler tells a user who gets a handler wrong.
//!
//! Each `tests/ui/*.rs` file but `pass.rs` is one common mistake, and the `.stderr` file next to it is the
//! compiler's full answer: it must carry a hint that says what to write instead. `pass.rs` holds the handler forms
//! that must keep compiling.
//!
//! The `.stderr` files depend on the compiler version: they were written by rustc 1.95, and another version words,
//! orders or prunes its notes differently. So the mistakes are only checked under the rustc they were written with
//! (`pass.rs` always is). After a toolchain update, refresh them with
//! `TRYBUILD=overwrite cargo test -p pikku --test ui`, then read each hint again, and update `WRITTEN_WITH`.

use std::path::PathBuf;
use std::process::Command;

/// The rustc release (`major.minor`) the `.stderr` files were written with.
const WRITTEN_WITH: &str = "1.95";

#[test]
fn handler_mistakes_get_hints() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass.rs");

    let rustc = rustc_release();
    if rustc.as_deref() != Some(WRITTEN_WITH) {
        eprintln!(
            "skipping the compile-fail cases: their .stderr files were written by rustc {WRITTEN_WITH}, this is \
             rustc {}",
            rustc.as_deref().unwrap_or("of an unknown version")
        );
        return;
    }
    for mistake in mistakes() {
        cases.compile_fail(mistake);
    }
}

/// Every `tests/ui/*.rs` file but `pass.rs`, in name order.
fn mistakes() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/ui")
        .expect("tests/ui exists")
        .map(|entry| entry.expect("tests/ui is readable").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "rs") && !path.ends_with("pass.rs")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "tests/ui holds the mistakes");
    files
}

/// `1.95` for `rustc 1.95.0 (…)`: the compiler cargo builds the cases with.
fn rustc_release() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc).arg("--version").output().ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    let number = version.split_whitespace().nth(1)?;
    let mut parts = number.split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}
