//! mgmt's layering, checked (docs/ARCHITECTURE.md, "mgmt inside: layers and rooms").
//!
//! Reads every file under `mgmt/src`, collects the `crate::` (and, in
//! main.rs, `crossline_mgmt::`) paths it names, outside comments, `super::`
//! resolved, and sorts both ends into rooms: `services::<name>` and `live`
//! (services), `http::api`, `http::web`, `http::console`, `ingest` and `cli`
//! (surfaces), `http` (the HTTP helpers every surface shares), `storage`,
//! and the infrastructure modules (`clock`, `metrics`, `feed`, ...).
//! The composition root (`server`, `config`, `demo`, `lib` and `main.rs`
//! as `cli`) may name anything; nothing else may name it.
//!
//! Fails on: a service naming a surface or the shared HTTP room; a surface
//! naming another surface; storage naming a service or surface;
//! infrastructure naming anything but infrastructure; anyone naming the
//! composition root; and any cycle between rooms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Root,
    Surface,
    SharedHttp,
    Service,
    Storage,
    Infra,
}

/// The room of a module path (`["services", "routing", "hours"]` ->
/// `services::routing`).
fn room(path: &[String]) -> String {
    let first = path.first().map(String::as_str).unwrap_or("lib");
    match first {
        // `services::RepoFuture` is an item of the services room itself
        "services" => match path.get(1) {
            Some(s) if !s.starts_with(|c: char| c.is_ascii_uppercase()) => {
                format!("services::{s}")
            }
            _ => "services".to_string(),
        },
        "http" => match path.get(1).map(String::as_str) {
            Some(s @ ("api" | "web" | "console")) => format!("http::{s}"),
            _ => "http".to_string(),
        },
        other => other.to_string(),
    }
}

fn layer(room: &str) -> Layer {
    match room {
        "server" | "demo" | "lib" | "config" | "cli" => Layer::Root,
        "http::api" | "http::web" | "http::console" | "ingest" => Layer::Surface,
        "http" => Layer::SharedHttp,
        "live" | "services" => Layer::Service,
        "storage" => Layer::Storage,
        r if r.starts_with("services::") => Layer::Service,
        _ => Layer::Infra,
    }
}

/// The module path of a file under `src` (`http/web/desk.rs` ->
/// `["http", "web", "desk"]`; `lib.rs` and `main.rs` -> `[]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !(parts.is_empty() && (stem == "lib" || stem == "main")) && stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// The code of a file without comments (line comments, doc comments and
/// block comments; string contents are kept, they never hold `crate::`).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c as char);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1] as char);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
        } else if c == b'"' {
            in_str = true;
            out.push('"');
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if c == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // a char literal such as '"'
            out.push_str("' '");
            i += 3;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str, from: usize) -> (String, usize) {
    let rest = &s[from..];
    let n = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (rest[..n].to_string(), from + n)
}

