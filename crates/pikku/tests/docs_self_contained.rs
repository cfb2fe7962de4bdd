//! The documentation stands on its own: every reference a reader meets can be followed inside the repository.
//!
//! Scans the repository's tracked sources and docs (`crates/`, `examples/`, `docs/`, `bench/`, `fuzz/` and the
//! README) and fails, listing `file:line`, for:
//! - a section sign, the mark of a section number in a document the reader does not have (RFC sections are
//!   written "RFC 6455, section 5.2");
//! - a path into documents outside the repository;
//! - in comments and docs, a bare citation id made of `D` or `H` and one or two digits, as left by references
//!   to numbered decisions or rules that no page here defines;
//! - a `` `docs/<page>.md`, *Heading* `` reference (the form rustdoc uses, since it cannot link to these pages)
//!   whose page or heading does not exist;
//! - in Markdown files, a relative link to a file that does not exist, or to a heading that does not exist.
//!
//! The fix is always the same: say the fact where it is needed, or point to the page and section of
//! `docs/protocol.md`, `docs/semantics.md` or `docs/decisions.md` that says it.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Directories (relative to the repository root) whose files are scanned, and the top-level files.
const SCANNED_DIRS: &[&str] = &["crates", "examples", "docs", "bench", "fuzz"];
const SCANNED_FILES: &[&str] = &["README.md"];
/// File kinds scanned, by extension.
const EXTENSIONS: &[&str] = &["rs", "md", "toml", "sh", "py", "html", "js"];
/// Never scanned: build output, installed packages, lock files.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", ".git", "corpus", "artifacts"];

/// The section sign, built from its code point so this file does not trip its own check.
const SECTION_SIGN: char = '\u{a7}';

/// Paths of documents that live outside the repository.
fn outside_paths() -> Vec<String> {
    [
        "spec/protocol.md",
        "spec/semantics.md",
        "seed/channels-functions.md",
        "design.md",
        "style.md",
    ]
    .iter()
    .map(|tail| format!("{}/{tail}", "shared"))
    .chain([format!("{}/{}", "shared", "spec")])
    .collect()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// The files to scan, relative to the root: git's tracked files when git is there, otherwise a walk.
fn scanned_files(root: &Path) -> Vec<PathBuf> {
    let tracked = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            out.stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
                .collect::<Vec<_>>()
        });
    let candidates = tracked.unwrap_or_else(|| {
        let mut all = Vec::new();
        walk(root, Path::new(""), &mut all);
        all
    });
    let mut files: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|path| in_scope(path) && root.join(path).is_file())
        .collect();
    files.sort();
    files
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let rel = rel.join(&name);
        match entry.file_type() {
            Ok(kind)
                if kind.is_dir() && !SKIPPED_DIRS.contains(&name.to_string_lossy().as_ref()) =>
            {
                walk(root, &rel, out);
            }
            Ok(kind) if kind.is_file() => out.push(rel),
            _ => {}
        }
    }
}

fn in_scope(path: &Path) -> bool {
    let text = path.to_string_lossy();
    let top = path
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let in_dirs = top.is_some_and(|top| SCANNED_DIRS.contains(&top.as_str()));
    let skipped = path
        .components()
        .any(|c| SKIPPED_DIRS.contains(&c.as_os_str().to_string_lossy().as_ref()));
    let kind_ok = path
        .extension()
        .is_some_and(|ext| EXTENSIONS.contains(&ext.to_string_lossy().as_ref()));
    (SCANNED_FILES.contains(&text.as_ref()) || in_dirs) && !skipped && kind_ok
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The part of a line that is comment or documentation, by file kind; `None` for a plain code line.
fn prose_of<'a>(kind: &str, line: &'a str) -> Option<&'a str> {
    match kind {
        "md" | "toml" | "html" => Some(line),
        "rs" | "js" => line.find("//").map(|at| &line[at..]),
        "sh" | "py" => line.find('#').map(|at| &line[at..]),
        _ => None,
    }
}

