//! `report.html`: the Markdown report as one self-contained HTML page.
//!
//! Every report is first written as Markdown; this module turns that
//! Markdown (the subset the reports use: headings, paragraphs with
//! `**bold**`, `*italic*`/`_italic_`, `` `code` ``, backslash escapes and
//! local links, pipe tables, lists, fenced code and images) into HTML with
//! inline CSS, and replaces each image of a
//! local `.svg` chart by the chart's SVG markup, so the page needs nothing
//! else to be read offline. No external URL is ever written: links and
//! images must name files in the output folder (anything else is shown as
//! text), and the SVG namespace attribute is dropped (HTML parsers put an
//! inline `<svg>` in it anyway). Every heading gets an `id` and the page
//! opens (after its title) with a table of contents linking to the `##`
//! and `###` headings.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{ReportError, io_err};

const CSS: &str = "body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;max-width:1250px;\
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{font-size:1.7em;border-bottom:2px solid #ddd;padding-bottom:.2em}h2{font-size:1.35em;margin-top:1.6em;\
border-bottom:1px solid #eee}h3{font-size:1.1em}\
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .55em;\
text-align:left;vertical-align:top}th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}\
code{background:#f4f4f4;padding:.05em .3em;border-radius:3px;font-size:.92em}\
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;border:1px solid #e3e3e3}pre code{background:none;padding:0}\
figure{margin:1em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figure svg text{font-family:'DejaVu Sans',Verdana,sans-serif}\
figcaption{color:#555;font-size:.9em}.answer{background:#eef6ee;border-left:4px solid #3a3;padding:.6em 1em}\
.missing{color:#a00}\
nav.toc{background:#f8f8f8;border:1px solid #e3e3e3;padding:.4em 1em;margin:1em 0;font-size:.92em}\
.toc-title{font-weight:bold;margin:.2em 0}nav.toc>ul{columns:3 18em;margin:.2em 0;padding-left:1.2em}\
nav.toc li{break-inside:avoid}nav.toc ul ul{padding-left:1.1em;font-size:.93em}nav.toc a{text-decoration:none}\
nav.toc a:hover{text-decoration:underline}h2,h3{scroll-margin-top:.5em}";

