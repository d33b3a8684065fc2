//! `wscap compare`: one scenario under several balancing strategies.
//!
//! Every strategy runs the same replications with the same seeds (common
//! random numbers), so replication `i` of two strategies sees the same
//! arrivals, sessions and RTTs. Two strategies are compared on the
//! replication-by-replication *differences* of a metric: the mean
//! difference and the Student-t 95 % confidence interval of it. Where that
//! interval covers 0 the two are "not significantly different".

use super::overrides::{Assign, Base, Key, OValue, split_top};
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
    let key = Key::parse("balancer.strategy").expect("a valid key");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StopReason;
    use crate::experiment::{Metric, Replication};
    use crate::time::SimTime;

    fn outcome(xs: &[f64]) -> Outcome {
        let reps = xs
            .iter()
            .enumerate()
            .map(|(i, &v)| Replication {
                index: i as u32,
                metrics: vec![Metric { name: "m", value: v }],
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
            })
            .collect();
        super::super::outcome(reps)
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
