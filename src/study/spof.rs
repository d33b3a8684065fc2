//! `wscap spof`: fail each component once and rank what each failure costs
//! (single points of failure).
//!
//! **Components.** Every part of the scenario that can fail: each socket
//! server, each balancer node, each VIP, Redis, the database primary, each
//! replica, each nginx and each app server ([`components`]). A VIP is an
//! address, not a process: it fails when the node answering it at the
//! crash time fails, so a VIP's run *is* its holder node's run, judged
//! again as the address (a VIP with no surviving node to move to is a
//! single point of failure even if nodes are cheap to restart).
//!
//! **Runs.** One point per distinct failure plus a baseline. Every point is
//! the scenario with its own `[[fault]]`s removed; a failure point adds one
//! crash of its component at `at` (default: the middle of the measured run,
//! rounded down to a sample time) with no restart, so the run shows whether
//! anything takes the component's role over. Socket servers and balancer
//! nodes die in `--mode` (`process`: RST at once; `host`: heartbeats time
//! out). Replication `i` of every point uses the scenario's seed and `i`,
//! as `compare` does (common random numbers): before `at` the runs are
//! identical, so differences from the baseline are the failure's.
//!
//! **Impact** ([`IMPACTS`]), each a paired difference failure − baseline
//! over the replications, with its Student-t 95 % CI (as `compare`):
//! connections dropped, connection attempts refused and web requests
//! failed in the fault window (the run's own window: from the crash until
//! the component is back or its role taken over and the system settled,
//! stretched to the end of the outage if that is later; the baseline
//! counted over the same sample intervals); the window's
//! connect and move p99 against the baseline's run p99 (the baseline has
//! no fault: all of it is steady state); the web response p99 of the
//! window's worst interval against the baseline's worst over the same
//! intervals; moves lost over the whole run (only crashes lose moves);
//! storage writes failed (Redis and database) and moves lost in storage
//! (Redis crash, unshipped commits) over the whole run. Storage failures
//! lose durability, not service: they make a component degraded, not an
//! outage (the outage rule reads what users see).
//!
//! **Classification** ([`classify`]), per replication then by majority:
//! a sample interval is *in outage* when, against the same interval of the
//! baseline, the refused ÷ answered connection attempts or the failed ÷
//! web requests are higher by at least [`OUTAGE_RATIO`], or at least that
//! fraction of the baseline's connections is missing (dropped clients not
//! yet reconnected). The outage lasts from the crash to the end of the
//! last interval in outage.
//! - *outage until repaired* (a single point of failure): the run's last
//!   interval is still in outage in more than half of the replications:
//!   nothing took over, only a repair ends it.
//! - *outage until failover*: intervals in outage in more than half of the
//!   replications, but it ended: something took the role over (a VIP
//!   moved, a replica was promoted, the balancer marked a server DOWN and
//!   clients reconnected elsewhere). Its length is the mean outage ± CI.
//! - *degraded*: no outage, but some impact is significantly worse than
//!   the baseline (paired 95 % CI above 0; with one replication, a count
//!   above 0).
//! - *no visible effect*: none of these.
//!
//! Nothing here does I/O.

use std::ops::Range;

use super::compare::Diff;
use super::plan::{Slo, Verdict, verdicts};
use super::{Job, StudyError};
use crate::experiment::{Outcome, Replication};
use crate::scenario::{ClusterMode, CrashMode, DbTarget, Fault, ReadsFrom, Scenario};
use crate::sim::{ComponentKind, World};
use crate::stats;
use crate::time::{SimDuration, SimTime};

/// An interval is in outage when its failure ratio exceeds the baseline's
/// by this much (5 percentage points: twenty times a 99.75 % availability
/// budget, and well above the interval-to-interval noise of a steady run).
pub const OUTAGE_RATIO: f64 = 0.05;

/// The class of a component's failure, mildest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    NoEffect,
    Degraded,
    UntilFailover,
    UntilRepaired,
}

