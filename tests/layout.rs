//! The source layout of the host crates (and the SDK) stays readable: no
//! production file is longer than 600 lines, and no two sibling modules
//! depend on each other, directly or around a loop.
//!
//! Both checks read the sources as text, with the standard library only, so
//! they run in a second and say exactly which file to split or which
//! reference to move.
//!
//! **What is counted.** A file's production part is everything before its
//! trailing test module: the first line that is exactly `#[cfg(test)]`
//! (at the top level, so unindented) followed, after blank lines and other
//! attributes, by a line starting `mod tests`. That line and everything after
//! it is left out of both checks.
//!
//! **What a reference is.** Comments, string literals and character literals
//! are blanked out first. A reference is then a path starting with `crate::`
//! or `super::` anywhere in the code (`use` declarations, including nested
//! `{...}` groups, and paths in expressions and types alike). Each is resolved
//! to the module path it names: `crate::a::b` is `a::b`; `super::` goes up one
//! level from the file's own module (`api/tasks.rs` is `api::tasks`,
//! `api/mod.rs` and `api.rs` are `api`, `lib.rs` and `main.rs` are the crate
//! root). Relative paths (`tasks::submit` after a `mod tasks;`), `self::`,
//! `$crate::` and glob imports are not followed.
//!
//! **What an edge is.** A reference from module `M` to path `P` is lifted to
//! the level where they part: with `k` the length of the path they share, it
//! is an edge `M[k] -> P[k]` among the children of `M[..k]`, kept only when
//! `P[..=k]` is a module (a file or a directory of the crate), not an item
//! such as `super::AppState`. So `api/tasks.rs` using `super::workflows::x`
//! is the edge `tasks -> workflows` in `api`; `store/tasks.rs` using
//! `crate::admission::Rejection` is `store -> admission` at the crate root
//! (a directory module is one node at its parent's level, whose edges are
//! those of every file inside it); a parent using its own child, or a
//! `lib.rs`/`mod.rs` declaring and re-exporting its children, is no edge.
//! A cycle in any directory's graph fails the test, with the reference
//! behind each of its edges.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// The most lines a production source file may have.
const MAX_LINES: usize = 600;

#[test]
fn production_files_are_at_most_600_lines() {
    let mut too_long: Vec<(usize, String)> = Vec::new();
    for krate in workspace_crates() {
        for file in &krate.files {
            if file.lines.len() > MAX_LINES {
                too_long.push((file.lines.len(), file.display.clone()));
            }
        }
    }
    too_long.sort_by(|a, b| b.cmp(a));
    let list: Vec<String> = too_long
        .iter()
        .map(|(count, file)| format!("  {file}: {count} lines"))
        .collect();
    assert!(
        list.is_empty(),
        "{} production source files are over {MAX_LINES} lines (test modules at the end \
         not counted); split them by what each part does:\n{}",
        list.len(),
        list.join("\n")
    );
}

