//! `wscap compare`: one scenario under several balancing strategies.
//!
//! Every strategy runs the same replications with the same seeds (common
//! random numbers), so replication `i` of two strategies sees the same
//! arrivals, sessions and RTTs. Two strategies are compared on the
//! replication-by-replication *differences* of a metric: the mean
//! difference and the Student-t 95 % confidence interval of it. Where that
//! interval covers 0 the two are "not significantly different".
//!
//! **The recommendation** ([`recommend`]):
//! 1. *SLO filter.* With `--slo`, only the strategies that meet every SLO
//!    (judged as `plan` judges them: the one-sided 95 % bound of the mean)
//!    are candidates; none left is an answer too ("no strategy meets them").
//! 2. *Pareto set.* Over the objectives (by default refused ratio, connect
//!    p99, message p99 and Jain's index, see [`default_objectives`]),
//!    strategy A *dominates* B when A is significantly better on at least
//!    one objective and significantly worse on none (a difference whose
//!    paired 95 % CI covers 0 is a tie). The Pareto set is the candidates no
//!    other candidate dominates.
//! 3. *Choice within the set.* On each objective a member's *shortfall* is
//!    how far it is from the set's best on that objective, relative to the
//!    best (|mean − best| ÷ |best|; infinite when the best is 0), counted
//!    only when the difference is significant. The recommendation is the
//!    member whose largest shortfall is smallest; ties go to fewer
//!    shortfalls, then the lowest message p99, then the order of
//!    `--strategies`.
//! 4. *Trade-offs.* Every other member of the set is better than the choice
//!    on some objective and worse on another (or tied on all): those are
//!    listed ([`TradeOff`]) so the report can say them.

use super::overrides::{Assign, Base, Key, OValue, split_top};
use super::plan::{Check, Slo, judge};
use super::{Point, StudyError, values};
use crate::experiment::Outcome;
use crate::stats;

/// Splits `--strategies roundrobin,leastconn,random(2)` on commas outside
/// parentheses.
pub fn parse_strategies(arg: &str) -> Result<Vec<String>, StudyError> {
    let list: Vec<String> = split_top(arg, ',').iter().map(|s| s.trim().to_string()).collect();
    if list.iter().any(String::is_empty) {
        return Err(StudyError::Arg {
            arg: format!("--strategies {arg}"),
            message: "empty strategy name in the list".into(),
        });
    }
    if list.len() < 2 {
        return Err(StudyError::Arg {
            arg: format!("--strategies {arg}"),
            message: "give at least two strategies, separated by commas".into(),
        });
    }
    for (i, s) in list.iter().enumerate() {
        if list[..i].contains(s) {
            return Err(StudyError::Arg {
                arg: format!("--strategies {arg}"),
                message: format!("`{s}` is listed twice"),
            });
        }
    }
    Ok(list)
}

/// One point per strategy (after the common `fixed` overrides), every one
/// validated before anything runs.
pub fn points(base: &Base, fixed: &[Assign], strategies: &[String]) -> Result<Vec<Point>, StudyError> {
    let key = Key::parse("balancer.balance").expect("a valid key");
    strategies
        .iter()
        .map(|s| {
            let mut assigns = fixed.to_vec();
            assigns.push(Assign::new(
                format!("--strategies {s}"),
                &key,
                OValue {
                    value: toml_edit::Value::from(s.as_str()),
                    text: s.clone(),
                },
            ));
            let scenario = base.build(&assigns)?;
            Ok(Point { assigns, scenario })
        })
        .collect()
}

/// The paired difference of a metric between two outcomes (a − b).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diff {
    /// Mean of the per-replication differences.
    pub mean: f64,
    /// Half-width of its 95 % Student-t CI (NaN with fewer than 2 pairs).
    pub ci95: f64,
    /// Replications where both measured the metric.
    pub pairs: usize,
}

impl Diff {
    /// The CI excludes 0 (so the two differ at the 95 % level). False
    /// without a CI.
    pub fn significant(&self) -> bool {
        self.ci95.is_finite() && self.mean.abs() > self.ci95
    }
}

