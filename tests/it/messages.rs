//! Messages for bad input (issue 14, part 4): every problem is printed once,
//! at `file:line:column`, with the exact field path and the valid choices;
//! unknown keys are refused in every table, inline ones included; bad
//! arguments exit with status 2.

use std::path::Path;

use crate::cli::{text, wscap};
use wscap::scenario;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `wscap check FILE` on one malformed file: its single message.
fn check_message(file: &Path) -> String {
    let o = wscap(&["check", file.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}: {}", file.display(), text(&o));
    assert!(!err.contains("panicked"), "{}: {err}", file.display());
    err
}

/// Every file of tests/malformed: exit 2, no panic, one message at the
/// line and field its `# expect: LINE FIELD` line names.
#[test]
fn malformed_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus has {} files", files.len());
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let expect = src
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: the first line must be `# expect: LINE FIELD`", f.display()));
        let (line, field) = expect.split_once(' ').unwrap();
        let rel = format!("tests/malformed/{}", f.file_name().unwrap().to_string_lossy());
        let err = check_message(Path::new(&rel));
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{rel}: one message, printed once:\n{err}");
        assert!(
            lines[0].starts_with(&format!("error: {rel}:{line}:")),
            "{rel}: expected line {line}:\n{err}"
        );
        assert!(
            lines[0].contains(&format!("field `{field}`:")),
            "{rel}: expected field `{field}`:\n{err}"
        );
    }
}

fn corpus(name: &str) -> String {
    check_message(Path::new(&format!("tests/malformed/{name}.toml")))
}

#[test]
fn unknown_key_in_an_inline_table_is_refused_with_the_choice_that_takes_none() {
    let e = corpus("inline-unknown-watch");
    assert!(
        e.contains(":25:30: field `population[1].watch.room`: unknown field `room`"),
        "{e}"
    );
    assert!(e.contains("`pick = \"featured\"` takes no other key"), "{e}");
    let e = corpus("inline-unknown-reconnect");
    assert!(e.contains("field `population[0].reconnect.base`"), "{e}");
    let e = corpus("inline-unknown-arrival");
    assert!(e.contains(":19:48: field `population[0].arrival.rat`"), "{e}");
    assert!(
        e.contains("expected one of `rate`, `start`, `stop`, `max_clients`"),
        "{e}"
    );
    let e = corpus("inline-unknown-dist");
    assert!(
        e.contains("field `population[0].session.mena`") && e.contains("expected `mean`"),
        "{e}"
    );
}

#[test]
fn a_header_comment_stays_out_of_the_field() {
    let e = corpus("health-check-unknown-comment");
    assert!(
        e.contains(":15:1: field `balancer.health_check.bogus`: unknown field `bogus`"),
        "{e}"
    );
    assert!(e.contains("expected one of `enabled`, `inter`"), "{e}");
    assert!(!e.contains('#'), "{e}");
}

#[test]
fn a_missing_population_is_blamed_on_itself() {
    let e = corpus("missing-population");
    assert!(
        e.contains(":1:1: field `population`: missing field `population`"),
        "{e}"
    );
    assert!(e.contains("[[population]]"), "{e}");
}

#[test]
fn array_of_tables_for_a_table_and_back() {
    let e = corpus("servers-array");
    assert!(
        e.contains(":6:3: field `servers`: `[[servers]]` is an array of tables"),
        "{e}"
    );
    assert!(e.contains("write `[servers]`") && !e.contains("expected u32"), "{e}");
    let e = corpus("population-single");
    assert!(
        e.contains("field `population`") && e.contains("write one `[[population]]` table"),
        "{e}"
    );
}

#[test]
fn a_key_sharing_a_prefix_is_reported_under_its_own_name() {
    let e = corpus("prefix-key-fault");
    assert!(
        e.contains(":26:1: field `fault[0].serve`: unknown field `serve`"),
        "{e}"
    );
    // The second [[fault]] is the bad one, not the first that has the key.
    let e = corpus("second-fault-unknown");
    assert!(
        e.contains(":29:1: field `fault[1].server`: unknown field `server`"),
        "{e}"
    );
    assert!(e.contains("expected one of `node`"), "{e}");
}