#[test]
fn sibling_modules_do_not_depend_on_each_other_in_a_cycle() {
    let mut cycles = Vec::new();
    for krate in workspace_crates() {
        cycles.extend(krate_cycles(&krate));
    }
    assert!(
        cycles.is_empty(),
        "{} import cycles among sibling modules (a -> b: a refers to b through `crate::` \
         or `super::`); move what both need into a module of its own, or down into one \
         of them:\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

// The parser's own specification, on small inputs.

#[test]
fn a_trailing_test_module_is_not_counted() {
    let text = "use a;\n\nfn f() {}\n\n#[cfg(test)]\n#[allow(unused)]\nmod tests {\n    use super::x;\n}\n";
    assert_eq!(production_lines(text).len(), 4);
    let indented = "fn f() {\n    #[cfg(test)]\n    mod tests {}\n}\n";
    assert_eq!(production_lines(indented).len(), 4);
    let other_module = "#[cfg(test)]\nmod test_support;\nfn f() {}\n";
    assert_eq!(production_lines(other_module).len(), 3);
}

#[test]
fn references_are_read_from_use_trees_and_paths() {
    let code = blank_comments_and_strings(
        "use super::{a, b::{C, d}, self};\n\
         use crate::x::{y as z, *};\n\
         fn f() { super::super::e::g(); let _ = crate::h::<u8>; }\n\
         macro_rules! m { () => { $crate::i::j }; }\n\
         pub(crate) fn k() {} pub(super) fn l() {}\n",
    );
    let paths: Vec<(Vec<String>, usize)> = paths_from(&code)
        .into_iter()
        .map(|(path, line)| (path.split("::").map(str::to_owned).collect(), line))
        .collect();
    let expect = |p: &str, line: usize| (p.split("::").map(str::to_owned).collect(), line);
    assert_eq!(
        paths,
        vec![
            expect("super::a", 1),
            expect("super::b::C", 1),
            expect("super::b::d", 1),
            expect("super::self", 1),
            expect("crate::x::y", 2),
            expect("crate::x", 2),
            expect("super::super::e::g", 3),
            expect("crate::h", 3),
        ]
    );
}

#[test]
fn comments_strings_and_chars_are_blanked_keeping_lines() {
    let code = blank_comments_and_strings(
        "a // crate::x\n/* super::y\n /* nested */ */ b\n\"crate::z\" r#\"super::w\"# 'c' '\\'' 'a: \n",
    );
    assert_eq!(code.lines().count(), 4);
    assert!(!code.contains("crate") && !code.contains("super"), "{code}");
    assert!(
        code.contains('a') && code.contains('b') && code.contains("'a:"),
        "{code}"
    );
}

#[test]
fn references_are_lifted_to_the_level_where_modules_part() {
    let modules: BTreeSet<Vec<String>> = [
        "api",
        "api::tasks",
        "api::workflows",
        "store",
        "store::tasks",
        "admission",
    ]
    .iter()
    .map(|m| module_path(m))
    .collect();
    let edge = |from: &str, to: &str| lift(&module_path(from), &module_path(to), &modules);
    assert_eq!(
        edge("api::tasks", "api::workflows::x"),
        Some((
            module_path("api"),
            "tasks".to_owned(),
            "workflows".to_owned()
        ))
    );
    assert_eq!(
        edge("store::tasks", "admission::Rejection"),
        Some((Vec::new(), "store".to_owned(), "admission".to_owned()))
    );
    assert_eq!(
        edge("api::tasks", "api::AppState"),
        None,
        "an item, not a module"
    );
    assert_eq!(
        edge("store", "store::tasks"),
        None,
        "a parent using its child"
    );
    assert_eq!(
        edge("", "store::tasks"),
        None,
        "the crate root using a module"
    );
}

#[test]
fn a_cycle_is_reported_with_the_reference_behind_each_edge() {
    let file = |display: &str, module: &str, text: &str| SourceFile {
        display: display.to_owned(),
        module: module_path(module),
        lines: text.lines().map(str::to_owned).collect(),
    };
    let krate = Crate {
        src: "host/x/src".to_owned(),
        files: vec![
            file(
                "host/x/src/lib.rs",
                "",
                "pub mod a;\npub mod b;\nuse crate::a::A;\n",
            ),
            file("host/x/src/a.rs", "a", "use crate::b::B;\n"),
            file("host/x/src/b/mod.rs", "b", "mod c;\n"),
            file(
                "host/x/src/b/c.rs",
                "b::c",
                "// crate::d\nfn f() { super::super::a::g() }\n",
            ),
            file("host/x/src/d.rs", "d", "use super::a;\n"),
        ],
    };
    assert_eq!(
        krate_cycles(&krate),
        vec![
            "host/x/src: a -> b -> a\n    \
             a -> b: host/x/src/a.rs:1 `crate::b::B`\n    \
             b -> a: host/x/src/b/c.rs:2 `super::super::a::g`"
                .to_owned()
        ]
    );
}

// Reading the workspace.

/// One crate's sources.
struct Crate {
    /// The crate's `src` directory relative to the workspace root, with `/`.
    src: String,
    files: Vec<SourceFile>,
}

/// One `.rs` file's production part.
struct SourceFile {
    /// Relative to the workspace root, with `/`.
    display: String,
    /// The file's module path inside its crate (`["api", "tasks"]`).
    module: Vec<String>,
    /// The lines before the trailing test module.
    lines: Vec<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace members under `host/` and `sdk`, from the root
/// `Cargo.toml`'s `members = [...]` (a trailing `/*` is expanded to the
/// directories under it that hold a `Cargo.toml`), with the sources in their
/// `src` directories.
fn workspace_crates() -> Vec<Crate> {
    let root = workspace_root();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("the workspace Cargo.toml");
    let mut members = Vec::new();
    for member in workspace_members(&manifest) {
        if !(member.starts_with("host/") || member == "sdk" || member.starts_with("sdk/")) {
            continue;
        }
        match member.strip_suffix("/*") {
            Some(parent) => {
                let entries = fs::read_dir(root.join(parent)).expect("a member glob's directory");
                let mut dirs: Vec<String> = entries
                    .map(|entry| entry.expect("a directory entry").path())
                    .filter(|path| path.join("Cargo.toml").is_file())
                    .filter_map(|path| {
                        let name = path.file_name()?.to_str()?.to_owned();
                        Some(format!("{parent}/{name}"))
                    })
                    .collect();
                dirs.sort();
                members.extend(dirs);
            }
            None => members.push(member),
        }
    }
    let crates: Vec<Crate> = members
        .into_iter()
        .map(|member| format!("{member}/src"))
        .filter(|src| root.join(src).is_dir())
        .map(|src| {
            let mut files = Vec::new();
            read_sources(&root, &src, &mut files);
            files.sort_by(|a, b| a.display.cmp(&b.display));
            Crate { src, files }
        })
        .collect();
    assert!(
        crates
            .iter()
            .any(|krate| krate.src.starts_with("host/") && !krate.files.is_empty()),
        "no sources found under host/*/src: the members list in {} was not read",
        root.join("Cargo.toml").display()
    );
    crates
}

/// The quoted entries of the `members = [...]` list.
fn workspace_members(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("\nmembers") else {
        return Vec::new();
    };
    let rest = &manifest[start..];
    let Some(open) = rest.find('[') else {
        return Vec::new();
    };
    let Some(close) = rest[open..].find(']') else {
        return Vec::new();
    };
    rest[open + 1..open + close]
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| {
            line.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every `.rs` file under `dir` (relative to `root`), recursively.
fn read_sources(root: &Path, dir: &str, files: &mut Vec<SourceFile>) {
    let entries = fs::read_dir(root.join(dir)).expect("a source directory");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let display = format!("{dir}/{name}");
        if path.is_dir() {
            read_sources(root, &display, files);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let text = fs::read_to_string(&path).expect("a readable source file");
            let src_end = display.find("/src/").expect("a path under src/") + "/src/".len();
            let mut module: Vec<String> =
                display[src_end..].split('/').map(str::to_owned).collect();
            module.pop();
            if !matches!(stem, "lib" | "main" | "mod") {
                module.push(stem.to_owned());
            }
            let lines = production_lines(&text)
                .into_iter()
                .map(str::to_owned)
                .collect();
            files.push(SourceFile {
                display,
                module,
                lines,
            });
        }
    }
}

/// The lines before the trailing test module (all of them when there is
/// none): see the module documentation.
fn production_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_end() != "#[cfg(test)]" {
            continue;
        }
        let next = lines[i + 1..]
            .iter()
            .map(|line| line.trim_end())
            .find(|line| !line.is_empty() && !line.starts_with("#["));
        let tests = next.and_then(|line| line.strip_prefix("mod tests"));
        if tests.is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_')) {
            return lines[..i].to_vec();
        }
    }
    lines
}

// The sibling graph.

/// The cycles among sibling modules of one crate, one message per strongly
/// connected set of modules.
fn krate_cycles(krate: &Crate) -> Vec<String> {
    // Every module of the crate: each file's module path and its ancestors.
    let mut modules: BTreeSet<Vec<String>> = BTreeSet::new();
    for file in &krate.files {
        for len in 1..=file.module.len() {
            modules.insert(file.module[..len].to_vec());
        }
    }
    // Per directory (parent module path): from -> to -> the first reference.
    type Edges = BTreeMap<String, BTreeMap<String, String>>;
    let mut graphs: BTreeMap<Vec<String>, Edges> = BTreeMap::new();
    for file in &krate.files {
        let code = blank_comments_and_strings(&file.lines.join("\n"));
        for (path, line) in paths_from(&code) {
            let segments: Vec<&str> = path.split("::").collect();
            let Some(target) = resolve(&file.module, &segments) else {
                continue;
            };
            if let Some((parent, from, to)) = lift(&file.module, &target, &modules) {
                graphs
                    .entry(parent)
                    .or_default()
                    .entry(from)
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| {
                        let written = path.strip_suffix("::self").unwrap_or(&path);
                        format!("{}:{line} `{written}`", file.display)
                    });
            }
        }
    }
    let mut messages = Vec::new();
    for (parent, edges) in &graphs {
        let dir = if parent.is_empty() {
            krate.src.clone()
        } else {
            format!("{}/{}", krate.src, parent.join("/"))
        };
        for members in strongly_connected(edges) {
            let cycle = shortest_cycle(edges, &members);
            let mut message = format!("{dir}: {}", cycle.join(" -> "));
            if members.len() + 1 > cycle.len() {
                let all: Vec<&str> = members.iter().map(String::as_str).collect();
                message.push_str(&format!(
                    " (and around: {} all reach each other)",
                    all.join(", ")
                ));
            }
            for pair in cycle.windows(2) {
                message.push_str(&format!(
                    "\n    {} -> {}: {}",
                    pair[0], pair[1], edges[&pair[0]][&pair[1]]
                ));
            }
            messages.push(message);
        }
    }
    messages
}

