//! The `wscap` command line: a thin layer over the library. It parses
//! arguments, loads the scenario, runs it, prints a summary and asks
//! `wscap::report` to write the outputs. `anyhow` is used here only.
//!
//! Exit status (see [`EXIT_STATUS`]): 0 ok, 1 the run failed, 2 bad input,
//! 3 an SLO verdict failed, 130/143 interrupted (SIGINT/SIGTERM).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use wscap::cluster::{ClusterError, Mode, WorkExecutor};
use wscap::experiment::Outcome;
use wscap::report::{self, RunInfo};
use wscap::scenario::{self, Scenario, ScenarioError};
use wscap::study::{self, Assign, Base, Setting, StudyError, Tick};

/// The exit status table, shown by `wscap --help` (and the README).
const EXIT_STATUS: &str = "\
Exit status:
  0  ok; with --slo (run, compare) or for plan: every SLO is met
  1  the run failed: I/O error writing outputs, internal invariant violated (a bug in wscap),
     cluster tasks failed (--executor slurm; the same command resumes)
  2  bad input: scenario file or argument error, an --out wscap must not replace (nothing is run);
     merge refusing results of another scenario/manifest/version or with tasks missing
  3  an SLO verdict failed: `run --slo` not met, `compare --slo` with no strategy meeting
     every SLO, `plan` with no value of the varied key meeting every SLO, `spof --slo` with a
     single failure (or no failure) breaking an SLO
  130, 143  interrupted by SIGINT or SIGTERM: temporary outputs removed, previous outputs kept";

#[derive(Parser)]
#[command(
    name = "wscap",
    version,
    about = "Discrete-event capacity simulator for real-time WebSocket backends",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario: replications in parallel, then CSV, JSON, charts and a report.
    #[command(after_help = EXIT_STATUS)]
    Run(RunArgs),
    /// Validate scenario files without running them.
    #[command(after_help = EXIT_STATUS)]
    Check {
        /// Scenario files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Skip (and count) malformed lines of replayed HAProxy logs.
        #[arg(long)]
        lenient: bool,
    },
    /// Run one scenario under several balancing strategies (same seeds) and compare them.
    #[command(after_help = EXIT_STATUS)]
    Compare(CompareArgs),
    /// Run every point of a grid of `--set` values (ranges, lists) in parallel.
    #[command(after_help = EXIT_STATUS)]
    Sweep(StudyArgs),
    /// Find the smallest value of a key that meets every SLO with 95 % confidence, and its headroom.
    #[command(after_help = EXIT_STATUS)]
    Plan(PlanArgs),
    /// Fail each component once (socket servers, balancer nodes, VIPs, Redis, database, nginx, app servers)
    /// and rank what each failure costs: the single points of failure.
    #[command(after_help = EXIT_STATUS)]
    Spof(SpofArgs),
    /// Turn an haproxy.cfg (and its docker-compose.yml) into a commented scenario: the backend's
    /// servers and knobs, each with the line it came from, and a traffic template to fill in.
    /// Directives wscap does not model are listed in the output and printed as warnings.
    #[command(after_help = EXIT_STATUS)]
    Import(ImportArgs),
    /// Print the JSON Schema of scenario files (for editors: Taplo, Even Better TOML).
    Schema,
    /// Print a shell completion script: `wscap completions bash > /etc/bash_completion.d/wscap`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `wscap man > wscap.1; man ./wscap.1`.
    Man,
    /// Run one task of a work folder (an array element's command): its replications, written
    /// to the work folder's results. The index comes from --index, else SLURM_ARRAY_TASK_ID,
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX.
    #[command(after_help = EXIT_STATUS)]
    Task {
        /// The work folder (OUT/.wscap-work, or one of its batch-K folders).
        workdir: PathBuf,
        /// The task's index [default: from the environment, see above].
        #[arg(long)]
        index: Option<u32>,
        /// Worker threads for the task's replications [default: SLURM_CPUS_PER_TASK, else 1].
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Write a study's outputs from the finished tasks of its work folder (OUT/.wscap-work);
    /// refuses results of another scenario, manifest or wscap version, lists missing tasks.
    #[command(after_help = EXIT_STATUS)]
    Merge {
        /// The work folder (OUT/.wscap-work); the outputs go to OUT.
        workdir: PathBuf,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// Where a study's replications run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorKind {
    /// A thread pool on this machine.
    Local,
    /// One Slurm job array per batch (work folder OUT/.wscap-work), then merge.
    Slurm,
    /// Write the tasks to OUT/.wscap-work and stop: run them with `wscap task`, then `wscap merge`.
    Prepare,
    /// `wscap merge`: results from the work folder only.
    #[value(skip)]
    Merge,
}

#[derive(Args)]
struct ImportArgs {
    /// The HAProxy configuration.
    cfg: PathBuf,
    /// A docker-compose file: server addresses naming its services are resolved, and
    /// `deploy.replicas` / `scale` expand them.
    #[arg(long)]
    compose: Option<PathBuf>,
    /// The backend (or listen section) to import [default: the only one with servers, else the
    /// first one a frontend routes to].
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// Write the scenario here [default: standard output].
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Options shared by run, compare, sweep and plan.
#[derive(Args)]
struct StudyArgs {
    /// Scenario file (TOML).
    file: PathBuf,
    /// Override a scenario key: `key=value`, `key=v1,v2`, `key=10..20` or `key=10..20:2`
    /// (dotted paths, e.g. servers.count, balancer.balance, population.0.arrival.rate, duration).
    /// Several values are allowed in sweep only.
    #[arg(long = "set", value_name = "KEY=VALUES")]
    set: Vec<String>,
    /// Output folder [default: output/<scenario name> for run, output/<scenario name>-<command> otherwise].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Master seed (overrides the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Replications per point (overrides the scenario's `replications`).
    #[arg(long)]
    replications: Option<u32>,
    /// Worker threads (0 = one per core). Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
    /// Skip (and count) malformed lines of replayed HAProxy logs instead of failing on the first
    /// (`lenient = true` on every `haproxy-log` arrival).
    #[arg(long)]
    lenient: bool,

    /// Run even if the run's estimated memory, output size or event count is
    /// above its limit (see the README's "Limits"); hard bounds still apply.
    #[arg(long)]
    allow_large: bool,

    /// Where replications run: `local` (threads here), `slurm` (one job array per batch, work
    /// folder OUT/.wscap-work; rerun to resume), `prepare` (write the tasks for `wscap task`).
    /// The outputs are byte-identical whatever the executor.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local, help_heading = "Cluster")]
    executor: ExecutorKind,
    /// Slurm partition (sbatch --partition).
    #[arg(long, help_heading = "Cluster")]
    partition: Option<String>,
    /// Time limit of each array element, in Slurm's syntax (sbatch --time, e.g. 30:00).
    #[arg(long, value_name = "TIME", help_heading = "Cluster")]
    time_limit: Option<String>,
    /// Replications packed into one array element (one task) [default: 1].
    #[arg(long, value_name = "N", help_heading = "Cluster")]
    tasks_per_element: Option<u32>,
    /// Most array elements running at once (sbatch --array=...%N).
    #[arg(long, value_name = "N", help_heading = "Cluster")]
    max_concurrent: Option<u32>,
    /// Another sbatch argument, passed as given (repeat): e.g. --sbatch-arg=--account=proj.
    #[arg(
        long = "sbatch-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        help_heading = "Cluster"
    )]
    sbatch_arg: Vec<String>,
    /// Give up waiting for a job array after this long (its tasks keep running; rerun to merge).
    #[arg(long, value_name = "DURATION", default_value = "24h", help_heading = "Cluster")]
    wait_limit: String,
    /// `wscap merge`: the work folder.
    #[arg(skip)]
    work_override: Option<PathBuf>,
}

