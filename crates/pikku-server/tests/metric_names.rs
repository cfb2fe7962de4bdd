//! The metric names in the docs and the Grafana dashboard are the ones the code records.

use std::collections::BTreeSet;

use pikku_core::telemetry::names;

fn doc(name: &str) -> String {
    let path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `pikku_…` identifier in `text`, with a histogram's series suffixes removed.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("pikku_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| base.ends_with("_seconds"))
            })
            .map_or(name.clone(), str::to_owned);
        found.insert(name);
    }
    found
}

#[test]
fn the_docs_describe_every_metric_and_the_dashboard_uses_only_real_ones() {
    let observability = doc("observability.md");
    for name in names::ALL {
        assert!(
            observability.contains(&format!("| `{name}` |")),
            "docs/observability.md has no table row for {name}"
        );
    }
    let known: BTreeSet<String> = names::ALL.iter().map(|n| (*n).to_owned()).collect();
    for (file, text) in [
        ("observability.md", observability.as_str()),
        (
            "grafana-dashboard.json",
            doc("grafana-dashboard.json").as_str(),
        ),
    ] {
        let unknown: Vec<_> = names_in(text).difference(&known).cloned().collect();
        assert!(
            unknown.is_empty(),
            "docs/{file} names metrics that do not exist: {unknown:?}"
        );
    }
    let dashboard = names_in(&doc("grafana-dashboard.json"));
    let unused: Vec<_> = known.difference(&dashboard).collect();
    assert!(unused.is_empty(), "the dashboard shows none of {unused:?}");
}
