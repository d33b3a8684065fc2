//! Executors without a cluster: `--executor prepare` writes the tasks,
//! `wscap task` runs them by hand (index from --index or an array
//! variable), `wscap merge` writes outputs byte-identical to a local run;
//! merge refuses results of another scenario and lists missing tasks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::text;

/// A short quickstart (its fault at 2 m still inside the run).
pub const SHORT: [&str; 4] = ["--set", "duration=150s", "--replications", "3"];

pub fn wscap_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wscap"));
    c.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for name in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
    ] {
        c.env_remove(name);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("wscap runs")
}

pub fn ok(args: &[&str]) -> Output {
    let o = wscap_env(args, &[]);
    assert!(o.status.success(), "wscap {}: {}", args.join(" "), text(&o));
    o
}

/// Every file under `dir` but the work folder, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() == ".wscap-work" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The two output folders hold the same files, byte for byte (the work
/// folder aside).
pub fn assert_same_outputs(a: &Path, b: &Path) {
    let (fa, fb) = (files(a), files(b));
    assert!(fa.len() >= 5, "{fa:?}");
    assert_eq!(fa, fb, "{} and {} list different files", a.display(), b.display());
    for f in &fa {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x == y, "{} differs", f.display());
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn study(cmd: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [cmd, "scenarios/quickstart.toml", "--out", s(out), "--quiet"]
        .iter()
        .chain(SHORT.iter())
        .chain(extra.iter())
        .map(|x| x.to_string())
        .collect();
    if cmd == "sweep" {
        v.extend(["--set".into(), "servers.count=2,3".into()]);
    }
    if cmd == "compare" {
        v.extend(["--strategies".into(), "roundrobin,leastconn".into()]);
    }
    v
}

fn run_study(cmd: &str, out: &Path, extra: &[&str]) -> Output {
    let args = study(cmd, out, extra);
    wscap_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

fn tasks_in(work: &Path) -> usize {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("batch-000/manifest.json")).unwrap()).unwrap();
    m["tasks"].as_array().unwrap().len()
}

#[test]
fn tasks_run_by_hand_and_merged_equal_a_local_run() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in ["sweep", "run"] {
        let local = tmp.path().join(format!("{cmd}-local"));
        let o = run_study(cmd, &local, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let by_hand = tmp.path().join(format!("{cmd}-hand"));
        // Two replications per task: 3 replications make uneven tasks.
        let o = run_study(cmd, &by_hand, &["--executor", "prepare", "--tasks-per-element", "2"]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("wscap merge"), "{}", text(&o));
        assert!(!by_hand.join("report.md").exists(), "prepare writes no outputs");
        let work = by_hand.join(".wscap-work");
        let n = tasks_in(&work);
        assert_eq!(n, if cmd == "sweep" { 4 } else { 2 });
        // Merging before the tasks ran lists them (exit 2), writes nothing.
        let o = wscap_env(&["merge", s(&work)], &[]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("{n} of {n} tasks have no result yet")),
            "{}",
            text(&o)
        );
        assert!(!by_hand.join("report.md").exists());
        // In reverse order, one from an array variable: the order does not matter.
        for i in (0..n).rev() {
            let idx = i.to_string();
            if i == 0 {
                let o = wscap_env(&["task", s(&work)], &[("AWS_BATCH_JOB_ARRAY_INDEX", "0")]);
                assert!(o.status.success(), "{}", text(&o));
            } else {
                ok(&["task", s(&work), "--index", &idx]);
            }
        }
        ok(&["merge", s(&work), "--quiet"]);
        assert_same_outputs(&local, &by_hand);
        // The work folder is kept in the outputs; merging again is the same.
        assert!(work.join("study.json").is_file());
        ok(&["merge", s(&work), "--quiet"]);
        assert_same_outputs(&local, &by_hand);
    }
}

#[test]
fn merge_refuses_a_result_of_another_scenario_and_lists_missing_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    for (out, seed) in [(&a, "1"), (&b, "2")] {
        let o = run_study("run", out, &["--executor", "prepare", "--seed", seed]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let (wa, wb) = (a.join(".wscap-work"), b.join(".wscap-work"));
    ok(&["task", s(&wb), "--index", "1"]);
    ok(&["task", s(&wa), "--index", "2"]);
    // Missing tasks are listed by index, with the command that runs one.
    let o = wscap_env(&["merge", s(&wa)], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("2 of 3 tasks have no result yet (indices 0-1)"), "{t}");
    assert!(t.contains("wscap task") && t.contains("--index 0"), "{t}");
    // Another scenario's result in a's folder: refused, naming what differs.
    let name = "batch-000/results/task-000001.bin";
    std::fs::copy(wb.join(name), wa.join(name)).unwrap();
    ok(&["task", s(&wa), "--index", "0"]);
    let o = wscap_env(&["merge", s(&wa)], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("task 1's result comes from another scenario (scenario hash"),
        "{t}"
    );
    assert!(t.contains("--index 1"), "{t}");
    assert!(!a.join("report.md").exists(), "nothing written");
    // A result of another manifest (same scenario, other task split).
    let c = tmp.path().join("c");
    let o = run_study(
        "run",
        &c,
        &["--executor", "prepare", "--seed", "1", "--tasks-per-element", "3"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let wc = c.join(".wscap-work");
    ok(&["task", s(&wc), "--index", "0"]);
    std::fs::copy(wc.join("batch-000/results/task-000000.bin"), wa.join(name)).unwrap();
    let o = wscap_env(&["merge", s(&wa)], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("comes from another task manifest"), "{}", text(&o));
    // Rerun and merge: written.
    ok(&["task", s(&wa), "--index", "1"]);
    ok(&["merge", s(&wa), "--quiet"]);
    assert!(a.join("report.md").is_file());
}

#[test]
fn the_task_index_comes_from_each_array_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = run_study("run", &out, &["--executor", "prepare"]);
    assert!(o.status.success(), "{}", text(&o));
    let work = out.join(".wscap-work");
    let result = work.join("batch-000/results/task-000001.bin");
    ok(&["task", s(&work), "--index", "1"]);
    let want = std::fs::read(&result).unwrap();
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
    ] {
        std::fs::remove_file(&result).unwrap();
        let o = wscap_env(&["task", s(&work)], &[(var, "1")]);
        assert!(o.status.success(), "{var}: {}", text(&o));
        assert!(std::fs::read(&result).unwrap() == want, "{var}: another result");
    }
    // No index anywhere, a bad one, one out of range: exit 2.
    for (env, needle) in [
        (vec![], "no task index"),
        (vec![("JOB_COMPLETION_INDEX", "x")], "JOB_COMPLETION_INDEX"),
        (vec![("SLURM_ARRAY_TASK_ID", "9")], "out of range"),
    ] {
        let o = wscap_env(&["task", s(&work)], &env);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(needle), "{}", text(&o));
    }
}

#[test]
fn cluster_options_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    for (extra, needle) in [
        (vec!["--partition", "x"], "--partition: only with --executor slurm"),
        (
            vec!["--tasks-per-element", "2"],
            "only with --executor slurm or prepare",
        ),
        (
            vec!["--executor", "prepare", "--tasks-per-element", "0"],
            "between 1 and 10000",
        ),
        (vec!["--executor", "slurm", "--wait-limit", "soon"], "--wait-limit soon"),
    ] {
        let o = run_study("run", &out, &extra);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{extra:?}: {}", text(&o));
        assert!(!out.exists(), "{extra:?}: nothing written");
    }
    // Not a work folder.
    let o = wscap_env(&["merge", s(tmp.path())], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = wscap_env(&["task", s(tmp.path()), "--index", "0"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