/// The syntax of `--slo`, shared by run, compare and plan.
const SLO_HELP: &str = "A service-level objective: `metric<value`, `metric<=value`, `metric>value` or \
                        `metric>=value` on any column of summary.csv (e.g. connect_ms_p99<500, refused_ratio<0.01). \
                        Met when the one-sided 95 % confidence bound of the mean over the replications is on the \
                        right side. Repeat for several.";

#[derive(Args)]
struct RunArgs {
    #[arg(long, value_name = "SLO", help = SLO_HELP)]
    slo: Vec<String>,
    #[command(flatten)]
    common: StudyArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Strategies, comma-separated: e.g. roundrobin,leastconn,source,room,random(2),first.
    #[arg(long, required = true)]
    strategies: String,
    /// Recommend only among the strategies that meet every SLO.
    #[arg(long, value_name = "SLO", long_help = SLO_HELP)]
    slo: Vec<String>,
    /// The metrics of the Pareto set, comma-separated, each optionally `:min` or `:max`
    /// [default: refused_ratio, connect_ms_p99, move_ms_p99 (or web_ms_p99), jain_index:max].
    #[arg(long, value_name = "M1,M2,...")]
    pareto: Option<String>,
    #[command(flatten)]
    common: StudyArgs,
}

#[derive(Args)]
struct PlanArgs {
    #[arg(long, required = true, value_name = "SLO", help = SLO_HELP)]
    slo: Vec<String>,
    /// The whole-number key to size, optionally with its search range: servers.count or servers.count=8..64.
    #[arg(long, required = true, value_name = "KEY[=LO..HI]")]
    vary: String,
    /// Most replications per value near the SLO boundary [default: 4 × the starting replications].
    #[arg(long)]
    max_replications: Option<u32>,
    /// Skip the headroom search (load scaling) of the chosen deployment.
    #[arg(long)]
    no_headroom: bool,
    #[command(flatten)]
    common: StudyArgs,
}

#[derive(Args)]
struct SpofArgs {
    /// When each component crashes (e.g. 270s or 4.5m) [default: the middle of the run after the warm-up].
    #[arg(long)]
    at: Option<String>,
    /// How socket servers and balancer nodes die: `process` (RST at once) or `host` (heartbeats time out).
    #[arg(long, default_value = "process", value_parser = ["process", "host"])]
    mode: String,
    /// Fail only these components, comma-separated (e.g. db-primary,nginx-0) [default: every one].
    #[arg(long, value_name = "C1,C2,...")]
    only: Option<String>,
    /// Exit with status 3 if some single failure breaks an SLO.
    #[arg(long, value_name = "SLO", long_help = SLO_HELP)]
    slo: Vec<String>,
    #[command(flatten)]
    common: StudyArgs,
}

/// What a command concluded, when it ran to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Done; every SLO (if any) met.
    Ok,
    /// Done, and an SLO verdict failed (exit status 3).
    SloFailed,
}

impl Status {
    fn of(met: bool) -> Status {
        if met { Status::Ok } else { Status::SloFailed }
    }
}

/// The process allocator. Blocks of 4 MiB and more (the client slots,
/// rooms, event buckets at the headline scale) are mappings of their own
/// (`mmap`) and grow with `mremap`, which moves page tables instead of
/// copying: the system allocator copies a growing arena below its 32 MiB
/// mapping threshold, touching every page twice. Smaller blocks are the
/// system's. Placement only: no output depends on it.
///
/// The mappings are not advised to use transparent huge pages: on the
/// virtual machines wscap is measured on (Firecracker with free page
/// reporting), a fresh 2 MiB page is usually one the host has taken back,
/// and zeroing it ran at 0.35–0.9 GB/s against 2 GB/s for 4 KiB pages.
/// The 1M game's million client slots took 1.10–1.35 s with the advice and
/// 0.90–1.07 s without (six interleaved pairs); the 150k hour, which reads
/// rooms and clients at random, showed no difference beyond its noise.
struct Mappings;

/// Blocks at least this large are mappings of their own.
const MAPPED_FROM: usize = 4 << 20;
/// Alignment a mapping always has.
const MAP_ALIGN: usize = 4096;

/// Whether blocks of `layout` are mappings of their own (on Linux).
#[inline]
fn mapped(size: usize, align: usize) -> bool {
    cfg!(target_os = "linux") && size >= MAPPED_FROM && align <= MAP_ALIGN
}

/// A fresh zeroed mapping of `size` bytes; null if refused.
#[cfg(target_os = "linux")]
fn map(size: usize) -> *mut u8 {
    use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
    // SAFETY: a new private anonymous mapping aliases nothing.
    match unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            size,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    } {
        Ok(p) => p.cast::<u8>(),
        Err(_) => std::ptr::null_mut(),
    }
}

/// Unmaps a block `map` returned (`size` as asked then).
#[cfg(target_os = "linux")]
unsafe fn unmap(p: *mut u8, size: usize) {
    // SAFETY: the caller passes a live mapping of `size` bytes it owns.
    let _ = unsafe { rustix::mm::munmap(p.cast(), size) };
}

#[cfg(not(target_os = "linux"))]
fn map(_: usize) -> *mut u8 {
    unreachable!("blocks are mapped on Linux only")
}

#[cfg(not(target_os = "linux"))]
unsafe fn unmap(_: *mut u8, _: usize) {
    unreachable!("blocks are mapped on Linux only")
}