#[test]
fn random_d_too_large_is_not_told_to_be_at_least_one() {
    let e = corpus("random-huge");
    assert!(e.contains("field `balancer.balance`"), "{e}");
    assert!(e.contains("at most the server count") && !e.contains(">= 1"), "{e}");
}

#[test]
fn huge_rates_and_counts_print_short_numbers() {
    let e = corpus("rate-1e300");
    assert!(
        e.contains("field `population[0].arrival.rate`") && e.contains("above 1e9/s"),
        "{e}"
    );
    let e = corpus("rate-huge-count");
    assert!(e.contains("about 3.6e13 arrivals"), "{e}");
    for e in [corpus("rate-1e300"), corpus("rate-huge-count")] {
        let longest = e.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
        assert!(longest < 15, "a {longest}-digit number in: {e}");
    }
}

#[test]
fn check_prints_each_error_once_and_os_errors_once() {
    let o = wscap(&["check", "tests/malformed/bad-strategy.toml"]);
    let e = stderr(&o);
    assert_eq!(e.matches("unknown strategy").count(), 1, "{e}");
    assert_eq!(o.status.code(), Some(2));
    let o = wscap(&["check", "no-such-file.toml"]);
    let e = stderr(&o);
    assert_eq!(e.matches("No such file").count(), 1, "{e}");
    assert_eq!(o.status.code(), Some(2));
    let o = wscap(&[
        "check",
        "tests/malformed/bad-strategy.toml",
        "scenarios/quickstart.toml",
        "tests/malformed/random-huge.toml",
    ]);
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 3, "two messages and a summary:\n{e}");
    assert!(e.contains("2 of 3 scenario files are invalid"), "{e}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("quickstart.toml: ok"));
}

/// A scenario that runs in a blink, for argument tests.
fn tiny(dir: &Path) -> String {
    let f = dir.join("tiny.toml");
    std::fs::write(
        &f,
        "duration = \"5s\"\nreplications = 1\n[servers]\ncount = 2\nmax_connections = 10\n\
         [balancer]\nbalance = \"leastconn\"\n[[population]]\nname = \"p\"\nrole = \"player\"\n\
         arrival = { process = \"poisson\", rate = \"2/s\" }\nsession = \"2s\"\n",
    )
    .unwrap();
    f.to_str().unwrap().to_string()
}

fn usage_error(args: &[&str], says: &str) {
    let o = wscap(args);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    assert!(e.contains(says), "{args:?}: {e}");
    assert_eq!(e.lines().count(), 1, "{args:?}: printed once:\n{e}");
}

#[test]
fn a_key_set_twice_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tiny(tmp.path());
    let out = tmp.path().join("o");
    let out = out.to_str().unwrap();
    usage_error(
        &[
            "sweep",
            &f,
            "--set",
            "servers.count=2,3",
            "--set",
            "servers.count=4,5",
            "--out",
            out,
        ],
        "`servers.count` is already set by `--set servers.count=2,3`",
    );
    usage_error(
        &[
            "run",
            &f,
            "--set",
            "servers.count=2",
            "--set",
            "servers[count]=3",
            "--out",
            out,
        ],
        "",
    );
    usage_error(
        &[
            "run",
            &f,
            "--set",
            "population.0.session=1s",
            "--set",
            "population[0].session=2s",
            "--out",
            out,
        ],
        "is already set",
    );
    assert!(!Path::new(out).exists());
}

#[test]
fn zero_replications_exit_2_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tiny(tmp.path());
    let out = tmp.path().join("o");
    let out = out.to_str().unwrap();
    for cmd in [
        vec!["run"],
        vec!["compare", "--strategies", "leastconn,first"],
        vec!["sweep", "--set", "servers.count=2,3"],
        vec!["plan", "--slo", "refused_ratio<0.5", "--vary", "servers.count=1..4"],
        vec!["spof"],
    ] {
        let mut args = cmd.clone();
        args.extend([f.as_str(), "--replications", "0", "--out", out]);
        usage_error(&args, "--replications 0: must be between 1 and 10000");
    }
    usage_error(
        &[
            "plan",
            &f,
            "--slo",
            "refused_ratio<0.5",
            "--vary",
            "servers.count=1..4",
            "--max-replications",
            "0",
            "--out",
            out,
        ],
        "--max-replications 0: must be between the starting replications",
    );
    assert!(!Path::new(out).exists());
}

