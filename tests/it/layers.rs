//! The layer order written in `src/lib.rs` holds: every `crate::` path in the
//! library's code names a module on the same layer or below, and there is no
//! cycle between top-level modules. Test code (after `#[cfg(test)]`, and files
//! named `*test*`) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module → layer number, from the `//! N. `a`, `b` — ...` lines of lib.rs.
fn layers() -> BTreeMap<String, u32> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((n, list)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        let names = list.split(" — ").next().unwrap();
        for name in names.split(", ") {
            out.insert(name.trim_matches('`').to_owned(), n);
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the top-level modules its library code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src()).unwrap();
        let name = rel.to_string_lossy();
        if name.contains("test") || name == "main.rs" || name == "lib.rs" {
            continue;
        }
        let module = name.split(['/', '.']).next().unwrap().to_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps = out.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let dep: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !dep.is_empty() && dep != module {
                deps.insert(dep);
            }
        }
    }
    out
}

#[test]
fn every_module_is_on_a_layer_and_no_import_climbs() {
    let layers = layers();
    assert!(
        layers.len() > 10,
        "the layer list in lib.rs was not found: {layers:?}"
    );
    let mut climbs = Vec::new();
    for (module, deps) in imports() {
        let Some(&mine) = layers.get(&module) else {
            panic!("src/{module} is on no layer: add it to the list in src/lib.rs");
        };
        for dep in deps {
            let Some(&theirs) = layers.get(&dep) else {
                panic!("crate::{dep} (used by {module}) is on no layer in src/lib.rs");
            };
            if theirs > mine {
                climbs.push(format!("{module} (layer {mine}) -> {dep} (layer {theirs})"));
            }
        }
    }
    assert!(
        climbs.is_empty(),
        "imports that climb:\n{}",
        climbs.join("\n")
    );
}

#[test]
fn no_cycle_between_top_level_modules() {
    let graph = imports();
    // Depth-first search with the path kept, so a cycle is printed whole.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(dep, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}
