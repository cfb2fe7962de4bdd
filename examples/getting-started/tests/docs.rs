//! docs/getting-started.md shows this example's source files: they must stay word for word the same.

fn contains_file(doc: &str, file: &str) {
    let source = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|err| panic!("{file}: {err}"));
    assert!(
        doc.contains(&format!("```rust\n{source}```")),
        "docs/getting-started.md no longer shows {file} as it is: copy the file into the page"
    );
}

#[test]
fn the_page_shows_the_example_as_it_is() {
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/getting-started.md");
    let doc = std::fs::read_to_string(page).expect("docs/getting-started.md");
    contains_file(&doc, "src/lib.rs");
    contains_file(&doc, "src/main.rs");
}

#[test]
fn the_facade_front_page_shows_the_example_as_it_is() {
    let front = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crates/pikku/src/lib.rs");
    let front = std::fs::read_to_string(front).expect("crates/pikku/src/lib.rs");
    // The page's doc comment, without its `//! ` prefixes.
    let doc: String = front
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| format!("{}\n", line.strip_prefix(' ').unwrap_or(line)))
        .collect();
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"))
        .expect("src/lib.rs");
    assert!(
        doc.contains(&format!("```no_run\n{source}")),
        "the facade's front page (crates/pikku/src/lib.rs, # A first app) no longer shows src/lib.rs as it is"
    );
}
