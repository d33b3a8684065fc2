//! `wscap plan`: the smallest value of an integer key (usually
//! `servers.count`) that meets every SLO with 95 % confidence, and how
//! much more load that deployment takes before an SLO breaks.
//!
//! **Meeting an SLO with 95 % confidence.** For `metric < x` the one-sided
//! 95 % upper confidence bound of the metric's mean over the replications,
//! mean + t(0.95, n−1)·s/√n, must be below `x` (`<=`: at most `x`); for
//! `metric > x` the lower bound must be above it. A metric that was not
//! measured (NaN in every replication) does not meet its SLO.
//!
//! **Replications near the boundary.** A value is first run with the
//! scenario's replications (at least 3). While an SLO's two-sided 95 %
//! interval straddles its threshold (neither met nor clearly broken) the
//! replications are doubled, up to a cap; still undecided at the cap counts
//! as not met.
//!
//! **Search.** Larger values are assumed to help (more servers). From the
//! scenario's value the search steps by 1, 2, 4, … up (while not met) or
//! down (while met) and then bisects the last gap, so it evaluates
//! O(log range) values, each bounded.
//!
//! **Headroom.** The chosen deployment's load is scaled by a factor f
//! (every population: Poisson rate and `max_clients`, ramp `target`, step
//! `count`; trace arrivals cannot be scaled) with f = 1.05, 1.1, 1.2, 1.4, …
//! until an SLO is no longer met, then bisected to 1 % of load; the
//! headroom is the largest f that still met every SLO, minus 1.

use std::collections::BTreeMap;

use super::overrides::{Assign, Base, Key, OValue, int_value};
use super::{Executor, Job, Progress, StudyError, outcome, run_batch, values};
use crate::experiment::{Outcome, Replication};
use crate::scenario::{self, Arrival, Scenario, limits};
use crate::stats;

/// At most this many values are evaluated in one search, and this many
/// load factors for the headroom.
pub const MAX_EVALS: usize = 64;
/// Headroom is searched up to this load factor.
pub const MAX_FACTOR: f64 = 10.0;
/// Headroom resolution (fraction of the load).
pub const FACTOR_RESOLUTION: f64 = 0.01;

/// A comparison of an SLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// `<` and `<=`: the SLO bounds the metric from above.
    pub fn is_upper(self) -> bool {
        self.upper()
    }
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
    fn upper(self) -> bool {
        matches!(self, Cmp::Lt | Cmp::Le)
    }
    fn holds(self, v: f64, x: f64) -> bool {
        match self {
            Cmp::Lt => v < x,
            Cmp::Le => v <= x,
            Cmp::Gt => v > x,
            Cmp::Ge => v >= x,
        }
    }
}

/// A service-level objective: `metric < threshold` and the like.
#[derive(Clone, Debug)]
pub struct Slo {
    pub text: String,
    pub metric: &'static str,
    pub cmp: Cmp,
    pub threshold: f64,
}

/// Parses `move_ms_p99<100`; `metrics` are the valid names.
pub fn parse_slo(text: &str, metrics: &[&'static str]) -> Result<Slo, StudyError> {
    let bad = |message: String| StudyError::Arg {
        arg: format!("--slo {text}"),
        message,
    };
    let t = text.trim();
    let Some(pos) = t.find(['<', '>']) else {
        return Err(bad(
            "expected metric<value, metric<=value, metric>value or metric>=value".into(),
        ));
    };
    let name = t[..pos].trim();
    let rest = &t[pos..];
    let (cmp, num) = if let Some(r) = rest.strip_prefix("<=") {
        (Cmp::Le, r)
    } else if let Some(r) = rest.strip_prefix(">=") {
        (Cmp::Ge, r)
    } else if let Some(r) = rest.strip_prefix('<') {
        (Cmp::Lt, r)
    } else {
        (Cmp::Gt, &rest[1..])
    };
    let threshold: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite())
        .ok_or_else(|| bad(format!("`{}` is not a number", num.trim())))?;
    let Some(&metric) = metrics.iter().find(|m| **m == name) else {
        return Err(bad(format!(
            "unknown metric `{name}`; the metrics are: {}",
            metrics.join(", ")
        )));
    };
    Ok(Slo {
        text: format!("{metric}{}{threshold}", cmp.symbol()),
        metric,
        cmp,
        threshold,
    })
}

