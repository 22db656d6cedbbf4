//! The module layering: every top-level module of `src/` sits on a layer, imports only
//! modules on its own layer or below (a short, named list of exceptions aside), and no
//! two modules import each other, directly or around a cycle.
//!
//! An import is any `crate::MODULE` path in code (test code included, marked `(tests)` in
//! the table); comments, doc links and string literals are not imports. `tools/layers.sh`
//! prints the table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Low to high. A module may import its own layer and the layers below it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "L0 vocabulary",
        &["constant_time", "logging", "media", "uri", "utc"],
    ),
    (
        "L1 containers, inputs, config",
        &["config", "mux", "rtp", "source"],
    ),
    ("L2 streams", &["stream"]),
    ("L3 authorization", &["auth"]),
    (
        "L4 protocols",
        &[
            "dash", "hls", "http", "mss", "player", "pull", "rtmp", "rtsp", "srt", "webrtc",
        ],
    ),
    ("L5 shard state", &["catalog", "shard"]),
    ("L6 I/O", &["runtime"]),
];

/// Imports that run from a lower layer to a higher one, each with its reason. Keep it short.
const UPWARD: &[(&str, &str, &str)] = &[
    (
        "http",
        "shard",
        "http::service runs the request phases against the shard's state (`ShardState`: \
         catalog, authorizer, stream views, counters), handed in by the connection",
    ),
    (
        "http",
        "catalog",
        "http::service's phases read the shard's `Catalog` (token parameter, the routed \
         stream's `StreamSpec`, player scripts, API key): the same reason",
    ),
];

#[derive(Default)]
struct Edge {
    code: bool,
    tests: bool,
}

