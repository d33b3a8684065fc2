//! Bounded inputs (issue 14, part 2): files a scenario names must be regular
//! files of bounded size, refused at once otherwise; the scenario file is
//! read up to its cap.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wscap::scenario;

fn with_session_file(dir: &Path, file: &str) -> String {
    format!(
        "duration = \"5s\"\nreplications = 1\n[servers]\ncount = 1\nmax_connections = 10\n\
         [balancer]\nbalance = \"leastconn\"\n[[population]]\nname = \"p\"\nrole = \"player\"\n\
         arrival = {{ process = \"poisson\", rate = \"2/s\" }}\n\
         session = {{ dist = \"empirical\", file = \"{}\", column = \"s\" }}\n",
        dir.join(file).display()
    )
}

fn with_trace(dir: &Path, file: &str) -> String {
    format!(
        "duration = \"5s\"\nreplications = 1\n[servers]\ncount = 1\nmax_connections = 10\n\
         [balancer]\nbalance = \"leastconn\"\n[[population]]\nname = \"p\"\nrole = \"player\"\n\
         arrival = {{ process = \"trace\", file = \"{}\", column = \"t\" }}\nsession = \"1s\"\n",
        dir.join(file).display()
    )
}

/// `wscap check` on `src` (written to a file in `dir`), killed after 20 s:
/// its exit status and stderr, and how long it took.
fn check(dir: &Path, src: &str) -> (Option<i32>, String, Duration) {
    let f = dir.join("s.toml");
    std::fs::write(&f, src).unwrap();
    check_file(&f)
}

fn check_file(f: &Path) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wscap"))
        .arg("check")
        .arg(f)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
}

fn refused_at_once(dir: &Path, src: &str, says: &str) {
    let (code, err, took) = check(dir, src);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(says), "expected `{says}` in: {err}");
    assert!(err.contains("field `population[0]."), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_device_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let src = with_session_file(Path::new("/dev"), "zero");
    refused_at_once(
        tmp.path(),
        &src,
        "`/dev/zero` is a device: a data file must be a regular CSV file",
    );
    let src = with_trace(Path::new("/dev"), "zero");
    refused_at_once(tmp.path(), &src, "is a device");
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.csv");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    // Nobody ever writes to it: opening it would block for ever.
    refused_at_once(tmp.path(), &with_session_file(tmp.path(), "pipe.csv"), "is a FIFO");
    refused_at_once(tmp.path(), &with_trace(tmp.path(), "pipe.csv"), "is a FIFO");
}

#[test]
fn a_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("d.csv")).unwrap();
    refused_at_once(tmp.path(), &with_session_file(tmp.path(), "d.csv"), "is a folder");
}

#[test]
fn a_huge_file_is_refused_before_it_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    // Sparse: 300 MiB on paper, nothing on disk.
    let f = std::fs::File::create(tmp.path().join("big.csv")).unwrap();
    f.set_len(300 << 20).unwrap();
    refused_at_once(
        tmp.path(),
        &with_session_file(tmp.path(), "big.csv"),
        "is 300.0 MiB: a data file is at most 256.0 MiB",
    );
    assert_eq!(scenario::MAX_DATA_BYTES, 256 << 20);
}

#[test]
fn a_regular_csv_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("s.csv"), "s\n100\n200\n").unwrap();
    std::fs::write(tmp.path().join("t.csv"), "t\n0.5\n1.5\n").unwrap();
    let src = with_session_file(tmp.path(), "s.csv");
    assert!(scenario::parse(&src, Path::new("s.toml"), "s", tmp.path()).is_ok());
    let src = with_trace(tmp.path(), "t.csv");
    assert!(scenario::parse(&src, Path::new("s.toml"), "s", tmp.path()).is_ok());
}

#[test]
fn the_scenario_file_itself_is_bounded() {
    let (code, err, took) = check_file(Path::new("/dev/zero"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/dev/zero: is longer than 4.0 MiB"), "{err}");
    assert!(took < Duration::from_secs(10));
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.toml");
    std::fs::File::create(&big).unwrap().set_len(5 << 20).unwrap();
    let (code, err, _) = check_file(&big);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is 5.0 MiB: a scenario file is at most 4.0 MiB"), "{err}");
    let (code, err, _) = check_file(tmp.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is a folder, not a scenario file"), "{err}");
    let bin = tmp.path().join("bin.toml");
    std::fs::write(&bin, [0xffu8, 0xfe, 0x00]).unwrap();
    let (code, err, _) = check_file(&bin);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not UTF-8 text"), "{err}");
}