impl Class {
    /// The class in words, as the report and `spof.csv` write it.
    pub fn label(self) -> &'static str {
        match self {
            Class::NoEffect => "no visible effect",
            Class::Degraded => "degraded",
            Class::UntilFailover => "outage until failover",
            Class::UntilRepaired => "outage until repaired",
        }
    }
    pub fn is_spof(self) -> bool {
        self == Class::UntilRepaired
    }
}

/// One component that can fail.
#[derive(Clone, Debug)]
pub struct Component {
    /// "socket servers", "balancer", "VIP", "cache", "database", "web".
    pub tier: &'static str,
    /// "server-0", "balancer-1", "vip-0", "redis", "db-primary",
    /// "db-replica-0", "nginx-1", "app-3".
    pub name: String,
    /// The failure simulated.
    pub fault: Fault,
    /// The point (index into [`Spof::points`]) whose run it is judged on.
    pub point: usize,
    /// What the failure means here, when it needs saying (a VIP's).
    pub note: String,
    /// The redundancy that would remove it as a single point of failure.
    pub redundancy: String,
    /// What would shorten an outage until failover.
    pub shorten: String,
}

/// Everything a spof study runs.
#[derive(Clone, Debug)]
pub struct Spof {
    /// When each component fails.
    pub at: SimDuration,
    pub mode: CrashMode,
    /// The scenario's own faults, removed (described).
    pub removed: Vec<String>,
    /// Point 0 is the baseline (no fault); then one per distinct failure.
    pub points: Vec<Scenario>,
    pub components: Vec<Component>,
}

/// The default crash time: the middle of the measured run, rounded down to
/// a sample time.
pub fn default_at(sc: &Scenario) -> SimDuration {
    let mid = sc.warmup.0 + (sc.duration.0 - sc.warmup.0) / 2;
    let step = sc.sample_interval.0.max(1);
    let t = mid / step * step;
    SimDuration(if t > sc.warmup.0 { t } else { mid })
}

fn arg(at: &str, message: String) -> StudyError {
    StudyError::Arg {
        arg: at.to_string(),
        message,
    }
}

/// Every component of `sc` that can fail, in tier order, each with the
/// crash that fails it at `at` (no restart). The components are the
/// tiers' own (`Tier::components`); the match on their kind is
/// exhaustive, so a new kind of component does not compile until spof
/// knows how to fail it. VIPs are judged on their node's run (`vips`).
fn list(sc: &Scenario, at: SimDuration, mode: CrashMode) -> Vec<(&'static str, String, Fault, String, String)> {
    let mut v = vec![];
    for c in World::new(sc, 0).components() {
        let one = |n: u32, advice: &str| if n == 1 { advice.to_string() } else { String::new() };
        let (tier, fault, red, shorten) = match c.kind {
            ComponentKind::SocketServer => {
                if c.index >= sc.servers.count {
                    continue; // only booted by a scale-out, which spof removes
                }
                (
                    "socket servers",
                    Fault::Crash {
                        server: c.index,
                        at,
                        mode,
                        restart_after: None,
                    },
                    one(
                        sc.servers.count,
                        "add a second socket server (servers.count = 2): clients reconnect to it",
                    ),
                    "clients back sooner: a shorter heartbeat_timeout (host lost) and reconnect backoff; a faster \
                     health check (inter × fall) stops sending to it"
                        .to_string(),
                )
            }
            ComponentKind::BalancerNode => (
                "balancer",
                Fault::BalancerCrash {
                    node: c.index,
                    at,
                    mode,
                    restart_after: None,
                },
                one(
                    sc.balancer.nodes,
                    "add a second balancer node with a VIP failover (balancer.nodes = 2, keepalived)",
                ),
                "a shorter VIP takeover (keepalived advert_int, or Pacemaker)".to_string(),
            ),
            ComponentKind::Vip => continue,
            ComponentKind::Redis => (
                "cache",
                Fault::CacheCrash {
                    at,
                    restart_after: None,
                },
                "add a Redis replica with automatic failover (Sentinel); wscap models a single Redis".to_string(),
                String::new(),
            ),
            ComponentKind::DbPrimary => {
                let d = sc.database.as_ref().expect("a primary needs [database]");
                (
                    "database",
                    Fault::DbCrash {
                        target: DbTarget::Primary,
                        at,
                        restart_after: None,
                    },
                    if d.replicas == 0 {
                        "add a replica so the primary can fail over (database.replicas = 1)".to_string()
                    } else {
                        String::new()
                    },
                    format!(
                        "a shorter failover detection (database.failover_detection = {})",
                        d.failover_detection
                    ),
                )
            }
            ComponentKind::DbReplica => {
                let d = sc.database.as_ref().expect("a replica needs [database]");
                (
                    "database",
                    Fault::DbCrash {
                        target: DbTarget::Replica(c.index),
                        at,
                        restart_after: None,
                    },
                    if d.replicas == 1 && d.reads_from == ReadsFrom::Replicas {
                        "add a second replica (database.replicas = 2) so reads have somewhere to go".to_string()
                    } else {
                        String::new()
                    },
                    String::new(),
                )
            }
            ComponentKind::Nginx => {
                let w = sc.web.as_ref().expect("nginx needs [web]");
                (
                    "web",
                    Fault::NginxCrash {
                        node: c.index,
                        at,
                        restart_after: None,
                    },
                    one(w.nginx.count, "add a second nginx (web.nginx.count = 2)"),
                    String::new(),
                )
            }
            ComponentKind::AppServer => {
                let w = sc.web.as_ref().expect("app servers need [web]");
                (
                    "web",
                    Fault::AppCrash {
                        server: c.index,
                        at,
                        restart_after: None,
                    },
                    one(w.app.count, "add a second app server (web.app.count = 2)"),
                    String::new(),
                )
            }
        };
        v.push((tier, spof_name(&c), fault, red, shorten));
    }
    v
}

