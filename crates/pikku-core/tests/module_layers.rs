//! The top-level modules of pikku-core form layers: no module depends, through `crate::` paths, on a module that
//! depends back on it. A cycle would make "the one place" of a concept ambiguous and the modules inseparable.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Every `crate::<module>` a source file names outside comments and its unit tests.
fn dependencies(source: &str) -> BTreeSet<String> {
    let code: String = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // `crate::` itself, not the end of a longer path such as `pikku_core::`.
            !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn collect(dir: &Path, top: Option<&str>, graph: &mut BTreeMap<String, BTreeSet<String>>) {
    for entry in fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let module = top.map_or(name.clone(), str::to_owned);
        if path.is_dir() {
            collect(&path, Some(&module), graph);
        } else if path.extension().is_some_and(|e| e == "rs") && module != "lib" {
            let deps = dependencies(&fs::read_to_string(&path).expect("source"));
            graph
                .entry(module.clone())
                .or_default()
                .extend(deps.into_iter().filter(|d| *d != module));
        }
    }
}

/// A cycle through `start`, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let last = path.last().unwrap().clone();
        for next in graph.get(&last).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if graph.contains_key(next) && seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn top_level_modules_have_no_import_cycles() {
    let mut graph = BTreeMap::new();
    collect(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        None,
        &mut graph,
    );
    assert!(graph.len() > 10, "modules found: {:?}", graph.keys());
    for module in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, module) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}