/// The names of the metrics a replication reports (every run reports all
/// of them, NaN where not measured), from their definitions.
pub fn metric_names() -> Vec<&'static str> {
    crate::metrics_defs::METRICS.iter().map(|d| d.name).collect()
}

/// One SLO judged on one evaluation.
#[derive(Clone, Debug)]
pub struct Check {
    /// Replications that measured the metric.
    pub n: usize,
    pub mean: f64,
    /// Two-sided 95 % half-width.
    pub ci95: f64,
    /// The one-sided 95 % bound on the unfavourable side (upper for `<`).
    pub bound: f64,
    pub met: bool,
    /// Met, or broken with 95 % confidence: more replications would not
    /// change the verdict much.
    pub decided: bool,
}

/// Judges `slo` on `xs` (one value per replication, NaN left out).
pub fn judge(slo: &Slo, xs: &[f64]) -> Check {
    let mean = stats::mean(xs);
    let ci95 = stats::ci_half_width(xs, 0.95);
    // One-sided 95 %: the two-sided 90 % half-width.
    let one = stats::ci_half_width(xs, 0.90);
    if xs.len() < 2 || !one.is_finite() {
        return Check {
            n: xs.len(),
            mean,
            ci95,
            bound: f64::NAN,
            met: false,
            decided: xs.is_empty(),
        };
    }
    let (bound, other) = if slo.cmp.upper() {
        (mean + one, mean - one)
    } else {
        (mean - one, mean + one)
    };
    let met = slo.cmp.holds(bound, slo.threshold);
    let broken = !slo.cmp.holds(other, slo.threshold);
    Check {
        n: xs.len(),
        mean,
        ci95,
        bound,
        met,
        decided: met || broken,
    }
}

/// One SLO and its verdict on an outcome (`wscap run --slo`).
#[derive(Clone, Debug)]
pub struct Verdict {
    pub slo: Slo,
    pub check: Check,
}

/// Judges every SLO on `o`'s replications.
pub fn verdicts(slos: &[Slo], o: &Outcome) -> Vec<Verdict> {
    slos.iter()
        .map(|s| Verdict {
            slo: s.clone(),
            check: judge(s, &values(o, s.metric)),
        })
        .collect()
}