/// Writes `report.html` beside the charts from the Markdown `md`; images
/// are looked up in `dir`.
pub fn write_html(path: &Path, md: &str, dir: &Path) -> Result<PathBuf, ReportError> {
    let html = to_html(md, dir);
    std::fs::write(path, html).map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// Writes `html` from the Markdown file `md` (images beside it).
pub fn write_html_from_md(md: &Path, html: &Path) -> Result<PathBuf, ReportError> {
    let text = std::fs::read_to_string(md).map_err(io_err(md))?;
    write_html(html, &text, md.parent().unwrap_or(Path::new(".")))
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A link or image target that stays inside the output folder: a plain
/// relative path without `..`, scheme or query.
pub fn is_local(target: &str) -> bool {
    !target.is_empty()
        && !target.contains("://")
        && !target.contains(':')
        && !target.starts_with('/')
        && !target.starts_with('#')
        && !target.split('/').any(|p| p == "..")
        && !target.contains(['?', '"', '<', '>', ' '])
}

/// Characters a backslash makes literal.
const ESCAPABLE: &str = "\\`*_[]()#|!<>-.";

/// Whether `c` counts as part of a word for `_` emphasis: `_` inside a
/// word (`connect_ms_p99`) is an underscore, not emphasis.
fn wordy(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

/// The end (byte offset in `r`) of an emphasis run opened by `delim` just
/// before `r`: the first `delim` preceded by a non-space that closes it
/// (for `_`, not followed by a word character; for a single `*`, not the
/// start of `**`). `None` if the opener is followed by a space or nothing
/// closes it.
fn closing(r: &str, delim: &str) -> Option<usize> {
    if r.starts_with(char::is_whitespace) || r.is_empty() || r.starts_with(delim) {
        return None;
    }
    let mut from = 1;
    while let Some(k) = r.get(from..)?.find(delim) {
        let at = from + k;
        let before = r[..at].chars().next_back();
        let after = r[at + delim.len()..].chars().next();
        let code_open = r[..at].matches('`').count() % 2 == 1;
        let ok = before.is_some_and(|c| !c.is_whitespace())
            && !code_open
            && match delim {
                "*" => after != Some('*') && before != Some('*'),
                "_" | "__" => !wordy(after),
                _ => true,
            };
        if ok {
            return Some(at);
        }
        from = at + delim.len();
    }
    None
}

/// Inline Markdown: escapes, then `` `code` ``, `**bold**`/`__bold__`,
/// `*italic*`/`_italic_` (an underscore inside a word stays one),
/// backslash escapes and `[text](file)` or `[text](#anchor)`.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    // The character before `rest`, for the word-boundary rule of `_`.
    let mut prev: Option<char> = None;
    while !rest.is_empty() {
        let start_len = rest.len();
        if let Some(r) = rest.strip_prefix('\\')
            && let Some(c) = r.chars().next()
            && ESCAPABLE.contains(c)
        {
            out.push_str(&esc(&c.to_string()));
            rest = &r[c.len_utf8()..];
        } else if let Some(r) = rest.strip_prefix('`')
            && let Some(end) = r.find('`')
        {
            let _ = write!(out, "<code>{}</code>", esc(&r[..end]));
            rest = &r[end + 1..];
        } else if let Some((delim, tag)) = [("**", "strong"), ("__", "strong"), ("*", "em"), ("_", "em")]
            .into_iter()
            .find(|(d, _)| rest.starts_with(d) && !(d.starts_with('_') && wordy(prev)))
            && let Some(end) = closing(&rest[delim.len()..], delim)
        {
            let r = &rest[delim.len()..];
            let _ = write!(out, "<{tag}>{}</{tag}>", inline(&r[..end]));
            rest = &r[end + delim.len()..];
        } else if let Some(r) = rest.strip_prefix('[')
            && let Some(close) = r.find("](")
            && let Some(end) = r[close + 2..].find(')')
        {
            let text = &r[..close];
            let target = &r[close + 2..close + 2 + end];
            if is_local(target) || is_anchor(target) {
                let _ = write!(out, "<a href=\"{}\">{}</a>", esc(target), inline(text));
            } else {
                out.push_str(&inline(text));
            }
            rest = &r[close + 3 + end..];
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push_str(&esc(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
        let used = &s[s.len() - start_len..s.len() - rest.len()];
        prev = used.chars().next_back();
    }
    out
}

/// An in-page link target: `#` and a heading id.
fn is_anchor(target: &str) -> bool {
    target
        .strip_prefix('#')
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Plain text of inline Markdown (for heading ids): code, emphasis and
/// link markup removed.
fn plain(s: &str) -> String {
    let mut t = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix('[')
            && let Some(close) = r.find("](")
            && let Some(end) = r[close + 2..].find(')')
        {
            t.push_str(&r[..close]);
            rest = &r[close + 3 + end..];
            continue;
        }
        if !matches!(c, '`' | '*' | '\\') {
            t.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    t
}

/// An id for a heading: lower-case words joined by `-` (ASCII letters and
/// digits only), made unique among `taken` by a `-2`, `-3`… suffix.
fn slug(text: &str, taken: &mut Vec<String>) -> String {
    let mut id = String::new();
    for c in plain(text).chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    let id = id.trim_end_matches('-');
    let base = if id.is_empty() { "section" } else { id }.to_string();
    let mut id = base.clone();
    let mut n = 1;
    while taken.contains(&id) {
        n += 1;
        id = format!("{base}-{n}");
    }
    taken.push(id.clone());
    id
}

/// A heading of the table of contents.
struct Heading {
    level: usize,
    id: String,
    html: String,
}

/// The table of contents: a list of the `##` headings, each with its
/// `###` headings nested under it.
fn toc(headings: &[Heading]) -> String {
    let entries: Vec<&Heading> = headings.iter().filter(|h| (2..=3).contains(&h.level)).collect();
    if entries.is_empty() {
        return String::new();
    }
    let mut s = String::from("<nav class=\"toc\">\n<p class=\"toc-title\">Contents</p>\n<ul>\n");
    let mut open_sub = false;
    let mut open_item = false;
    for h in entries {
        let link = format!("<a href=\"#{}\">{}</a>", h.id, h.html);
        if h.level == 2 || !open_item {
            if open_sub {
                s.push_str("</ul>");
                open_sub = false;
            }
            if open_item {
                s.push_str("</li>\n");
            }
            let _ = write!(s, "<li>{link}");
            open_item = true;
            if h.level == 3 {
                // A `###` before any `##`: an item of its own.
                s.push_str("</li>\n");
                open_item = false;
            }
        } else {
            if !open_sub {
                s.push_str("\n<ul>");
                open_sub = true;
            }
            let _ = write!(s, "<li>{link}</li>");
        }
    }
    if open_sub {
        s.push_str("</ul>");
    }
    if open_item {
        s.push_str("</li>\n");
    }
    s.push_str("</ul>\n</nav>\n");
    s
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    // A `\|` inside a cell is a literal bar.
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// A paragraph that is only an image: `![alt](file)`.
fn image(line: &str) -> Option<(&str, &str)> {
    let r = line.trim().strip_prefix("![")?;
    let close = r.find("](")?;
    let target = r[close + 2..].strip_suffix(')')?;
    Some((&r[..close], target))
}

/// The SVG markup of a chart file, ready to inline.
fn svg_markup(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let start = text.find("<svg")?;
    let svg = text[start..].replace(" xmlns=\"http://www.w3.org/2000/svg\"", "");
    Some(svg.trim_end().to_string())
}

/// Converts report Markdown into a complete HTML page.
pub fn to_html(md: &str, dir: &Path) -> String {
    let lines: Vec<&str> = md.lines().collect();
    let title = lines
        .iter()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("wscap report");
    let mut body = String::new();
    let mut i = 0;
    // Heading ids in use, the headings for the table of contents and where
    // it goes (after the title, else at the top).
    let mut ids: Vec<String> = vec![];
    let mut headings: Vec<Heading> = vec![];
    let mut toc_at: Option<usize> = None;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if t.is_empty() {
            i += 1;
            continue;
        }
        if t.starts_with("```") {
            let mut code = vec![];
            i += 1;
            while i < lines.len() && !lines[i].trim().starts_with("```") {
                code.push(lines[i]);
                i += 1;
            }
            i += 1;
            let _ = writeln!(body, "<pre><code>{}</code></pre>", esc(&code.join("\n")));
            continue;
        }
        if let Some(level) = (1..=6).find(|&n| t.starts_with(&format!("{} ", "#".repeat(n)))) {
            let text = t[level + 1..].trim();
            let id = slug(text, &mut ids);
            let _ = writeln!(body, "<h{level} id=\"{id}\">{}</h{level}>", inline(text));
            if level == 1 && toc_at.is_none() {
                toc_at = Some(body.len());
            }
            // The contents show the text only: a link inside a link is
            // not HTML.
            let html = esc(&plain(text));
            headings.push(Heading { level, id, html });
            i += 1;
            continue;
        }
        if t.starts_with('|') && i + 1 < lines.len() && is_separator(lines[i + 1]) {
            let _ = writeln!(body, "<table>\n<thead><tr>");
            for c in cells(t) {
                let _ = write!(body, "<th>{}</th>", inline(&c));
            }
            let _ = writeln!(body, "</tr></thead>\n<tbody>");
            i += 2;
            while i < lines.len() && lines[i].trim().starts_with('|') {
                body.push_str("<tr>");
                for c in cells(lines[i]) {
                    let _ = write!(body, "<td>{}</td>", inline(&c));
                }
                body.push_str("</tr>\n");
                i += 1;
            }
            body.push_str("</tbody></table>\n");
            continue;
        }
        if let Some((alt, target)) = image(t) {
            let file = dir.join(target);
            match (is_local(target) && target.ends_with(".svg"))
                .then(|| svg_markup(&file))
                .flatten()
            {
                Some(svg) => {
                    let _ = writeln!(
                        body,
                        "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>",
                        esc(alt)
                    );
                }
                None => {
                    let _ = writeln!(body, "<p class=\"missing\">[chart not available: {}]</p>", esc(alt));
                }
            }
            i += 1;
            continue;
        }
        let bullet = |l: &str| {
            let l = l.trim_start();
            l.strip_prefix("- ")
                .or_else(|| l.strip_prefix("* "))
                .map(str::to_string)
                .or_else(|| {
                    let d = l.find(". ")?;
                    l[..d]
                        .chars()
                        .all(|c| c.is_ascii_digit())
                        .then(|| l[d + 2..].to_string())
                })
        };
        if bullet(t).is_some() {
            let ordered = !t.starts_with(['-', '*']);
            let tag = if ordered { "ol" } else { "ul" };
            let _ = writeln!(body, "<{tag}>");
            while i < lines.len() {
                let Some(item) = bullet(lines[i]) else { break };
                let mut text = item;
                i += 1;
                // Continuation lines of the item.
                while i < lines.len()
                    && lines[i].starts_with("  ")
                    && !lines[i].trim().is_empty()
                    && bullet(lines[i]).is_none()
                {
                    text.push(' ');
                    text.push_str(lines[i].trim());
                    i += 1;
                }
                let _ = writeln!(body, "<li>{}</li>", inline(&text));
            }
            let _ = writeln!(body, "</{tag}>");
            continue;
        }
        // A paragraph: lines up to a blank line or another block.
        let mut para = vec![t];
        i += 1;
        while i < lines.len() {
            let n = lines[i].trim();
            if n.is_empty() || n.starts_with('#') || n.starts_with("```") || n.starts_with('|') || image(n).is_some() {
                break;
            }
            para.push(n);
            i += 1;
        }
        let text = inline(&para.join(" "));
        if para[0].starts_with("**Answer.**") {
            let _ = writeln!(body, "<p class=\"answer\">{text}</p>");
        } else {
            let _ = writeln!(body, "<p>{text}</p>");
        }
    }
    body.insert_str(toc_at.unwrap_or(0), &toc(&headings));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_subset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("c.svg"),
            "<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\n<rect/>\n</svg>\n",
        )
        .unwrap();
        let md = "# Title <x>\n\n**Answer.** 15 servers & `leastconn` [csv](summary.csv) [web](https://example.org)\n\n\
                  | a | b |\n|---|---|\n| 1 \\| 2 | **3** |\n\n![Chart](c.svg)\n\n![Gone](gone.svg)\n\n\
                  - one\n  more\n- two\n\n1. first\n2. second\n\n```\nwscap run x < y\n```\n";
        let html = to_html(md, dir.path());
        assert!(html.contains("<title>Title &lt;x&gt;</title>"), "{html}");
        assert!(html.contains("<p class=\"answer\"><strong>Answer.</strong> 15 servers &amp; <code>leastconn</code>"));
        assert!(html.contains("<a href=\"summary.csv\">csv</a>"));
        assert!(!html.contains("https://") && !html.contains("http://"), "{html}");
        assert!(html.contains("<td>1 | 2</td><td><strong>3</strong></td>"));
        assert!(html.contains("<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\">"));
        assert!(html.contains("[chart not available: Gone]"));
        assert!(html.contains("<li>one more</li>") && html.contains("<ol>"));
        assert!(html.contains("<pre><code>wscap run x &lt; y</code></pre>"));
    }

    #[test]
    fn emphasis_and_underscores() {
        assert_eq!(
            inline("**bold** and *it* and _it_"),
            "<strong>bold</strong> and <em>it</em> and <em>it</em>"
        );
        assert_eq!(inline("__b__"), "<strong>b</strong>");
        // Underscores inside words and code spans are not emphasis.
        assert_eq!(
            inline("connect_ms_p99 and refused_ratio"),
            "connect_ms_p99 and refused_ratio"
        );
        assert_eq!(
            inline("`connect_ms_p99` `*x*`"),
            "<code>connect_ms_p99</code> <code>*x*</code>"
        );
        assert_eq!(inline("_see connect_ms_p99_"), "<em>see connect_ms_p99</em>");
        assert_eq!(
            inline("**p99 of `move_ms_p99`** is *high*"),
            "<strong>p99 of <code>move_ms_p99</code></strong> is <em>high</em>"
        );
        // A lone star or underscore, or one followed by a space, is text.
        assert_eq!(inline("2 * 3 * 4, a_ b, *"), "2 * 3 * 4, a_ b, *");
        assert_eq!(inline("**unclosed"), "**unclosed");
        assert_eq!(inline(r"\*not\* \_em\_"), "*not* _em_");
        assert_eq!(inline("[top](#charts) [x](#bad id)"), "<a href=\"#charts\">top</a> x");
    }

    #[test]
    fn headings_get_ids_and_a_table_of_contents() {
        let md = "# Run: `q`\n\nlead\n\n## Charts\n\n### Fault 0: server-1 crash\n\n## Charts\n\n## The `a_b` [link](x.csv)\n";
        let html = to_html(md, Path::new("."));
        assert!(html.contains("<h1 id=\"run-q\">Run: <code>q</code></h1>"), "{html}");
        for id in ["charts", "fault-0-server-1-crash", "charts-2", "the-a-b-link"] {
            assert!(html.contains(&format!(" id=\"{id}\">")), "{id}: {html}");
            assert!(html.contains(&format!("<a href=\"#{id}\">")), "{id}: {html}");
        }
        // The contents come right after the title, with `###` nested.
        let toc = html.find("<nav class=\"toc\">").unwrap();
        assert!(html.find("</h1>").unwrap() < toc && toc < html.find("<p>lead</p>").unwrap());
        assert!(html.contains("<li><a href=\"#charts\">Charts</a>\n<ul><li><a href=\"#fault-0-server-1-crash\">"));
        assert!(html.contains("<a href=\"#the-a-b-link\">The a_b link</a>"), "{html}");
        assert!(!to_html("just text", Path::new(".")).contains("<nav"));
    }

    #[test]
    fn local_targets() {
        assert!(is_local("summary.csv") && is_local("charts/a.svg"));
        for t in ["", "/etc/passwd", "../x", "https://x", "a b", "#top", "c:x"] {
            assert!(!is_local(t), "{t}");
        }
    }
}
