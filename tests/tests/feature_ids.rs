//! Every feature ID the repository cites (`SPEC V7`, `(E1–E5)`, `C5`…) resolves to a
//! `### ID — title` heading in `docs/features.md`, so a reader who meets a citation in
//! a comment, a help text or a document finds the feature inside the repository.
//!
//! What is scanned: Rust comments and string literals (help texts cite features too),
//! Markdown, TOML manifests, the shell scripts under `scripts/` and `.ci/`, and text
//! files under `tests/`. Code itself is not scanned: `Version::V3` or `CmsVersion::V0`
//! are identifiers, not citations.
//!
//! A citation is a family letter (T, V, E, C, K, W, X) followed by a number from 1 to
//! 99 at word boundaries. Feature numbers start at 1, so `C0` (control characters) and
//! `T0` (the TOTP epoch) never match; a number followed by `.digit` is a standard's
//! name (`X9.63`), and [`NOT_CITATIONS`] lists the remaining words that look like IDs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Feature families and how many features each has (docs/features.md must list exactly
/// these, one heading each, numbered from 1 without gaps).
const FAMILIES: &[(char, u32)] = &[
    ('T', 6),
    ('V', 11),
    ('E', 10),
    ('C', 6),
    ('K', 5),
    ('W', 7),
    ('X', 6),
];

/// Words shaped like a feature ID that are something else.
const NOT_CITATIONS: &[&str] = &[
    "X11", // the X Window System
];

/// Directories never scanned: build output, VCS data, fuzz inputs (random bytes).
const SKIP_DIRS: &[&str] = &["target", ".git", "corpus", "artifacts", "node_modules"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The IDs defined by `### ID — title` headings, in order of appearance.
fn defined_ids(features_md: &str) -> Vec<String> {
    features_md
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .filter_map(|rest| {
            let (id, title) = rest.split_once(" — ")?;
            (!title.trim().is_empty()).then(|| id.trim().to_string())
        })
        .collect()
}

/// How a file's text is read for citations.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Only comments and string literals.
    Rust,
    /// All of it.
    Text,
}

fn kind_of(root: &Path, path: &Path) -> Option<Kind> {
    let rel = path.strip_prefix(root).ok()?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("rs") => Some(Kind::Rust),
        Some("md" | "toml" | "sh" | "txt") => Some(Kind::Text),
        None if rel.starts_with("scripts") || rel.starts_with(".ci") => Some(Kind::Text),
        _ => None,
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Kind)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if !SKIP_DIRS.contains(&name.as_ref()) {
                walk(root, &path, out);
            }
        } else if ft.is_file() {
            if let Some(kind) = kind_of(root, &path) {
                out.push((path, kind));
            }
        }
    }
}

/// Lexer state carried across lines of a Rust file.
#[derive(Clone, Copy, PartialEq)]
enum Lex {
    Code,
    Str,
    RawStr(usize),
    Block(usize),
}

/// The comment and string-literal text of a Rust file, line by line (1-based line
/// numbers); code outside them is blanked out.
fn rust_prose(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut state = Lex::Code;
    for (n, line) in src.lines().enumerate() {
        let c: Vec<char> = line.chars().collect();
        let mut prose = String::new();
        let mut i = 0;
        while i < c.len() {
            match state {
                Lex::Code => {
                    if c[i] == '/' && c.get(i + 1) == Some(&'/') {
                        prose.extend(&c[i..]);
                        prose.push(' ');
                        i = c.len();
                        continue;
                    } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        state = Lex::Block(1);
                        i += 2;
                        continue;
                    } else if c[i] == '"' {
                        state = Lex::Str;
                    } else if c[i] == 'r'
                        && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
                        && matches!(c.get(i + 1), Some('#' | '"'))
                    {
                        let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
                        if c.get(i + 1 + hashes) == Some(&'"') {
                            state = Lex::RawStr(hashes);
                            i += 2 + hashes;
                            continue;
                        }
                    } else if c[i] == '\'' {
                        // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime.
                        if c.get(i + 1) == Some(&'\\') {
                            let end = c[i + 2..].iter().position(|&q| q == '\'');
                            i += end.map_or(c.len(), |e| e + 3);
                            continue;
                        } else if c.get(i + 2) == Some(&'\'') {
                            i += 3;
                            continue;
                        }
                    }
                    i += 1;
                }
                Lex::Str => {
                    if c[i] == '\\' {
                        i += 2;
                        prose.push(' ');
                        continue;
                    }
                    if c[i] == '"' {
                        state = Lex::Code;
                        prose.push(' ');
                    } else {
                        prose.push(c[i]);
                    }
                    i += 1;
                }
                Lex::RawStr(h) => {
                    if c[i] == '"' && c[i + 1..].iter().take(h).filter(|&&x| x == '#').count() == h
                    {
                        state = Lex::Code;
                        prose.push(' ');
                        i += 1 + h;
                        continue;
                    }
                    prose.push(c[i]);
                    i += 1;
                }
                Lex::Block(d) => {
                    if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        state = if d == 1 { Lex::Code } else { Lex::Block(d - 1) };
                        prose.push(' ');
                        i += 2;
                        continue;
                    }
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        state = Lex::Block(d + 1);
                        i += 2;
                        continue;
                    }
                    prose.push(c[i]);
                    i += 1;
                }
            }
        }
        if !prose.trim().is_empty() {
            out.push((n + 1, prose));
        }
    }
    out
}

