//! `wscap schema`, `wscap completions`, `wscap man`: the JSON Schema is
//! derived from the scenario types and accepts every bundled scenario,
//! rejects a misspelt key; completions and the man page name every command.

use std::path::{Path, PathBuf};

use crate::cli::{text, wscap};

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&wscap::scenario::json_schema()).expect("the schema compiles")
}

fn as_json(toml_src: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(toml_src).expect("valid TOML");
    serde_json::to_value(v).unwrap()
}

fn errors(v: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Every scenario file the project ships: bundled ones and test fixtures.
fn scenario_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = vec![];
    for dir in ["scenarios", "tests/fixtures/haproxy"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(v.len() >= 7, "{v:?}");
    v
}

#[test]
fn every_bundled_scenario_validates_against_the_schema() {
    let v = validator();
    for f in scenario_files() {
        let doc = as_json(&std::fs::read_to_string(&f).unwrap());
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
    }
}

#[test]
fn a_misspelt_key_is_rejected_by_the_schema_as_by_the_loader() {
    let v = validator();
    let src = std::fs::read_to_string("scenarios/quickstart.toml").unwrap();
    assert!(v.is_valid(&as_json(&src)));
    for (from, to) in [
        ("[balancer]\n", "[balancer]\nstratgy = \"leastconn\"\n"),
        ("duration =", "duraton = \"1s\"\nduration ="),
        ("[servers]\n", "[servers]\ncores_ = 2\n"),
        ("process = \"", "proces = \"x\", process = \""),
    ] {
        assert!(src.contains(from), "{from}");
        let bad = src.replacen(from, to, 1);
        assert!(!v.is_valid(&as_json(&bad)), "the schema accepts `{to}`");
        assert!(
            wscap::scenario::parse(&bad, Path::new("bad.toml"), "bad", Path::new("scenarios")).is_err(),
            "the loader accepts `{to}`"
        );
    }
    // Wrong types and unknown choices too.
    let bad = src.replacen("[balancer]\n", "[balancer]\nnodes = \"two\"\n", 1);
    assert!(!v.is_valid(&as_json(&bad)));
}

#[test]
fn imported_scenarios_validate_against_the_schema() {
    let v = validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/haproxy");
    for backend in ["game", "web", "chess"] {
        let im = wscap::import::import(&dir.join("full.cfg"), None, Some(backend)).unwrap();
        let errs = errors(&v, &as_json(&im.toml));
        assert!(errs.is_empty(), "{backend}: {errs:#?}");
    }
}

#[test]
fn the_schema_command_prints_the_schema() {
    let o = wscap(&["schema"]);
    assert!(o.status.success(), "{}", text(&o));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed, wscap::scenario::json_schema());
    assert_eq!(printed["additionalProperties"], false);
}

#[test]
fn completions_and_man_page_name_every_command() {
    let commands = [
        "run",
        "check",
        "compare",
        "sweep",
        "plan",
        "spof",
        "import",
        "schema",
        "completions",
        "man",
        "task",
        "merge",
        "executor",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let o = wscap(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", text(&o));
        let s = String::from_utf8(o.stdout).unwrap();
        for c in commands {
            assert!(s.contains(c), "{shell} completion lacks `{c}`");
        }
        assert!(s.contains("compose"), "{shell}: options of subcommands");
    }
    let o = wscap(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    let o = wscap(&["man"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(s.starts_with(".ie") || s.contains(".TH wscap 1"), "{s}");
    assert!(s.contains(".TH wscap 1"));
    for c in commands {
        assert!(s.contains(c), "man page lacks `{c}`");
    }
}