/// `crate::`/`super::` paths in blanked code, as written (`super::a::b`),
/// with their 1-based line numbers.
fn paths_from(code: &str) -> Vec<(String, usize)> {
    let tokens = tokenize(code);
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (token, line) = &tokens[i];
        let starts_path = matches!(token.as_str(), "crate" | "super")
            && tokens.get(i + 1).is_some_and(|(next, _)| next == "::")
            && !(i > 0 && matches!(tokens[i - 1].0.as_str(), "$" | "::"));
        if !starts_path {
            i += 1;
            continue;
        }
        let mut end = i;
        for path in use_tree(&tokens, &mut end) {
            paths.push((path.join("::"), *line));
        }
        i = end.max(i + 1);
    }
    paths
}

/// Parses a use tree or a path at `tokens[*i]`: `a::b::{c, d::*, e as f}`
/// gives `a::b::c`, `a::b::d`, `a::b::e`. A glob, a turbofish or anything else
/// ends a path; `as` renames are skipped.
fn use_tree(tokens: &[(String, usize)], i: &mut usize) -> Vec<Vec<String>> {
    let token = |i: usize| tokens.get(i).map(|(token, _)| token.as_str());
    match token(*i) {
        Some("{") => {
            *i += 1;
            let mut paths = Vec::new();
            loop {
                match token(*i) {
                    None => break,
                    Some("}") => {
                        *i += 1;
                        break;
                    }
                    Some(",") => *i += 1,
                    Some(_) => {
                        let before = *i;
                        paths.extend(use_tree(tokens, i));
                        // Skip what is not a path (`as alias`) up to the next item.
                        while !matches!(token(*i), None | Some(",") | Some("}")) {
                            *i += 1;
                        }
                        if *i == before {
                            *i += 1;
                        }
                    }
                }
            }
            paths
        }
        Some(segment) if is_identifier(segment) => {
            *i += 1;
            let segment = segment.to_owned();
            let rest = if token(*i) == Some("::") && token(*i + 1) != Some("<") {
                *i += 1;
                use_tree(tokens, i)
            } else {
                vec![Vec::new()]
            };
            rest.into_iter()
                .map(|mut path| {
                    path.insert(0, segment.clone());
                    path
                })
                .collect()
        }
        _ => vec![Vec::new()],
    }
}