/// Bare citation ids: a `D` or an `H` followed by one or two digits, standing alone as a word (so not `0xD3`,
/// `H264` or `h2`).
fn citation_ids(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        if c != 'D' && c != 'H' {
            continue;
        }
        if i > 0 && word(chars[i - 1]) {
            continue;
        }
        let digits = chars[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=2).contains(&digits) {
            continue;
        }
        let end = i + 1 + digits;
        if end < chars.len() && word(chars[end]) {
            continue;
        }
        found.push(chars[i..end].iter().collect());
    }
    found
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown page: its headings (numbered like GitHub when repeated) and explicit
/// `<a id="…">` / `<a name="…">` anchors.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for marker in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(at) = rest.find(marker) {
                rest = &rest[at + marker.len()..];
                if let Some(end) = rest.find('"') {
                    out.insert(rest[..end].to_owned());
                }
            }
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(&line[hashes..]);
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
    }
    out
}

/// Relative link targets of one Markdown line (inline links, images and reference definitions), outside
/// inline code.
fn link_targets(line: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            plain.push(c);
        }
    }
    let mut targets = Vec::new();
    let mut rest = plain.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(
                rest[..end]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    }
    let trimmed = plain.trim_start();
    if trimmed.starts_with('[') {
        if let Some(at) = trimmed.find("]: ") {
            targets.push(
                trimmed[at + 3..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    }
    targets
        .into_iter()
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// `` `docs/<page>.md`, *Heading* `` references in a line: (page, heading).
fn page_references(line: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("`docs/") {
        rest = &rest[at + 1..];
        let Some(end) = rest.find('`') else { break };
        let page = rest[..end].to_owned();
        rest = &rest[end + 1..];
        // Only a page name (`docs/protocol.md`), not a directory or a placeholder (`docs/`, `docs/<page>.md`).
        let name = page
            .strip_prefix("docs/")
            .and_then(|p| p.strip_suffix(".md"));
        if !name.is_some_and(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        }) {
            continue;
        }
        if let Some(after) = rest.strip_prefix(", *") {
            if let Some(close) = after.find('*') {
                found.push((page, after[..close].to_owned()));
            }
        } else {
            found.push((page, String::new()));
        }
    }
    found
}

struct Scan {
    root: PathBuf,
    anchors: HashMap<PathBuf, BTreeSet<String>>,
    problems: Vec<String>,
}

impl Scan {
    fn anchors_of(&mut self, page: &Path) -> Option<&BTreeSet<String>> {
        if !self.anchors.contains_key(page) {
            let text = fs::read_to_string(page).ok()?;
            self.anchors.insert(page.to_owned(), anchors(&text));
        }
        self.anchors.get(page)
    }

    fn report(&mut self, file: &Path, line: usize, what: impl std::fmt::Display, text: &str) {
        self.problems.push(format!(
            "{}:{line}: {what}\n    {}",
            file.display(),
            text.trim()
        ));
    }

    fn check_link(&mut self, file: &Path, line_no: usize, target: &str, text: &str) {
        let (path_part, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target, None),
        };
        let page = if path_part.is_empty() {
            self.root.join(file)
        } else {
            let base = self.root.join(file);
            base.parent().expect("a file has a parent").join(path_part)
        };
        if !page.exists() {
            self.report(
                file,
                line_no,
                format_args!("link to a missing file `{target}`"),
                text,
            );
            return;
        }
        let Some(anchor) = anchor.filter(|a| !a.is_empty()) else {
            return;
        };
        if extension(&page) != "md" {
            return;
        }
        let known = self.anchors_of(&page).is_some_and(|a| a.contains(anchor));
        if !known {
            self.report(
                file,
                line_no,
                format_args!("link to a missing heading `{target}`"),
                text,
            );
        }
    }

    fn check_page_reference(
        &mut self,
        file: &Path,
        line_no: usize,
        page: &str,
        heading: &str,
        text: &str,
    ) {
        let path = self.root.join(page);
        if !path.is_file() {
            self.report(
                file,
                line_no,
                format_args!("reference to a missing page `{page}`"),
                text,
            );
            return;
        }
        if heading.is_empty() || extension(&path) != "md" {
            return;
        }
        let anchor = slug(heading);
        if !self.anchors_of(&path).is_some_and(|a| a.contains(&anchor)) {
            self.report(
                file,
                line_no,
                format_args!("reference to a missing heading *{heading}* of `{page}`"),
                text,
            );
        }
    }

    fn check_file(&mut self, file: &Path) {
        let Ok(text) = fs::read_to_string(self.root.join(file)) else {
            return;
        };
        let kind = extension(file);
        let outside = outside_paths();
        let mut fenced = false;
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.contains(SECTION_SIGN) {
                self.report(
                    file,
                    line_no,
                    "section sign: a section number the reader cannot look up",
                    line,
                );
            }
            if let Some(path) = outside.iter().find(|p| line.contains(p.as_str())) {
                self.report(
                    file,
                    line_no,
                    format_args!("path outside the repository `{path}`"),
                    line,
                );
            }
            let in_fence = kind == "md" && {
                if line.trim_start().starts_with("```") {
                    fenced = !fenced;
                    true
                } else {
                    fenced
                }
            };
            let Some(prose) = prose_of(&kind, line).filter(|_| !in_fence) else {
                continue;
            };
            for id in citation_ids(prose) {
                self.report(
                    file,
                    line_no,
                    format_args!("citation id `{id}` that no page here defines"),
                    line,
                );
            }
            for (page, heading) in page_references(prose) {
                self.check_page_reference(file, line_no, &page, &heading, line);
            }
            if kind == "md" {
                for target in link_targets(line) {
                    self.check_link(file, line_no, &target, line);
                }
            }
        }
    }
}