#[test]
fn a_malformed_inline_table_in_set_is_not_called_a_duration() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tiny(tmp.path());
    let out = tmp.path().join("o");
    let o = wscap(&[
        "run",
        &f,
        "--set",
        "population.0.session={ dist = \"exponential\"",
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("is not valid TOML for an inline table"), "{e}");
    assert!(!e.contains("duration"), "{e}");
}

/// Every table and inline table of every bundled scenario, one at a time,
/// gets a key it does not know: the scenario is refused, naming that key
/// at its line.
#[test]
fn unknown_keys_are_refused_in_every_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut tried = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let src = std::fs::read_to_string(&file).unwrap();
        let doc: toml_edit::DocumentMut = src.parse().unwrap();
        let mut paths = vec![];
        tables(doc.as_table(), &mut vec![], &mut paths);
        for path in paths {
            let mut d = doc.clone();
            insert_unknown(d.as_table_mut(), &path);
            let text = d.to_string();
            let err = scenario::parse(&text, &file, "x", &dir)
                .err()
                .unwrap_or_else(|| panic!("{}: `zz_unknown` in {path:?} was accepted", file.display()));
            let p = &err.problems()[0];
            assert!(
                p.message.contains("unknown field `zz_unknown`") && p.field.ends_with("zz_unknown"),
                "{} {path:?}: {err}",
                file.display()
            );
            let line = text.lines().nth(p.line.unwrap() - 1).unwrap();
            assert!(
                line.contains("zz_unknown"),
                "{} {path:?}: {err}\nline: {line}",
                file.display()
            );
            tried += 1;
        }
    }
    assert!(tried > 40, "only {tried} tables tried");
}

/// A step into a table: a key, or an entry of an array of tables.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Entry(String, usize),
}

fn tables(t: &toml_edit::Table, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    use toml_edit::{Item, Value};
    for (k, item) in t.iter() {
        match item {
            Item::Table(sub) => {
                at.push(Step::Key(k.into()));
                out.push(at.clone());
                tables(sub, at, out);
                at.pop();
            }
            Item::ArrayOfTables(a) => {
                for (i, sub) in a.iter().enumerate() {
                    at.push(Step::Entry(k.into(), i));
                    out.push(at.clone());
                    tables(sub, at, out);
                    at.pop();
                }
            }
            Item::Value(Value::InlineTable(it)) => {
                at.push(Step::Key(k.into()));
                out.push(at.clone());
                inline(it, at, out);
                at.pop();
            }
            _ => {}
        }
    }
    if at.is_empty() {
        out.push(vec![]);
    }
}

fn inline(t: &toml_edit::InlineTable, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    for (k, v) in t.iter() {
        if let toml_edit::Value::InlineTable(it) = v {
            at.push(Step::Key(k.into()));
            out.push(at.clone());
            inline(it, at, out);
            at.pop();
        }
    }
}

fn insert_unknown(root: &mut toml_edit::Table, path: &[Step]) {
    use toml_edit::{Item, Value, value};
    let mut table: Option<&mut toml_edit::Table> = Some(root);
    let mut it_table: Option<&mut toml_edit::InlineTable> = None;
    for step in path {
        match step {
            Step::Key(k) => {
                if let Some(t) = table.take() {
                    match &mut t[k.as_str()] {
                        Item::Table(sub) => table = Some(sub),
                        Item::Value(Value::InlineTable(sub)) => it_table = Some(sub),
                        other => panic!("{k}: {other:?}"),
                    }
                } else if let Some(t) = it_table.take() {
                    match t.get_mut(k).unwrap() {
                        Value::InlineTable(sub) => it_table = Some(sub),
                        other => panic!("{k}: {other:?}"),
                    }
                }
            }
            Step::Entry(k, i) => {
                let t = table.take().unwrap();
                table = t[k.as_str()].as_array_of_tables_mut().unwrap().get_mut(*i);
            }
        }
    }
    match (table, it_table) {
        (Some(t), _) => {
            t.insert("zz_unknown", value(1));
        }
        (None, Some(t)) => {
            t.insert("zz_unknown", 1.into());
        }
        _ => unreachable!(),
    }
}