/// The paths a tree continuing at `from` names (after `prefix::`): `a::b`,
/// `{a::b, c::{d, e}}`, `*`, `self`. Each path is returned from its start.
fn paths_at(s: &str, from: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut i = from;
    let bytes = s.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && (bytes[i] as char).is_whitespace() {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    if bytes.get(i) == Some(&b'{') {
        i += 1;
        loop {
            i = skip_ws(i);
            match bytes.get(i) {
                None => return i,
                Some(b'}') => return i + 1,
                Some(b',') => i += 1,
                Some(_) => {
                    let before = i;
                    i = paths_at(s, i, prefix.clone(), out);
                    if i == before {
                        i += 1;
                    }
                }
            }
        }
    }
    let (id, end) = ident_at(s, i);
    if id.is_empty() {
        out.push(prefix);
        return i;
    }
    let mut p = prefix;
    if id != "self" {
        p.push(id);
    }
    if s[end..].starts_with("::") {
        paths_at(s, end + 2, p, out)
    } else {
        out.push(p);
        end
    }
}

/// The crate-absolute module paths a file names.
fn named_paths(module: &[String], code: &str, is_main: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut roots: Vec<&str> = vec!["crate::", "super::"];
    if is_main {
        roots.push("crossline_mgmt::");
    }
    for root in roots {
        let mut at = 0;
        while let Some(pos) = code[at..].find(root) {
            let start = at + pos;
            at = start + root.len();
            let prev = code[..start].chars().next_back();
            if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let base = if root == "super::" {
                // `super::super::x` climbs one level per `super`
                let mut base: Vec<String> = module.to_vec();
                base.pop();
                let mut j = at;
                while code[j..].starts_with("super::") {
                    base.pop();
                    j += "super::".len();
                }
                at = j;
                base
            } else {
                Vec::new()
            };
            let mut found = Vec::new();
            paths_at(code, at, base, &mut found);
            out.extend(found.into_iter().filter(|p| !p.is_empty()));
        }
    }
    out
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

/// Room -> rooms it names, with every `file: path` naming it.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut g: Graph = BTreeMap::new();
    for f in files {
        let module = module_of(src, &f);
        let is_main = f.strip_prefix(src).unwrap() == Path::new("main.rs");
        let from = if is_main {
            "cli".to_string()
        } else {
            room(&module)
        };
        let code = strip_test_modules(&strip_comments(&std::fs::read_to_string(&f).unwrap()));
        let edges = g.entry(from.clone()).or_default();
        for p in named_paths(&module, &code, is_main) {
            let to = room(&p);
            if to != from {
                let rel = f.strip_prefix(src).unwrap().display().to_string();
                edges
                    .entry(to)
                    .or_default()
                    .push(format!("{rel}: {}", p.join("::")));
            }
        }
    }
    g
}

fn violations(g: &Graph) -> Vec<String> {
    let mut v = Vec::new();
    for (from, edges) in g {
        let lf = layer(from);
        for (to, paths) in edges {
            let lt = layer(to);
            // the first path that breaks the rule (storage may name some)
            let example = match (lf, lt) {
                (Layer::Storage, Layer::Service) => match paths.iter().find(|p| !contract(p)) {
                    Some(p) => p,
                    None => continue,
                },
                _ => &paths[0],
            };
            let why = match (lf, lt) {
                (Layer::Root, _) => None,
                (_, Layer::Root) => Some("nothing may name the composition root"),
                (Layer::Service, Layer::Surface | Layer::SharedHttp) => {
                    Some("a service names a surface")
                }
                (Layer::Surface, Layer::Surface) => Some("a surface names another surface"),
                (Layer::SharedHttp, Layer::Surface) => Some("the shared HTTP room names a surface"),
                (Layer::Storage, Layer::Service) => {
                    Some("storage names a service's use case (not a repository contract)")
                }
                (Layer::Storage, Layer::Surface | Layer::SharedHttp) => {
                    Some("storage names a surface")
                }
                (Layer::Infra, l) if l != Layer::Infra => {
                    Some("infrastructure names a service or a surface")
                }
                _ => None,
            };
            if let Some(why) = why {
                v.push(format!("{why}: {from} -> {to} ({example})"));
            }
        }
    }
    for cycle in cycles(g) {
        v.push(format!("rooms in a cycle: {}", cycle.join(" -> ")));
    }
    v
}

/// Whether a path storage names is a repository contract of a service: a
/// `repo` module's item, or a type (the traits' arguments and results), never
/// a use case (a function or module of a service).
fn contract(file_path: &str) -> bool {
    let path = file_path.rsplit(": ").next().unwrap_or(file_path);
    let segs: Vec<&str> = path.split("::").collect();
    segs.contains(&"repo")
        || segs
            .last()
            .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// The code without its `#[cfg(test)] mod ... { ... }` blocks: tests may
/// set up through any room.
fn strip_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        // skip further attributes, then expect `mod name {`
        let mut t = after.trim_start();
        while t.starts_with("#[") {
            t = t[t.find(']').map_or(t.len(), |i| i + 1)..].trim_start();
        }
        let t2 = t.strip_prefix("pub ").unwrap_or(t).trim_start();
        let open = t2.find('{');
        if !t2.starts_with("mod ") || open.is_none_or(|o| t2[..o].contains(';')) {
            rest = after;
            continue;
        }
        let body = &t2[open.unwrap_or(0)..];
        let end = block_end(body);
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

/// The index just past the `}` closing the block `s` opens with `{`
/// (braces inside string and char literals do not count).
fn block_end(s: &str) -> usize {
    let b = s.as_bytes();
    let (mut depth, mut i, mut in_str) = (0usize, 0usize, false);
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 2;
        } else if c == b'{' {
            depth += 1;
        } else if c == b'}' {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    b.len()
}

/// Every strongly connected set of two or more rooms (Tarjan), the root excluded.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, n: &'a str) {
        let i = t.index.len();
        t.index.insert(n, i);
        t.low.insert(n, i);
        t.stack.push(n);
        t.on.insert(n);
        if let Some(edges) = t.g.get(n) {
            for m in edges.keys() {
                if layer(m) == Layer::Root {
                    continue;
                }
                if !t.index.contains_key(m.as_str()) {
                    visit(t, m);
                    let l = t.low[m.as_str()].min(t.low[n]);
                    t.low.insert(n, l);
                } else if t.on.contains(m.as_str()) {
                    let l = t.index[m.as_str()].min(t.low[n]);
                    t.low.insert(n, l);
                }
            }
        }
        if t.low[n] == t.index[n] {
            let mut scc = Vec::new();
            while let Some(m) = t.stack.pop() {
                t.on.remove(m);
                scc.push(m.to_string());
                if m == n {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for n in g.keys() {
        if layer(n) != Layer::Root && !t.index.contains_key(n.as_str()) {
            visit(&mut t, n);
        }
    }
    t.out
}

/// Breaches left from before the layering, each to be removed by moving
/// code to its room (docs/ARCHITECTURE.md, "Not yet in its room"). The
/// check fails on any breach not listed here, and on an entry that no
/// longer happens (so the list only shrinks). Each entry is the start of
/// a reported line: `why: from -> to`.
const NOT_YET: &[&str] = &[];

#[test]
fn mgmt_keeps_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(
        g.contains_key("services::conversations") && g.contains_key("http::web"),
        "the layers check found no rooms under {}: did mgmt/src move?",
        src.display()
    );
    let v = violations(&g);
    let new: Vec<&String> = v
        .iter()
        .filter(|b| !NOT_YET.iter().any(|k| b.starts_with(k)))
        .collect();
    assert!(
        new.is_empty(),
        "mgmt breaks its layering (docs/ARCHITECTURE.md, \"mgmt inside: layers and rooms\"):\n  {}",
        new.iter()
            .map(|b| b.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let stale: Vec<&&str> = NOT_YET
        .iter()
        .filter(|k| !v.iter().any(|b| b.starts_with(**k)))
        .collect();
    assert!(
        stale.is_empty(),
        "these breaches are gone: remove them from NOT_YET in mgmt/tests/layers.rs: {stale:?}"
    );
}

/// The check itself finds each kind of breach in a small tree.
#[test]
fn the_layers_check_finds_each_kind_of_breach() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod services; pub mod http;");
    write(
        "services/routing/mod.rs",
        "use crate::http::web::desk::x;\n// crate::http::api::y is only a comment\nuse super::conversations::Y;",
    );
    write(
        "services/conversations/mod.rs",
        "use crate::services::{routing::Q, users::{audit, auth::Role}};",
    );
    write(
        "services/users/auth.rs",
        "fn f() { crate::server::mgmt_node(); }",
    );
    write(
        "http/web/desk.rs",
        "use crate::http::{api::send_reply, error::E};",
    );
    write("http/error.rs", "use crate::http::console::Page;");
    write(
        "storage/mod.rs",
        "use crate::services::fleet::db;\nuse crate::services::users::{repo::UserRepo, auth::Role};\nuse crate::services::RepoFuture;",
    );
    write(
        "http/api/mod.rs",
        "fn f() { let s = \"{\"; }\n#[cfg(test)]\nmod tests {\n    use crate::http::web::x;\n    fn g() { let s = \"}\"; }\n}\nuse crate::services::routing::R;",
    );
    write("clock.rs", "use crate::ingest::Update;");
    write(
        "main.rs",
        "use crossline_mgmt::services::users::auth; use crossline_mgmt::server;",
    );
    write(
        "config.rs",
        "use crate::services::fleet::alerts::AlertConfig;",
    );
    let v = violations(&graph(src)).join("\n");
    for want in [
        "a service names a surface: services::routing -> http::web (services/routing/mod.rs: http::web::desk::x)",
        "a surface names another surface: http::web -> http::api",
        "the shared HTTP room names a surface: http -> http::console",
        "storage names a service's use case (not a repository contract): storage -> services::fleet (storage/mod.rs: services::fleet::db)",
        "infrastructure names a service or a surface: clock -> ingest",
        "nothing may name the composition root: services::users -> server",
        "services::conversations -> services::routing",
    ] {
        assert!(v.contains(want), "missing {want:?} in:\n{v}");
    }
    for unwanted in [
        "-> http::api (services/routing",
        "cli ->",
        "http::web -> http (",
        "storage -> services::users",
        "storage -> services (",
        "(http/api/mod.rs: http::web",
    ] {
        assert!(!v.contains(unwanted), "unexpected {unwanted:?} in:\n{v}");
    }
}
