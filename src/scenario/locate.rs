//! Where a problem is in a scenario file: line, column and the exact field
//! path (`population[1].arrival.rate`), read off the parsed TOML tree
//! (`toml_edit`, which keeps spans) instead of guessed from the text.
//!
//! serde reports an error with a span: a key (unknown field in a plain
//! table), a value (a bad value), or a whole table when the table was
//! buffered (internally tagged enums: `kind = …`, `process = …`,
//! `dist = …`). [`de_problem`] finds the node of the tree that span belongs
//! to, then, for a buffered table, the exact key or value inside it that the
//! message quotes (an exact key match, never a prefix: `serve` is not
//! `server`). Entries of `[[fault]]` are told apart by deserializing each
//! one alone (the caller's `failing_entry`), since serde's span may cover the
//! first entry only.

use std::ops::Range;

use super::Problem;

/// One key or value of the document, in document order.
#[derive(Debug)]
struct Node {
    /// `servers.count`, `population[0].arrival.rate`, `balancer.weights[2]`.
    path: String,
    /// The key's own name (empty for an array element).
    name: String,
    key: Option<Range<usize>>,
    /// The value's span; for a `[table]` or `[[table]]` entry, its header.
    value: Option<Range<usize>>,
    /// A scalar's text (a string's content, else its TOML form).
    text: Option<String>,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(t: &toml_edit::Table, prefix: &str, out: &mut Vec<Node>) {
    for (k, item) in t.iter() {
        let key = t.key(k).and_then(|k| k.span());
        walk_item(item, join(prefix, k), k, key, out);
    }
}

fn walk_item(item: &toml_edit::Item, path: String, name: &str, key: Option<Range<usize>>, out: &mut Vec<Node>) {
    use toml_edit::Item;
    match item {
        Item::None => {}
        Item::Value(v) => walk_value(v, path, name, key, out),
        Item::Table(t) => {
            out.push(Node {
                path: path.clone(),
                name: name.to_string(),
                key,
                value: t.span(),
                text: None,
            });
            walk_table(t, &path, out);
        }
        Item::ArrayOfTables(a) => {
            out.push(Node {
                path: path.clone(),
                name: name.to_string(),
                key,
                value: a.span(),
                text: None,
            });
            for (i, t) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                out.push(Node {
                    path: p.clone(),
                    name: String::new(),
                    key: None,
                    value: t.span(),
                    text: None,
                });
                walk_table(t, &p, out);
            }
        }
    }
}

fn walk_value(v: &toml_edit::Value, path: String, name: &str, key: Option<Range<usize>>, out: &mut Vec<Node>) {
    use toml_edit::Value;
    let text = match v {
        Value::String(s) => Some(s.value().clone()),
        Value::InlineTable(_) | Value::Array(_) => None,
        other => Some(other.clone().decorated("", "").to_string()),
    };
    out.push(Node {
        path: path.clone(),
        name: name.to_string(),
        key,
        value: v.span(),
        text,
    });
    match v {
        Value::InlineTable(t) => {
            for (k, v2) in t.iter() {
                let key = t.key(k).and_then(|k| k.span());
                walk_value(v2, join(&path, k), k, key, out);
            }
        }
        Value::Array(a) => {
            for (i, v2) in a.iter().enumerate() {
                walk_value(v2, format!("{path}[{i}]"), "", None, out);
            }
        }
        _ => {}
    }
}

/// Every node of a parsed document, in document order.
fn nodes(doc: &toml_edit::Document<&str>) -> Vec<Node> {
    let mut out = Vec::new();
    walk_table(doc.as_table(), "", &mut out);
    out
}

fn within(path: &str, scope: &str) -> bool {
    scope.is_empty()
        || path == scope
        || path
            .strip_prefix(scope)
            .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
}

pub(super) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.chars().count() - before.rfind('\n').map(|i| before[..=i].chars().count()).unwrap_or(0) + 1;
    (line, col)
}