/// Parses every `--slo`; `metrics` are the valid names.
pub fn parse_slos(texts: &[String], metrics: &[&'static str]) -> Result<Vec<Slo>, StudyError> {
    texts.iter().map(|t| parse_slo(t, metrics)).collect()
}

/// An SLO is judged on the 95 % bound of a mean over replications: at
/// least two are needed.
pub fn check_slo_replications(slos: &[Slo], replications: u32) -> Result<(), StudyError> {
    match slos.first() {
        Some(s) if replications < 2 => Err(StudyError::Arg {
            arg: format!("--slo {}", s.text),
            message: format!(
                "an SLO is judged on the one-sided 95 % confidence bound of the mean over replications, which \
                 needs at least 2 (this run has {replications}): add --replications 2 or more"
            ),
        }),
        _ => Ok(()),
    }
}

/// One evaluated candidate (a value of the key, or a load factor).
#[derive(Clone, Debug)]
pub struct Eval {
    pub outcome: Outcome,
    pub checks: Vec<Check>,
    /// Why the scenario rejected this candidate (then nothing ran).
    pub rejected: Option<String>,
}

impl Eval {
    pub fn met(&self) -> bool {
        self.rejected.is_none() && self.checks.iter().all(|c| c.met)
    }
    fn decided(&self) -> bool {
        self.rejected.is_some() || self.met() || self.checks.iter().any(|c| c.decided && !c.met)
    }
    pub fn replications(&self) -> usize {
        self.outcome.replications.len()
    }
}

/// What plan was asked.
pub struct Request {
    pub key: Key,
    /// The `--vary` argument, for messages.
    pub arg: String,
    /// Inclusive search range.
    pub lo: i64,
    pub hi: i64,
    pub slos: Vec<Slo>,
    /// Replications per candidate at first, and the cap near the boundary.
    pub replications: u32,
    pub max_replications: u32,
    pub headroom: bool,
    /// Assignments applied before the varied key (e.g. `--set duration=…`).
    pub fixed: Vec<Assign>,
    /// The size limits every headroom load is held to before it runs
    /// (None: `--allow-large`). The values of the key are checked before
    /// the search starts (the CLI checks both ends of the range).
    pub budget: Option<limits::Budget>,
}

/// The headroom of the chosen deployment.
#[derive(Clone, Debug)]
pub struct Headroom {
    /// Every load factor evaluated, ascending.
    pub evals: Vec<(f64, Eval)>,
    /// The largest factor that met every SLO.
    pub factor: f64,
    /// The smallest factor that did not, and the SLOs it broke (indices).
    pub broken: Option<(f64, Vec<usize>)>,
    /// Populations whose load cannot be scaled (trace arrivals).
    pub unscaled: Vec<String>,
}

/// The answer of a plan.
pub struct Plan {
    pub request: Request,
    /// The scenario's own value of the key.
    pub current: i64,
    /// Every value evaluated.
    pub evals: BTreeMap<i64, Eval>,
    /// The smallest value that met every SLO (None: none in the range).
    pub answer: Option<i64>,
    pub headroom: Option<Headroom>,
    pub notes: Vec<String>,
}

impl Plan {
    /// The scenario of the chosen value (with the fixed assignments).
    pub fn assigns(&self, value: i64) -> Vec<Assign> {
        let mut a = self.request.fixed.clone();
        a.push(Assign::new(
            format!("{}={value}", self.request.arg),
            &self.request.key,
            int_value(value),
        ));
        a
    }
}

/// The integer value of `key` in the scenario.
pub fn current_value(base: &Base, key: &Key, arg: &str) -> Result<i64, StudyError> {
    let bad = |message: String| StudyError::Arg {
        arg: arg.to_string(),
        message,
    };
    match base.current(key) {
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| bad(format!("`{}` is {n}: --vary needs a whole number", key.text))),
        Some(other) => Err(bad(format!(
            "`{}` is {other}: --vary needs a key whose value is a whole number (e.g. servers.count)",
            key.text
        ))),
        None => Err(bad(format!(
            "`{}` is not a key of this scenario (or has no value): --vary needs a whole-number key such as servers.count",
            key.text
        ))),
    }
}

/// Parses `--vary key` or `--vary key=lo..hi`; the default range is
/// 1..=max(4·current, current + 16).
pub fn parse_vary(base: &Base, text: &str) -> Result<(Key, String, i64, i64, i64), StudyError> {
    let arg = format!("--vary {text}");
    let bad = |message: String| StudyError::Arg {
        arg: arg.clone(),
        message,
    };
    let (k, range) = match text.split_once('=') {
        Some((k, r)) => (k, Some(r)),
        None => (text, None),
    };
    let key = Key::parse(k).map_err(bad)?;
    let current = current_value(base, &key, &arg)?;
    let (lo, hi) = match range {
        None => (
            1.min(current),
            (current.saturating_mul(4)).max(current.saturating_add(16)),
        ),
        Some(r) => {
            let vals = super::overrides::parse_values(r).map_err(bad)?;
            let ints: Vec<i64> = vals
                .iter()
                .filter_map(|v| v.as_f64())
                .filter(|x| x.fract() == 0.0)
                .map(|x| x as i64)
                .collect();
            if ints.len() != vals.len() || ints.len() < 2 || ints.windows(2).any(|w| w[1] != w[0] + 1) {
                return Err(bad("give the search range as lo..hi, e.g. servers.count=8..64".into()));
            }
            (ints[0], *ints.last().expect("at least two"))
        }
    };
    Ok((key, arg, current, lo, hi))
}