/// Paired difference a − b of `metric` over the replications both have
/// (matched by replication index).
pub fn paired(a: &Outcome, b: &Outcome, metric: &str) -> Option<Diff> {
    let diffs: Vec<f64> = a
        .replications
        .iter()
        .filter_map(|ra| {
            let rb = b.replications.iter().find(|r| r.index == ra.index)?;
            let (x, y) = (ra.metric(metric)?, rb.metric(metric)?);
            (!x.is_nan() && !y.is_nan()).then_some(x - y)
        })
        .collect();
    if diffs.is_empty() {
        return None;
    }
    Some(Diff {
        mean: stats::mean(&diffs),
        ci95: stats::ci_half_width(&diffs, 0.95),
        pairs: diffs.len(),
    })
}

/// The best strategy on one metric and those not significantly different
/// from it.
#[derive(Clone, Debug)]
pub struct Ranking {
    pub metric: &'static str,
    /// Index of the best strategy (lowest mean, or highest when larger is
    /// better).
    pub best: usize,
    /// Strategies (indices) whose paired difference from the best is not
    /// significant.
    pub ties: Vec<usize>,
}

/// Ranks the outcomes on `metric`; `None` if no outcome measured it.
pub fn rank(outcomes: &[Outcome], metric: &'static str, larger_is_better: bool) -> Option<Ranking> {
    let means: Vec<f64> = outcomes.iter().map(|o| stats::mean(&values(o, metric))).collect();
    let best = (0..outcomes.len()).filter(|&i| !means[i].is_nan()).min_by(|&i, &j| {
        let (a, b) = (means[i], means[j]);
        if larger_is_better {
            b.total_cmp(&a)
        } else {
            a.total_cmp(&b)
        }
    })?;
    let ties = (0..outcomes.len())
        .filter(|&i| i != best && !means[i].is_nan())
        .filter(|&i| paired(&outcomes[i], &outcomes[best], metric).is_some_and(|d| !d.significant()))
        .collect();
    Some(Ranking { metric, best, ties })
}

/// A metric the recommendation weighs, and which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Objective {
    pub metric: &'static str,
    pub larger_is_better: bool,
}

/// Metrics for which a larger value is better; every other metric is
/// better smaller (latencies, ratios of failures, imbalance, losses).
pub const LARGER_IS_BETTER: [&str; 6] = [
    "jain_index",
    "connections_accepted",
    "moves_validated",
    "games_completed",
    "deliveries",
    "web_requests",
];

/// Whether a larger value of `metric` is better (see [`LARGER_IS_BETTER`]).
pub fn larger_is_better(metric: &str) -> bool {
    LARGER_IS_BETTER.contains(&metric)
}

fn measured(outcomes: &[Outcome], metric: &str) -> bool {
    outcomes
        .iter()
        .any(|o| o.aggregate(metric).is_some_and(|a| !a.mean.is_nan()))
}

/// The message latency that matters to users: `move_ms_p99` when the run
/// has game traffic, else `web_ms_p99` when it was measured.
pub fn message_metric(outcomes: &[Outcome]) -> Option<&'static str> {
    let game = outcomes
        .iter()
        .any(|o| o.aggregate("moves_validated").is_some_and(|a| a.mean > 0.0));
    if game {
        Some("move_ms_p99")
    } else if measured(outcomes, "web_ms_p99") {
        Some("web_ms_p99")
    } else {
        None
    }
}

/// The default objectives, those measured in at least one outcome:
/// `refused_ratio` (lower), `connect_ms_p99` (lower), the message p99 of
/// [`message_metric`] (lower) and `jain_index` (higher).
pub fn default_objectives(outcomes: &[Outcome]) -> Vec<Objective> {
    ["refused_ratio", "connect_ms_p99"]
        .into_iter()
        .chain(message_metric(outcomes))
        .chain(["jain_index"])
        .filter(|m| measured(outcomes, m))
        .map(|metric| Objective {
            metric,
            larger_is_better: larger_is_better(metric),
        })
        .collect()
}

