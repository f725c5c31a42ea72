//! The CLI's module rules, checked on the source text:
//! - `args` (the shared argument groups) names no other module of the CLI;
//! - a subcommand module (`cmd::NAME`, a file or a directory) names neither `cli`,
//!   `main` nor another subcommand: it uses only the shared modules;
//! - a shared module names neither `cli` nor any subcommand;
//! - there is no import cycle among the CLI's modules.
//!
//! A module's dependencies are the `crate::…` and `super::…` paths its files name
//! outside comments; `cmd::NAME` and everything below it count as one module. An
//! inline `mod NAME {` is taken to run to the end of its file (as test modules do).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// This file: it names the forbidden paths in its own checks.
const SELF: &str = "architecture.rs";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `cmd/vault/run.rs` -> [cmd, vault, run].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && stem == "main") {
        parts.push(stem.to_string());
    }
    if parts.is_empty() {
        parts.push("main".into());
    }
    parts
}

/// The unit a module path belongs to: `cmd::NAME` for anything under a subcommand,
/// `cmd` for `cmd/mod.rs`, else the top-level module.
fn unit_of(path: &[String]) -> String {
    match path {
        [first, name, ..] if first == "cmd" => format!("cmd::{name}"),
        [first, ..] => first.clone(),
        [] => "main".into(),
    }
}

/// The code of a line without its `//` comment (string contents are kept: the
/// CLI's strings do not spell module paths).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn ident_at(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// Absolute module paths (first two segments at most) a line names.
fn referenced(line: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(['c', 's']) {
        let at = &rest[i..];
        let boundary = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        let start: Option<Vec<String>> = if !boundary {
            None
        } else if let Some(tail) = at.strip_prefix("crate::") {
            rest = tail;
            Some(Vec::new())
        } else if at.starts_with("super::") {
            // Each `super::` climbs one level from the file's module.
            let mut base = here.to_vec();
            let mut tail = at;
            while let Some(t) = tail.strip_prefix("super::") {
                base.pop();
                tail = t;
            }
            rest = tail;
            Some(base)
        } else {
            None
        };
        let Some(mut path) = start else {
            rest = &at[1..];
            continue;
        };
        // Up to two more segments: enough to tell `cmd::NAME` apart.
        for _ in 0..2 {
            let (id, tail) = ident_at(rest);
            if id.is_empty() {
                break;
            }
            path.push(id.to_string());
            rest = tail;
            match rest.strip_prefix("::") {
                Some(t) if t.starts_with(|c: char| c.is_ascii_lowercase()) => rest = t,
                _ => break,
            }
        }
        if !path.is_empty() {
            found.push(path);
        }
    }
    found
}

/// Unit -> the units it names, from the sources in `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        if rel == Path::new(SELF) {
            continue;
        }
        let mut here = module_of(rel);
        let unit = unit_of(&here);
        let text = std::fs::read_to_string(&file).expect("read source");
        let entry = deps.entry(unit.clone()).or_default();
        for line in text.lines() {
            // An inline module (`mod tests {`, at the end of a file) is one level
            // down: its `super::` is the file's module.
            let t = line.trim_start();
            if let Some(name) = t.strip_prefix("mod ").and_then(|r| r.strip_suffix(" {")) {
                here.push(name.to_string());
            }
            for path in referenced(code(line), &here) {
                let target = unit_of(&path);
                if target != unit {
                    entry.insert(target);
                }
            }
        }
    }
    deps
}

/// The rule violations of a dependency graph, one line each.
fn violations(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut bad = Vec::new();
    for (unit, targets) in deps {
        for t in targets {
            let wrong = if unit == "args" {
                true
            } else if unit.starts_with("cmd::") {
                t == "cli" || t == "main" || t == "cmd" || t.starts_with("cmd::")
            } else if unit == "main" || unit == "cli" || unit == "cmd" {
                false
            } else {
                t == "cli" || t == "main" || t == "cmd" || t.starts_with("cmd::")
            };
            if wrong {
                bad.push(format!("{unit} names {t}"));
            }
        }
    }
    // Cycles: a depth-first search that finds a back edge.
    fn visit<'a>(
        n: &'a str,
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        bad: &mut Vec<String>,
    ) {
        state.insert(n, 1);
        stack.push(n);
        for t in deps.get(n).into_iter().flatten() {
            match state.get(t.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| *s == t).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].to_vec();
                    cycle.push(t);
                    bad.push(format!("import cycle: {}", cycle.join(" -> ")));
                }
                Some(_) => {}
                None => visit(t, deps, state, stack, bad),
            }
        }
        stack.pop();
        state.insert(n, 2);
    }
    let mut state = BTreeMap::new();
    for n in deps.keys() {
        if !state.contains_key(n.as_str()) {
            visit(n, deps, &mut state, &mut Vec::new(), &mut bad);
        }
    }
    bad
}

#[test]
fn modules_follow_the_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let deps = graph(&src);
    for unit in ["args", "cli", "main", "cmd::enroll", "cmd::vault"] {
        assert!(deps.contains_key(unit), "no module {unit} found in {src:?}");
    }
    let bad = violations(&deps);
    assert!(
        bad.is_empty(),
        "module rules broken:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn the_checker_sees_violations() {
    let here = ["cmd".to_string(), "sign".to_string()];
    let names = |line: &str| -> Vec<String> {
        referenced(line, &here).iter().map(|p| unit_of(p)).collect()
    };
    assert_eq!(names("use crate::cli::Cli;"), ["cli"]);
    assert_eq!(names("    crate::cmd::gate::before(x)"), ["cmd::gate"]);
    assert_eq!(names("use super::gate::Thing;"), ["cmd::gate"]);
    assert_eq!(names("use crate::args::{Selector, UserPin};"), ["args"]);
    assert!(names(code("let supercrate = 1; // crate::cli")).is_empty());

    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry("cmd::sign".into())
        .or_default()
        .insert("cmd::gate".into());
    deps.entry("context".into())
        .or_default()
        .insert("pin".into());
    deps.entry("pin".into())
        .or_default()
        .insert("context".into());
    deps.entry("args".into())
        .or_default()
        .insert("error".into());
    let bad = violations(&deps);
    assert!(
        bad.iter().any(|b| b == "cmd::sign names cmd::gate"),
        "{bad:?}"
    );
    assert!(bad.iter().any(|b| b == "args names error"), "{bad:?}");
    assert!(bad.iter().any(|b| b.starts_with("import cycle")), "{bad:?}");
}