/// The module path a written path names, from inside module `from`: `None`
/// for a path that does not start with `crate` or `super`, or climbs above
/// the crate root. A trailing `self` (`use super::{self}`) is dropped.
fn resolve(from: &[String], segments: &[&str]) -> Option<Vec<String>> {
    let (mut base, rest) = match segments.first() {
        Some(&"crate") => (Vec::new(), &segments[1..]),
        Some(&"super") => {
            let ups = segments
                .iter()
                .take_while(|segment| **segment == "super")
                .count();
            let kept = from.len().checked_sub(ups)?;
            (from[..kept].to_vec(), &segments[ups..])
        }
        _ => return None,
    };
    base.extend(
        rest.iter()
            .filter(|segment| **segment != "self")
            .map(|s| (*s).to_owned()),
    );
    Some(base)
}

/// A reference from module `from` to `target` as an edge among siblings:
/// `(parent, from's child of parent, target's child of parent)`, where parent
/// is the longest path both share; `None` when either is inside the other, or
/// the target's sibling is not a module.
fn lift(
    from: &[String],
    target: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<(Vec<String>, String, String)> {
    let shared = from.iter().zip(target).take_while(|(a, b)| a == b).count();
    if shared >= from.len() || shared >= target.len() {
        return None;
    }
    if !modules.contains(&target[..=shared]) {
        return None;
    }
    Some((
        target[..shared].to_vec(),
        from[shared].clone(),
        target[shared].clone(),
    ))
}

/// The sets of two or more modules that all reach each other.
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    let reach = |start: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.clone()];
        while let Some(node) = todo.pop() {
            for next in edges.get(&node).into_iter().flat_map(BTreeMap::keys) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|node| (node, reach(node))).collect();
    let mut sets: Vec<BTreeSet<String>> = Vec::new();
    for (node, reached) in &reaches {
        if !reached.contains(*node) || sets.iter().any(|set| set.contains(*node)) {
            continue;
        }
        let set: BTreeSet<String> = reached
            .iter()
            .filter(|other| reaches.get(other).is_some_and(|back| back.contains(*node)))
            .cloned()
            .collect();
        if set.len() > 1 {
            sets.push(set);
        }
    }
    sets
}

