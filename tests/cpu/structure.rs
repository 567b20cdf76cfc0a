//! The crate's shape: no module of `src/` imports, directly or through others, a module that
//! imports it back (a child's imports of its own ancestors aside: a parent module is where its
//! children's shared items live).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `crate::a::b` for `src/a/b.rs` or `src/a/b/mod.rs`.
fn module_path(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    std::iter::once("crate".to_string())
        .chain(parts)
        .collect::<Vec<_>>()
        .join("::")
}

fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            // The binary is a crate of its own.
            if p.file_name().is_some_and(|n| n != "bin") {
                sources(&p, root, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root).unwrap();
            out.insert(module_path(rel), std::fs::read_to_string(&p).unwrap());
        }
    }
}

/// The paths a `use` tree names, with `{a, b::c}` groups expanded (one level deep is all the
/// crate writes).
fn use_paths(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect();
    match (tree.find('{'), tree.rfind('}')) {
        (Some(open), Some(close)) => {
            let head = tree[..open].trim_end_matches("::");
            let mut depth = 0;
            let mut items = vec![String::new()];
            for ch in tree[open + 1..close].chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(String::new());
                        continue;
                    }
                    _ => {}
                }
                items.last_mut().unwrap().push(ch);
            }
            items
                .iter()
                .filter(|i| !i.is_empty())
                .flat_map(|i| use_paths(&format!("{head}::{i}")))
                .collect()
        }
        _ => vec![tree.split(" as ").next().unwrap().to_string()],
    }
}

/// The module of `modules` that `path`, written in `from`, imports from (the longest prefix that
/// is a module).
fn resolve(from: &str, path: &str, modules: &BTreeMap<String, String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = match segs.first()? {
        &"crate" => {
            segs.remove(0);
            vec!["crate"]
        }
        &"super" | &"self" => {
            let mut b: Vec<&str> = from.split("::").collect();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                b.pop();
            }
            if segs.first() == Some(&"self") {
                segs.remove(0);
            }
            b
        }
        _ => return None,
    };
    let mut best = None;
    for s in segs {
        base.push(s);
        let cand = base.join("::");
        if modules.contains_key(&cand) {
            best = Some(cand);
        }
    }
    best
}

/// The import graph of `modules` (module → the modules it imports from).
fn import_edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in modules {
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = code.as_str();
        while let Some(at) = rest.find("use ") {
            let before = rest[..at].chars().last();
            rest = &rest[at + 4..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let Some(end) = rest.find(';') else { break };
            for p in use_paths(&rest[..end]) {
                if let Some(t) = resolve(m, &p, modules)
                    && t != *m
                    && !m.starts_with(&format!("{t}::"))
                    && !t.starts_with(&format!("{m}::"))
                {
                    edges.entry(m.clone()).or_default().insert(t);
                }
            }
        }
    }
    edges
}

/// A cycle of `edges`, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        m: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match done.get(m) {
            Some(true) => return None,
            Some(false) => {
                let from = stack.iter().position(|s| *s == m)?;
                return Some(stack[from..].iter().map(|s| s.to_string()).collect());
            }
            None => {}
        }
        done.insert(m, false);
        stack.push(m);
        for t in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(t, edges, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m, true);
        None
    }
    let mut done = BTreeMap::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut done, &mut Vec::new()))
}

#[test]
fn no_import_cycle_in_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    sources(&root, &root, &mut modules);
    assert!(modules.len() > 20, "found only {} modules", modules.len());
    let edges = import_edges(&modules);
    assert!(edges.values().map(BTreeSet::len).sum::<usize>() > 20);
    if let Some(c) = find_cycle(&edges) {
        panic!("import cycle: {}", c.join(" -> "));
    }
}

/// The checker sees a cycle where there is one.
#[test]
fn the_cycle_check_finds_a_planted_cycle() {
    let modules: BTreeMap<String, String> = [
        ("crate::a", "use crate::b::{X, Y};"),
        ("crate::b", "use super::c::Z;"),
        ("crate::c", "use crate::a;\nuse crate::b::{self, W};"),
        ("crate::d", "use crate::a::X;"),
    ]
    .into_iter()
    .map(|(m, s)| (m.to_string(), s.to_string()))
    .collect();
    let edges = import_edges(&modules);
    let cycle = find_cycle(&edges).expect("a -> b -> c -> a");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    let mut without = modules.clone();
    without.insert("crate::c".into(), "use std::fmt;".into());
    assert_eq!(find_cycle(&import_edges(&without)), None);
    assert_eq!(
        use_paths("super::{a::X, b::{Y, Z}}"),
        ["super::a::X", "super::b::Y", "super::b::Z"]
    );
}