/// Scales every population's load by `f`; returns the names of those that
/// cannot be scaled (trace arrivals).
pub fn scale_load(sc: &mut Scenario, f: f64) -> Vec<String> {
    let mut unscaled = vec![];
    let scale = |n: u64| ((n as f64) * f).round().max(1.0) as u64;
    for p in &mut sc.populations {
        match &mut p.arrival {
            Arrival::Poisson { rate, max_clients, .. } => {
                rate.per_s *= f;
                if let Some(m) = max_clients {
                    *m = scale(*m);
                }
            }
            Arrival::Ramp { target, .. } => *target = scale(*target),
            Arrival::Step { count, .. } => *count = scale(*count),
            Arrival::Trace { .. } | Arrival::HaproxyLog { .. } => unscaled.push(p.name.clone()),
        }
    }
    unscaled
}

/// Runs the search. `note` receives one line per evaluation (for the
/// terminal).
pub fn run(
    base: &Base,
    request: Request,
    exec: &dyn Executor,
    progress: Progress,
    note: &dyn Fn(&str),
) -> Result<Plan, StudyError> {
    let (lo, hi) = (request.lo, request.hi);
    if lo > hi {
        return Err(StudyError::Arg {
            arg: request.arg.clone(),
            message: format!("empty range {lo}..{hi}"),
        });
    }
    let current = current_value(base, &request.key, &request.arg)?;
    let start = current.clamp(lo, hi);
    let build = |v: i64| -> Result<Scenario, StudyError> {
        let mut a = request.fixed.clone();
        a.push(Assign::new(
            format!("{}={v}", request.arg),
            &request.key,
            OValue {
                value: toml_edit::Value::from(v),
                text: v.to_string(),
            },
        ));
        let mut sc = base.build(&a)?;
        sc.replications = request.replications;
        Ok(sc)
    };
    // Caught before anything runs: the start and the top of the range.
    build(start)?;
    build(hi)?;

    let mut evals: BTreeMap<i64, Eval> = BTreeMap::new();
    let mut notes = vec![];
    let mut evaluate = |v: i64, evals: &mut BTreeMap<i64, Eval>| -> Result<bool, StudyError> {
        if let Some(e) = evals.get(&v) {
            return Ok(e.met());
        }
        if evals.len() >= MAX_EVALS {
            return Err(StudyError::Arg {
                arg: request.arg.clone(),
                message: format!("more than {MAX_EVALS} values evaluated: narrow the range"),
            });
        }
        let e = match build(v) {
            Ok(sc) => evaluate_scenario(&sc, &request, exec, progress)?,
            Err(e) => {
                let msg = e.to_string();
                notes.push(format!("{}={v} is rejected by the scenario: {msg}", request.key.text));
                rejected(msg)
            }
        };
        note(&describe(&format!("{}={v}", request.key.text), &e, &request.slos));
        let met = e.met();
        evals.insert(v, e);
        Ok(met)
    };

    // Bracket: `pass` meets, `fail` does not (None: not found yet).
    let (mut pass, mut fail): (Option<i64>, Option<i64>) = (None, None);
    if evaluate(start, &mut evals)? {
        pass = Some(start);
        let mut step = 1i64;
        while let Some(p) = pass
            && p > lo
        {
            let v = (p - step).max(lo);
            if evaluate(v, &mut evals)? {
                pass = Some(v);
                step = step.saturating_mul(2);
            } else {
                fail = Some(v);
                break;
            }
        }
    } else {
        fail = Some(start);
        let mut step = 1i64;
        while let Some(f) = fail
            && f < hi
        {
            let v = f.saturating_add(step).min(hi);
            if evaluate(v, &mut evals)? {
                pass = Some(v);
                break;
            }
            fail = Some(v);
            step = step.saturating_mul(2);
        }
    }
    if let (Some(mut p), Some(mut f)) = (pass, fail) {
        while p - f > 1 {
            let mid = f + (p - f) / 2;
            if evaluate(mid, &mut evals)? {
                p = mid;
            } else {
                f = mid;
            }
        }
        pass = Some(p);
    }

    let headroom = match pass {
        Some(v) if request.headroom => {
            let sc = build(v)?;
            Some(headroom(&sc, &request, exec, progress, note)?)
        }
        _ => None,
    };
    Ok(Plan {
        request,
        current,
        evals,
        answer: pass,
        headroom,
        notes,
    })
}

