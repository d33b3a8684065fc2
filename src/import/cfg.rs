//! Reading an HAProxy configuration into sections of tokenised lines.
//!
//! Follows HAProxy's own line parser (`cfgparse.c`, `parse_line`): words are
//! separated by blanks; `#` starts a comment unless quoted or escaped; a
//! backslash escapes the next character (`\ `, `\#`, `\\`, `\"`, `\'`, and
//! `\t`, `\n`, `\r`, `\xNN`); double quotes group words and keep escapes;
//! single quotes group words verbatim. A section starts at a line whose first
//! word is a section keyword, whatever its indentation. Conditional blocks
//! (`.if` … `.endif`) cannot be evaluated here: their lines are skipped with
//! a warning.

use super::{ImportError, Note};
use std::path::Path;

/// One directive: its line number (1-based), its words and its text.
#[derive(Clone, Debug)]
pub struct Line {
    pub no: usize,
    pub words: Vec<String>,
    /// The line as written, trimmed, without its comment.
    pub text: String,
}

/// What a section is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
    /// A section wscap does not model (`resolvers`, `peers`, `cache`, …).
    Other(String),
}

#[derive(Clone, Debug)]
pub struct Section {
    pub kind: Kind,
    /// The name on the header line (`backend NAME`), if any.
    pub name: Option<String>,
    pub header: Line,
    pub body: Vec<Line>,
}

/// Section keywords of HAProxy 2.x/3.x.
const PROXIES: [&str; 5] = ["global", "defaults", "frontend", "backend", "listen"];
const OTHERS: [&str; 16] = [
    "resolvers",
    "peers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "log-forward",
    "fcgi-app",
    "crt-store",
    "traces",
    "acme",
    "namespace_list",
    "dynamic-update",
    "ocsp-update",
];

fn is_section(word: &str) -> bool {
    PROXIES.contains(&word) || OTHERS.contains(&word)
}