/// Parses `--pareto refused_ratio,connect_ms_p99,jain_index:max`: metric
/// names (of `metrics`), each optionally `:min` or `:max` (the default
/// direction is [`larger_is_better`]).
pub fn parse_objectives(arg: &str, metrics: &[&'static str]) -> Result<Vec<Objective>, StudyError> {
    let bad = |message: String| StudyError::Arg {
        arg: format!("--pareto {arg}"),
        message,
    };
    let mut out: Vec<Objective> = vec![];
    for item in arg.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(bad("empty metric name in the list".into()));
        }
        let (name, dir) = match item.rsplit_once(':') {
            Some((n, "max")) => (n.trim(), Some(true)),
            Some((n, "min")) => (n.trim(), Some(false)),
            Some((_, d)) => return Err(bad(format!("`{d}` is not a direction: use metric:min or metric:max"))),
            None => (item, None),
        };
        let Some(&metric) = metrics.iter().find(|m| **m == name) else {
            return Err(bad(format!(
                "unknown metric `{name}`; the metrics are: {}",
                metrics.join(", ")
            )));
        };
        if out.iter().any(|o| o.metric == metric) {
            return Err(bad(format!("`{metric}` is listed twice")));
        }
        out.push(Objective {
            metric,
            larger_is_better: dir.unwrap_or_else(|| larger_is_better(metric)),
        });
    }
    Ok(out)
}

/// Objectives (indices) on which `a` is significantly better than `b`, and
/// those on which it is significantly worse. Not measured in both: a tie.
pub fn better_worse(a: &Outcome, b: &Outcome, objectives: &[Objective]) -> (Vec<usize>, Vec<usize>) {
    let (mut better, mut worse) = (vec![], vec![]);
    for (k, o) in objectives.iter().enumerate() {
        let Some(d) = paired(a, b, o.metric).filter(Diff::significant) else {
            continue;
        };
        if (d.mean > 0.0) == o.larger_is_better {
            better.push(k);
        } else {
            worse.push(k);
        }
    }
    (better, worse)
}

/// `a` dominates `b`: significantly better on one objective, significantly
/// worse on none.
pub fn dominates(a: &Outcome, b: &Outcome, objectives: &[Objective]) -> bool {
    let (better, worse) = better_worse(a, b, objectives);
    !better.is_empty() && worse.is_empty()
}

/// A significant gap between a member of the Pareto set and the set's best
/// on one objective.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shortfall {
    /// Index into the objectives.
    pub objective: usize,
    /// The member best on it.
    pub best: usize,
    /// |mean − best mean| ÷ |best mean| (infinite when the best is 0).
    pub relative: f64,
}

/// Another member of the Pareto set against the recommendation.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeOff {
    pub other: usize,
    /// Objectives on which `other` is significantly better than the choice.
    pub better: Vec<usize>,
    /// Objectives on which it is significantly worse.
    pub worse: Vec<usize>,
}

/// What settled the choice within the Pareto set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The set has one member.
    Only,
    /// The smallest largest shortfall.
    Shortfall,
    /// Equal largest shortfalls; fewer shortfalls.
    Count,
    /// Equal shortfalls; the lowest message p99.
    MessageP99,
    /// Tied on everything; the first in `--strategies` order.
    Order,
}

/// The recommendation of a compare (see the module documentation).
#[derive(Clone, Debug)]
pub struct Recommendation {
    pub objectives: Vec<Objective>,
    pub slos: Vec<Slo>,
    /// Per strategy, each SLO judged.
    pub checks: Vec<Vec<Check>>,
    /// Per strategy: meets every SLO (true without SLOs).
    pub meets: Vec<bool>,
    /// Per strategy: in the Pareto set of the strategies that meet every SLO.
    pub pareto: Vec<bool>,
    /// Per candidate outside the Pareto set: a strategy that dominates it.
    pub dominated_by: Vec<Option<usize>>,
    /// Per member of the Pareto set: its shortfalls.
    pub shortfalls: Vec<Vec<Shortfall>>,
    /// The recommended strategy (None: no strategy meets every SLO).
    pub chosen: Option<usize>,
    /// What settled the choice.
    pub decision: Decision,
    /// The other members of the Pareto set against the choice.
    pub tradeoffs: Vec<TradeOff>,
}

/// The mean of `metric` (NaN when not measured).
fn mean_of(o: &Outcome, metric: &str) -> f64 {
    o.aggregate(metric).map_or(f64::NAN, |a| a.mean)
}