fn rejected(msg: String) -> Eval {
    Eval {
        outcome: outcome(vec![]),
        checks: vec![],
        rejected: Some(msg),
    }
}

/// One line about an evaluation.
pub fn describe(what: &str, e: &Eval, slos: &[Slo]) -> String {
    if let Some(r) = &e.rejected {
        return format!("{what}: rejected ({})", r.lines().last().unwrap_or(""));
    }
    let parts: Vec<String> = slos
        .iter()
        .zip(&e.checks)
        .map(|(s, c)| {
            format!(
                "{} {} ± {} ({})",
                s.metric,
                fmt(c.mean),
                fmt(c.ci95),
                if c.met { "met" } else { "not met" }
            )
        })
        .collect();
    format!(
        "{what}: {} with {} replications: {}",
        if e.met() {
            "meets the SLOs"
        } else {
            "does not meet the SLOs"
        },
        e.replications(),
        parts.join("; ")
    )
}

/// A number with four significant digits.
pub fn fmt(v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (3 - mag).clamp(0, 8) as usize;
    format!("{v:.decimals$}")
}

/// Runs `sc` with `request.replications`, doubling them while the verdict
/// is undecided, up to `request.max_replications`.
fn evaluate_scenario(
    sc: &Scenario,
    request: &Request,
    exec: &dyn Executor,
    progress: Progress,
) -> Result<Eval, StudyError> {
    let mut reps: Vec<Replication> = vec![];
    let mut n = request.replications.max(2);
    loop {
        let have = reps.len() as u32;
        let job = Job {
            scenario: sc,
            reps: have..n,
        };
        let mut more = run_batch(&[job], exec, progress)?;
        reps.append(&mut more[0]);
        let o = outcome(reps);
        let checks: Vec<Check> = request.slos.iter().map(|s| judge(s, &values(&o, s.metric))).collect();
        let e = Eval {
            outcome: o,
            checks,
            rejected: None,
        };
        if e.decided() || n >= request.max_replications {
            return Ok(e);
        }
        reps = e.outcome.replications;
        n = n.saturating_mul(2).min(request.max_replications);
    }
}