/// spof's name for a component: the timeline's, except Redis ("redis").
fn spof_name(c: &crate::sim::Component) -> String {
    match c.kind {
        ComponentKind::Redis => "redis".into(),
        _ => c.name.clone(),
    }
}

/// The names of `sc`'s components (for `--only`'s error message).
pub fn component_names(sc: &Scenario) -> Vec<String> {
    let mut names: Vec<String> = list(sc, default_at(sc), CrashMode::Process)
        .into_iter()
        .map(|c| c.1)
        .collect();
    names.extend(vips(sc).into_iter().map(|(v, _)| format!("vip-{v}")));
    names
}

/// Each VIP and the node answering it at the start (and after a failover
/// nothing changes before the crash: the scenario's faults are removed).
fn vips(sc: &Scenario) -> Vec<(u32, u32)> {
    match sc.balancer.mode {
        ClusterMode::ActivePassive => vec![(0, 0)],
        ClusterMode::ActiveActive => (0..sc.balancer.nodes).map(|n| (n, n)).collect(),
    }
}

/// Plans the study: the crash time (`at`, default [`default_at`]), checked
/// against the warm-up and the run's end; the baseline and one point per
/// distinct failure; `only` (component names) restricts the list.
pub fn plan(sc: &Scenario, at: Option<SimDuration>, mode: CrashMode, only: &[String]) -> Result<Spof, StudyError> {
    let at = match at {
        Some(t) => {
            let a = format!("--at {t}");
            if t <= sc.warmup {
                return Err(arg(
                    &a,
                    format!(
                        "{t} is during the warm-up ({}), whose statistics are not counted: choose a time after it",
                        sc.warmup
                    ),
                ));
            }
            if t >= sc.duration {
                return Err(arg(
                    &a,
                    format!("{t} is not before the end of the run ({})", sc.duration),
                ));
            }
            t
        }
        None => default_at(sc),
    };
    let names = component_names(sc);
    for o in only {
        if !names.contains(o) {
            return Err(arg(
                &format!("--only {o}"),
                format!("no component `{o}`; this scenario's are: {}", names.join(", ")),
            ));
        }
    }
    let mut base = sc.clone();
    let removed = base.faults.iter().map(Fault::describe).collect();
    base.faults.clear();
    let mut points = vec![base.clone()];
    let mut components = vec![];
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let all = list(sc, at, mode);
    let vip_list = vips(sc);
    for (tier, name, fault, redundancy, shorten) in all {
        let node = match &fault {
            Fault::BalancerCrash { node, .. } => Some(*node),
            _ => None,
        };
        let held: Vec<u32> = vip_list
            .iter()
            .filter(|(_, n)| Some(*n) == node)
            .map(|(v, _)| *v)
            .collect();
        let vip_wanted = held.iter().any(|v| wanted(&format!("vip-{v}")));
        if !wanted(&name) && !vip_wanted {
            continue;
        }
        let mut p = base.clone();
        p.faults = vec![fault.clone()];
        let problems = crate::scenario::validate(&p);
        if let Some(pr) = problems.first() {
            return Err(arg(&name, format!("cannot fail it: {}: {}", pr.field, pr.message)));
        }
        points.push(p);
        let point = points.len() - 1;
        if wanted(&name) {
            components.push(Component {
                tier,
                name: name.clone(),
                fault: fault.clone(),
                point,
                note: String::new(),
                redundancy: redundancy.clone(),
                shorten: shorten.clone(),
            });
        }
        for v in held {
            let vname = format!("vip-{v}");
            if !wanted(&vname) {
                continue;
            }
            let nodes = sc.balancer.nodes;
            components.push(Component {
                tier: "VIP",
                name: vname,
                fault: fault.clone(),
                point,
                note: format!("fails with {name}, which answers it (the same run)"),
                redundancy: if nodes == 1 {
                    "add a second balancer node so the VIP can move (balancer.nodes = 2, keepalived)".into()
                } else {
                    String::new()
                },
                shorten: "a shorter VIP takeover (keepalived advert_int, or Pacemaker)".into(),
            });
        }
    }
    Ok(Spof {
        at,
        mode,
        removed,
        points,
        components,
    })
}

