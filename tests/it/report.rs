//! `report.html` is one self-contained, valid HTML page: it parses without
//! errors (html5ever, the HTML5 parser of Servo), every local reference
//! exists, charts are inline SVG, and nothing points outside the folder.

use std::path::Path;

use html5ever::tendril::TendrilSink;
use html5ever::tree_builder::TreeBuilderOpts;
use html5ever::{ParseOpts, parse_document};
use markup5ever_rcdom::{Handle, NodeData, RcDom};

use crate::cli::{text, wscap};

/// An element's attributes as (name, value).
type Attrs = [(String, String)];

fn walk(h: &Handle, f: &mut dyn FnMut(&str, &Attrs)) {
    if let NodeData::Element { name, attrs, .. } = &h.data {
        let attrs: Vec<(String, String)> = attrs
            .borrow()
            .iter()
            .map(|a| (a.name.local.to_string(), a.value.to_string()))
            .collect();
        f(&name.local, &attrs);
    }
    for c in h.children.borrow().iter() {
        walk(c, f);
    }
}

/// Checks `dir/report.html`; returns the number of inline SVG charts.
pub fn validate_html(dir: &Path) -> usize {
    let path = dir.join("report.html");
    let html = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(html.starts_with("<!DOCTYPE html>"), "no doctype");
    for scheme in ["http://", "https://", "//cdn", "file:"] {
        assert!(!html.contains(scheme), "{} refers to `{scheme}`", path.display());
    }
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts {
            exact_errors: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let dom = parse_document(RcDom::default(), opts)
        .from_utf8()
        .read_from(&mut html.as_bytes())
        .unwrap();
    let errors = dom.errors.borrow();
    assert!(errors.is_empty(), "{}: HTML parse errors: {errors:?}", path.display());
    let (mut svgs, mut titles, mut tables) = (0, 0, 0);
    let (mut ids, mut anchors, mut sections) = (vec![], vec![], vec![]);
    walk(&dom.document, &mut |name, attrs| {
        let attr = |k: &str| attrs.iter().find(|a| a.0 == k).map(|a| a.1.clone());
        if let Some(id) = attr("id") {
            ids.push(id);
        }
        if matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6") {
            let id = attr("id").unwrap_or_else(|| panic!("a <{name}> without an id"));
            if matches!(name, "h2" | "h3") {
                sections.push(id);
            }
        }
        if let Some(target) = attr("href").and_then(|h| h.strip_prefix('#').map(str::to_string)) {
            anchors.push(target);
            return;
        }
        match name {
            "svg" => svgs += 1,
            "title" => titles += 1,
            "table" => tables += 1,
            "script" | "iframe" | "object" | "embed" => panic!("<{name}> in a self-contained report"),
            _ => {}
        }
        for (k, v) in attrs {
            if matches!(k.as_str(), "src" | "href" | "xlink:href") {
                assert!(
                    !v.contains(':') && !v.starts_with('/'),
                    "{name} {k}={v} is not a local reference"
                );
                assert!(
                    dir.join(v).exists(),
                    "{name} {k}={v}: no such file in {}",
                    dir.display()
                );
            }
        }
    });
    assert_eq!(titles, 1, "one <title>");
    // Ids are unique, and every in-page link (the contents) names one.
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicate ids: {ids:?}");
    for a in &anchors {
        assert!(ids.contains(a), "link to #{a}, which no element has");
    }
    // The contents link to every `##` and `###` heading of report.md.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let mut fenced = false;
    let md_sections = md
        .lines()
        .filter(|l| {
            fenced ^= l.trim_start().starts_with("```");
            !fenced && (l.starts_with("## ") || l.starts_with("### "))
        })
        .count();
    assert_eq!(sections.len(), md_sections, "a heading of report.md is missing");
    for id in &sections {
        assert!(anchors.contains(id), "the contents do not link to #{id}");
    }
    assert!(tables >= 1, "the report has tables");
    // Every chart the Markdown names is inline.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let charts = md.lines().filter(|l| l.starts_with("![")).count();
    assert_eq!(svgs, charts, "every chart of report.md is inline SVG in report.html");
    assert!(!html.contains("chart not available"), "a chart is missing");
    svgs
}

#[test]
fn run_report_html_is_valid_and_self_contained() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    let o = wscap(&[
        "run",
        "scenarios/quickstart.toml",
        "--out",
        out.to_str().unwrap(),
        "--replications",
        "2",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let svgs = validate_html(&out);
    // The seven charts of a game run (connections … cpu) and the close-up
    // of its crash.
    assert_eq!(svgs, 8);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let answer = md.find("**Answer.**").unwrap();
    for section in [
        "## Per server",
        "## Scenario as run",
        "## Assumptions and sources",
        "## Reproduce",
    ] {
        let at = md.find(section).unwrap_or_else(|| panic!("no {section} in report.md"));
        assert!(at > answer, "the answer comes first");
    }
    assert!(md.contains("seed 42"), "the seed to reproduce it");
}

#[test]
fn every_fault_gets_a_close_up() {
    // The quickstart with a second fault: server 2 crashes at 3 min and
    // never comes back.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("two-faults.toml");
    let mut toml = std::fs::read_to_string("scenarios/quickstart.toml").unwrap();
    toml.push_str("\n[[fault]]\nkind = \"crash\"\nserver = 2\nat = \"3m\"\nmode = \"process\"\n");
    std::fs::write(&file, toml).unwrap();
    let out = tmp.path().join("out");
    let o = wscap(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--replications",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    for stem in ["fault_0_crash", "fault_1_crash"] {
        for ext in ["png", "svg"] {
            assert!(out.join(format!("{stem}.{ext}")).exists(), "no {stem}.{ext}");
        }
    }
    assert!(!out.join("fault_2_crash.svg").exists());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let section = md.find("### Faults close-up").expect("a close-up section");
    let first = md.find("(fault_0_crash.svg)").expect("fault 0 in report.md");
    let second = md.find("(fault_1_crash.svg)").expect("fault 1 in report.md");
    assert!(section < first && first < second);
    assert!(md.contains("fault 1: server-2 crash (process) at 3m"), "{md}");
    // The close-ups are inline in report.html like every chart.
    let svgs = validate_html(&out);
    assert_eq!(svgs, 7 + 2, "the game charts and two close-ups");
    let svg = std::fs::read_to_string(out.join("fault_0_crash.svg")).unwrap();
    assert!(svg.contains("server-1 crash") && svg.contains("server-1 marked-up"));
    // The warm-up is shaded on the time charts.
    let svg = std::fs::read_to_string(out.join("connections.svg")).unwrap();
    assert!(svg.contains("warm-up (not counted)"));
}

#[test]
fn report_html_renders_emphasis_and_keeps_metric_names() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    let o = wscap(&[
        "run",
        "scenarios/quickstart.toml",
        "--out",
        out.to_str().unwrap(),
        "--replications",
        "1",
        "--quiet",
        "--set",
        "duration=3m",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    validate_html(&out);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // Markdown markup does not leak into the page.
    assert!(md.contains("**") && html.contains("<strong>"));
    assert!(md.contains('`') && html.contains("<code>"));
    let body = &html[html.find("<body>").unwrap()..];
    assert!(!body.contains("**"), "unrendered bold");
    // Metric names keep their underscores, in tables, code or text.
    for name in ["connect_ms_p99", "refused_ratio"] {
        if md.contains(name) {
            assert!(body.contains(name), "{name} mangled in report.html");
        }
    }
    assert!(!body.contains("connect<em>"), "an underscore taken for emphasis");
    assert!(body.contains("<nav class=\"toc\">"));
}