fn problem(src: &str, at: Option<usize>, field: String, message: String) -> Problem {
    let (line, column) = match at {
        Some(off) => {
            let (l, c) = line_col(src, off);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    Problem {
        line,
        column,
        field,
        message,
    }
}

/// The text quoted first in backticks, as serde quotes the culprit.
fn quoted(message: &str) -> Option<&str> {
    message.split('`').nth(1).filter(|t| !t.is_empty())
}

/// Tables a scenario has at most one of, and arrays of tables it has many
/// of: writing one as the other gets its own message (serde would say
/// "invalid type: map, expected u32").
const SINGLE_TABLES: &[&str] = &[
    "servers",
    "balancer",
    "balancer.health_check",
    "balancer.tls",
    "balancer.failover",
    "game",
    "relay",
    "cache",
    "cache.flush",
    "database",
    "web",
    "web.nginx",
    "web.app",
];
const MANY_TABLES: &[&str] = &["population", "fault"];
/// The keys that choose a variant of a tagged table.
const TAGS: &[&str] = &["kind", "pick", "policy", "process", "dist"];

/// Shape problems serde words badly: `[[servers]]` for `[servers]`,
/// `[population]` for `[[population]]`, a table where a value is expected.
pub(super) fn structure(src: &str) -> Vec<Problem> {
    let Ok(doc) = toml_edit::Document::parse(src) else {
        return vec![];
    };
    let mut out = vec![];
    for n in nodes(&doc) {
        let at = n.key.clone().or(n.value.clone()).map(|r| r.start);
        let item = {
            let mut it: Option<&toml_edit::Item> = None;
            for (i, seg) in n.path.split('.').enumerate() {
                if seg.contains('[') {
                    it = None;
                    break;
                }
                it = if i == 0 {
                    doc.get(seg)
                } else {
                    it.and_then(|x| x.get(seg))
                };
            }
            it
        };
        let Some(item) = item else { continue };
        if SINGLE_TABLES.contains(&n.path.as_str()) && item.is_array_of_tables() {
            out.push(problem(
                src,
                at,
                n.path.clone(),
                format!(
                    "`[[{0}]]` is an array of tables, but a scenario has one `[{0}]` table: write `[{0}]`",
                    n.path
                ),
            ));
        }
        if MANY_TABLES.contains(&n.path.as_str()) && !item.is_array_of_tables() {
            let how = if item.is_table() || item.is_inline_table() {
                "a single table"
            } else {
                "a value"
            };
            out.push(problem(
                src,
                at,
                n.path.clone(),
                format!(
                    "`{0}` is {how}, but a scenario lists them: write one `[[{0}]]` table per {0}",
                    n.path
                ),
            ));
        }
    }
    out
}

/// Turns a TOML/serde error into a located problem with the exact field
/// path. `failing_entry(key)` says which entry of the top-level array of
/// tables `key` fails to deserialize alone.
pub(super) fn de_problem(src: &str, e: &toml::de::Error, failing_entry: &dyn Fn(&str) -> Option<usize>) -> Problem {
    let message = e.message().trim().to_string();
    let Ok(doc) = toml_edit::Document::parse(src) else {
        // A TOML syntax error: the position is all there is.
        let at = e.span().map(|s| s.start);
        let field = at.map(|a| field_at(src, a)).unwrap_or_default();
        return problem(src, at, field, message);
    };
    let all = nodes(&doc);
    let span = e.span();
    let name_after = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|r| r.split('`').next())
            .map(str::to_string)
    };
    let unknown = name_after("unknown field `");
    let missing = name_after("missing field `");

    // The node the span belongs to: its value, its key, or the deepest
    // value that contains its start.
    let scope: Option<&Node> = span.as_ref().and_then(|s| {
        all.iter()
            .rev()
            .find(|n| n.value.as_ref() == Some(s))
            .or_else(|| all.iter().rev().find(|n| n.key.as_ref() == Some(s)))
            .or_else(|| {
                all.iter()
                    .filter(|n| n.value.as_ref().is_some_and(|v| v.start <= s.start && s.start < v.end))
                    .max_by_key(|n| n.path.len())
            })
    });
    let mut scope_path = scope.map(|n| n.path.clone()).unwrap_or_default();
    let mut scope_at = scope.and_then(|n| n.value.clone().or(n.key.clone())).map(|r| r.start);
    // A buffered `[[fault]]` entry: serde's span may be any entry's header;
    // ask which entry fails on its own.
    for key in MANY_TABLES {
        let head = scope_path.split(['.', '[']).next().unwrap_or("");
        if head == *key
            && !scope_path.contains('.')
            && let Some(i) = failing_entry(key)
        {
            scope_path = format!("{key}[{i}]");
            scope_at = all
                .iter()
                .find(|n| n.path == scope_path)
                .and_then(|n| n.value.clone())
                .map(|r| r.start);
        }
    }
    // The key of an unknown field itself was the span: done.
    if let (Some(s), Some(n)) = (span.as_ref(), scope)
        && n.key.as_ref() == Some(s)
        && scope_path == n.path
    {
        return problem(src, Some(s.start), n.path.clone(), message);
    }
    let inside = |n: &&Node| within(&n.path, &scope_path);
    if let Some(x) = unknown.as_deref() {
        // serde's "there are no fields" for `{ pick = "featured", room = 3 }`:
        // say which choice takes no keys.
        let message = match all
            .iter()
            .filter(inside)
            .find(|n| TAGS.contains(&n.name.as_str()) && n.path == join(&scope_path, &n.name))
        {
            Some(tag) if message.ends_with("there are no fields") => format!(
                "unknown field `{x}`: `{} = \"{}\"` takes no other key",
                tag.name,
                tag.text.as_deref().unwrap_or("")
            ),
            _ => message,
        };
        // The key named in the message, as a whole key, in the scope.
        let found = all
            .iter()
            .filter(inside)
            .filter(|n| n.name == x)
            .min_by_key(|n| n.path.matches(['.', '[']).count());
        return match found {
            Some(n) => problem(src, n.key.clone().map(|r| r.start), n.path.clone(), message),
            None => problem(src, scope_at, join(&scope_path, x), message),
        };
    }
    if let Some(x) = missing.as_deref() {
        let at = if scope_path.is_empty() { Some(0) } else { scope_at };
        let message = if scope_path.is_empty() && MANY_TABLES.contains(&x) {
            format!("{message}: add at least one `[[{x}]]` table")
        } else if scope_path.is_empty() {
            format!("{message}: add `{x}` (it has no default)")
        } else {
            message
        };
        return problem(src, at, join(&scope_path, x), message);
    }
    // A bad value: the scope itself if it is a value, else the value the
    // message quotes inside it.
    if let Some(n) = scope
        && n.path == scope_path
        && n.value.as_ref() == span.as_ref()
        && n.text.is_some()
    {
        return problem(src, n.value.clone().map(|r| r.start), n.path.clone(), message);
    }
    if let Some(t) = quoted(&message) {
        let leaves = || all.iter().filter(inside).filter(|n| n.text.is_some());
        if let Some(n) = leaves()
            .find(|n| n.text.as_deref() == Some(t))
            .or_else(|| leaves().find(|n| n.text.as_deref().is_some_and(|x| x.contains(t))))
        {
            return problem(src, n.value.clone().map(|r| r.start), n.path.clone(), message);
        }
    }
    problem(src, scope_at.or(span.map(|s| s.start)), scope_path, message)
}