/// The batch of a study: every point's replications.
pub fn jobs(spof: &Spof) -> Vec<Job<'_>> {
    spof.points
        .iter()
        .map(|p| Job {
            scenario: p,
            reps: 0..p.replications,
        })
        .collect()
}

/// An impact: its column in `spof.csv`, its label, and whether it is a
/// count (a single replication's count above 0 shows an effect).
pub const IMPACTS: [(&str, &str, bool); 9] = [
    ("dropped", "connections dropped", true),
    ("refused", "attempts refused", true),
    ("connect_ms_p99", "connect p99 (ms)", false),
    ("move_ms_p99", "move p99 (ms)", false),
    ("moves_lost", "moves lost", true),
    ("web_failed", "web errors", true),
    ("web_ms_p99", "web p99 (ms)", false),
    ("writes_failed", "storage writes failed", true),
    ("moves_lost_storage", "moves lost in storage", true),
];

/// One component's verdict.
#[derive(Clone, Debug)]
pub struct Row {
    /// Index into [`Spof::components`].
    pub component: usize,
    pub class: Class,
    /// Outage seconds over the replications (mean, 95 % CI half-width).
    pub outage_s: (f64, f64),
    /// Replications with an outage, and with one still on at the end.
    pub outage_reps: usize,
    pub open_reps: usize,
    pub replications: usize,
    /// Each [`IMPACTS`] entry's paired difference (None: not measured).
    pub impacts: Vec<Option<Diff>>,
    /// The fault window's length and its time to recover (NaN where it
    /// did not recover), mean and CI.
    pub window_s: (f64, f64),
    pub recovery_s: (f64, f64),
    /// Failures (dropped + refused + web errors + moves lost) caused.
    pub failures: Diff,
    /// `--slo` judged on the component's run.
    pub slo: Vec<Verdict>,
}

/// The study's result: rows ranked by impact, worst first.
#[derive(Clone, Debug)]
pub struct Findings {
    pub rows: Vec<Row>,
    /// `--slo` judged on the baseline.
    pub baseline_slo: Vec<Verdict>,
}

