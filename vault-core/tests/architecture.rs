//! The kernel/extension rule, read from the source tree:
//!
//! (a) no file under `src/{token,session,mechanism,store}/` names `crate::ext` or a
//!     feature module the crate root re-exports from it (`crate::vault`,
//!     `crate::gate`, `crate::otp`, `crate::identity`): features plug in through
//!     `token::hooks`, registered by the crate root (`crate::extensions`);
//! (b) the top-level modules' `crate::X` references (outside `#[cfg(test)]` code and
//!     comments) form no cycle: every edge points from a feature towards the kernel,
//!     never back.
//!
//! `token` owns the session table and each session's state (`token::session_state`);
//! `session` implements the operations over it, so `session` depends on `token` and
//! never the other way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Directories whose files must never name the extensions.
const KERNEL: &[&str] = &["token", "session", "mechanism", "store"];

/// What a kernel file must not name: the extensions' module and the crate root's
/// re-exports of the feature modules.
const FEATURES: &[&str] = &["ext", "vault", "gate", "otp", "identity"];

/// Top-level modules that count as one node of the graph: none; kept so a future
/// exception has to be written down here, with its reason.
const ONE_NODE: &[(&str, &str)] = &[];

/// Crate-root names and the module they stand for. `extensions` is the crate root's
/// registry of the extensions (the composition root, outside the graph).
const ROOT_ALIASES: &[(&str, Option<&str>)] = &[
    ("vault", Some("ext")),
    ("gate", Some("ext")),
    ("otp", Some("ext")),
    ("identity", Some("ext")),
    ("Error", Some("error")),
    ("Result", Some("error")),
    ("Attributes", Some("attr")),
    ("pkcs11", None),
    ("extensions", None),
];

fn src() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A file that holds only tests (`#[cfg(test)] mod tests;` in its parent).
fn test_only(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The top-level module a file belongs to (`None`: the crate root).
fn top_module(rel: &str) -> Option<String> {
    let first = rel.split('/').next()?;
    let m = first.strip_suffix(".rs").unwrap_or(first);
    (m != "lib").then(|| m.to_string())
}

/// The source without comments (line comments, doc comments, block comments) and
/// string contents.
fn strip_comments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i..].starts_with(b"r#\"") {
            out.push_str("\"\"");
            i += 3;
            while i < b.len() && !b[i..].starts_with(b"\"#") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'\'' && i + 2 < b.len() && b[i + 1] == b'\\' {
            // An escaped character literal: `'\''`, `'\n'`, `'\u{..}'`.
            i += 3;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && b[i + 2] == b'\'' {
            // `'x'` (a lifetime `'a` has no closing quote).
            i += 3;
        } else if b[i] == b'"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push('"');
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The source without `#[cfg(test)]` items (a braced block or a `;` item).
fn strip_cfg_test(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let brace = item.find('{');
        let semi = item.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(sc)) if sc < b => sc + 1,
            (Some(b), _) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (i, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(sc)) => sc + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Every first path segment after `crate::`, `crate::{a, b::c}` groups included.
fn crate_names(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `vault_crate::` and the like
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1usize;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ if depth == 1 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            for it in items {
                let id: String = it
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !id.is_empty() && id != "self" {
                    names.insert(id);
                }
            }
        } else {
            let id: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !id.is_empty() {
                names.insert(id);
            }
        }
    }
    names
}

/// The files of the source tree: path relative to `src/` and code (comments and
/// test-only code removed).
fn sources() -> Vec<(String, String)> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap();
            (rel, strip_cfg_test(&strip_comments(&text)))
        })
        .filter(|(rel, _)| !test_only(rel))
        .collect()
}

/// (a): each kernel file that names an extension, with the names.
fn kernel_violations(files: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, code) in files {
        let top = top_module(rel).unwrap_or_default();
        if !KERNEL.contains(&top.as_str()) {
            continue;
        }
        let named: Vec<String> = crate_names(code)
            .into_iter()
            .filter(|n| FEATURES.contains(&n.as_str()))
            .collect();
        if !named.is_empty() {
            bad.push(format!("{rel} names crate::{}", named.join(", crate::")));
        }
    }
    bad
}

