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