fn ci(xs: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    (stats::mean(&v), stats::ci_half_width(&v, 0.95))
}

fn diff(xs: &[f64]) -> Option<Diff> {
    let v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    Some(Diff {
        mean: stats::mean(&v),
        ci95: stats::ci_half_width(&v, 0.95),
        pairs: v.len(),
    })
}

fn cost(r: &Replication, name: &str) -> f64 {
    let k = crate::experiment::FAULT_COSTS.iter().position(|c| *c == name);
    k.and_then(|k| r.faults.first().and_then(|f| f.get(k)))
        .map_or(f64::NAN, |m| m.value)
}

/// The whole-run difference of a sum of metrics (NaN where none is
/// measured: no storage tier).
fn whole(r: &Replication, b: &Replication, names: &[&str]) -> f64 {
    let total = |x: &Replication| {
        let v: Vec<f64> = names.iter().map(|n| metric(x, n)).filter(|v| !v.is_nan()).collect();
        if v.is_empty() { f64::NAN } else { v.iter().sum() }
    };
    total(r) - total(b)
}

/// A latency's difference failure − baseline; where the baseline measured
/// none (no connection attempt after the warm-up without the fault), the
/// failure's own latency (nothing to wait for counts as 0).
fn latency(fault: f64, base: f64) -> f64 {
    if base.is_nan() && !fault.is_nan() {
        fault
    } else {
        fault - base
    }
}

fn metric(r: &Replication, name: &str) -> f64 {
    r.metric(name).unwrap_or(f64::NAN)
}

/// Samples with `time` in `span`, both ends included: the interval ending
/// at the crash holds what happened at its very instant (the crash's
/// drops); what happened before it in that interval is the same in both
/// runs (common random numbers) and cancels in the difference.
fn in_span<'a>(r: &'a Replication, span: &Range<SimTime>) -> impl Iterator<Item = &'a crate::metrics::Sample> {
    let (a, b) = (span.start, span.end);
    r.samples.iter().filter(move |s| s.time >= a && s.time <= b)
}

fn sum(r: &Replication, span: &Range<SimTime>, f: impl Fn(&crate::metrics::Sample) -> u64) -> f64 {
    in_span(r, span).map(f).sum::<u64>() as f64
}

fn worst_web_p99(r: &Replication, span: &Range<SimTime>) -> f64 {
    in_span(r, span)
        .filter_map(|s| s.web.as_ref().and_then(|w| w.ms_p99))
        .fold(f64::NAN, f64::max)
}

fn ratio(bad: u64, all: u64) -> f64 {
    if all == 0 { 0.0 } else { bad as f64 / all as f64 }
}

/// How much worse one interval of the failure run is than the same
/// interval without it: the largest of the excess refused ÷ answered
/// connection attempts, the excess failed ÷ web requests, and the
/// connections missing (the baseline's connections not held, as a
/// fraction of them: clients dropped and not yet back).
fn excess(f: &crate::metrics::Sample, b: &crate::metrics::Sample) -> f64 {
    let refused = ratio(f.refused, f.refused + f.accepted) - ratio(b.refused, b.refused + b.accepted);
    let web = |s: &crate::metrics::Sample| s.web.as_ref().map_or(0.0, |w| ratio(w.failed, w.requests));
    let missing = ratio(b.connections.saturating_sub(f.connections), b.connections);
    refused.max(web(f) - web(b)).max(missing)
}

/// Outage of one replication against its baseline: the end of the last
/// interval in outage (None: no outage), and whether the last interval of
/// the run is in outage.
pub fn outage(fault: &Replication, base: &Replication, at: SimTime) -> (Option<SimTime>, bool) {
    let mut last = None;
    let mut open = false;
    let n = fault.samples.len().min(base.samples.len());
    for (f, b) in fault.samples[..n].iter().zip(&base.samples[..n]) {
        if f.time <= at {
            continue;
        }
        let out = excess(f, b) >= OUTAGE_RATIO;
        if out {
            last = Some(f.time);
        }
        open = out;
    }
    (last, open)
}

