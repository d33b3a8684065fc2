//! The outputs of `wscap spof`: `spof.csv` (one row per component),
//! `spof_replications.csv` (one row per component and replication of its
//! run's raw fault-window costs), the ranked impact chart, `report.md` and
//! `report.html`, into one output folder replaced whole.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::charts::study::{Bar, BarPanel, write_bars};
use super::study::{finish, num, outputs_list, pm, reproduce, write_csv};
use super::{ReportError, RunInfo};
use crate::experiment::Outcome;
use crate::study::plan::fmt;
use crate::study::spof::{Class, Findings, IMPACTS, Row, Spof};

/// [`crate::study::spof::OUTAGE_RATIO`] in percentage points, for the report.
const OUTAGE_POINTS: f64 = crate::study::spof::OUTAGE_RATIO * 100.0;

/// Writes every output of a spof study into `out`; `outcomes` are in point
/// order (the baseline first).
pub fn write_spof(
    out: &Path,
    spof: &Spof,
    outcomes: &[Outcome],
    found: &Findings,
    info: &RunInfo,
) -> Result<Vec<PathBuf>, ReportError> {
    super::replace_dir(out, |dir| {
        let mut files = vec![spof_csv(&dir.join("spof.csv"), spof, found)?];
        files.push(replications_csv(&dir.join("spof_replications.csv"), spof, outcomes)?);
        let panels = chart_panels(spof, found);
        if !panels.is_empty() {
            let title = format!(
                "{}: each component failed once at {} (paired difference from no fault, mean and 95 % CI), worst first",
                spof.points[0].name, spof.at
            );
            files.extend(write_bars(dir, "spof", &title, &panels)?);
        }
        let md = spof_md(spof, outcomes, found, info, &files, dir);
        finish(dir, md, files)
    })
}

fn name(spof: &Spof, r: &Row) -> String {
    spof.components[r.component].name.clone()
}

/// What the outage was, in words: "outage until failover (20.0 ± 0.0 s)".
fn class_words(r: &Row) -> String {
    match r.class {
        Class::UntilFailover => format!("{} ({} s)", r.class.label(), pm(r.outage_s.0, r.outage_s.1)),
        Class::UntilRepaired => format!(
            "{} (still down at the end of the run, {} s after the crash)",
            r.class.label(),
            fmt(r.outage_s.0)
        ),
        _ => r.class.label().to_string(),
    }
}

/// The advice for a row: the redundancy for a SPOF, what shortens a
/// failover's outage.
fn advice(spof: &Spof, r: &Row) -> String {
    let c = &spof.components[r.component];
    match r.class {
        Class::UntilRepaired if !c.redundancy.is_empty() => c.redundancy.clone(),
        Class::UntilRepaired => format!("run a second {} that can take its role over", c.tier),
        Class::UntilFailover => c.shorten.clone(),
        Class::Degraded => c.redundancy.clone(),
        Class::NoEffect => String::new(),
    }
}

fn spof_csv(path: &Path, spof: &Spof, found: &Findings) -> Result<PathBuf, ReportError> {
    let mut header: Vec<String> = [
        "rank",
        "tier",
        "component",
        "class",
        "spof",
        "outage_s",
        "outage_s_ci95",
        "outage_replications",
        "replications",
        "window_s",
        "window_s_ci95",
        "time_to_recover_s",
        "time_to_recover_s_ci95",
        "failures_diff",
        "failures_diff_ci95",
    ]
    .map(String::from)
    .to_vec();
    for (m, ..) in IMPACTS {
        header.push(format!("{m}_diff"));
        header.push(format!("{m}_diff_ci95"));
    }
    header.push("slos_met".into());
    header.push("note".into());
    header.push("advice".into());
    let rows: Vec<Vec<String>> = found
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let c = &spof.components[r.component];
            let mut v = vec![
                (i + 1).to_string(),
                c.tier.to_string(),
                c.name.clone(),
                r.class.label().to_string(),
                r.class.is_spof().to_string(),
                num(r.outage_s.0),
                num(r.outage_s.1),
                r.outage_reps.to_string(),
                r.replications.to_string(),
                num(r.window_s.0),
                num(r.window_s.1),
                num(r.recovery_s.0),
                num(r.recovery_s.1),
                num(r.failures.mean),
                num(r.failures.ci95),
            ];
            for d in &r.impacts {
                v.push(d.map_or(String::new(), |d| num(d.mean)));
                v.push(d.map_or(String::new(), |d| num(d.ci95)));
            }
            v.push(if r.slo.is_empty() {
                String::new()
            } else {
                r.slo.iter().all(|v| v.check.met).to_string()
            });
            v.push(c.note.clone());
            v.push(advice(spof, r));
            v
        })
        .collect();
    write_csv(path, &header, &rows)
}