/// The feature IDs cited in `text`.
fn citations(text: &str) -> Vec<String> {
    let c: Vec<char> = text.chars().collect();
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut found = Vec::new();
    for i in 0..c.len() {
        if !FAMILIES.iter().any(|&(f, _)| f == c[i]) {
            continue;
        }
        // `Version::V3` (a path), `U+00E9`, `%C3` (escapes) are not citations.
        if i > 0 && (word(c[i - 1]) || matches!(c[i - 1], ':' | '+' | '%')) {
            continue;
        }
        let digits = c[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=2).contains(&digits) || c[i + 1] == '0' {
            continue;
        }
        let mut end = i + 1 + digits;
        if c.get(end).is_some_and(|l| l.is_ascii_lowercase()) {
            end += 1;
        }
        if c.get(end).is_some_and(|&n| word(n)) {
            continue;
        }
        if c.get(end) == Some(&'.') && c.get(end + 1).is_some_and(|d| d.is_ascii_digit()) {
            continue;
        }
        // A byte in a hex dump (`C3 A9`, `E2 82 AC`): followed by another hex byte.
        let hex_byte = |k: usize| {
            c.get(k).is_some_and(|h| h.is_ascii_hexdigit())
                && c.get(k + 1).is_some_and(|h| h.is_ascii_hexdigit())
                && !c.get(k + 2).is_some_and(|&h| word(h))
        };
        if c.get(end) == Some(&' ') && hex_byte(end + 1) {
            continue;
        }
        let id: String = c[i..end].iter().collect();
        if !NOT_CITATIONS.contains(&id.as_str()) {
            found.push(id);
        }
    }
    found
}

/// Every citation in the repository that has no heading: `path:line: ID`.
fn unresolved(root: &Path, known: &BTreeSet<String>) -> Vec<String> {
    let mut files = Vec::new();
    walk(root, root, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let mut bad = Vec::new();
    for (path, kind) in files {
        let Ok(src) = fs::read_to_string(&path) else {
            continue;
        };
        let lines: Vec<(usize, String)> = match kind {
            Kind::Rust => rust_prose(&src),
            Kind::Text => src
                .lines()
                .enumerate()
                .map(|(n, l)| (n + 1, l.to_string()))
                .collect(),
        };
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (n, text) in lines {
            for id in citations(&text) {
                if !known.contains(&id) {
                    bad.push(format!("{rel}:{n}: {id}"));
                }
            }
        }
    }
    bad
}

fn features_md(root: &Path) -> String {
    let path = root.join("docs/features.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn features_md_lists_every_feature_once() {
    let ids = defined_ids(&features_md(&repo_root()));
    let mut seen = BTreeMap::new();
    for id in &ids {
        *seen.entry(id.clone()).or_insert(0) += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dup.is_empty(), "features listed twice: {dup:?}");
    let expected: BTreeSet<String> = FAMILIES
        .iter()
        .flat_map(|&(f, n)| (1..=n).map(move |i| format!("{f}{i}")))
        .collect();
    let have: BTreeSet<String> = ids.into_iter().collect();
    let missing: Vec<_> = expected.difference(&have).collect();
    let extra: Vec<_> = have.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/features.md: missing headings {missing:?}, unknown headings {extra:?}"
    );
}

#[test]
fn every_cited_feature_id_resolves() {
    let root = repo_root();
    let known: BTreeSet<String> = defined_ids(&features_md(&root)).into_iter().collect();
    let bad = unresolved(&root, &known);
    assert!(
        bad.is_empty(),
        "feature IDs cited but not defined in docs/features.md (add a `### ID — title` \
         heading there, or fix the citation):\n{}",
        bad.join("\n")
    );
}

// The check can fail: an unknown ID is reported, look-alikes are not.
#[test]
fn the_scanner_reports_unknown_ids_and_skips_look_alikes() {
    // The unknown ID is assembled so this file itself cites only known IDs.
    let unknown = concat!("V1", "2");
    let text = format!("signs it (SPEC V7, {unknown}; E1–E5)");
    assert_eq!(citations(&text), ["V7", unknown, "E1", "E5"]);
    let known: BTreeSet<String> = ["V7", "E1", "E5"].map(String::from).into();
    let bad: Vec<_> = citations(&text)
        .into_iter()
        .filter(|id| !known.contains(id))
        .collect();
    assert_eq!(bad, [unknown]);
    let look_alikes = "C0 controls, T0 = 0, X9.63, X11, U+00E9, 0xE9, %C3%A9, bytes C3 A9 and \
                       E2 82 AC, CmsVersion::V3";
    assert_eq!(citations(look_alikes), Vec::<String>::new());
    let src = "let v = Version::V3; // the relay (E6)\nlet s = \"(SPEC V9)\"; /* C2\n C4 */ x";
    let prose = rust_prose(src);
    let ids: Vec<String> = prose.iter().flat_map(|(_, t)| citations(t)).collect();
    assert_eq!(ids, ["E6", "V9", "C2", "C4"]);
    assert_eq!(prose.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(defined_ids("### V7 — Attestation\n### V8 —\n## V9 — x\n") == ["V7"]);
}