/// The class from the per-replication outages and the impacts.
pub fn classify(outage_reps: usize, open_reps: usize, n: usize, impacts: &[Option<Diff>]) -> Class {
    if 2 * open_reps > n {
        Class::UntilRepaired
    } else if 2 * outage_reps > n {
        Class::UntilFailover
    } else if outage_reps > 0
        || impacts.iter().zip(IMPACTS).any(|(d, (_, _, count))| {
            d.is_some_and(|d| d.mean > 0.0 && (d.significant() || (count && !d.ci95.is_finite())))
        })
    {
        Class::Degraded
    } else {
        Class::NoEffect
    }
}

/// Judges every component on its run against the baseline (outcomes in
/// point order, the baseline first) and ranks them: class, then outage,
/// then failures caused, worst first.
pub fn analyse(spof: &Spof, outcomes: &[Outcome], slos: &[Slo]) -> Findings {
    let base = &outcomes[0];
    let at = SimTime::ZERO + spof.at;
    let mut rows: Vec<Row> = spof
        .components
        .iter()
        .enumerate()
        .map(|(ci_, c)| {
            let o = &outcomes[c.point];
            let mut per: Vec<Vec<f64>> = vec![vec![]; IMPACTS.len()];
            let (mut outages, mut failures, mut windows, mut recovery) = (vec![], vec![], vec![], vec![]);
            let (mut outage_reps, mut open_reps) = (0, 0);
            for r in &o.replications {
                let Some(b) = base.replications.iter().find(|b| b.index == r.index) else {
                    continue;
                };
                let end = SimTime::ZERO + spof.points[c.point].duration;
                // The run's fault window, stretched to the outage's end when
                // the component counts as back before the service is (an
                // nginx with no other to route to).
                let (last_out, open) = outage(r, b, at);
                let span = match r.fault_windows.first() {
                    Some(w) => w.start..w.end.min(end),
                    None => at..end,
                };
                let span = span.start..span.end.max(last_out.unwrap_or(SimTime::ZERO));
                let vals = [
                    sum(r, &span, |s| s.dropped) - sum(b, &span, |s| s.dropped),
                    sum(r, &span, |s| s.refused) - sum(b, &span, |s| s.refused),
                    latency(cost(r, "connect_ms_p99"), metric(b, "connect_ms_p99")),
                    latency(cost(r, "move_ms_p99"), metric(b, "move_ms_p99")),
                    if spof.points[0].game.is_some() {
                        metric(r, "moves_lost") - metric(b, "moves_lost")
                    } else {
                        f64::NAN
                    },
                    if r.samples.iter().any(|s| s.web.is_some()) {
                        sum(r, &span, |s| s.web.as_ref().map_or(0, |w| w.failed))
                            - sum(b, &span, |s| s.web.as_ref().map_or(0, |w| w.failed))
                    } else {
                        f64::NAN
                    },
                    latency(worst_web_p99(r, &span), worst_web_p99(b, &span)),
                    whole(r, b, &["cache_writes_failed", "db_writes_failed"]),
                    whole(r, b, &["moves_lost_cache", "moves_lost_db"]),
                ];
                for (k, v) in vals.iter().enumerate() {
                    per[k].push(*v);
                }
                let counted = [vals[0], vals[1], vals[4], vals[5]];
                failures.push(counted.iter().filter(|v| !v.is_nan()).sum::<f64>());
                outages.push(last_out.map_or(0.0, |t| t.since(at).as_secs_f64()));
                outage_reps += usize::from(last_out.is_some());
                open_reps += usize::from(open);
                windows.push(cost(r, "window_s"));
                recovery.push(cost(r, "time_to_recover_s"));
            }
            let impacts: Vec<Option<Diff>> = per.iter().map(|xs| diff(xs)).collect();
            let n = outages.len();
            Row {
                component: ci_,
                class: classify(outage_reps, open_reps, n, &impacts),
                outage_s: ci(&outages),
                outage_reps,
                open_reps,
                replications: n,
                impacts,
                window_s: ci(&windows),
                recovery_s: ci(&recovery),
                failures: diff(&failures).unwrap_or(Diff {
                    mean: f64::NAN,
                    ci95: f64::NAN,
                    pairs: 0,
                }),
                slo: verdicts(slos, o),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.class
            .cmp(&a.class)
            .then(b.outage_s.0.total_cmp(&a.outage_s.0))
            .then(b.failures.mean.total_cmp(&a.failures.mean))
            .then(a.component.cmp(&b.component))
    });
    Findings {
        rows,
        baseline_slo: verdicts(slos, base),
    }
}

impl Findings {
    /// Some single failure (or the baseline) breaks an SLO.
    pub fn slo_broken(&self) -> bool {
        self.baseline_slo.iter().any(|v| !v.check.met) || self.rows.iter().any(|r| r.slo.iter().any(|v| !v.check.met))
    }
    /// The single points of failure, worst first.
    pub fn spofs(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.class.is_spof())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(mean: f64, ci95: f64) -> Option<Diff> {
        Some(Diff { mean, ci95, pairs: 3 })
    }

    #[test]
    fn classes_follow_the_majority_of_replications() {
        let none = vec![d(0.0, 0.0); IMPACTS.len()];
        assert_eq!(classify(3, 2, 3, &none), Class::UntilRepaired);
        assert_eq!(classify(3, 1, 3, &none), Class::UntilFailover);
        assert_eq!(classify(2, 0, 4, &none), Class::Degraded, "half is not a majority");
        assert_eq!(classify(0, 0, 3, &none), Class::NoEffect);
    }

    #[test]
    fn degraded_needs_a_significant_worsening() {
        let mut v = vec![None; IMPACTS.len()];
        v[0] = d(1.3, 1.4);
        assert_eq!(classify(0, 0, 3, &v), Class::NoEffect, "CI covers 0");
        v[0] = d(-5.0, 1.0);
        assert_eq!(classify(0, 0, 3, &v), Class::NoEffect, "better is not degraded");
        v[0] = d(5.0, 1.0);
        assert_eq!(classify(0, 0, 3, &v), Class::Degraded);
        // One replication: a count above 0 shows; a latency does not.
        let mut one = vec![None; IMPACTS.len()];
        one[2] = Some(Diff {
            mean: 30.0,
            ci95: f64::NAN,
            pairs: 1,
        });
        assert_eq!(classify(0, 0, 1, &one), Class::NoEffect);
        one[0] = Some(Diff {
            mean: 2.0,
            ci95: f64::NAN,
            pairs: 1,
        });
        assert_eq!(classify(0, 0, 1, &one), Class::Degraded);
    }

    #[test]
    fn the_default_crash_is_mid_run_after_the_warm_up_on_a_sample_time() {
        let mut sc = crate::scenario::parse(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/web-tier.toml")).unwrap(),
            std::path::Path::new("web-tier.toml"),
            "web-tier",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap();
        assert_eq!(default_at(&sc), SimDuration::from_secs(270));
        sc.duration = SimDuration::from_millis(480_700);
        assert_eq!(default_at(&sc), SimDuration::from_secs(270), "rounded down to a sample");
        let p = plan(&sc, None, CrashMode::Host, &[]).unwrap();
        // The baseline, then one run per failure: the VIP shares its node's.
        assert_eq!(p.points.len(), 1 + 11);
        assert_eq!(p.components.len(), 12);
        assert!(p.points[0].faults.is_empty());
        let vip = p.components.iter().find(|c| c.name == "vip-0").unwrap();
        let node = p.components.iter().find(|c| c.name == "balancer-0").unwrap();
        assert_eq!(vip.point, node.point);
        assert!(matches!(
            p.points[node.point].faults[..],
            [Fault::BalancerCrash {
                node: 0,
                mode: CrashMode::Host,
                restart_after: None,
                ..
            }]
        ));
    }
}