/// Splits one line into words; `Err` for an unterminated quote.
pub fn tokenize(line: &str) -> Result<(Vec<String>, String), String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.char_indices().peekable();
    let mut end = line.len();
    #[derive(PartialEq)]
    enum Q {
        No,
        Single,
        Double,
    }
    let mut q = Q::No;
    while let Some((i, c)) = chars.next() {
        match q {
            Q::Single => {
                if c == '\'' {
                    q = Q::No;
                } else {
                    cur.push(c);
                }
            }
            Q::Double | Q::No => {
                if c == '\\' {
                    in_word = true;
                    match chars.next() {
                        Some((_, 't')) => cur.push('\t'),
                        Some((_, 'n')) => cur.push('\n'),
                        Some((_, 'r')) => cur.push('\r'),
                        Some((_, 'x')) => {
                            let hex: String = (0..2).filter_map(|_| chars.next().map(|(_, h)| h)).collect();
                            match u8::from_str_radix(&hex, 16) {
                                Ok(b) => cur.push(b as char),
                                Err(_) => return Err(format!("bad escape `\\x{hex}`")),
                            }
                        }
                        Some((_, o)) => cur.push(o),
                        None => {}
                    }
                } else if q == Q::Double {
                    if c == '"' {
                        q = Q::No;
                    } else {
                        cur.push(c);
                    }
                } else if c == '"' {
                    q = Q::Double;
                    in_word = true;
                } else if c == '\'' {
                    q = Q::Single;
                    in_word = true;
                } else if c == '#' {
                    end = i;
                    break;
                } else if c.is_whitespace() {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                } else {
                    cur.push(c);
                    in_word = true;
                }
            }
        }
    }
    if q != Q::No {
        return Err("a quote is not closed".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok((words, line[..end].trim().to_string()))
}

/// Parses a whole configuration. `notes` receives warnings (skipped
/// conditional blocks, directives before any section).
pub fn parse(src: &str, file: &Path, notes: &mut Vec<Note>) -> Result<Vec<Section>, ImportError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut depth = 0usize;
    let mut skipped_from = 0usize;
    for (i, raw) in src.lines().enumerate() {
        let no = i + 1;
        let (words, text) = tokenize(raw).map_err(|m| ImportError::Syntax {
            file: file.to_path_buf(),
            line: no,
            message: m,
        })?;
        let Some(first) = words.first() else { continue };
        if let Some(dir) = first.strip_prefix('.') {
            match dir {
                "if" => {
                    if depth == 0 {
                        skipped_from = no;
                    }
                    depth += 1;
                }
                "elif" | "else" => {}
                "endif" => {
                    if depth == 0 {
                        return Err(ImportError::Syntax {
                            file: file.to_path_buf(),
                            line: no,
                            message: "`.endif` without `.if`".into(),
                        });
                    }
                    depth -= 1;
                    if depth == 0 {
                        notes.push(Note::new(
                            skipped_from,
                            format!(
                                "conditional block `.if` … `.endif` (lines {skipped_from}-{no}) cannot be evaluated \
                                 here: its lines are not imported"
                            ),
                        ));
                    }
                }
                _ => notes.push(Note::new(no, format!("`{text}`: directive not modelled"))),
            }
            continue;
        }
        if depth > 0 {
            continue;
        }
        let line = Line { no, words, text };
        let first = line.words[0].as_str();
        if is_section(first) {
            let kind = match first {
                "global" => Kind::Global,
                "defaults" => Kind::Defaults,
                "frontend" => Kind::Frontend,
                "backend" => Kind::Backend,
                "listen" => Kind::Listen,
                o => Kind::Other(o.to_string()),
            };
            let name = line.words.get(1).cloned();
            sections.push(Section {
                kind,
                name,
                header: line,
                body: vec![],
            });
        } else if let Some(s) = sections.last_mut() {
            s.body.push(line);
        } else {
            return Err(not_haproxy(file, &line));
        }
    }
    if depth > 0 {
        return Err(ImportError::Syntax {
            file: file.to_path_buf(),
            line: skipped_from,
            message: "`.if` is never closed by `.endif`".into(),
        });
    }
    if sections.is_empty() {
        return Err(ImportError::NotHaproxy {
            file: file.to_path_buf(),
            line: 1,
            message: "no section (global, defaults, frontend, backend, listen) in the file".into(),
        });
    }
    Ok(sections)
}

fn not_haproxy(file: &Path, line: &Line) -> ImportError {
    let hint = if line.text.starts_with('[') {
        " (it looks like TOML or INI)"
    } else if line.text.starts_with('{') {
        " (it looks like JSON)"
    } else if line.words[0].ends_with(':') || line.text.contains(": ") {
        " (it looks like YAML)"
    } else {
        ""
    };
    ImportError::NotHaproxy {
        file: file.to_path_buf(),
        line: line.no,
        message: format!(
            "`{}` is not an HAProxy section keyword{hint}: an HAProxy configuration starts with a section \
             (global, defaults, frontend, backend, listen, resolvers, peers, …)",
            line.words[0]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::tokenize;

    fn w(s: &str) -> Vec<String> {
        tokenize(s).unwrap().0
    }

    #[test]
    fn words_quotes_escapes_comments() {
        assert_eq!(
            w("  server s1 ws1:8080 check # a comment"),
            ["server", "s1", "ws1:8080", "check"]
        );
        assert_eq!(
            w(r#"http-request set-header X "a b" # c"#),
            ["http-request", "set-header", "X", "a b"]
        );
        assert_eq!(w(r"a\ b c\#d"), ["a b", "c#d"]);
        assert_eq!(w(r#"x 'it''s' "q\"q""#), ["x", "its", "q\"q"]);
        assert_eq!(w(r"x '\n' \x41"), ["x", "\\n", "A"]);
        assert_eq!(w("x \"\""), ["x", ""]);
        assert!(tokenize("x \"open").is_err());
        assert_eq!(tokenize("timeout tunnel 4h  # ws").unwrap().1, "timeout tunnel 4h");
    }
}