/// Scales the load of `sc` until an SLO breaks.
fn headroom(
    sc: &Scenario,
    request: &Request,
    exec: &dyn Executor,
    progress: Progress,
    note: &dyn Fn(&str),
) -> Result<Headroom, StudyError> {
    let mut evals: Vec<(f64, Eval)> = vec![];
    let mut unscaled = vec![];
    let mut eval_at = |f: f64, evals: &mut Vec<(f64, Eval)>| -> Result<bool, StudyError> {
        let mut s = sc.clone();
        unscaled = scale_load(&mut s, f);
        let problems = scenario::validate(&s);
        // A load estimated too large for the limits is not run: the search
        // stops below it, as at a load the scenario rejects.
        let too_large = match &request.budget {
            Some(b) if problems.is_empty() => {
                let mut at_most = s.clone();
                at_most.replications = request.max_replications;
                limits::check_size(&at_most, b)
            }
            _ => vec![],
        };
        let e = if !too_large.is_empty() {
            rejected(
                too_large
                    .iter()
                    .map(|p| format!("`{}`: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        } else if problems.is_empty() {
            evaluate_scenario(&s, request, exec, progress)?
        } else {
            rejected(
                problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        note(&describe(&format!("load × {f:.3}"), &e, &request.slos));
        let met = e.met();
        evals.push((f, e));
        Ok(met)
    };
    let (mut ok, mut bad) = (1.0f64, None::<f64>);
    let mut step: f64 = 0.05;
    while evals.len() < MAX_EVALS {
        let f = (1.0 + step).min(MAX_FACTOR);
        if f <= ok {
            break;
        }
        if eval_at(f, &mut evals)? {
            ok = f;
            step *= 2.0;
        } else {
            bad = Some(f);
            break;
        }
    }
    if let Some(mut b) = bad {
        while b - ok > FACTOR_RESOLUTION && evals.len() < MAX_EVALS {
            // Round to the resolution so that factors print cleanly.
            let mid = (((ok + b) / 2.0) / FACTOR_RESOLUTION).round() * FACTOR_RESOLUTION;
            if mid <= ok || mid >= b {
                break;
            }
            if eval_at(mid, &mut evals)? {
                ok = mid;
            } else {
                b = mid;
            }
        }
        bad = Some(b);
    }
    evals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let broken = bad.map(|b| {
        let e = evals.iter().find(|(f, _)| *f == b).map(|(_, e)| e);
        let which = e
            .map(|e| (0..e.checks.len()).filter(|&i| !e.checks[i].met).collect())
            .unwrap_or_default();
        (b, which)
    });
    Ok(Headroom {
        evals,
        factor: ok,
        broken,
        unscaled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 3] = ["move_ms_p99", "refused_ratio", "jain_index"];

    #[test]
    fn slo_syntax() {
        let s = parse_slo("move_ms_p99<100", &NAMES).unwrap();
        assert_eq!((s.metric, s.cmp, s.threshold), ("move_ms_p99", Cmp::Lt, 100.0));
        assert_eq!(parse_slo(" refused_ratio <= 0.001", &NAMES).unwrap().cmp, Cmp::Le);
        assert_eq!(parse_slo("jain_index>0.9", &NAMES).unwrap().cmp, Cmp::Gt);
        assert_eq!(parse_slo("jain_index>=0.9", &NAMES).unwrap().cmp, Cmp::Ge);
        let e = parse_slo("p99<100", &NAMES).unwrap_err().to_string();
        assert!(
            e.contains("--slo p99<100") && e.contains("move_ms_p99, refused_ratio"),
            "{e}"
        );
        assert!(parse_slo("move_ms_p99<abc", &NAMES).is_err());
        assert!(parse_slo("move_ms_p99=3", &NAMES).is_err());
    }

    #[test]
    fn judging_with_confidence() {
        let slo = parse_slo("move_ms_p99<100", &NAMES).unwrap();
        // Mean 90, tight: met.
        let c = judge(&slo, &[89.0, 90.0, 91.0]);
        assert!(c.met && c.decided && c.bound < 100.0);
        // Mean 99 but wide: the mean is below, the bound is not: undecided.
        let c = judge(&slo, &[90.0, 108.0, 99.0]);
        assert!(!c.met && !c.decided, "{c:?}");
        // Clearly above.
        let c = judge(&slo, &[120.0, 121.0, 122.0]);
        assert!(!c.met && c.decided);
        // All zero: met exactly.
        let slo = parse_slo("refused_ratio<0.001", &NAMES).unwrap();
        assert!(judge(&slo, &[0.0, 0.0, 0.0]).met);
        // One value: no interval, not met.
        assert!(!judge(&slo, &[0.0]).met);
        // Nothing measured: not met, decided.
        let c = judge(&slo, &[]);
        assert!(!c.met && c.decided);
        // Lower bounds for `>`.
        let slo = parse_slo("jain_index>0.9", &NAMES).unwrap();
        assert!(judge(&slo, &[0.95, 0.96, 0.97]).met);
        assert!(!judge(&slo, &[0.85, 0.86, 0.84]).met);
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt(0.0), "0");
        assert_eq!(fmt(123.456), "123.5");
        assert_eq!(fmt(0.0012341), "0.001234");
        assert_eq!(fmt(f64::NAN), "n/a");
    }
}
