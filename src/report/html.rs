//! `report.html`: the Markdown report as one self-contained HTML page.
//!
//! Every report is first written as Markdown; this module turns that
//! Markdown (the subset the reports use: headings, paragraphs with
//! `**bold**`, `` `code` `` and local links, pipe tables, lists, fenced code
//! and images) into HTML with inline CSS, and replaces each image of a
//! local `.svg` chart by the chart's SVG markup, so the page needs nothing
//! else to be read offline. No external URL is ever written: links and
//! images must name files in the output folder (anything else is shown as
//! text), and the SVG namespace attribute is dropped (HTML parsers put an
//! inline `<svg>` in it anyway).

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
figcaption{color:#555;font-size:.9em}.answer{background:#eef6ee;border-left:4px solid #3a3;padding:.6em 1em}\
.missing{color:#a00}";

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

/// Inline Markdown: escapes, then `**bold**`, `` `code` `` and `[text](file)`.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('`')
            && let Some(end) = r.find('`')
        {
            let _ = write!(out, "<code>{}</code>", esc(&r[..end]));
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix("**")
            && let Some(end) = r.find("**")
        {
            let _ = write!(out, "<strong>{}</strong>", inline(&r[..end]));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[')
            && let Some(close) = r.find("](")
            && let Some(end) = r[close + 2..].find(')')
        {
            let text = &r[..close];
            let target = &r[close + 2..close + 2 + end];
            if is_local(target) {
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
    }
    out
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
            let _ = writeln!(body, "<h{level}>{}</h{level}>", inline(t[level + 1..].trim()));
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
    fn local_targets() {
        assert!(is_local("summary.csv") && is_local("charts/a.svg"));
        for t in ["", "/etc/passwd", "../x", "https://x", "a b", "#top", "c:x"] {
            assert!(!is_local(t), "{t}");
        }
    }
}