// SAFETY: a block is either the system allocator's (forwarded unchanged)
// or a mapping of its own, decided by its layout alone (`mapped`), which
// the caller passes back unchanged to `dealloc` and `realloc`; a mapping is
// page-aligned (≥ the layouts `mapped` accepts), zeroed when new, and at
// least `size` bytes.
unsafe impl std::alloc::GlobalAlloc for Mappings {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: std::alloc::Layout) {
        if mapped(layout.size(), layout.align()) {
            // SAFETY: `alloc` mapped this block for this layout.
            unsafe { unmap(p, layout.size()) };
            return;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let (old, new) = (mapped(layout.size(), layout.align()), mapped(new_size, layout.align()));
        #[cfg(target_os = "linux")]
        if old && new {
            use rustix::mm::{MremapFlags, mremap};
            // SAFETY: `p` is a live mapping of `layout.size()` bytes; the
            // caller holds no reference into it across the call.
            return match unsafe { mremap(p.cast(), layout.size(), new_size, MremapFlags::MAYMOVE) } {
                Ok(q) => q.cast::<u8>(),
                Err(_) => std::ptr::null_mut(),
            };
        }
        if !old && !new {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { std::alloc::System.realloc(p, layout, new_size) };
        }
        // Across the threshold: a new block, the common prefix copied.
        // SAFETY: `new_size` is non-zero and, with the caller's alignment,
        // a valid layout (the caller guarantees it for `realloc`).
        let new_layout = unsafe { std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as `alloc`, with a valid layout.
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks are live, distinct and at least this long.
            unsafe {
                std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Mappings = Mappings;

/// On SIGINT or SIGTERM: remove the temporary output folders being
/// written (the previous outputs stay as they were) and exit with
/// 128 + the signal's number (130, 143), as a shell reports it.
fn exit_on_signals() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("cannot catch signals")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _held = report::abandon_temporary_folders();
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                eprintln!("\ninterrupted ({name}): temporary outputs removed");
                std::process::exit(128 + sig);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = exit_on_signals() {
        eprintln!("error: {e:#}");
        return ExitCode::from(1);
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Check { files, lenient } => check(&files, lenient).map(|()| Status::Ok),
        Command::Compare(args) => compare(args),
        Command::Sweep(args) => sweep(args).map(|()| Status::Ok),
        Command::Plan(args) => plan(args),
        Command::Spof(args) => spof(args),
        Command::Import(args) => import(args).map(|()| Status::Ok),
        Command::Schema => schema().map(|()| Status::Ok),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "wscap", &mut std::io::stdout());
            Ok(Status::Ok)
        }
        Command::Man => man().map(|()| Status::Ok),
        Command::Task {
            workdir,
            index,
            threads,
        } => task(&workdir, index, threads).map(|()| Status::Ok),
        Command::Merge { workdir, quiet } => merge(&workdir, quiet),
    };
    match result {
        Err(e) if prepared(&e).is_some() => {
            if let Some((work, tasks)) = prepared(&e) {
                print_prepared(&work, tasks);
            }
            ExitCode::SUCCESS
        }
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::SloFailed) => ExitCode::from(3),
        Err(e) if e.downcast_ref::<Reported>().is_some() => {
            // `check`: each file's errors were printed as found.
            if let Some(r) = e.downcast_ref::<Reported>()
                && r.total > 1
            {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            // A bad scenario or argument is the user's to fix: exit 2, like
            // a usage error; anything else is a failure of the run.
            let usage = e.downcast_ref::<StudyError>().is_some_and(StudyError::is_usage)
                || e.downcast_ref::<ClusterError>().is_some_and(ClusterError::is_usage)
                || e.downcast_ref::<report::ReportError>()
                    .is_some_and(report::ReportError::is_usage);
            let input = e.downcast_ref::<ScenarioError>().is_some()
                || e.downcast_ref::<wscap::import::ImportError>()
                    .is_some_and(|e| !matches!(e, wscap::import::ImportError::Invalid(_)));
            let code = if usage || input { 2 } else { 1 };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// The cluster error inside a study error, if any.
fn cluster_error(e: &anyhow::Error) -> Option<&ClusterError> {
    if let Some(c) = e.downcast_ref::<ClusterError>() {
        return Some(c);
    }
    match e.downcast_ref::<StudyError>() {
        Some(StudyError::Executor { error, .. }) => error.downcast_ref::<ClusterError>(),
        _ => None,
    }
}

/// `--executor prepare` stopped after writing the tasks: where, how many.
fn prepared(e: &anyhow::Error) -> Option<(PathBuf, usize)> {
    match cluster_error(e) {
        Some(ClusterError::Prepared { work, tasks }) => Some((work.clone(), *tasks)),
        _ => None,
    }
}

fn print_prepared(batch: &Path, tasks: usize) {
    let work = batch.parent().unwrap_or(batch);
    println!(
        "wrote {tasks} tasks to {}
  run each: wscap task {} --index I   (I = 0..{}, or from SLURM_ARRAY_TASK_ID, \
         JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX)
  then:     wscap merge {}",
        batch.display(),
        wscap::cluster::shell_quote(&work.to_string_lossy()),
        tasks.saturating_sub(1),
        wscap::cluster::shell_quote(&work.to_string_lossy()),
    );
}

/// `wscap task`: one task of a work folder.
fn task(workdir: &Path, index: Option<u32>, threads: Option<usize>) -> Result<()> {
    let index = wscap::cluster::task_index(index, |k| std::env::var(k).ok())?;
    let threads = threads
        .or_else(|| std::env::var("SLURM_CPUS_PER_TASK").ok().and_then(|v| v.parse().ok()))
        .unwrap_or(1);
    check_threads(threads)?;
    let path = wscap::cluster::workdir::run_task(workdir, index, threads)?;
    eprintln!("task {index}: wrote {}", path.display());
    Ok(())
}

/// `wscap merge`: the study's command again, its replications read from
/// the work folder only.
fn merge(workdir: &Path, quiet: bool) -> Result<Status> {
    let mut work = std::path::absolute(workdir).with_context(|| format!("{}", workdir.display()))?;
    if work.join("manifest.json").is_file() && !work.join("study.json").is_file() {
        // A batch folder: its work folder.
        work.pop();
    }
    let file = work.join("study.json");
    let bytes = std::fs::read(&file).map_err(|e| {
        ClusterError::Index(format!(
            "{}: {e}: give the work folder a study wrote with --executor slurm or prepare (OUT/.wscap-work)",
            file.display()
        ))
    })?;
    let study: wscap::cluster::workdir::Study = serde_json::from_slice(&bytes)
        .map_err(|e| ClusterError::Index(format!("{}: not a wscap study: {e}", file.display())))?;
    let out = work
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::env::set_current_dir(&study.cwd).with_context(|| format!("cannot enter {}", study.cwd.display()))?;
    let cli = Cli::try_parse_from(std::iter::once("wscap".to_string()).chain(study.args.iter().cloned()))
        .map_err(|e| ClusterError::Index(format!("{}: its command does not parse: {e}", file.display())))?;
    let fix = |c: &mut StudyArgs| {
        c.executor = ExecutorKind::Merge;
        c.out = Some(out.clone());
        c.work_override = Some(work.clone());
        c.quiet |= quiet;
    };
    match cli.command {
        Command::Run(mut a) => {
            fix(&mut a.common);
            run(a)
        }
        Command::Compare(mut a) => {
            fix(&mut a.common);
            compare(a)
        }
        Command::Sweep(mut a) => {
            fix(&mut a);
            sweep(a).map(|()| Status::Ok)
        }
        Command::Plan(mut a) => {
            fix(&mut a.common);
            plan(a)
        }
        Command::Spof(mut a) => {
            fix(&mut a.common);
            spof(a)
        }
        _ => Err(ClusterError::Index(format!("{}: not a study command", file.display())).into()),
    }
}

/// The executor of a study, its outputs going to `out`.
enum Exec {
    Local(study::Local),
    Work(Box<WorkExecutor>),
}

impl Exec {
    fn get(&self) -> &dyn study::Executor {
        match self {
            Exec::Local(l) => l,
            Exec::Work(w) => w.as_ref(),
        }
    }

    /// After the outputs are written: marks a work folder's study complete.
    fn finish(&self) -> Result<()> {
        if let Exec::Work(w) = self {
            w.finish()?;
        }
        Ok(())
    }
}

fn executor(c: &StudyArgs, out: &Path, name: &str, progress: &Progress) -> Result<Exec> {
    let slurm_only = [
        ("--partition", c.partition.is_some()),
        ("--time-limit", c.time_limit.is_some()),
        ("--max-concurrent", c.max_concurrent.is_some()),
        ("--sbatch-arg", !c.sbatch_arg.is_empty()),
    ];
    if c.executor != ExecutorKind::Slurm
        && let Some((arg, _)) = slurm_only.iter().find(|(_, given)| *given)
    {
        return Err(StudyError::Arg {
            arg: (*arg).into(),
            message: "only with --executor slurm".into(),
        }
        .into());
    }
    if c.executor == ExecutorKind::Local && c.tasks_per_element.is_some() {
        return Err(StudyError::Arg {
            arg: "--tasks-per-element".into(),
            message: "only with --executor slurm or prepare".into(),
        }
        .into());
    }
    let per_task = c.tasks_per_element.unwrap_or(1);
    if !(1..=10_000).contains(&per_task) {
        return Err(StudyError::Arg {
            arg: format!("--tasks-per-element {per_task}"),
            message: "must be between 1 and 10000".into(),
        }
        .into());
    }
    if c.max_concurrent == Some(0) {
        return Err(StudyError::Arg {
            arg: "--max-concurrent 0".into(),
            message: "must be at least 1".into(),
        }
        .into());
    }
    let wait_limit = wscap::units::parse_duration(&c.wait_limit).map_err(|e| StudyError::Arg {
        arg: format!("--wait-limit {}", c.wait_limit),
        message: e,
    })?;
    let mode = match c.executor {
        ExecutorKind::Local => return Ok(Exec::Local(study::Local { threads: c.threads })),
        ExecutorKind::Slurm => Mode::Slurm(wscap::cluster::SlurmOptions {
            partition: c.partition.clone(),
            time_limit: c.time_limit.clone(),
            tasks_per_element: per_task,
            max_concurrent: c.max_concurrent,
            sbatch_args: c.sbatch_arg.clone(),
            poll: std::time::Duration::from_millis(500),
            wait_limit: std::time::Duration::from_nanos(wait_limit.0),
        }),
        ExecutorKind::Prepare => Mode::Prepare { per_task },
        ExecutorKind::Merge => Mode::Merge,
    };
    let work = match &c.work_override {
        Some(w) => w.clone(),
        None => std::path::absolute(out)
            .with_context(|| format!("{}", out.display()))?
            .join(wscap::cluster::WORK_DIR),
    };
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let base_dir = std::path::absolute(c.file.parent().unwrap_or(Path::new("")))
        .with_context(|| format!("{}", c.file.display()))?;
    let study = wscap::cluster::workdir::Study {
        format: wscap::cluster::workdir::FORMAT,
        wscap_version: wscap::cluster::workdir::VERSION.into(),
        cwd,
        args: std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    };
    let exe = std::env::current_exe().context("cannot find the wscap binary")?;
    let pb = progress.pb.clone();
    let quiet = c.quiet;
    let note = Box::new(move |line: &str| {
        if !quiet {
            pb.suspend(|| eprintln!("{line}"));
        }
    });
    report::carry_work_folder();
    Ok(Exec::Work(Box::new(WorkExecutor::new(
        mode,
        work,
        study,
        base_dir,
        exe,
        format!("wscap-{name}"),
        note,
    ))))
}

fn schema() -> Result<()> {
    let text = serde_json::to_string_pretty(&scenario::json_schema())?;
    println!("{text}");
    Ok(())
}

fn man() -> Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    use std::io::Write as _;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

fn import(args: ImportArgs) -> Result<()> {
    let im = wscap::import::import(&args.cfg, args.compose.as_deref(), args.backend.as_deref())?;
    for n in &im.notes {
        eprintln!("warning: {n}");
    }
    match &args.output {
        Some(p) => {
            std::fs::write(p, &im.toml).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!(
                "wrote {} (backend `{}`, {} warnings); fill in its TRAFFIC TEMPLATE, then: wscap run {}",
                p.display(),
                im.backend,
                im.notes.len(),
                p.display()
            );
        }
        None => print!("{}", im.toml),
    }
    Ok(())
}

/// Reads a scenario file for a study; with `lenient`, every `haproxy-log`
/// arrival skips malformed lines.
fn read_base(file: &Path, lenient: bool) -> Result<Base> {
    let base = if lenient {
        let src = scenario::read_source(file)?;
        Base::from_text(file, &lenient_logs(&src))?
    } else {
        Base::load(file)?
    };
    note_skipped(&base.scenario);
    Ok(base)
}

/// The scenario text with `lenient = true` on every `haproxy-log` arrival
/// (unchanged if it is not valid TOML: the loader will say why).
fn lenient_logs(src: &str) -> String {
    let Ok(mut doc) = src.parse::<toml_edit::DocumentMut>() else {
        return src.to_string();
    };
    if let Some(pops) = doc.get_mut("population").and_then(|p| p.as_array_of_tables_mut()) {
        for p in pops.iter_mut() {
            let Some(arrival) = p.get_mut("arrival") else { continue };
            let is_log = arrival.get("process").and_then(|v| v.as_str()) == Some("haproxy-log");
            if !is_log {
                continue;
            }
            if let Some(t) = arrival.as_inline_table_mut() {
                t.insert("lenient", true.into());
            } else if let Some(t) = arrival.as_table_mut() {
                t.insert("lenient", toml_edit::value(true));
            }
        }
    }
    doc.to_string()
}

/// Says how many malformed log lines each replay skipped.
fn note_skipped(sc: &Scenario) {
    for p in &sc.populations {
        if let scenario::Arrival::HaproxyLog { file, replay, .. } = &p.arrival
            && replay.skipped > 0
        {
            eprintln!(
                "warning: population `{}`: {} of {} lines of {} skipped as malformed (the first: line {})",
                p.name,
                replay.skipped,
                replay.lines,
                file.display(),
                replay.first_skipped.unwrap_or(0)
            );
        }
    }
}

/// Errors already printed, one per line: main only sets the exit status.
#[derive(Debug, thiserror::Error)]
#[error("{bad} of {total} scenario files are invalid")]
struct Reported {
    bad: usize,
    total: usize,
}

fn check(files: &[PathBuf], lenient: bool) -> Result<()> {
    let mut bad = 0;
    for f in files {
        let loaded = if lenient {
            read_base(f, true).map(|b| b.scenario)
        } else {
            scenario::load(f).map_err(anyhow::Error::from).inspect(note_skipped)
        };
        match loaded {
            Ok(sc) => println!(
                "{}: ok ({} servers, {} populations, {} faults)",
                f.display(),
                sc.servers.count,
                sc.populations.len(),
                sc.faults.len()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        return Err(Reported {
            bad,
            total: files.len(),
        }
        .into());
    }
    Ok(())
}

/// Parses `--set` arguments; unless `many`, each must have one value.
fn settings(args: &[String], many: bool) -> Result<Vec<Setting>> {
    let mut out: Vec<Setting> = vec![];
    for a in args {
        let s = Setting::parse("--set", a)?;
        if let Some(first) = out.iter().find(|o| o.key.segs == s.key.segs) {
            return Err(StudyError::Arg {
                arg: s.arg,
                message: format!(
                    "`{}` is already set by `{}`: give each key once (several values go in one --set, key=v1,v2)",
                    s.key.text, first.arg
                ),
            }
            .into());
        }
        if !many && s.values.len() > 1 {
            return Err(StudyError::Arg {
                arg: s.arg,
                message: "several values are for `wscap sweep`; give one here".into(),
            }
            .into());
        }
        out.push(s);
    }
    Ok(out)
}

/// Single-valued settings as assignments.
fn fixed(settings: &[Setting]) -> Vec<Assign> {
    settings
        .iter()
        .map(|s| Assign::new(s.arg.clone(), &s.key, s.values[0].clone()))
        .collect()
}

/// Refuses a run estimated too large for this machine (memory) or for its
/// documented limits (output, events), unless `--allow-large`.
fn check_size(args: &StudyArgs, sc: &Scenario) -> Result<()> {
    check_size_at(args, sc, None)
}

/// Like [`check_size`], for one of the points a study may run: `point`
/// names it in the message (e.g. `--vary servers.count=64, the top of the
/// search range`).
fn check_size_at(args: &StudyArgs, sc: &Scenario, point: Option<&str>) -> Result<()> {
    if args.allow_large {
        return Ok(());
    }
    let budget = scenario::limits::Budget::of_this_machine(args.threads);
    let mut problems = scenario::limits::check_size(sc, &budget);
    if problems.is_empty() {
        return Ok(());
    }
    if let Some(point) = point {
        for p in &mut problems {
            p.message = format!("at {point}: {}", p.message);
        }
    }
    Err(scenario::located_error(&args.file, problems).into())
}

fn check_threads(threads: usize) -> Result<(), StudyError> {
    let max = scenario::limits::MAX_THREADS;
    if threads > max {
        return Err(StudyError::Arg {
            arg: format!("--threads {threads}"),
            message: format!("at most {max} worker threads (0 = one per core)"),
        });
    }
    Ok(())
}

fn check_replications(r: Option<u32>) -> Result<(), StudyError> {
    match r {
        Some(r) if !(1..=10_000).contains(&r) => Err(StudyError::Arg {
            arg: format!("--replications {r}"),
            message: "must be between 1 and 10000".into(),
        }),
        _ => Ok(()),
    }
}

/// Applies `--seed` and `--replications` to a built scenario.
fn seed_and_reps(sc: &mut Scenario, seed: Option<u64>, replications: Option<u32>) {
    if let Some(s) = seed {
        sc.seed = s;
    }
    if let Some(r) = replications {
        sc.replications = r;
    }
}

fn load_with_overrides(args: &StudyArgs) -> Result<Scenario> {
    check_replications(args.replications)?;
    check_threads(args.threads)?;
    let mut sc = if args.set.is_empty() && !args.lenient {
        let sc = scenario::load(&args.file)?;
        note_skipped(&sc);
        sc
    } else {
        let sets = settings(&args.set, false)?;
        read_base(&args.file, args.lenient)?.build(&fixed(&sets))?
    };
    seed_and_reps(&mut sc, args.seed, args.replications);
    Ok(sc)
}

/// `--set a=b --set c=d` as it would be typed again.
fn set_args(sets: &[String]) -> String {
    sets.iter().map(|s| format!(" --set {}", shell_quote(s))).collect()
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_alphanumeric() || "-_.=,:/+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A progress bar over simulated time, drawn only on a terminal (stderr)
/// and never with `--quiet`. Each batch of replications restarts it.
struct Progress {
    pb: ProgressBar,
    done: std::sync::atomic::AtomicU32,
    total: std::sync::atomic::AtomicU32,
    label: std::sync::Mutex<String>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let pb = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr())
        };
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {percent:>3}% simulated, {elapsed} (eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Progress {
            pb,
            done: 0.into(),
            total: 0.into(),
            label: String::new().into(),
        }
    }
    fn set_label(&self, label: &str) {
        *self.label.lock().expect("not poisoned") = label.to_string();
        self.message();
    }
    fn message(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let label = self.label.lock().expect("not poisoned").clone();
        self.pb.set_message(format!(
            "{label} {}/{} replications",
            self.done.load(Relaxed),
            self.total.load(Relaxed)
        ));
    }
    fn tick(&self, t: Tick) {
        use std::sync::atomic::Ordering::Relaxed;
        match t {
            Tick::Batch {
                replications,
                simulated_ns,
            } => {
                self.pb.set_length(simulated_ns.max(1));
                self.pb.set_position(0);
                self.pb.reset_eta();
                self.done.store(0, Relaxed);
                self.total.store(replications, Relaxed);
                self.message();
            }
            Tick::Simulated(ns) => self.pb.inc(ns),
            Tick::Replication => {
                self.done.fetch_add(1, Relaxed);
                self.message();
            }
        }
    }
    /// Prints a line to stderr above the bar (unless quiet).
    fn note(&self, quiet: bool, line: &str) {
        if !quiet {
            self.pb.suspend(|| eprintln!("{line}"));
        }
    }
}

/// `--slo` arguments as they would be typed again.
fn slo_args(slos: &[String]) -> String {
    slos.iter().map(|s| format!(" --slo {}", shell_quote(s))).collect()
}

/// Parses `--slo` against the metrics `sc` reports; at least 2
/// replications are needed to judge them.
fn parse_slos(texts: &[String], sc: &Scenario) -> Result<Vec<study::plan::Slo>, StudyError> {
    if texts.is_empty() {
        return Ok(vec![]);
    }
    let slos = study::plan::parse_slos(texts, &study::plan::metric_names())?;
    study::plan::check_slo_replications(&slos, sc.replications)?;
    Ok(slos)
}

fn run(args: RunArgs) -> Result<Status> {
    let slo_texts = args.slo;
    let args = args.common;
    let sc = load_with_overrides(&args)?;
    // Judged after the run, checked before it.
    let slos = parse_slos(&slo_texts, &sc)?;
    check_size(&args, &sc)?;
    let out = args.out.clone().unwrap_or_else(|| Path::new("output").join(&sc.name));
    report::check_out(&out)?;
    let progress = Progress::new(args.quiet);
    progress.set_label(&sc.name);
    let exec = executor(&args, &out, &sc.name, &progress)?;
    let started = Instant::now();
    let job = study::Job {
        scenario: &sc,
        reps: 0..sc.replications,
    };
    let reps = study::run_batch(&[job], exec.get(), &|t| progress.tick(t)).context("simulation failed")?;
    let outcome = study::outcome(reps.into_iter().next().unwrap_or_default());
    let wall = started.elapsed().as_secs_f64();
    progress.pb.finish_and_clear();
    let command = format!(
        "wscap run {}{}{} --seed {} --replications {}",
        args.file.display(),
        set_args(&args.set),
        slo_args(&slo_texts),
        sc.seed,
        sc.replications
    );
    let verdicts = study::plan::verdicts(&slos, &outcome);
    // The outputs are written on `--threads` workers too (charts in parallel).
    let pool = wscap::experiment::thread_pool(args.threads).context("cannot write outputs")?;
    let files = pool
        .install(|| {
            report::write_run(
                &out,
                &sc,
                &outcome,
                &RunInfo {
                    scenario_file: &args.file,
                    command,
                    slo: &verdicts,
                },
            )
        })
        .with_context(|| format!("cannot write outputs to {}", out.display()))?;
    exec.finish()?;
    if !args.quiet {
        print_summary(&sc, &outcome, wall, &out, files.len());
        print_verdicts(&verdicts);
    }
    Ok(Status::of(verdicts.iter().all(|v| v.check.met)))
}

/// The SLO verdict of a run, one line per SLO.
fn print_verdicts(verdicts: &[study::plan::Verdict]) {
    if verdicts.is_empty() {
        return;
    }
    let failed = verdicts.iter().filter(|v| !v.check.met).count();
    let n = verdicts.iter().map(|v| v.check.n).max().unwrap_or(0);
    let (what, status) = if failed == 0 {
        ("every SLO is met".to_string(), "")
    } else {
        (format!("{failed} of {} not met", verdicts.len()), "; exit status 3")
    };
    println!("SLO verdict: {what} (one-sided 95 % bound of the mean over {n} replications){status}");
    let width = verdicts.iter().map(|v| v.slo.text.len()).max().unwrap_or(0);
    for v in verdicts {
        let c = &v.check;
        let (fmt, pm) = (study::plan::fmt, report::study::pm);
        let detail = if c.mean.is_nan() {
            "not measured".to_string()
        } else if c.bound.is_nan() {
            format!("mean {}, no 95 % bound (fewer than 2 values)", pm(c.mean, c.ci95))
        } else {
            format!(
                "mean {}, {} bound {} vs {}",
                pm(c.mean, c.ci95),
                if v.slo.cmp.is_upper() { "upper" } else { "lower" },
                fmt(c.bound),
                v.slo.threshold
            )
        };
        println!(
            "  {:<width$}  {:<7}  {detail}",
            v.slo.text,
            if c.met { "met" } else { "NOT MET" }
        );
    }
}

/// The answer paragraph of a report, as plain text.
fn answer_of(out: &Path) -> String {
    let md = std::fs::read_to_string(out.join("report.md")).unwrap_or_default();
    md.split("\n\n")
        .find(|p| p.starts_with("**Answer.**"))
        .unwrap_or("")
        .replace("**", "")
}

fn finish_study(quiet: bool, out: &Path, n_files: usize, wall: f64, events: u64) {
    if quiet {
        return;
    }
    println!("{}\n", answer_of(out));
    println!(
        "  {events} events in {wall:.2} s wall = {:.2} M events/s; peak memory {}",
        events as f64 / wall.max(1e-9) / 1e6,
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    println!(
        "  report: {} and report.html ({n_files} files: CSVs, charts…)",
        out.join("report.md").display()
    );
}

/// The output folder of a study, checked before anything runs.
fn study_out(args: &StudyArgs, name: &str, command: &str) -> Result<PathBuf> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("output").join(format!("{name}-{command}")));
    report::check_out(&out)?;
    Ok(out)
}

fn compare(args: CompareArgs) -> Result<Status> {
    let c = &args.common;
    check_replications(c.replications)?;
    let base = read_base(&c.file, c.lenient)?;
    let sets = settings(&c.set, false)?;
    let names = study::compare::parse_strategies(&args.strategies)?;
    let mut points = study::compare::points(&base, &fixed(&sets), &names)?;
    for p in &mut points {
        seed_and_reps(&mut p.scenario, c.seed, c.replications);
    }
    check_threads(c.threads)?;
    for p in &points {
        check_size_at(c, &p.scenario, Some(&p.label()))?;
    }
    let sc = &points[0].scenario;
    let slos = parse_slos(&args.slo, sc)?;
    let objectives = match &args.pareto {
        Some(p) => Some(study::compare::parse_objectives(p, &study::plan::metric_names())?),
        None => None,
    };
    let out = study_out(c, &sc.name, "compare")?;
    let progress = Progress::new(c.quiet);
    progress.set_label(&format!("{} strategies", names.len()));
    let exec = executor(c, &out, &sc.name, &progress)?;
    let started = Instant::now();
    let outcomes = study::run_points(&points, exec.get(), &|t| progress.tick(t)).context("simulation failed")?;
    let wall = started.elapsed().as_secs_f64();
    progress.pb.finish_and_clear();
    let pareto_arg = args
        .pareto
        .as_deref()
        .map(|p| format!(" --pareto {}", shell_quote(p)))
        .unwrap_or_default();
    let command = format!(
        "wscap compare {} --strategies {}{}{}{pareto_arg} --seed {} --replications {}",
        c.file.display(),
        shell_quote(&names.join(",")),
        set_args(&c.set),
        slo_args(&args.slo),
        sc.seed,
        sc.replications
    );
    let info = RunInfo {
        scenario_file: &c.file,
        command,
        slo: &[],
    };
    let objectives = objectives.unwrap_or_else(|| study::compare::default_objectives(&outcomes));
    let rec = study::compare::recommend(&outcomes, &slos, &objectives);
    let files = report::study::write_compare(&out, &names, &points, &outcomes, &rec, &info)
        .with_context(|| format!("cannot write outputs to {}", out.display()))?;
    exec.finish()?;
    let events = outcomes.iter().map(Outcome::total_events).sum();
    finish_study(c.quiet, &out, files.len(), wall, events);
    Ok(Status::of(rec.chosen.is_some()))
}

fn spof(args: SpofArgs) -> Result<Status> {
    let c = &args.common;
    let sc = load_with_overrides(c)?;
    let at = match &args.at {
        Some(t) => Some(wscap::units::parse_duration(t).map_err(|e| StudyError::Arg {
            arg: format!("--at {t}"),
            message: format!("not a duration ({e}): write e.g. 270s or 4.5m"),
        })?),
        None => None,
    };
    let mode = if args.mode == "host" {
        scenario::CrashMode::Host
    } else {
        scenario::CrashMode::Process
    };
    let only: Vec<String> = args
        .only
        .as_deref()
        .map(|o| {
            o.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let slos = parse_slos(&args.slo, &sc)?;
    check_size(c, &sc)?;
    let plan = study::spof::plan(&sc, at, mode, &only)?;
    let out = study_out(c, &sc.name, "spof")?;
    let progress = Progress::new(c.quiet);
    progress.set_label(&format!("{} components", plan.components.len()));
    let exec = executor(c, &out, &sc.name, &progress)?;
    let started = Instant::now();
    let jobs = study::spof::jobs(&plan);
    let outcomes: Vec<Outcome> = study::run_batch(&jobs, exec.get(), &|t| progress.tick(t))
        .context("simulation failed")?
        .into_iter()
        .map(study::outcome)
        .collect();
    let wall = started.elapsed().as_secs_f64();
    progress.pb.finish_and_clear();
    let found = study::spof::analyse(&plan, &outcomes, &slos);
    let command = format!(
        "wscap spof {}{}{} --at {} --mode {}{}{} --seed {} --replications {}",
        c.file.display(),
        set_args(&c.set),
        slo_args(&args.slo),
        plan.at,
        args.mode,
        args.only
            .as_deref()
            .map(|o| format!(" --only {}", shell_quote(o)))
            .unwrap_or_default(),
        "",
        sc.seed,
        sc.replications
    );
    let info = RunInfo {
        scenario_file: &c.file,
        command,
        slo: &[],
    };
    let files = report::spof::write_spof(&out, &plan, &outcomes, &found, &info)
        .with_context(|| format!("cannot write outputs to {}", out.display()))?;
    exec.finish()?;
    let events = outcomes.iter().map(Outcome::total_events).sum();
    finish_study(c.quiet, &out, files.len(), wall, events);
    Ok(Status::of(!found.slo_broken()))
}

fn sweep(args: StudyArgs) -> Result<()> {
    check_replications(args.replications)?;
    let base = read_base(&args.file, args.lenient)?;
    let sets = settings(&args.set, true)?;
    anyhow::ensure!(
        !sets.is_empty(),
        StudyError::Arg {
            arg: "--set".into(),
            message: "give at least one --set key=values to sweep, e.g. --set servers.count=10..20".into(),
        }
    );
    // Single values are fixed for every point; the others are swept.
    let (sets, single): (Vec<Setting>, Vec<Setting>) = sets.into_iter().partition(|s| s.values.len() > 1);
    let mut points = study::sweep::points(&base, &fixed(&single), &sets)?;
    for p in &mut points {
        seed_and_reps(&mut p.scenario, args.seed, args.replications);
    }
    check_threads(args.threads)?;
    for p in &points {
        check_size_at(&args, &p.scenario, Some(&p.label()))?;
    }
    let sc = &points[0].scenario;
    let out = study_out(&args, &sc.name, "sweep")?;
    let progress = Progress::new(args.quiet);
    progress.set_label(&format!("{} points", points.len()));
    let exec = executor(&args, &out, &sc.name, &progress)?;
    let started = Instant::now();
    let outcomes = study::run_points(&points, exec.get(), &|t| progress.tick(t)).context("simulation failed")?;
    let wall = started.elapsed().as_secs_f64();
    progress.pb.finish_and_clear();
    let command = format!(
        "wscap sweep {}{} --seed {} --replications {}",
        args.file.display(),
        set_args(&args.set),
        sc.seed,
        sc.replications
    );
    let info = RunInfo {
        scenario_file: &args.file,
        command,
        slo: &[],
    };
    let x = study::sweep::x_key(&sets);
    let files = report::study::write_sweep(&out, &sets, x, &points, &outcomes, &info)
        .with_context(|| format!("cannot write outputs to {}", out.display()))?;
    exec.finish()?;
    let events = outcomes.iter().map(Outcome::total_events).sum();
    finish_study(args.quiet, &out, files.len(), wall, events);
    Ok(())
}

fn plan(args: PlanArgs) -> Result<Status> {
    let c = &args.common;
    check_replications(c.replications)?;
    let base = read_base(&c.file, c.lenient)?;
    let sets = settings(&c.set, false)?;
    let fixed = fixed(&sets);
    // The scenario as it will run (fixed overrides): its seed, replications and name.
    let mut first = base.build(&fixed)?;
    seed_and_reps(&mut first, c.seed, c.replications);
    check_threads(c.threads)?;
    let names = study::plan::metric_names();
    let slos = args
        .slo
        .iter()
        .map(|s| study::plan::parse_slo(s, &names))
        .collect::<Result<Vec<_>, _>>()?;
    let (key, arg, _current, lo, hi) = study::plan::parse_vary(&base, &args.vary)?;
    let replications = first.replications.max(3);
    if let Some(m) = args.max_replications
        && !(replications..=10_000).contains(&m)
    {
        return Err(StudyError::Arg {
            arg: format!("--max-replications {m}"),
            message: format!("must be between the starting replications ({replications}) and 10000"),
        }
        .into());
    }
    let max_replications = args
        .max_replications
        .unwrap_or(replications.saturating_mul(4))
        .clamp(replications, 10_000);
    // The search may run any value of the range, each with up to
    // `max_replications`: both ends are checked before anything runs (the
    // estimate grows or shrinks with the key; the start lies between).
    // A value the scenario rejects is the search's to report.
    for (v, end) in [(lo, "bottom"), (hi, "top")] {
        let mut a = fixed.clone();
        a.push(Assign::new(
            format!("--vary {}={v}", key.text),
            &key,
            study::overrides::int_value(v),
        ));
        let Ok(mut sc) = base.build(&a) else { continue };
        seed_and_reps(&mut sc, c.seed, Some(max_replications));
        let point = format!(
            "--vary {}={v} (the {end} of the search range, with up to {max_replications} replications)",
            key.text
        );
        check_size_at(c, &sc, Some(&point))?;
    }
    let out = study_out(c, &first.name, "plan")?;
    let seed = first.seed;
    // --seed applies through the fixed assignments.
    let mut fixed = fixed;
    if let Some(s) = c.seed {
        fixed.push(Assign::new(
            format!("--seed {s}"),
            &study::Key::parse("seed").expect("a valid key"),
            study::overrides::int_value(i64::try_from(s).unwrap_or(i64::MAX)),
        ));
    }
    let request = study::plan::Request {
        key,
        arg,
        lo,
        hi,
        slos,
        replications,
        max_replications,
        headroom: !args.no_headroom,
        fixed,
        budget: (!c.allow_large).then(|| scenario::limits::Budget::of_this_machine(c.threads)),
    };
    let progress = Progress::new(c.quiet);
    progress.set_label(&format!("plan {}", request.key.text));
    let exec = executor(c, &out, &first.name, &progress)?;
    let started = Instant::now();
    let plan = study::plan::run(&base, request, exec.get(), &|t| progress.tick(t), &|line| {
        progress.note(c.quiet, line)
    })?;
    let wall = started.elapsed().as_secs_f64();
    progress.pb.finish_and_clear();
    let chosen = match plan.answer {
        Some(v) => {
            let mut sc = base.build(&plan.assigns(v))?;
            sc.replications = plan.evals[&v].replications() as u32;
            Some(sc)
        }
        None => None,
    };
    let command = format!(
        "wscap plan {}{} --vary {}{} --seed {seed} --replications {replications} --max-replications {max_replications}{}",
        c.file.display(),
        slo_args(&args.slo),
        shell_quote(&args.vary),
        set_args(&c.set),
        if args.no_headroom { " --no-headroom" } else { "" }
    );
    let info = RunInfo {
        scenario_file: &c.file,
        command,
        slo: &[],
    };
    let files = report::study::write_plan(&out, &plan, &first, chosen.as_ref(), &info)
        .with_context(|| format!("cannot write outputs to {}", out.display()))?;
    exec.finish()?;
    let mut events: u64 = plan.evals.values().map(|e| e.outcome.total_events()).sum();
    if let Some(h) = &plan.headroom {
        events += h.evals.iter().map(|(_, e)| e.outcome.total_events()).sum::<u64>();
    }
    finish_study(c.quiet, &out, files.len(), wall, events);
    Ok(Status::of(plan.answer.is_some()))
}

fn print_summary(sc: &Scenario, o: &Outcome, wall_s: f64, out: &Path, n_files: usize) {
    let show = |name: &str, label: &str, scale: f64, unit: &str| {
        if let Some(a) = o.aggregate(name).filter(|a| !a.mean.is_nan()) {
            let ci = if a.ci95.is_nan() {
                String::new()
            } else {
                format!(" ± {:.3}", a.ci95 * scale)
            };
            println!("  {label:<32} {:>12.3}{ci} {unit}", a.mean * scale);
        }
    };
    println!(
        "{}: {} replications × {} simulated",
        sc.name,
        o.replications.len(),
        sc.duration
    );
    // The answer as the report says it: steady state and fault windows
    // apart, and why each p99 is what it is.
    for line in report::answer_lines(sc, o) {
        println!("  {}", line.replace("**", ""));
    }
    for line in report::fault_lines(sc, o) {
        println!("  {line}");
    }
    show("imbalance_max_over_mean", "imbalance max/mean", 1.0, "");
    show("jain_index", "Jain's fairness index", 1.0, "");
    if o.replications
        .iter()
        .any(|r| r.stop == wscap::engine::StopReason::EventLimit)
    {
        println!(
            "  WARNING: the event bound (max_events = {}) was hit: results are truncated",
            sc.max_events
        );
    }
    // The cluster, web and storage tiers, as the report says them.
    for line in report::cluster_lines(sc, o)
        .into_iter()
        .chain(report::storage_lines(sc, o))
    {
        println!("  {}", line.replace("**", ""));
    }
    let events = o.total_events();
    let deliveries: f64 = o.replications.iter().filter_map(|r| r.metric("deliveries")).sum();
    let wall = wall_s.max(1e-9);
    println!(
        "  {events} events in {wall_s:.2} s wall = {:.2} M events/s; {:.0} deliveries = {:.1} M deliveries/s; peak memory {}",
        events as f64 / wall / 1e6,
        deliveries,
        deliveries / wall / 1e6,
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    println!(
        "  report: {} ({} files: report.md, summary.csv, charts…)",
        out.join("report.md").display(),
        n_files
    );
}

/// Peak resident memory of this process (Linux: VmHWM), for the summary.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(format!("{:.1} MiB", kb as f64 / 1024.0))
}

#[cfg(test)]
mod tests {
    /// A vector grown from the system's blocks past `MAPPED_FROM` (a copy
    /// into a mapping), then by `mremap` several times, then shrunk back
    /// below it (a copy out), keeps its contents; a zeroed mapping reads
    /// as zeros. A version that advised huge pages for only part of a
    /// mapping made the first `mremap` fail (EFAULT: the range spanned two
    /// mappings) and this test abort.
    #[test]
    fn blocks_keep_their_bytes_across_the_mapping_threshold() {
        // 144-byte items, as a client slot: capacities are then not whole
        // pages.
        let item = |i: usize| [(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15); 18];
        let mut v: Vec<[u64; 18]> = Vec::new();
        for i in 0..300_000 {
            v.push(item(i));
        }
        assert!(
            v.capacity() * 144 >= 8 * super::MAPPED_FROM,
            "grew through several mappings"
        );
        assert!(v.iter().enumerate().all(|(i, x)| *x == item(i)));
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.iter().enumerate().all(|(i, x)| *x == item(i)));
        let z = vec![0u8; 2 * super::MAPPED_FROM];
        assert!(z.iter().all(|&b| b == 0));
    }
}