/// One row per component and replication: its run's fault-window costs
/// (as `faults.csv` of `wscap run`).
fn replications_csv(path: &Path, spof: &Spof, outcomes: &[Outcome]) -> Result<PathBuf, ReportError> {
    let mut header: Vec<String> = ["component", "fault", "replication"].map(String::from).to_vec();
    header.extend(crate::experiment::FAULT_COSTS.iter().map(|c| c.to_string()));
    let mut rows = vec![];
    for c in &spof.components {
        for r in &outcomes[c.point].replications {
            let mut v = vec![c.name.clone(), c.fault.describe(), r.index.to_string()];
            if let Some(f) = r.faults.first() {
                v.extend(f.iter().map(|m| num(m.value)));
            }
            rows.push(v);
        }
    }
    write_csv(path, &header, &rows)
}

fn chart_panels(spof: &Spof, found: &Findings) -> Vec<BarPanel> {
    let bars = |f: &dyn Fn(&Row) -> (f64, f64)| -> Vec<Bar> {
        found
            .rows
            .iter()
            .map(|r| {
                let (mean, ci95) = f(r);
                Bar {
                    label: name(spof, r),
                    mean,
                    ci95,
                }
            })
            .collect()
    };
    let mut panels = vec![
        BarPanel {
            title: "outage (s)".into(),
            bars: bars(&|r| r.outage_s),
        },
        BarPanel {
            title: "failures caused (dropped + refused + web errors + moves lost)".into(),
            bars: bars(&|r| (r.failures.mean, r.failures.ci95)),
        },
    ];
    for (k, (m, label, _)) in IMPACTS.iter().enumerate() {
        if !matches!(*m, "connect_ms_p99" | "move_ms_p99" | "web_ms_p99") {
            continue;
        }
        if found.rows.iter().all(|r| r.impacts[k].is_none_or(|d| d.mean.is_nan())) {
            continue;
        }
        panels.push(BarPanel {
            title: format!("{label}, difference"),
            bars: bars(&|r| r.impacts[k].map_or((f64::NAN, f64::NAN), |d| (d.mean, d.ci95))),
        });
    }
    panels
}

