//! The conformance fixture's description against the committed generated files (`tests/golden`), the CLI's
//! `--check`, and `tsc --strict` on the output: the generated client compiles, and a wrong input does not.
//!
//! After changing the generator, refresh the golden files with
//! `PIKKU_UPDATE_GOLDEN=1 cargo test -p pikku-codegen --test golden`.

mod support;

use std::path::Path;
use std::process::Command;

use support::{fixture_files, fixture_path, scratch, strict_options, text, tsc};

fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn the_generated_files_match_the_golden_files_and_are_deterministic() {
    let files = fixture_files();
    assert_eq!(files, fixture_files(), "two runs give the same bytes");
    if std::env::var_os("PIKKU_UPDATE_GOLDEN").is_some() {
        files.write(&golden_dir()).unwrap();
    }
    let stale = files.stale(&golden_dir()).unwrap();
    assert!(
        stale.is_empty(),
        "{stale:?} differ from tests/golden: run PIKKU_UPDATE_GOLDEN=1 cargo test -p pikku-codegen --test golden"
    );
}

#[test]
fn the_cli_writes_and_checks_the_files() {
    let dir = std::env::temp_dir().join(format!("pikku-codegen-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = |check: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pikku-codegen"));
        command
            .arg("--description")
            .arg(fixture_path())
            .arg("--out")
            .arg(&dir);
        if check {
            command.arg("--check");
        }
        command.output().unwrap()
    };
    let missing = run(true);
    assert!(
        !missing.status.success(),
        "--check fails while the files are missing"
    );
    assert!(run(false).status.success());
    let check = run(true);
    assert!(check.status.success(), "{}", text(&check));
    assert_eq!(
        std::fs::read_to_string(dir.join("channels.gen.ts")).unwrap(),
        fixture_files().typescript
    );
    std::fs::write(dir.join("asyncapi.json"), "{}").unwrap();
    let stale = run(true);
    assert!(!stale.status.success());
    assert!(
        text(&stale).contains("asyncapi.json is out of date"),
        "{}",
        text(&stale)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_generated_client_and_a_correct_program_pass_tsc_strict() {
    let dir = scratch("tsc-ok");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usage.ts"),
        dir.join("usage.ts"),
    )
    .unwrap();
    let output = tsc(&dir, &["channels.gen.ts", "usage.ts"], strict_options());
    assert!(output.status.success(), "tsc failed:\n{}", text(&output));
    // As a browser project sees it: DOM types around, an older target.
    let mut browser = strict_options();
    browser["target"] = serde_json::json!("es2020");
    browser["lib"] = serde_json::json!(["es2020", "dom"]);
    let output = tsc(&dir, &["channels.gen.ts", "usage.ts"], browser);
    assert!(
        output.status.success(),
        "tsc failed with DOM types:\n{}",
        text(&output)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_inputs_fail_to_compile_at_the_route_they_name() {
    let dir = scratch("tsc-wrong");
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrong-input.ts"),
    )
    .unwrap();
    std::fs::write(dir.join("wrong-input.ts"), &source).unwrap();
    let output = tsc(&dir, &["wrong-input.ts"], strict_options());
    assert!(!output.status.success(), "tsc accepted wrong inputs");
    let diagnostics = String::from_utf8_lossy(&output.stdout).into_owned();

    // Each line marked `// error: <route>` must get an error, and no other line may.
    let lines: Vec<&str> = source.lines().collect();
    let mut expected: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            line.split("// error: ")
                .nth(1)
                .map(|route| (i + 1, route.trim()))
        })
        .collect();
    expected.sort_unstable();
    let mut got: Vec<usize> = diagnostics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("wrong-input.ts(")?;
            rest.split(',').next()?.parse().ok()
        })
        .collect();
    got.sort_unstable();
    got.dedup();
    assert!(!expected.is_empty());
    assert_eq!(
        got,
        expected.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "errors on other lines than the marked ones:\n{diagnostics}"
    );
    for (line, route) in expected {
        assert!(
            lines[line - 1].contains(route),
            "line {line} should name the route {route}"
        );
        assert!(
            diagnostics.lines().any(
                |d| d.starts_with(&format!("wrong-input.ts({line},")) && d.contains("error TS")
            ),
            "no error for {route} at line {line}:\n{diagnostics}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_documents_follow_their_specifications() {
    let dir = scratch("documents");
    let output = Command::new("node")
        .arg(support::node_dir().join("validate-documents.js"))
        .arg(&dir)
        .output()
        .expect("node must be installed");
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"asyncapi": [], "schema": []}),
        "asyncapi.json must follow AsyncAPI 3.0.0 and channels.schema.json JSON Schema 2020-12"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn awkward_names_and_schemas_compile() {
    let dir = support::node_dir().join("out-tricky");
    let _ = std::fs::remove_dir_all(&dir);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let json = std::fs::read_to_string(fixtures.join("tricky.description.json")).unwrap();
    let files = pikku_codegen::generate_from_json(&json).unwrap();
    files.write(&dir).unwrap();
    std::fs::copy(
        fixtures.join("tricky-usage.ts"),
        dir.join("tricky-usage.ts"),
    )
    .unwrap();
    let output = tsc(
        &dir,
        &["channels.gen.ts", "tricky-usage.ts"],
        strict_options(),
    );
    assert!(
        output.status.success(),
        "tsc failed:\n{}\n{}",
        text(&output),
        files
            .typescript
            .split("// ---- shared types")
            .nth(1)
            .unwrap_or("")
    );
    let report = Command::new("node")
        .arg(support::node_dir().join("validate-documents.js"))
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&report.stdout).unwrap(),
        serde_json::json!({"asyncapi": [], "schema": []}),
        "{}",
        text(&report)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