fn node(m: &str) -> String {
    ONE_NODE
        .iter()
        .find(|(a, _)| *a == m)
        .map(|(_, b)| b.to_string())
        .unwrap_or_else(|| m.to_string())
}

/// The module graph: node -> (node it names -> the files that name it).
fn graph(files: &[(String, String)]) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let tops: BTreeSet<String> = files.iter().filter_map(|(r, _)| top_module(r)).collect();
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (rel, code) in files {
        let Some(from) = top_module(rel) else {
            continue;
        };
        let from = node(&from);
        g.entry(from.clone()).or_default();
        for n in crate_names(code) {
            let to = match ROOT_ALIASES.iter().find(|(a, _)| *a == n) {
                Some((_, Some(m))) => m.to_string(),
                Some((_, None)) => continue,
                None if tops.contains(&n) => n,
                None => continue,
            };
            let to = node(&to);
            if to != from {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    g
}

/// (b): one cycle of the graph, if there is one (as the path of nodes).
fn find_cycle(g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        let next: Vec<String> = g
            .get(n)
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default();
        for m in next {
            match state.get(&m).copied().unwrap_or(0) {
                1 => {
                    let at = path.iter().position(|p| *p == m).unwrap();
                    let mut c = path[at..].to_vec();
                    c.push(m);
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(&m, g, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn describe(cycle: &[String], g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> String {
    cycle
        .windows(2)
        .map(|w| {
            let files: Vec<&String> = g[&w[0]][&w[1]].iter().collect();
            format!("{} -> {} ({files:?})", w[0], w[1])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kernel_never_names_an_extension() {
    let bad = kernel_violations(&sources());
    assert!(
        bad.is_empty(),
        "kernel files naming an extension:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_cycle_among_top_level_modules() {
    let g = graph(&sources());
    assert!(g.contains_key("ext") && g.contains_key("token"), "{g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle:\n{}", describe(&c, &g));
    }
}

#[test]
fn extensions_depend_on_the_kernel_only_one_way() {
    let g = graph(&sources());
    for k in ["token", "mechanism", "store"] {
        assert!(!g[k].contains_key("ext"), "{k} names ext: {:?}", g[k]);
    }
    assert!(g["ext"].contains_key("token"), "{:?}", g["ext"]);
}

// The checks themselves, on made-up sources: they do fail.

#[test]
fn a_kernel_file_naming_a_feature_is_caught() {
    let files = vec![
        (
            "session/objects.rs".to_string(),
            "use crate::{attr::Attributes, vault::Entry};".to_string(),
        ),
        (
            "store/mod.rs".to_string(),
            strip_comments("// crate::gate in a comment\nfn f() { crate::ext::x() }"),
        ),
        (
            "ext/vault/mod.rs".to_string(),
            "use crate::token::Token;".to_string(),
        ),
    ];
    let bad = kernel_violations(&files);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("crate::vault") && bad[1].contains("crate::ext"));
}

#[test]
fn a_cycle_is_caught() {
    let files = vec![
        (
            "token/mod.rs".to_string(),
            "use crate::store::Store;".to_string(),
        ),
        (
            "store/mod.rs".to_string(),
            "use crate::object::f;".to_string(),
        ),
        (
            "object.rs".to_string(),
            "use crate::token::Token;".to_string(),
        ),
        (
            "ext/mod.rs".to_string(),
            "use crate::token::Token;".to_string(),
        ),
    ];
    let g = graph(&files);
    let c = find_cycle(&g).expect("the cycle");
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4, "{c:?}");
    // Test-only code does not count.
    let test_code = strip_cfg_test("fn f() {}\n#[cfg(test)]\nmod tests { use crate::token::T; }");
    assert!(crate_names(&test_code).is_empty(), "{test_code}");
}