fn spof_md(
    spof: &Spof,
    outcomes: &[Outcome],
    found: &Findings,
    info: &RunInfo,
    files: &[PathBuf],
    dir: &Path,
) -> String {
    let sc = &spof.points[0];
    let mut s = format!("# wscap spof: {}\n\n", sc.name);
    // The answer first.
    let spofs: Vec<&Row> = found.spofs().collect();
    if spofs.is_empty() {
        let _ = write!(
            s,
            "**Answer.** No single point of failure: every one of the {} components fails without an outage that \
             lasts until a repair.",
            found.rows.len()
        );
    } else {
        let items: Vec<String> = spofs
            .iter()
            .map(|r| {
                let a = advice(spof, r);
                format!("**{}** ({a})", name(spof, r))
            })
            .collect();
        let _ = write!(
            s,
            "**Answer.** {} single point{} of failure: {}.",
            spofs.len(),
            if spofs.len() == 1 { "" } else { "s" },
            items.join("; ")
        );
    }
    let failover: Vec<String> = found
        .rows
        .iter()
        .filter(|r| r.class == Class::UntilFailover)
        .map(|r| format!("{} ({} s)", name(spof, r), pm(r.outage_s.0, r.outage_s.1)))
        .collect();
    if !failover.is_empty() {
        let _ = write!(s, " Outage until failover: {}.", failover.join(", "));
    }
    let degraded: Vec<String> = found
        .rows
        .iter()
        .filter(|r| r.class == Class::Degraded)
        .map(|r| name(spof, r))
        .collect();
    if !degraded.is_empty() {
        let _ = write!(s, " Degraded: {}.", degraded.join(", "));
    }
    let none = found.rows.iter().filter(|r| r.class == Class::NoEffect).count();
    if none > 0 {
        let _ = write!(
            s,
            " No visible effect: {none} component{}.",
            if none == 1 { "" } else { "s" }
        );
    }
    s.push_str("\n\n");
    if !found.baseline_slo.is_empty() {
        let broken: Vec<String> = found
            .rows
            .iter()
            .filter(|r| r.slo.iter().any(|v| !v.check.met))
            .map(|r| name(spof, r))
            .collect();
        let base_ok = found.baseline_slo.iter().all(|v| v.check.met);
        if broken.is_empty() && base_ok {
            s.push_str("**SLO verdict: met.** No single failure breaks an SLO (one-sided 95 % bound of the mean).\n\n");
        } else {
            let _ = writeln!(
                s,
                "**SLO verdict: not met.** {}{}; `wscap spof` exits with status 3.\n",
                if base_ok {
                    String::new()
                } else {
                    "the scenario without any fault already breaks an SLO; ".into()
                },
                if broken.is_empty() {
                    "no single failure adds to it".to_string()
                } else {
                    format!("a single failure breaks an SLO: {}", broken.join(", "))
                }
            );
        }
    }
    let reps = outcomes.first().map_or(0, |o| o.replications.len());
    let _ = writeln!(
        s,
        "Each component below was crashed once at **{}** ({} for socket servers and balancer nodes), with no \
         restart, in a run of {} (warm-up {} not counted) with the scenario's own faults removed{}; {reps} \
         replications each, against the same replications without any fault (same seeds: common random numbers, \
         so the runs are identical until the crash). Impacts are the paired differences failure − no fault, mean \
         ± 95 % CI half-width (Student t).\n",
        spof.at,
        match spof.mode {
            crate::scenario::CrashMode::Process => "process crash",
            crate::scenario::CrashMode::Host => "host lost",
        },
        sc.duration,
        sc.warmup,
        if spof.removed.is_empty() {
            String::new()
        } else {
            format!(" ({})", spof.removed.join("; "))
        }
    );
    // The ranked table.
    let shown: Vec<usize> = (0..IMPACTS.len())
        .filter(|&k| {
            found
                .rows
                .iter()
                .any(|r| r.impacts[k].is_some_and(|d| !d.mean.is_nan()))
        })
        .collect();
    s.push_str("| rank | component | class | outage (s) |");
    for &k in &shown {
        let _ = write!(s, " Δ {} |", IMPACTS[k].1);
    }
    s.push_str(" recovery (s) | what would remove it |\n|---|---|---|---|");
    s.push_str(&"---|".repeat(shown.len() + 2));
    s.push('\n');
    for (i, r) in found.rows.iter().enumerate() {
        let c = &spof.components[r.component];
        let cname = if c.note.is_empty() {
            format!("{} ({})", c.name, c.tier)
        } else {
            format!("{} ({}; {})", c.name, c.tier, c.note)
        };
        let class = if r.class.is_spof() {
            format!("**{}**", r.class.label())
        } else {
            r.class.label().to_string()
        };
        let _ = write!(
            s,
            "| {} | {cname} | {class} | {} |",
            i + 1,
            pm(r.outage_s.0, r.outage_s.1)
        );
        for &k in &shown {
            let cell = r.impacts[k].map_or("n/a".to_string(), |d| {
                let t = pm(d.mean, d.ci95);
                if d.significant() && d.mean > 0.0 {
                    format!("**{t}**")
                } else {
                    t
                }
            });
            let _ = write!(s, " {cell} |");
        }
        let _ = writeln!(s, " {} | {} |", pm(r.recovery_s.0, r.recovery_s.1), advice(spof, r));
    }
    s.push_str(
        "\n**Bold** impacts are significantly worse than without the fault (the paired 95 % CI lies above 0). \
         Recovery is the fault window's time to recover (n/a where the system did not settle before the end of \
         the run).\n\n",
    );
    for r in &found.rows {
        if matches!(r.class, Class::UntilFailover | Class::UntilRepaired) {
            let _ = writeln!(
                s,
                "- **{}**: {}; outage in {} of {} replications{}.",
                name(spof, r),
                class_words(r),
                r.outage_reps,
                r.replications,
                if r.open_reps > 0 {
                    format!(", still on at the end in {}", r.open_reps)
                } else {
                    String::new()
                }
            );
        }
    }
    s.push('\n');
    if files.iter().any(|f| f.ends_with("spof.svg")) {
        s.push_str(
            "![Each component's failure: outage, failures caused and latency differences (mean and 95 % CI), worst \
             first; spof.png is the same chart](spof.svg)\n\n",
        );
    }
    if !found.baseline_slo.is_empty() {
        s.push_str("## SLOs under each single failure\n\n| component |");
        for v in &found.baseline_slo {
            let _ = write!(s, " `{}` |", v.slo.text);
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(found.baseline_slo.len()));
        s.push('\n');
        let cell = |v: &crate::study::plan::Verdict| {
            let c = &v.check;
            let bound = if c.bound.is_nan() { "n/a".into() } else { fmt(c.bound) };
            if c.met {
                format!("met (bound {bound})")
            } else {
                format!("**not met** (bound {bound})")
            }
        };
        s.push_str("| no fault |");
        for v in &found.baseline_slo {
            let _ = write!(s, " {} |", cell(v));
        }
        s.push('\n');
        for r in &found.rows {
            let _ = write!(s, "| {} |", name(spof, r));
            for v in &r.slo {
                let _ = write!(s, " {} |", cell(v));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let _ = write!(
        s,
        "## How components are classified\n\n\
         A sample interval ({}) is *in outage* when, against the same interval without the fault, the refused ÷ \
         answered connection attempts or the failed ÷ web requests are at least {OUTAGE_POINTS} percentage points \
         higher, or at least {OUTAGE_POINTS} % of the connections are missing (dropped clients not yet back). The \
         outage lasts from the crash to the end of the last interval in outage.\n\n\
         - **outage until repaired** (a single point of failure): the run's last interval is still in outage in \
         more than half of the replications — nothing took the component's role over.\n\
         - **outage until failover**: intervals in outage in more than half of the replications, and the outage \
         ended: a VIP moved, a replica was promoted, or the balancer marked the server DOWN and clients \
         reconnected elsewhere. Its length is the mean outage ± 95 % CI, to within one sample interval.\n\
         - **degraded**: no outage, but an impact is significantly worse than without the fault (paired 95 % CI \
         above 0; with one replication, a count above 0), or an outage in a minority of replications.\n\
         - **no visible effect**: none of these.\n\n\
         Impacts: connections dropped, attempts refused and web errors are counted over the run's fault window \
         (from the crash until the component is back, or its role taken over, and the system settled — or \
         until the outage ended, if later; the baseline over the same intervals); connect and move p99 are the window's against the baseline's whole \
         run (all steady state; where the baseline had no attempt after the warm-up, the window's own p99); web p99 is the window's worst interval against the baseline's worst over the \
         same intervals; moves lost are over the whole run (only crashes lose moves), and so are storage writes \
         failed (Redis and database) and moves lost in storage (a Redis crash, unshipped commits): those lose \
         durability, not service, so they make a component degraded, never an outage. A VIP fails with the node \
         answering it: its row is that node's run, judged as the address.\n\n",
        sc.sample_interval,
    );
    s.push_str(&outputs_list(files, dir));
    s.push_str(&reproduce(info, sc.seed));
    s
}