/// The shortest cycle from the first of `members` back to itself, through
/// `members` only: `[a, b, a]`.
fn shortest_cycle(
    edges: &BTreeMap<String, BTreeMap<String, String>>,
    members: &BTreeSet<String>,
) -> Vec<String> {
    let start = members.iter().next().expect("a non-empty set").clone();
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(node) = queue.pop_front() {
        for next in edges.get(&node).into_iter().flat_map(BTreeMap::keys) {
            if !members.contains(next) {
                continue;
            }
            if *next == start {
                let mut cycle = vec![start.clone(), node.clone()];
                let mut at = node.clone();
                while let Some(previous) = came_from.get(&at) {
                    cycle.push(previous.clone());
                    at = previous.clone();
                }
                cycle.reverse();
                return cycle;
            }
            if *next != start && !came_from.contains_key(next) {
                came_from.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    vec![start]
}

// Lexing.

fn is_identifier(token: &str) -> bool {
    token.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::`, and every other non-space character on its own, each
/// with its 1-based line.
fn tokenize(code: &str) -> Vec<(String, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((chars[start..i].iter().collect(), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push(("::".to_owned(), line));
            i += 2;
        } else {
            tokens.push((c.to_string(), line));
            i += 1;
        }
    }
    tokens
}

/// The code with comments (line, block, nested block, doc), string literals
/// (plain, byte, raw) and character literals replaced by spaces, newlines
/// kept so that line numbers stay right. Lifetimes (`'a`) stay.
fn blank_comments_and_strings(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let identifier_char = |i: usize| {
        chars
            .get(i)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && (!identifier_char(i.wrapping_sub(1))
                || (matches!(chars.get(i.wrapping_sub(1)), Some('b' | 'c'))
                    && !identifier_char(i.wrapping_sub(2))))
        {
            // A raw string `r"..."`, `r#"..."#`, `br"..."`: ends at `"` and as
            // many `#` as it started with. (`r#ident` is no string: no `"`.)
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            for _ in 0..2 + hashes {
                out.push(' ');
            }
            i += 2 + hashes;
            while i < chars.len() && !chars[i..].starts_with(&close) {
                blank(&mut out, chars[i]);
                i += 1;
            }
            for _ in 0..close.len().min(chars.len() - i.min(chars.len())) {
                out.push(' ');
            }
            i += close.len();
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
            if i < chars.len() {
                out.push(' ');
                i += 1;
            }
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: `'\''`, `'\n'`, `'\u{1F600}'`.
            out.push_str("  ");
            i += 2;
            if i < chars.len() {
                out.push(' ');
                i += 1;
            }
            while i < chars.len() && chars[i] != '\'' && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
            if i < chars.len() && chars[i] == '\'' {
                out.push(' ');
                i += 1;
            }
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            // A one-character literal: `'a'`, `'"'`.
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `"a::b"` as `["a", "b"]`; `""` is the crate root.
fn module_path(path: &str) -> Vec<String> {
    path.split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
