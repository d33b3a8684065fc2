//! Studies through a real Slurm (single-node cluster started by
//! `scripts/slurm-test-cluster`): byte-identical to local runs, a cancelled
//! array element rerun alone, merge refusing another scenario's result,
//! and `wscap task` from `JOB_COMPLETION_INDEX` equal to `--index`.
//!
//! Ignored by a plain `cargo test` (no Slurm on a laptop); run them with
//! `cargo test --test it slurm -- --ignored` as root with slurm-wlm and
//! munge installed (`.ci/run` installs them). With `SLURM_CONF` set to a
//! running cluster they use it; otherwise they start one (stopped when the
//! test process ends). When Slurm cannot start they fail with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cli::text;
use crate::executors::{SHORT, assert_same_outputs, s};

/// The cluster's slurm.conf, started once per test process.
fn cluster() -> &'static Path {
    static CONF: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        if let Ok(c) = std::env::var("SLURM_CONF") {
            let o = Command::new("sinfo").env("SLURM_CONF", &c).output();
            return match o {
                Ok(o) if o.status.success() => Ok(PathBuf::from(c)),
                Ok(o) => Err(format!("SLURM_CONF={c}: sinfo fails: {}", text(&o))),
                Err(e) => Err(format!("cannot run sinfo: {e}")),
            };
        }
        let dir = std::env::temp_dir().join(format!("wscap-slurm-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-test-cluster");
        let o = Command::new(&script)
            .args(["start", s(&dir), &std::process::id().to_string()])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !o.status.success() {
            return Err(format!("{} start failed: {}", script.display(), text(&o)));
        }
        Ok(dir.join("slurm.conf"))
    });
    match conf {
        Ok(c) => c,
        Err(e) => panic!("Slurm cannot start, so the Slurm tests cannot run: {e}"),
    }
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wscap"));
    c.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SLURM_CONF", cluster());
    for name in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "AWS_BATCH_JOB_ARRAY_INDEX",
    ] {
        c.env_remove(name);
    }
    c
}

fn wscap(args: &[&str]) -> Output {
    cmd(args).output().expect("wscap runs")
}

fn study(command: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [command, "scenarios/quickstart.toml", "--out", s(out), "--quiet"]
        .iter()
        .chain(SHORT.iter())
        .chain(extra.iter())
        .map(|x| x.to_string())
        .collect();
    match command {
        "sweep" => v.extend(["--set".into(), "servers.count=2,3".into()]),
        "compare" => v.extend(["--strategies".into(), "roundrobin,leastconn".into()]),
        _ => {}
    }
    v
}

fn run(command: &str, out: &Path, extra: &[&str]) -> Output {
    let a = study(command, out, extra);
    wscap(&a.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
#[ignore = "needs Slurm: cargo test --test it slurm -- --ignored"]
fn slurm_sweep_and_compare_are_byte_identical_to_local() {
    let tmp = tempfile::tempdir().unwrap();
    for command in ["sweep", "compare"] {
        let local = tmp.path().join(format!("{command}-local"));
        let o = run(command, &local, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let slurm = tmp.path().join(format!("{command}-slurm"));
        let o = run(command, &slurm, &["--executor", "slurm", "--tasks-per-element", "2"]);
        assert!(o.status.success(), "{}", text(&o));
        assert_same_outputs(&local, &slurm);
        let jobs = std::fs::read_to_string(slurm.join(".wscap-work/batch-000/jobs.txt")).unwrap();
        assert_eq!(jobs.lines().count(), 1, "one job array: {jobs}");
        // The same command again: every result is there, nothing is submitted.
        let o = run(command, &slurm, &["--executor", "slurm", "--tasks-per-element", "2"]);
        assert!(o.status.success(), "{}", text(&o));
        let again = std::fs::read_to_string(slurm.join(".wscap-work/batch-000/jobs.txt")).unwrap();
        assert_eq!(jobs, again);
        assert_same_outputs(&local, &slurm);
    }
}

#[test]
#[ignore = "needs Slurm: cargo test --test it slurm -- --ignored"]
fn slurm_a_cancelled_element_is_rerun_alone_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let o = run("sweep", &local, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = tmp.path().join("slurm");
    // One element at a time: the last is still pending when cancelled.
    let args = study("sweep", &out, &["--executor", "slurm", "--max-concurrent", "1"]);
    let child = cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let jobs = out.join(".wscap-work/batch-000/jobs.txt");
    let started = Instant::now();
    let job = loop {
        if let Ok(t) = std::fs::read_to_string(&jobs)
            && let Some(id) = t.split_whitespace().next()
        {
            break id.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no job array submitted");
        std::thread::sleep(Duration::from_millis(20));
    };
    let tasks = 6; // 2 points × 3 replications
    let last = tasks - 1;
    let o = Command::new("scancel")
        .arg(format!("{job}_{last}"))
        .env("SLURM_CONF", cluster())
        .output()
        .unwrap();
    assert!(o.status.success(), "scancel: {}", text(&o));
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains(&format!("task {last}: rerun with `wscap task")), "{t}");
    assert!(t.contains(&format!("--index {last}`")), "{t}");
    assert!(!out.join("report.md").exists(), "no outputs from a failed array");
    // Resume: only the cancelled task is submitted.
    let a = study("sweep", &out, &["--executor", "slurm"]);
    let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
    a.retain(|x| *x != "--quiet");
    let o = wscap(&a);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("1 of {tasks} tasks ({last})")),
        "{}",
        text(&o)
    );
    let log = std::fs::read_to_string(&jobs).unwrap();
    let second = log.lines().nth(1).expect("a second array");
    assert!(second.ends_with(&format!(" {last}")), "{log}");
    assert_same_outputs(&local, &out);
}

#[test]
#[ignore = "needs Slurm: cargo test --test it slurm -- --ignored"]
fn slurm_merge_refuses_a_result_of_another_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    for (out, seed) in [(&a, "1"), (&b, "2")] {
        let o = run("run", out, &["--executor", "slurm", "--seed", seed]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let name = ".wscap-work/batch-000/results/task-000002.bin";
    std::fs::copy(b.join(name), a.join(name)).unwrap();
    let before = std::fs::read(a.join("summary.csv")).unwrap();
    let o = wscap(&["merge", s(&a.join(".wscap-work"))]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("task 2's result comes from another scenario (scenario hash"),
        "{t}"
    );
    assert_eq!(
        std::fs::read(a.join("summary.csv")).unwrap(),
        before,
        "outputs untouched"
    );
}

#[test]
#[ignore = "needs Slurm: cargo test --test it slurm -- --ignored"]
fn slurm_task_from_job_completion_index_equals_index_and_the_element() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = run("run", &out, &["--executor", "slurm"]);
    assert!(o.status.success(), "{}", text(&o));
    let work = out.join(".wscap-work");
    let result = work.join("batch-000/results/task-000001.bin");
    let by_slurm = std::fs::read(&result).unwrap();
    std::fs::remove_file(&result).unwrap();
    let o = cmd(&["task", s(&work)])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let by_k8s = std::fs::read(&result).unwrap();
    std::fs::remove_file(&result).unwrap();
    let o = wscap(&["task", s(&work), "--index", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let by_hand = std::fs::read(&result).unwrap();
    assert!(by_k8s == by_hand, "JOB_COMPLETION_INDEX and --index differ");
    assert!(by_slurm == by_hand, "the array element and --index differ");
}