#[test]
fn modules_are_layered_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    println!("{}", table(&graph));

    let layer_of = |m: &str| {
        LAYERS
            .iter()
            .position(|(_, ms)| ms.contains(&m))
            .unwrap_or(usize::MAX)
    };
    let mut problems = Vec::new();
    for m in graph.keys() {
        if !LAYERS.iter().any(|(_, ms)| ms.contains(&m.as_str())) {
            problems.push(format!("module `{m}` is on no layer: add it to LAYERS"));
        }
    }
    for (from, tos) in &graph {
        for to in tos.keys() {
            let allowed = UPWARD.iter().any(|(f, t, _)| f == from && t == to);
            let (lf, lt) = (layer_of(from), layer_of(to));
            if lf != usize::MAX && lt != usize::MAX && lt > lf && !allowed {
                problems.push(format!(
                    "`{from}` ({}) imports `{to}` ({}), a higher layer",
                    LAYERS[lf].0, LAYERS[lt].0
                ));
            }
        }
    }
    for (from, to, _) in UPWARD {
        if !graph.get(*from).is_some_and(|tos| tos.contains_key(*to)) {
            println!("note: the allowed upward import {from} → {to} is gone; drop it from UPWARD");
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        problems.push(format!("import cycle: {}", cycle.join(" → ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `from → to → (code, tests)` for every top-level module of `src/` (not `lib.rs`/`main.rs`).
fn import_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, Edge>> {
    let mut graph: BTreeMap<String, BTreeMap<String, Edge>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("read src/") {
        let path = entry.expect("dir entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        collect_rs(&path, &mut files);
        let code: Vec<(PathBuf, String)> = files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f).expect("read source");
                (f, code_only(&text))
            })
            .collect();
        // Files of `#[cfg(test)] mod NAME;` modules: NAME.rs and everything under NAME/.
        let test_dirs: Vec<PathBuf> = code
            .iter()
            .flat_map(|(file, code)| {
                let stem = file.file_stem().unwrap_or_default();
                let dir = file.parent().unwrap().to_path_buf();
                let dir = if stem == "mod" { dir } else { dir.join(stem) };
                test_modules(code).into_iter().map(move |m| dir.join(m))
            })
            .collect();
        let edges = graph.entry(name.clone()).or_default();
        for (file, code) in &code {
            let test_file = test_dirs
                .iter()
                .any(|d| file.starts_with(d) || *file == d.with_extension("rs"));
            for (module, in_tests) in crate_paths(code) {
                if module != name {
                    let edge = edges.entry(module).or_default();
                    edge.code |= !(in_tests || test_file);
                    edge.tests |= in_tests || test_file;
                }
            }
        }
    }
    graph
}

fn collect_rs(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            collect_rs(&entry.expect("dir entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The source with comments removed and string and char literals blanked, so that only code
/// is searched (and braces inside literals do not count).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            'r' if matches!(c.get(i + 1), Some('"' | '#')) && starts_literal(&c, i) => {
                // A raw string: r"...", r#"..."# (or br"...").
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{7f}'), or a lifetime ('a).
                if c.get(i + 1) == Some(&'\\') {
                    // Quote, backslash and the escaped character, then up to the quote.
                    i += 3;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    out.push_str("' '");
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Whether the `r` at `i` starts a raw string literal (`r"`, `br"`), not an identifier's end.
fn starts_literal(c: &[char], i: usize) -> bool {
    let ident = |k: usize| c[k].is_alphanumeric() || c[k] == '_';
    match i {
        0 => true,
        _ if !ident(i - 1) => true,
        1 => c[0] == 'b',
        _ => c[i - 1] == 'b' && !ident(i - 2),
    }
}

/// The top-level module of every `crate::MODULE` path in `code`, and whether the path sits
/// in test code (an item under `#[cfg(test)]`).
fn crate_paths(code: &str) -> Vec<(String, bool)> {
    let c: Vec<char> = code.chars().collect();
    let ident = |mut i: usize| {
        let start = i;
        while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
            i += 1;
        }
        (c[start..i].iter().collect::<String>(), i)
    };
    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut test_armed = false;
    let mut test_depth: Option<usize> = None;
    let mut i = 0;
    while i < c.len() {
        let at = |s: &str| {
            s.chars()
                .enumerate()
                .all(|(k, ch)| c.get(i + k) == Some(&ch))
        };
        if at("#[cfg(test)]") {
            test_armed = true;
            i += "#[cfg(test)]".len();
            continue;
        }
        match c[i] {
            '{' => {
                if test_armed && test_depth.is_none() {
                    test_depth = Some(depth);
                }
                test_armed = false;
                depth += 1;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if test_depth == Some(depth) {
                    test_depth = None;
                }
            }
            ';' if test_depth.is_none() => test_armed = false,
            _ => {}
        }
        let in_tests = test_armed || test_depth.is_some();
        let word_start = i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if word_start && at("crate::") {
            i += "crate::".len();
            if c.get(i) == Some(&'{') {
                // `crate::{a::b, c}`: the first segment of each path in the group.
                let mut level = 0;
                let mut expect = true;
                while i < c.len() {
                    match c[i] {
                        '{' => {
                            level += 1;
                            expect = level == 1;
                            i += 1;
                        }
                        '}' => {
                            level -= 1;
                            i += 1;
                            if level == 0 {
                                break;
                            }
                        }
                        ',' if level == 1 => {
                            expect = true;
                            i += 1;
                        }
                        ch if expect && (ch.is_alphabetic() || ch == '_') => {
                            let (name, next) = ident(i);
                            found.push((name, in_tests));
                            expect = false;
                            i = next;
                        }
                        _ => i += 1,
                    }
                }
            } else {
                let (name, next) = ident(i);
                if !name.is_empty() {
                    found.push((name, in_tests));
                }
                i = next;
            }
            continue;
        }
        i += 1;
    }
    found
}

/// The names of the `#[cfg(test)] mod NAME;` declarations in `code` (test modules in files
/// of their own).
fn test_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("#[cfg(test)]") {
        let mut rest = code[at + "#[cfg(test)]".len()..].trim_start();
        // Further attributes, and a visibility.
        while rest.starts_with("#[") {
            rest = rest.split_once(']').map_or("", |(_, r)| r).trim_start();
        }
        if let Some(r) = rest.strip_prefix("pub") {
            rest = r.trim_start();
            if rest.starts_with('(') {
                rest = rest.split_once(')').map_or("", |(_, r)| r).trim_start();
            }
        }
        let Some(r) = rest.strip_prefix("mod ") else {
            continue;
        };
        let r = r.trim_start();
        let end = r
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        if r[end..].trim_start().starts_with(';') {
            found.push(r[..end].to_string());
        }
    }
    found
}

/// One cycle of the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, Edge>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, Edge>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|tos| tos.keys()) {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// `from→{to,to(tests)}` per module, by layer, then the allowed upward imports.
fn table(graph: &BTreeMap<String, BTreeMap<String, Edge>>) -> String {
    let mut out = String::new();
    for (layer, modules) in LAYERS {
        out.push_str(&format!("{layer}:\n"));
        for m in *modules {
            let tos: Vec<String> = graph
                .get(*m)
                .into_iter()
                .flatten()
                .map(|(to, e)| match (e.code, e.tests) {
                    (true, _) => to.clone(),
                    (false, _) => format!("{to}(tests)"),
                })
                .collect();
            out.push_str(&format!("  {m}→{{{}}}\n", tos.join(",")));
        }
    }
    out.push_str("upward imports allowed:\n");
    for (from, to, why) in UPWARD {
        out.push_str(&format!("  {from}→{to}: {why}\n"));
    }
    out
}
