//! No leaked temporary folders (issue 14, part 3): SIGINT and SIGTERM sent
//! to a real `wscap` process during a run or at the writing phase remove
//! its temporary folder and keep the previous outputs (exit 130/143); after
//! a SIGKILL the next run into the same place removes the stale folder; an
//! `--out` wscap must not replace is refused before the run.
//!
//! The writing phase is held open by the test hook
//! `WSCAP_TEST_PAUSE_BEFORE_SWAP_MS` (`report::PAUSE_BEFORE_SWAP_ENV`):
//! the temporary folder is full, the swap not yet done.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wscap::report::PAUSE_BEFORE_SWAP_ENV;

const TINY: &str = "duration = \"5s\"\nreplications = 1\n[servers]\ncount = 2\nmax_connections = 10\n\
                    [balancer]\nbalance = \"leastconn\"\n[[population]]\nname = \"p\"\nrole = \"player\"\n\
                    arrival = { process = \"poisson\", rate = \"2/s\" }\nsession = \"2s\"\n";

fn spawn(args: &[&str], pause_ms: Option<u64>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wscap"));
    c.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(ms) = pause_ms {
        c.env(PAUSE_BEFORE_SWAP_ENV, ms.to_string());
    }
    c.spawn().expect("wscap starts")
}

fn run_ok(args: &[&str]) {
    let o = spawn(args, None).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The temporary folders beside `out`.
fn temps(out: &Path) -> Vec<PathBuf> {
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f.starts_with(&format!(".{name}.tmp-")) || f.starts_with(&format!(".{name}.old-"))
        })
        .collect();
    v.sort();
    v
}

/// Waits until the child's temporary folder holds a complete output
/// (report.html is written last): the writing phase.
fn wait_for_full_temp(child: &mut Child, out: &Path) -> PathBuf {
    let start = Instant::now();
    loop {
        if let Some(t) = temps(out).into_iter().find(|t| t.join("report.html").exists()) {
            return t;
        }
        assert!(child.try_wait().unwrap().is_none(), "wscap ended before writing");
        assert!(start.elapsed() < Duration::from_secs(120), "no temporary folder");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                if p.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    vec![]
                },
            )
        })
        .collect();
    v.sort();
    v
}

fn setup() -> (tempfile::TempDir, String, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tiny.toml");
    std::fs::write(&file, TINY).unwrap();
    let out = tmp.path().join("out");
    (tmp, file.to_str().unwrap().to_string(), out)
}

fn interrupted_at_writing(sig: &str, code: i32) {
    let (_tmp, file, out) = setup();
    let o = out.to_str().unwrap();
    run_ok(&["run", &file, "--out", o, "-q"]);
    let before = snapshot(&out);
    // Another seed: the new outputs would differ.
    let mut child = spawn(&["run", &file, "--out", o, "-q", "--seed", "7"], Some(60_000));
    let t = wait_for_full_temp(&mut child, &out);
    assert!(
        t.file_name()
            .unwrap()
            .to_string_lossy()
            .contains(&format!("-{}-", child.id()))
    );
    signal(&child, sig);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(code), "{sig}");
    assert_eq!(temps(&out), Vec::<PathBuf>::new(), "{sig}: a temporary folder survived");
    assert!(snapshot(&out) == before, "{sig}: the previous outputs changed");
}

#[test]
fn sigint_at_the_writing_phase_keeps_the_previous_outputs() {
    interrupted_at_writing("-INT", 130);
}

#[test]
fn sigterm_at_the_writing_phase_keeps_the_previous_outputs() {
    interrupted_at_writing("-TERM", 143);
}

#[test]
fn sigterm_during_the_run_writes_nothing() {
    let (_tmp, file, out) = setup();
    let o = out.to_str().unwrap();
    run_ok(&["run", &file, "--out", o, "-q"]);
    let before = snapshot(&out);
    // The quickstart scenario simulates for seconds even in release.
    let mut child = spawn(
        &["run", "scenarios/quickstart.toml", "--out", o, "-q", "--threads", "1"],
        None,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended too soon for this test"
    );
    signal(&child, "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(temps(&out).is_empty());
    assert!(snapshot(&out) == before);
}

#[test]
fn after_sigkill_the_next_run_removes_the_stale_folder() {
    let (_tmp, file, out) = setup();
    let o = out.to_str().unwrap();
    run_ok(&["run", &file, "--out", o, "-q"]);
    let mut child = spawn(&["run", &file, "--out", o, "-q", "--seed", "7"], Some(60_000));
    let stale = wait_for_full_temp(&mut child, &out);
    signal(&child, "-KILL");
    child.wait().unwrap();
    assert!(
        stale.exists(),
        "SIGKILL cannot clean up: the folder stays until the next run"
    );
    // The next run into the same place: the dead process's folder goes.
    run_ok(&["run", &file, "--out", o, "-q", "--seed", "8"]);
    assert!(!stale.exists(), "the stale folder of a dead process was not removed");
    assert!(temps(&out).is_empty());
    assert!(out.join("report.md").exists());
}

#[test]
fn a_running_process_keeps_its_temporary_folder() {
    let (_tmp, file, out) = setup();
    let o = out.to_str().unwrap();
    let mut child = spawn(&["run", &file, "--out", o, "-q"], Some(60_000));
    let busy = wait_for_full_temp(&mut child, &out);
    // Another run into the same place meanwhile does not remove it.
    run_ok(&["run", &file, "--out", o, "-q", "--seed", "3"]);
    assert!(busy.exists(), "the folder of a running process was removed");
    signal(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!busy.exists());
}

#[test]
fn out_that_wscap_must_not_replace_is_refused_before_the_run() {
    let (tmp, file, _) = setup();
    let a_file = tmp.path().join("a.txt");
    std::fs::write(&a_file, "keep me").unwrap();
    let foreign = tmp.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), "meow").unwrap();
    let cases: [(&str, &str); 5] = [
        (".", "names no folder of its own"),
        ("/", "names no folder of its own"),
        (a_file.to_str().unwrap(), "is a file"),
        (foreign.to_str().unwrap(), "is a folder that wscap did not write"),
        ("..", "names no folder of its own"),
    ];
    for (out, says) in cases {
        for cmd in [vec!["run"], vec!["sweep", "--set", "servers.count=2,3"]] {
            let mut args = cmd.clone();
            args.extend([file.as_str(), "--out", out, "-q"]);
            let started = Instant::now();
            let o = spawn(&args, None).wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "--out {out}: {err}");
            assert!(err.contains(&format!("--out {out}: {says}")), "--out {out}: {err}");
            assert!(started.elapsed() < Duration::from_secs(20));
        }
    }
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(foreign.join("cat.jpg")).unwrap(), "meow");
    // Nothing was left beside them.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // The current folder, by its full name.
    let o = Command::new(env!("CARGO_BIN_EXE_wscap"))
        .args(["run", &file, "--out", tmp.path().to_str().unwrap()])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is the current folder or one of its parents"), "{err}");
}