/// Judges the SLOs on every outcome, finds the Pareto set over
/// `objectives` and chooses within it (see the module documentation).
pub fn recommend(outcomes: &[Outcome], slos: &[Slo], objectives: &[Objective]) -> Recommendation {
    let n = outcomes.len();
    let checks: Vec<Vec<Check>> = outcomes
        .iter()
        .map(|o| slos.iter().map(|s| judge(s, &values(o, s.metric))).collect())
        .collect();
    let meets: Vec<bool> = checks.iter().map(|c| c.iter().all(|c| c.met)).collect();
    let candidates: Vec<usize> = (0..n).filter(|&i| meets[i]).collect();
    let beaten_by = |i: usize| {
        candidates
            .iter()
            .copied()
            .find(|&j| j != i && dominates(&outcomes[j], &outcomes[i], objectives))
    };
    let mut dominated_by: Vec<Option<usize>> = (0..n).map(|i| if meets[i] { beaten_by(i) } else { None }).collect();
    let mut pareto: Vec<bool> = (0..n).map(|i| meets[i] && dominated_by[i].is_none()).collect();
    // Ties make domination intransitive; should it ever be circular, keep
    // every candidate rather than none.
    if !candidates.is_empty() && !pareto.iter().any(|&p| p) {
        for &i in &candidates {
            pareto[i] = true;
            dominated_by[i] = None;
        }
    }
    // Prefer naming a member of the set as the one that dominates.
    for i in 0..n {
        if dominated_by[i].is_some()
            && let Some(j) = (0..n).find(|&j| pareto[j] && dominates(&outcomes[j], &outcomes[i], objectives))
        {
            dominated_by[i] = Some(j);
        }
    }
    let members: Vec<usize> = (0..n).filter(|&i| pareto[i]).collect();
    // The set's best on each objective (by mean).
    let best: Vec<Option<usize>> = objectives
        .iter()
        .map(|o| {
            members
                .iter()
                .copied()
                .filter(|&i| !mean_of(&outcomes[i], o.metric).is_nan())
                .min_by(|&a, &b| {
                    let (x, y) = (mean_of(&outcomes[a], o.metric), mean_of(&outcomes[b], o.metric));
                    if o.larger_is_better {
                        y.total_cmp(&x)
                    } else {
                        x.total_cmp(&y)
                    }
                })
        })
        .collect();
    let shortfalls: Vec<Vec<Shortfall>> = (0..n)
        .map(|i| {
            if !pareto[i] {
                return vec![];
            }
            objectives
                .iter()
                .enumerate()
                .filter_map(|(k, o)| {
                    let b = best[k].filter(|&b| b != i)?;
                    let (_, worse) = better_worse(&outcomes[i], &outcomes[b], std::slice::from_ref(o));
                    if worse.is_empty() {
                        return None;
                    }
                    let d = paired(&outcomes[i], &outcomes[b], o.metric)?;
                    let base = mean_of(&outcomes[b], o.metric).abs();
                    let relative = if base > 0.0 { d.mean.abs() / base } else { f64::INFINITY };
                    Some(Shortfall {
                        objective: k,
                        best: b,
                        relative,
                    })
                })
                .collect()
        })
        .collect();
    let message = message_metric(outcomes);
    let key = |i: usize| {
        let worst = shortfalls[i].iter().map(|s| s.relative).fold(0.0, f64::max);
        let msg = message.map_or(f64::NAN, |m| mean_of(&outcomes[i], m));
        (
            worst,
            shortfalls[i].len(),
            if msg.is_nan() { f64::INFINITY } else { msg },
        )
    };
    let order = |a: usize, b: usize| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0)
            .then(ka.1.cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
            .then(a.cmp(&b))
    };
    let chosen = members.iter().copied().min_by(|&a, &b| order(a, b));
    // The runner-up tells which rule separated them.
    let decision = match chosen {
        Some(c) => match members.iter().copied().filter(|&i| i != c).min_by(|&a, &b| order(a, b)) {
            None => Decision::Only,
            Some(r) => {
                let (kc, kr) = (key(c), key(r));
                if kc.0 != kr.0 {
                    Decision::Shortfall
                } else if kc.1 != kr.1 {
                    Decision::Count
                } else if kc.2 != kr.2 {
                    Decision::MessageP99
                } else {
                    Decision::Order
                }
            }
        },
        None => Decision::Only,
    };
    let tradeoffs = match chosen {
        Some(c) => members
            .iter()
            .copied()
            .filter(|&i| i != c)
            .map(|i| {
                let (better, worse) = better_worse(&outcomes[i], &outcomes[c], objectives);
                TradeOff {
                    other: i,
                    better,
                    worse,
                }
            })
            .collect(),
        None => vec![],
    };
    Recommendation {
        objectives: objectives.to_vec(),
        slos: slos.to_vec(),
        checks,
        meets,
        pareto,
        dominated_by,
        shortfalls,
        chosen,
        decision,
        tradeoffs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StopReason;
    use crate::experiment::{Metric, Replication};
    use crate::time::SimTime;

    /// A replication that measured only `metrics`.
    fn rep(index: u32, metrics: Vec<Metric>) -> Replication {
        Replication {
            index,
            metrics,
            samples: vec![],
            timeline: vec![],
            storage_samples: vec![],
            final_conns: vec![],
            cdfs: vec![],
            faults: vec![],
            fault_windows: vec![],
            events: 0,
            end: SimTime::ZERO,
            stop: StopReason::EndTime,
        }
    }

    fn outcome(xs: &[f64]) -> Outcome {
        let reps = xs
            .iter()
            .enumerate()
            .map(|(i, &v)| rep(i as u32, vec![Metric { name: "m", value: v }]))
            .collect();
        super::super::outcome(reps)
    }

    /// An outcome with several metrics; replication i of metric m is
    /// `means[m] + noise[i]·spread[m]` (the same noise for every strategy:
    /// common random numbers).
    fn multi(means: &[(&'static str, f64)]) -> Outcome {
        const NOISE: [f64; 4] = [0.0, 1.0, -1.0, 0.5];
        let reps = (0..4)
            .map(|i| {
                let metrics = means
                    .iter()
                    .map(|&(name, v)| Metric {
                        name,
                        value: v + NOISE[i] * v.abs() * 0.01,
                    })
                    .collect();
                rep(i as u32, metrics)
            })
            .collect();
        super::super::outcome(reps)
    }

    /// A 150k-like compare: `first` has the lowest move p99 but a connect
    /// p99 16 times roundrobin's; `slow` is dominated by roundrobin.
    fn strategies() -> Vec<Outcome> {
        let s = |connect: f64, moves: f64, jain: f64| {
            multi(&[
                ("refused_ratio", 0.0),
                ("connect_ms_p99", connect),
                ("move_ms_p99", moves),
                ("jain_index", jain),
                ("moves_validated", 1000.0),
            ])
        };
        vec![
            s(3700.0, 157.7, 0.8), // first
            s(232.0, 161.2, 0.99), // roundrobin
            s(3000.0, 170.0, 0.9), // slow: worse than roundrobin on all but refusals
        ]
    }

    #[test]
    fn objectives_default_and_parse() {
        let o = strategies();
        let names: Vec<&str> = default_objectives(&o).iter().map(|x| x.metric).collect();
        assert_eq!(names, ["refused_ratio", "connect_ms_p99", "move_ms_p99", "jain_index"]);
        assert!(default_objectives(&o)[3].larger_is_better);
        const M: [&str; 3] = ["connect_ms_p99", "jain_index", "gave_up"];
        let p = parse_objectives("connect_ms_p99, jain_index,gave_up:max", &M).unwrap();
        assert_eq!(
            p.iter().map(|x| (x.metric, x.larger_is_better)).collect::<Vec<_>>(),
            [("connect_ms_p99", false), ("jain_index", true), ("gave_up", true)]
        );
        let e = parse_objectives("p99", &M).unwrap_err().to_string();
        assert!(
            e.contains("--pareto p99") && e.contains("connect_ms_p99, jain_index"),
            "{e}"
        );
        assert!(parse_objectives("jain_index:up", &M).is_err());
        assert!(parse_objectives("jain_index,jain_index", &M).is_err());
        assert!(parse_objectives("jain_index,", &M).is_err());
    }

    #[test]
    fn the_recommendation_is_never_dominated_and_weighs_the_gaps() {
        let o = strategies();
        let objs = default_objectives(&o);
        assert!(dominates(&o[1], &o[2], &objs));
        assert!(!dominates(&o[1], &o[0], &objs) && !dominates(&o[0], &o[1], &objs));
        let r = recommend(&o, &[], &objs);
        assert_eq!(r.meets, [true, true, true]);
        assert_eq!(r.pareto, [true, true, false]);
        assert_eq!(r.dominated_by, [None, None, Some(1)]);
        // The old rule (fewest refusals, then lowest move p99) chose
        // `first`; its connect p99 is 15× roundrobin's, roundrobin's move
        // p99 only 2.2 % above first's.
        assert_eq!(r.chosen, Some(1));
        assert_eq!(r.decision, Decision::Shortfall);
        assert_eq!(r.shortfalls[1].len(), 1);
        let f = r.shortfalls[1][0];
        assert_eq!((f.objective, f.best), (2, 0));
        assert!((f.relative - (161.2 - 157.7) / 157.7).abs() < 1e-9, "{f:?}");
        assert_eq!(
            r.tradeoffs,
            [TradeOff {
                other: 0,
                better: vec![2],
                worse: vec![1, 3]
            }]
        );
    }

    #[test]
    fn slos_filter_the_candidates() {
        const M: [&str; 2] = ["move_ms_p99", "connect_ms_p99"];
        let o = strategies();
        let objs = default_objectives(&o);
        // Only `first` has a move p99 under 160.
        let slo = super::super::plan::parse_slo("move_ms_p99<160", &M).unwrap();
        let r = recommend(&o, std::slice::from_ref(&slo), &objs);
        assert_eq!(r.meets, [true, false, false]);
        assert_eq!(r.pareto, [true, false, false]);
        assert_eq!((r.chosen, r.decision), (Some(0), Decision::Only));
        assert!(r.tradeoffs.is_empty());
        // Nobody connects within 100 ms.
        let slo = super::super::plan::parse_slo("connect_ms_p99<100", &M).unwrap();
        let r = recommend(&o, std::slice::from_ref(&slo), &objs);
        assert_eq!(r.meets, [false, false, false]);
        assert_eq!(r.chosen, None);
        assert!(r.checks.iter().all(|c| !c[0].met && c[0].decided));
    }

    #[test]
    fn ties_go_to_the_lower_message_p99_then_the_list() {
        let a = multi(&[
            ("connect_ms_p99", 100.0),
            ("moves_validated", 10.0),
            ("move_ms_p99", 50.0),
        ]);
        let objs = [Objective {
            metric: "connect_ms_p99",
            larger_is_better: false,
        }];
        let r = recommend(&[a.clone(), a.clone()], &[], &objs);
        assert_eq!((r.chosen, r.decision), (Some(0), Decision::Order));
        assert_eq!(r.pareto, [true, true]);
        assert_eq!(r.tradeoffs[0].better, Vec::<usize>::new());
        let b = multi(&[
            ("connect_ms_p99", 100.0),
            ("moves_validated", 10.0),
            ("move_ms_p99", 49.0),
        ]);
        let r = recommend(&[a, b], &[], &objs);
        assert_eq!((r.chosen, r.decision), (Some(1), Decision::MessageP99));
    }

    #[test]
    fn strategies_split_outside_parentheses() {
        assert_eq!(
            parse_strategies("roundrobin, leastconn,random(2),first").unwrap(),
            ["roundrobin", "leastconn", "random(2)", "first"]
        );
        assert!(parse_strategies("leastconn").is_err());
        assert!(parse_strategies("leastconn,,first").is_err());
        assert!(parse_strategies("first,first").is_err());
    }

    #[test]
    fn pairing_removes_common_noise() {
        // Large spread between replications, a constant 1.0 between the two.
        let a = outcome(&[10.0, 50.0, 90.0, 30.0]);
        let b = outcome(&[9.0, 49.0, 89.0, 29.0]);
        let d = paired(&a, &b, "m").unwrap();
        assert_eq!((d.mean, d.ci95, d.pairs), (1.0, 0.0, 4));
        assert!(d.significant());
        // Identical: difference 0 ± 0, not significant.
        let d = paired(&a, &a, "m").unwrap();
        assert!(!d.significant());
        // Noisy differences around 0.
        let c = outcome(&[11.0, 49.0, 91.0, 29.0]);
        assert!(!paired(&a, &c, "m").unwrap().significant());
        let r = rank(&[a.clone(), b.clone(), c], "m", false).unwrap();
        assert_eq!(r.best, 1);
        // c − b is 2, 0, 2, 0: 1 ± 1.8, a tie; a − b is exactly 1.
        assert_eq!(r.ties, [2], "{r:?}");
        assert_eq!(rank(&[a, b], "m", true).unwrap().best, 0);
    }
}