/// Best-effort dotted path of the key at `offset` when the file is not
/// valid TOML: the nearest table header above it plus the keys on its line.
fn field_at(src: &str, offset: usize) -> String {
    let offset = offset.min(src.len());
    if !src.is_char_boundary(offset) {
        return String::new();
    }
    let header = |l: &str| -> String {
        // `[a.b]   # comment` → a.b
        let l = l.trim().trim_start_matches('[');
        l.split(']').next().unwrap_or("").trim().to_string()
    };
    let line_start = src[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = src[offset..].find('\n').map(|i| offset + i).unwrap_or(src.len());
    let line = &src[line_start..line_end];
    if line.trim_start().starts_with('[') {
        return header(line);
    }
    let table = src[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(header)
        .unwrap_or_default();
    let key: String = line
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let mut parts = vec![];
    if !table.is_empty() {
        parts.push(table);
    }
    if !key.is_empty() {
        parts.push(key);
    }
    parts.join(".")
}

/// Byte offset of a dotted field path (`population[1].arrival.rate`) in the
/// document, as deep as it can be followed.
pub(super) fn locate(src: &str, field: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(src).ok()?;
    let all = nodes(&doc);
    // The longest prefix of the field that is a node.
    let mut f = field.to_string();
    loop {
        if let Some(n) = all.iter().find(|n| n.path == f) {
            return n.key.clone().or(n.value.clone()).map(|r| r.start);
        }
        let cut = f.rfind(['.', '['])?;
        f.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_tables_arrays_and_inline_tables() {
        let src = "a = 1\n[t]\nb = { c = \"x\", d = [1, 2] }\n[[p]]\ne = 2\n[[p]]\ne = 3\n";
        let doc = toml_edit::Document::parse(src).unwrap();
        let paths: Vec<String> = nodes(&doc).into_iter().map(|n| n.path).collect();
        assert_eq!(
            paths,
            [
                "a", "t", "t.b", "t.b.c", "t.b.d", "t.b.d[0]", "t.b.d[1]", "p", "p[0]", "p[0].e", "p[1]", "p[1].e"
            ]
        );
        assert_eq!(locate(src, "p[1].e").map(|o| line_col(src, o)), Some((7, 1)));
        assert_eq!(locate(src, "t.b.c.zz").map(|o| line_col(src, o)), Some((3, 7)));
    }

    #[test]
    fn a_header_comment_is_not_part_of_the_field() {
        let src = "[a.b]   # note\nc = = 1\n";
        assert_eq!(field_at(src, src.find("= 1").unwrap()), "a.b.c");
    }
}
