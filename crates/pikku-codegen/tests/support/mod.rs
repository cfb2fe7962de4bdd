//! Shared by the tests: the Node package in `tests/node` (installed with `npm ci` when missing), scratch
//! directories inside it (so compiled programs find its `node_modules`), and `tsc`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

static INSTALL: Mutex<()> = Mutex::new(());

/// `tests/node`, with its dependencies installed.
pub(crate) fn node_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if ["typescript", "ws", "ajv-formats", "@asyncapi/specs"]
        .iter()
        .any(|m| !dir.join("node_modules").join(m).exists())
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm must be installed to run the TypeScript tests");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    dir
}

/// A fresh directory `tests/node/out-<name>` holding the generated files of the conformance fixture.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = node_dir().join(format!("out-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    fixture_files()
        .write(&dir)
        .expect("write the generated files");
    dir
}

/// The description of the conformance fixture.
pub(crate) fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance.description.json")
}

/// What the generator makes of the conformance fixture's description.
pub(crate) fn fixture_files() -> pikku_codegen::GeneratedFiles {
    let json = std::fs::read_to_string(fixture_path()).expect("read the fixture description");
    pikku_codegen::generate_from_json(&json).expect("the fixture description generates")
}

/// The compiler options of the type checks: strict, with neither DOM nor Node types, so the generated file
/// must stand alone.
pub(crate) fn strict_options() -> serde_json::Value {
    serde_json::json!({
        "strict": true,
        "noEmit": true,
        "pretty": false,
        "target": "es2022",
        "lib": ["es2022"],
        "module": "esnext",
        "moduleResolution": "bundler",
        "types": [],
        "noUnusedLocals": true,
        "noUnusedParameters": true,
        "noImplicitOverride": true,
        "noImplicitReturns": true,
        "exactOptionalPropertyTypes": true,
        "noUncheckedIndexedAccess": true,
        "noPropertyAccessFromIndexSignature": true,
        "verbatimModuleSyntax": true,
    })
}

/// Writes `dir/tsconfig.json` for `files` with `options` and runs the TypeScript compiler on it.
pub(crate) fn tsc(dir: &Path, files: &[&str], options: serde_json::Value) -> Output {
    let config = serde_json::json!({ "compilerOptions": options, "files": files });
    std::fs::write(dir.join("tsconfig.json"), config.to_string()).expect("write tsconfig.json");
    let tsc = node_dir().join("node_modules/typescript/bin/tsc");
    Command::new("node")
        .arg(tsc)
        .args(["-p", "tsconfig.json"])
        .current_dir(dir)
        .output()
        .expect("node must be installed to run tsc")
}

/// stdout and stderr of `output`, for messages.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