#[test]
fn docs_cite_only_what_the_repository_holds() {
    let root = repo_root();
    let files = scanned_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("docs/protocol.md")) && files.len() > 50,
        "the scan found too few files under {}: {files:?}",
        root.display()
    );
    let mut scan = Scan {
        root,
        anchors: HashMap::new(),
        problems: Vec::new(),
    };
    for file in &files {
        scan.check_file(file);
    }
    assert!(
        scan.problems.is_empty(),
        "{} references a reader cannot follow:\n\n{}\n\nSay the fact where it is needed, or point to the page and \
         section that says it: a Markdown link such as [close codes](protocol.md#close-codes) in docs/ and READMEs, \
         or \"see `docs/protocol.md`, *Close codes*\" in code comments and rustdoc. Cite RFC sections as \
         \"RFC 6455, section 5.2\".",
        scan.problems.len(),
        scan.problems.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_are_meant_to() {
    assert_eq!(
        citation_ids("see D9 and (H11), not 0xD3, H264, h2, D12x"),
        ["D9", "H11"]
    );
    assert_eq!(slug("Frames from the `client`"), "frames-from-the-client");
    assert_eq!(slug("Send after close"), "send-after-close");
    assert_eq!(
        link_targets("a [link](protocol.md#close-codes), `[not](code.md)`, ![img](soak.png) and [web](https://x.y)"),
        ["protocol.md#close-codes", "soak.png"]
    );
    assert_eq!(
        page_references("see `docs/protocol.md`, *Close codes*, and `docs/hubs.md`, not `docs/` or `docs/<x>.md`"),
        [
            ("docs/protocol.md".to_owned(), "Close codes".to_owned()),
            ("docs/hubs.md".to_owned(), String::new())
        ]
    );
    let page = "# Title\n## Close codes\n```\n## not a heading\n```\n## Close codes\n<a id=\"extra\"></a>\n";
    let found = anchors(page);
    for anchor in ["title", "close-codes", "close-codes-1", "extra"] {
        assert!(found.contains(anchor), "{anchor} in {found:?}");
    }
    assert!(!found.contains("not-a-heading"));
}
