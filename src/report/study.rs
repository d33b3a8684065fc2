//! The outputs of `compare`, `sweep` and `plan`: CSVs, charts, `report.md`
//! and `report.html`, into one output folder replaced whole (see
//! [`super::replace_dir`]).
//!
//! Every CSV is generic over the metric list, so new metrics appear in it
//! without changes here; the report tables show the headline metrics
//! ([`crate::study::HEADLINE`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::charts::study::{Bar, BarPanel, LinePanel, Series, TimeSeries, XKind, write_bars, write_lines, write_time};
use super::{ReportError, RunInfo, charts, html, io_err, sections};
use crate::experiment::Outcome;
use crate::scenario::Scenario;
use crate::study::compare::{Decision, Recommendation, paired, rank};
use crate::study::plan::{Check, Cmp, Plan, Slo, Verdict, fmt};
use crate::study::{HEADLINE, Point, Setting, headline_metrics};

fn csv_err(path: &Path) -> impl FnOnce(csv::Error) -> ReportError + '_ {
    move |error| ReportError::Csv {
        path: path.to_path_buf(),
        error,
    }
}

pub(super) fn num(v: f64) -> String {
    if v.is_nan() { String::new() } else { format!("{v}") }
}

/// `mean ± ci` with four significant digits (no ± without a CI).
pub fn pm(mean: f64, ci: f64) -> String {
    if ci.is_nan() || mean.is_nan() {
        fmt(mean)
    } else {
        format!("{} ± {}", fmt(mean), fmt(ci))
    }
}

/// A number for a sentence: four significant digits, trailing zeros
/// dropped ("3.7", "232", "0.0012").
fn short(v: f64) -> String {
    let s = fmt(v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A metric's value in words, with its unit: "157.7 ms", "3.7 s", "0.1 %"
/// (ratios), or "not measured" (NaN).
pub fn words(metric: &str, v: f64) -> String {
    if v.is_nan() {
        "not measured".into()
    } else if metric.contains("_ms") {
        if v.abs() >= 1000.0 {
            format!("{} s", short(v / 1000.0))
        } else {
            format!("{} ms", short(v))
        }
    } else if metric.ends_with("_ratio") {
        format!("{} %", short(v * 100.0))
    } else if metric.ends_with("_s") {
        format!("{} s", short(v))
    } else {
        short(v)
    }
}

/// A metric's name in a sentence: the headline label without its unit
/// ("move p99", "Jain's index"), else the column name in backticks.
pub fn metric_label(metric: &str) -> String {
    if metric == "web_ms_p99" {
        return "web response p99".into();
    }
    HEADLINE
        .iter()
        .find(|h| h.0 == metric)
        .map(|h| h.1.trim_end_matches(" (ms)").to_string())
        .unwrap_or_else(|| format!("`{metric}`"))
}

/// A relative gap as a percentage: "0.8 %", "8.8 %", "66 %", "2200 %".
fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p >= 10.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// One SLO's verdict in a sentence: "refused_ratio is 0.03 ± 0.01 (95 %
/// upper bound 0.04; SLO refused_ratio<0.01)", never with NaN.
fn check_sentence(slo: &Slo, c: &Check) -> String {
    if c.mean.is_nan() {
        return format!("{} is not measured (SLO {})", slo.metric, slo.text);
    }
    let side = if slo.cmp.is_upper() { "upper" } else { "lower" };
    if c.bound.is_nan() {
        format!(
            "{} is {} (fewer than 2 replications measured it: no 95 % bound; SLO {})",
            slo.metric,
            pm(c.mean, c.ci95),
            slo.text
        )
    } else {
        format!(
            "{} is {} (95 % {side} bound {}; SLO {})",
            slo.metric,
            pm(c.mean, c.ci95),
            fmt(c.bound),
            slo.text
        )
    }
}

/// The `**SLO verdict.**` block of a run's `report.md` (empty without
/// `--slo`): one row per SLO, and whether every one is met (exit status 3
/// when not).
pub fn slo_verdict_md(verdicts: &[Verdict]) -> String {
    if verdicts.is_empty() {
        return String::new();
    }
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.check.met).collect();
    let n = verdicts.iter().map(|v| v.check.n).max().unwrap_or(0);
    let mut s = if failed.is_empty() {
        format!(
            "**SLO verdict: every SLO is met** with 95 % confidence ({} of {}; one-sided 95 % bound of the mean \
             over {n} replications).\n\n",
            verdicts.len(),
            verdicts.len()
        )
    } else {
        let names: Vec<String> = failed.iter().map(|v| format!("`{}`", v.slo.text)).collect();
        format!(
            "**SLO verdict: not met.** {} of {} SLOs {} not met with 95 % confidence ({}; one-sided 95 % bound \
             of the mean over {n} replications); `wscap run` exits with status 3.\n\n",
            failed.len(),
            verdicts.len(),
            if failed.len() == 1 { "is" } else { "are" },
            names.join(", ")
        )
    };
    s.push_str("| SLO | mean ± 95 % CI | one-sided 95 % bound | verdict |\n|---|---|---|---|\n");
    for v in verdicts {
        let c = &v.check;
        let bound = if c.bound.is_nan() {
            "none (fewer than 2 values)".to_string()
        } else {
            format!(
                "{} {}",
                if v.slo.cmp.is_upper() { "upper" } else { "lower" },
                fmt(c.bound)
            )
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {bound} | {} |",
            v.slo.text,
            if c.mean.is_nan() {
                "not measured".into()
            } else {
                pm(c.mean, c.ci95)
            },
            if c.met { "met" } else { "**not met**" }
        );
    }
    s.push('\n');
    s
}

fn agg(o: &Outcome, metric: &str) -> (f64, f64) {
    o.aggregate(metric)
        .map(|a| (a.mean, a.ci95))
        .unwrap_or((f64::NAN, f64::NAN))
}

/// Writes `rows` as CSV.
pub(super) fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<PathBuf, ReportError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_err(path))?;
    w.write_record(header).map_err(csv_err(path))?;
    for r in rows {
        w.write_record(r).map_err(csv_err(path))?;
    }
    w.flush().map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// Metric names of the outcomes (from the first replication found).
fn metric_names(outcomes: &[&Outcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .find_map(|o| o.replications.first())
        .map(|r| r.metrics.iter().map(|m| m.name).collect())
        .unwrap_or_default()
}

/// One row per (label, replication) with every metric.
fn replications_csv(
    path: &Path,
    label_cols: &[String],
    rows: &[(Vec<String>, &Outcome)],
) -> Result<PathBuf, ReportError> {
    let names = metric_names(&rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let mut header = label_cols.to_vec();
    header.push("replication".into());
    header.extend(names.iter().map(|n| n.to_string()));
    let mut out = vec![];
    for (labels, o) in rows {
        for r in &o.replications {
            let mut row = labels.clone();
            row.push(r.index.to_string());
            row.extend(names.iter().map(|n| r.metric(n).map(num).unwrap_or_default()));
            out.push(row);
        }
    }
    write_csv(path, &header, &out)
}

/// `mean` and `ci95` rows per label, every metric.
fn summary_csv(path: &Path, label_cols: &[String], rows: &[(Vec<String>, &Outcome)]) -> Result<PathBuf, ReportError> {
    let names = metric_names(&rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let mut header = label_cols.to_vec();
    header.push("stat".into());
    header.extend(names.iter().map(|n| n.to_string()));
    let mut out = vec![];
    for (labels, o) in rows {
        for (stat, pick) in [("mean", 0), ("ci95", 1)] {
            let mut row = labels.clone();
            row.push(stat.into());
            row.extend(names.iter().map(|n| {
                let (m, c) = agg(o, n);
                num(if pick == 0 { m } else { c })
            }));
            out.push(row);
        }
    }
    write_csv(path, &header, &out)
}

pub(super) fn reproduce(info: &RunInfo, seed: u64) -> String {
    format!(
        "## Reproduce\n\nScenario `{}`, seed {seed}. Same scenario and seed give byte-identical outputs, whatever \
         `--threads` is.\n\n```\n{}\n```\n",
        info.scenario_file.display(),
        info.command
    )
}

fn relative(dir: &Path, files: Vec<PathBuf>) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| f.strip_prefix(dir).unwrap_or(f).to_path_buf())
        .collect()
}

pub(super) fn finish(dir: &Path, md: String, mut files: Vec<PathBuf>) -> Result<Vec<PathBuf>, ReportError> {
    let p = dir.join("report.md");
    std::fs::write(&p, &md).map_err(io_err(&p))?;
    files.push(p);
    files.push(html::write_html(&dir.join("report.html"), &md, dir)?);
    Ok(relative(dir, files))
}

pub(super) fn outputs_list(files: &[PathBuf], dir: &Path) -> String {
    let mut s = String::from("## Files\n\n");
    for f in files {
        let name = f.strip_prefix(dir).unwrap_or(f).display().to_string();
        if name.ends_with(".csv") {
            let _ = writeln!(s, "- [{name}]({name})");
        }
    }
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------
// compare

/// The `## Per server` table of a compare: each strategy's peak
/// connections per server in replication 0.
fn compare_servers(sc: &Scenario, names: &[String], outcomes: &[Outcome]) -> String {
    let warm = sc.warmup.as_secs_f64();
    let peaks: Vec<Vec<u32>> = outcomes
        .iter()
        .map(|o| {
            let Some(r) = o.replications.first() else { return vec![] };
            let n = r.samples.iter().map(|s| s.servers.len()).max().unwrap_or(0);
            (0..n)
                .map(|i| {
                    r.samples
                        .iter()
                        .filter(|s| s.time.as_secs_f64() > warm)
                        .filter_map(|s| s.servers.get(i))
                        .map(|v| v.connections)
                        .max()
                        .unwrap_or(0)
                })
                .collect()
        })
        .collect();
    let n = peaks.iter().map(Vec::len).max().unwrap_or(0);
    if n == 0 {
        return String::new();
    }
    let mut s = format!(
        "## Per server\n\nPeak connections of each server after the warm-up, replication 0 (cap {}).\n\n| server |",
        sc.servers.max_connections
    );
    for name in names {
        let _ = write!(s, " {} |", name.replace('|', "\\|"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(names.len()));
    s.push('\n');
    for i in 0..n {
        let _ = write!(s, "| server-{i} |");
        for p in &peaks {
            let _ = write!(s, " {} |", p.get(i).map(|v| v.to_string()).unwrap_or_default());
        }
        s.push('\n');
    }
    s.push('\n');
    s
}

/// Writes the outputs of `wscap compare`; `rec` is the recommendation
/// (SLO verdicts, Pareto set, choice) of `study::compare::recommend`.
pub fn write_compare(
    out: &Path,
    names: &[String],
    points: &[Point],
    outcomes: &[Outcome],
    rec: &Recommendation,
    info: &RunInfo,
) -> Result<Vec<PathBuf>, ReportError> {
    super::replace_dir(out, |dir| {
        let sc = &points[0].scenario;
        let rows: Vec<(Vec<String>, &Outcome)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                vec![
                    n.clone(),
                    rec.meets[i].to_string(),
                    rec.pareto[i].to_string(),
                    (rec.chosen == Some(i)).to_string(),
                ]
            })
            .zip(outcomes)
            .collect();
        let label: Vec<String> = ["strategy", "meets_slos", "pareto", "recommended"]
            .map(String::from)
            .to_vec();
        let mut files = vec![
            replications_csv(&dir.join("compare.csv"), &label, &rows)?,
            summary_csv(&dir.join("compare_summary.csv"), &label, &rows)?,
        ];
        // Every pair on every metric.
        let metrics = metric_names(&outcomes.iter().collect::<Vec<_>>());
        let mut pair_rows = vec![];
        for m in &metrics {
            for a in 0..names.len() {
                for b in a + 1..names.len() {
                    if let Some(d) = paired(&outcomes[a], &outcomes[b], m) {
                        pair_rows.push(vec![
                            m.to_string(),
                            names[a].clone(),
                            names[b].clone(),
                            num(d.mean),
                            num(d.ci95),
                            d.pairs.to_string(),
                            d.significant().to_string(),
                        ]);
                    }
                }
            }
        }
        let header: Vec<String> = ["metric", "a", "b", "diff_mean", "diff_ci95", "pairs", "significant"]
            .map(String::from)
            .to_vec();
        files.push(write_csv(&dir.join("compare_pairs.csv"), &header, &pair_rows)?);

        let heads = headline_metrics(outcomes);
        let panels: Vec<BarPanel> = heads
            .iter()
            .map(|&(m, label, _)| BarPanel {
                title: label.to_string(),
                bars: names
                    .iter()
                    .zip(outcomes)
                    .map(|(n, o)| {
                        let (mean, ci95) = agg(o, m);
                        Bar {
                            label: n.clone(),
                            mean,
                            ci95,
                        }
                    })
                    .collect(),
            })
            .collect();
        let title = format!("{}: strategies compared (mean and 95 % CI)", sc.name);
        files.extend(write_bars(dir, "compare", &title, &panels)?);
        let moves = outcomes.iter().any(|o| agg(o, "moves_validated").0 > 0.0);
        let (what, pick): (&str, fn(&crate::metrics::Sample) -> Option<f64>) = if moves {
            ("Move latency p99 (to the opponent)", |s| s.move_ms_p99)
        } else {
            ("Connect latency p99", |s| s.connect_ms_p99)
        };
        let series: Vec<TimeSeries> = names
            .iter()
            .zip(outcomes)
            .filter_map(|(n, o)| {
                let r = o.replications.first()?;
                Some((
                    n.clone(),
                    r.samples.iter().map(|s| (s.time.as_secs_f64(), pick(s))).collect(),
                ))
            })
            .collect();
        let timeline = outcomes
            .first()
            .and_then(|o| o.replications.first())
            .map(|r| r.timeline.clone())
            .unwrap_or_default();
        files.extend(write_time(
            dir,
            "compare_latency",
            format!("{what} per interval, each strategy (replication 0)"),
            "latency (ms)",
            series,
            &timeline,
            sc.duration.as_secs_f64(),
            sc.warmup.as_secs_f64(),
        )?);

        let md = compare_md(sc, names, outcomes, rec, info, &files, dir, what);
        finish(dir, md, files)
    })
}

#[allow(clippy::too_many_arguments)]
fn compare_md(
    sc: &Scenario,
    names: &[String],
    outcomes: &[Outcome],
    rec: &Recommendation,
    info: &RunInfo,
    files: &[PathBuf],
    dir: &Path,
    latency_what: &str,
) -> String {
    let heads = headline_metrics(outcomes);
    let rankings: Vec<_> = heads.iter().filter_map(|&(m, _, big)| rank(outcomes, m, big)).collect();
    let mut s = format!("# wscap compare: {}\n\n", sc.name);
    s.push_str(&compare_answer(names, outcomes, rec));
    // Each headline metric's best, for reference (not the recommendation).
    let primary = crate::study::compare::message_metric(outcomes).unwrap_or("connect_ms_p99");
    let mut keys = vec![primary, "connect_ms_p99", "refused_ratio", "imbalance_max_over_mean"];
    keys.dedup();
    let mut per_metric = String::new();
    for key in keys {
        let Some(r) = rankings.iter().find(|r| r.metric == key) else {
            continue;
        };
        let label = heads.iter().find(|h| h.0 == key).map(|h| h.1).unwrap_or(key);
        let (m, c) = agg(&outcomes[r.best], key);
        let _ = write!(per_metric, " Best {label}: **{}** ({})", names[r.best], pm(m, c));
        if r.ties.is_empty() {
            per_metric.push_str(", significantly better than every other strategy.");
        } else {
            let ties: Vec<String> = r
                .ties
                .iter()
                .map(|&t| {
                    let (m, c) = agg(&outcomes[t], key);
                    format!("{} ({})", names[t], pm(m, c))
                })
                .collect();
            let _ = write!(per_metric, "; not significantly different: {}.", ties.join(", "));
        }
    }
    if !per_metric.is_empty() {
        let _ = write!(s, "\n\n**Per metric.**{per_metric}");
    }
    s.push_str("\n\n");
    let _ = writeln!(
        s,
        "{} strategies × {} replications of {} (warm-up {} not counted), {} servers × {} connections. Replication i \
         of every strategy uses the same seeds, so arrivals, sessions and RTTs are the same and differences come \
         from the strategy. Values are means ± 95 % CI half-widths; **bold** is the best on a metric, ≈ marks a \
         strategy not significantly different from it (the paired 95 % CI of the difference covers 0).\n",
        names.len(),
        outcomes.first().map_or(0, |o| o.replications.len()),
        sc.duration,
        sc.warmup,
        sc.servers.count,
        sc.servers.max_connections
    );
    let _ = write!(s, "| strategy |");
    for (_, label, _) in &heads {
        let _ = write!(s, " {label} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(heads.len()));
    s.push('\n');
    for (i, (n, o)) in names.iter().zip(outcomes).enumerate() {
        let _ = write!(s, "| {} |", n.replace('|', "\\|"));
        for (m, ..) in &heads {
            let (mean, ci) = agg(o, m);
            let r = rankings.iter().find(|r| r.metric == *m);
            let cell = pm(mean, ci);
            match r {
                Some(r) if r.best == i => {
                    let _ = write!(s, " **{cell}** |");
                }
                Some(r) if r.ties.contains(&i) => {
                    let _ = write!(s, " ≈ {cell} |");
                }
                _ => {
                    let _ = write!(s, " {cell} |");
                }
            }
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&compare_slo_md(names, rec));
    s.push_str(&compare_pareto_md(names, outcomes, rec));
    s.push_str("## Pairs that do not differ significantly\n\n");
    let mut any = false;
    for (m, label, _) in &heads {
        let mut pairs = vec![];
        for a in 0..names.len() {
            for b in a + 1..names.len() {
                if let Some(d) = paired(&outcomes[a], &outcomes[b], m)
                    && !d.significant()
                {
                    pairs.push(format!(
                        "{} vs {} (difference {})",
                        names[a],
                        names[b],
                        pm(d.mean, d.ci95)
                    ));
                }
            }
        }
        if !pairs.is_empty() {
            any = true;
            let _ = writeln!(s, "- {label}: {}: not significantly different.", pairs.join("; "));
        }
    }
    if !any {
        s.push_str("Every pair of strategies differs significantly on every headline metric.\n");
    }
    s.push_str("\nAll metrics and all pairs: `compare_summary.csv`, `compare_pairs.csv`.\n\n## Charts\n\n");
    let _ = writeln!(s, "![Headline metrics per strategy, mean and 95 % CI](compare.svg)\n");
    let _ = writeln!(
        s,
        "![{latency_what} per interval, each strategy, replication 0; shaded: outages](compare_latency.svg)\n"
    );
    s.push_str(&compare_servers(sc, names, outcomes));
    s.push_str(&sections::scenario_as_run(sc).replace(
        "All defaults filled in",
        &format!(
            "With the first strategy (`{}`); the others differ only in `balancer.balance`. All defaults filled in",
            names[0]
        ),
    ));
    s.push_str(&sections::assumptions(sc));
    s.push_str(&outputs_list(files, dir));
    s.push_str(&reproduce(info, sc.seed));
    s
}

/// `` `name` ``, for strategy names in sentences.
fn code(name: &str) -> String {
    format!("`{name}`")
}

/// The SLOs a strategy fails, in a sentence.
fn failed_slos(rec: &Recommendation, i: usize) -> String {
    let parts: Vec<String> = rec
        .slos
        .iter()
        .zip(&rec.checks[i])
        .filter(|(_, c)| !c.met)
        .map(|(slo, c)| check_sentence(slo, c))
        .collect();
    parts.join(", ")
}

/// The `**Answer.**` paragraph of a compare: the SLO filter, the Pareto
/// set, the choice and its trade-offs (see `study::compare`).
fn compare_answer(names: &[String], outcomes: &[Outcome], rec: &Recommendation) -> String {
    let mut s = String::from("**Answer.** ");
    let n_reps = outcomes.first().map_or(0, |o| o.replications.len());
    let objs = &rec.objectives;
    let mean = |i: usize, k: usize| agg(&outcomes[i], objs[k].metric).0;
    let val = |i: usize, k: usize| words(objs[k].metric, mean(i, k));
    let slo_list: Vec<String> = rec.slos.iter().map(|x| format!("`{}`", x.text)).collect();
    let Some(c) = rec.chosen else {
        let fails: Vec<String> = (0..names.len())
            .map(|i| format!("{} fails: {}", code(&names[i]), failed_slos(rec, i)))
            .collect();
        let _ = write!(
            s,
            "**No strategy meets every SLO** ({}) with 95 % confidence: {}. Relax the SLOs or change the \
             deployment (e.g. `wscap plan … --vary servers.count`); `wscap compare` exits with status 3. ({n_reps} \
             replications per strategy.)",
            and_list(&slo_list),
            fails.join("; ")
        );
        return s;
    };
    let _ = write!(s, "Use **{}**.", names[c]);
    if !rec.slos.is_empty() {
        let meeting: Vec<String> = (0..names.len())
            .filter(|&i| rec.meets[i])
            .map(|i| code(&names[i]))
            .collect();
        if meeting.len() == names.len() {
            let _ = write!(s, " Every strategy meets every SLO ({}).", and_list(&slo_list));
        } else {
            let fails: Vec<String> = (0..names.len())
                .filter(|&i| !rec.meets[i])
                .map(|i| format!("{}: {}", code(&names[i]), failed_slos(rec, i)))
                .collect();
            if meeting.len() == 1 {
                let _ = write!(
                    s,
                    " It is the only strategy that meets every SLO ({}); the others are left out ({}).",
                    and_list(&slo_list),
                    fails.join("; ")
                );
            } else {
                let _ = write!(
                    s,
                    " {} of {} strategies meet every SLO ({}): {}; the others are left out ({}).",
                    meeting.len(),
                    names.len(),
                    and_list(&slo_list),
                    and_list(&meeting),
                    fails.join("; ")
                );
            }
        }
    }
    let obj_labels: Vec<String> = objs.iter().map(|o| metric_label(o.metric)).collect();
    let members: Vec<usize> = (0..names.len()).filter(|&i| rec.pareto[i]).collect();
    if !objs.is_empty() {
        let member_names: Vec<String> = members.iter().map(|&i| code(&names[i])).collect();
        let candidates = rec.meets.iter().filter(|&&m| m).count();
        if candidates == 1 {
            // Nothing to weigh: the SLOs decided.
        } else if members.len() == 1 {
            let _ = write!(
                s,
                " On {} it dominates every other strategy{}: it is the whole Pareto set.",
                and_list(&obj_labels),
                if rec.slos.is_empty() {
                    ""
                } else {
                    " that meets the SLOs"
                }
            );
        } else {
            let _ = write!(
                s,
                " On {} the Pareto set (strategies that no other{} beats on one of these without being worse on \
                 another) is {}.",
                and_list(&obj_labels),
                if rec.slos.is_empty() { "" } else { " meeting the SLOs" },
                and_list(&member_names)
            );
        }
        let dominated: Vec<String> = (0..names.len())
            .filter_map(|i| {
                let j = rec.dominated_by[i]?;
                let (better, _) = crate::study::compare::better_worse(&outcomes[j], &outcomes[i], objs);
                let on: Vec<String> = better
                    .iter()
                    .map(|&k| format!("{} {} vs {}", obj_labels[k], val(j, k), val(i, k)))
                    .collect();
                Some(format!(
                    "{} by {} (better on {}, not significantly worse on any)",
                    code(&names[i]),
                    code(&names[j]),
                    and_list(&on)
                ))
            })
            .collect();
        if !dominated.is_empty() {
            let _ = write!(s, " Dominated: {}.", dominated.join("; "));
        }
        // The choice within the set.
        let tie_break = match rec.decision {
            Decision::MessageP99 => crate::study::compare::message_metric(outcomes)
                .map(|m| format!(" Of the strategies tied so far it has the lowest {}.", metric_label(m)))
                .unwrap_or_default(),
            Decision::Order => " It is tied with others on all of this and listed first.".into(),
            Decision::Count => " Others have as large a shortfall, but on more objectives.".into(),
            Decision::Only | Decision::Shortfall => String::new(),
        };
        if members.len() > 1 {
            if rec.shortfalls[c].is_empty() {
                let _ = write!(
                    s,
                    " {} is chosen: it is the best of the set, or not significantly different from the best, on \
                     every one of these.{tie_break}",
                    code(&names[c])
                );
            } else {
                let parts: Vec<String> = rec.shortfalls[c]
                    .iter()
                    .map(|f| {
                        let k = f.objective;
                        let rel = if f.relative.is_finite() {
                            format!(", {} worse", percent(f.relative))
                        } else {
                            String::new()
                        };
                        format!(
                            "its {} is {} against {} for {}{rel}",
                            obj_labels[k],
                            val(c, k),
                            val(f.best, k),
                            code(&names[f.best])
                        )
                    })
                    .collect();
                let _ = write!(
                    s,
                    " {} is chosen because its largest shortfall against the best of the set is the smallest: \
                     {}.{tie_break}",
                    code(&names[c]),
                    parts.join("; ")
                );
            }
        }
        // Trade-offs against the other members.
        let mut trades = vec![];
        let tied: Vec<String> = rec
            .tradeoffs
            .iter()
            .filter(|t| t.better.is_empty() && t.worse.is_empty())
            .map(|t| code(&names[t.other]))
            .collect();
        if !tied.is_empty() {
            let _ = write!(
                s,
                " {} {} not significantly different from {} on any of these.",
                and_list(&tied),
                if tied.len() == 1 { "is" } else { "are" },
                code(&names[c])
            );
        }
        for t in &rec.tradeoffs {
            let o = t.other;
            if t.better.is_empty() && t.worse.is_empty() {
                continue;
            }
            let better: Vec<String> = t
                .better
                .iter()
                .map(|&k| {
                    let best_of_set = members.iter().all(|&m| {
                        let (x, y) = (mean(o, k), mean(m, k));
                        y.is_nan() || if objs[k].larger_is_better { x >= y } else { x <= y }
                    });
                    let adj = match (best_of_set, objs[k].larger_is_better) {
                        (true, false) => "the lowest",
                        (true, true) => "the highest",
                        (false, false) => "a lower",
                        (false, true) => "a higher",
                    };
                    format!("{adj} {} ({} vs {})", obj_labels[k], val(o, k), val(c, k))
                })
                .collect();
            let worse: Vec<String> = t
                .worse
                .iter()
                .map(|&k| {
                    format!(
                        "its {} is {} against {} for {}",
                        obj_labels[k],
                        val(o, k),
                        val(c, k),
                        code(&names[c])
                    )
                })
                .collect();
            trades.push(format!(
                "{} has {}{}",
                code(&names[o]),
                and_list(&better),
                if worse.is_empty() {
                    String::new()
                } else {
                    format!(" but {}", and_list(&worse))
                }
            ));
        }
        match trades.len() {
            0 => {}
            1 => {
                let _ = write!(s, " Trade-off: {}.", trades[0]);
            }
            _ => {
                let _ = write!(s, " Trade-offs: {}.", trades.join("; "));
            }
        }
    }
    let _ = write!(
        s,
        " ({n_reps} replications per strategy, paired over common random numbers; a difference counts only when \
         its paired 95 % CI excludes 0.)"
    );
    s
}

/// The `## SLO verdict` section of a compare (empty without `--slo`).
fn compare_slo_md(names: &[String], rec: &Recommendation) -> String {
    if rec.slos.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "## SLO verdict\n\nEach SLO is judged as `wscap plan` judges it: met when the one-sided 95 % bound of the \
         mean over the replications is on the right side of the threshold. Only strategies that meet every SLO \
         can be recommended.\n\n| strategy |",
    );
    for slo in &rec.slos {
        let _ = write!(s, " `{}` |", slo.text);
    }
    s.push_str(" meets every SLO |\n|---|");
    s.push_str(&"---|".repeat(rec.slos.len() + 1));
    s.push('\n');
    for (i, n) in names.iter().enumerate() {
        let _ = write!(s, "| {} |", n.replace('|', "\\|"));
        for c in &rec.checks[i] {
            let cell = if c.mean.is_nan() {
                "not measured".to_string()
            } else if c.bound.is_nan() {
                format!("{} (no bound)", pm(c.mean, c.ci95))
            } else {
                format!("{} (bound {})", pm(c.mean, c.ci95), fmt(c.bound))
            };
            let _ = write!(s, " {cell} {} |", if c.met { "✓" } else { "✗" });
        }
        let _ = writeln!(s, " {} |", if rec.meets[i] { "**yes**" } else { "no" });
    }
    s.push('\n');
    s
}

/// The `## Pareto set` section of a compare: the rule, and each strategy's
/// place.
fn compare_pareto_md(names: &[String], outcomes: &[Outcome], rec: &Recommendation) -> String {
    let objs = &rec.objectives;
    if objs.is_empty() {
        return String::new();
    }
    let labels: Vec<String> = objs
        .iter()
        .map(|o| {
            format!(
                "{} (`{}`, {} is better)",
                metric_label(o.metric),
                o.metric,
                if o.larger_is_better { "higher" } else { "lower" }
            )
        })
        .collect();
    let mut s = format!(
        "## Pareto set\n\nObjectives: {}. A strategy *dominates* another when it is significantly better on at \
         least one objective and significantly worse on none (a difference whose paired 95 % CI covers 0 is a \
         tie). The Pareto set is the strategies{} that no other dominates. Within it wscap recommends the one \
         whose largest *shortfall* is smallest — a shortfall is a significant gap to the set's best on one \
         objective, relative to that best (infinite when the best is 0) — then the one with fewer shortfalls, \
         then the lowest message p99, then the first listed. `--pareto m1,m2:max,…` changes the objectives.\n\n\
         | strategy | meets every SLO | Pareto set | note |\n|---|---|---|---|\n",
        and_list(&labels),
        if rec.slos.is_empty() { "" } else { " meeting every SLO" }
    );
    for (i, n) in names.iter().enumerate() {
        let note = if !rec.meets[i] {
            "fails an SLO".to_string()
        } else if let Some(j) = rec.dominated_by[i] {
            format!("dominated by {}", names[j])
        } else if rec.chosen == Some(i) {
            "**recommended**".to_string()
        } else {
            let worse: Vec<String> = rec.shortfalls[i]
                .iter()
                .map(|f| {
                    format!(
                        "{} {} (best {} {})",
                        metric_label(objs[f.objective].metric),
                        words(objs[f.objective].metric, agg(&outcomes[i], objs[f.objective].metric).0),
                        names[f.best],
                        words(
                            objs[f.objective].metric,
                            agg(&outcomes[f.best], objs[f.objective].metric).0
                        )
                    )
                })
                .collect();
            if worse.is_empty() {
                "tied with the best on every objective".into()
            } else {
                format!("behind on {}", worse.join(", "))
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            n.replace('|', "\\|"),
            if rec.meets[i] { "yes" } else { "no" },
            if rec.pareto[i] { "yes" } else { "no" },
            note.replace('|', "\\|")
        );
    }
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------
// sweep

/// Writes the outputs of `wscap sweep`.
pub fn write_sweep(
    out: &Path,
    settings: &[Setting],
    x_key: Option<usize>,
    points: &[Point],
    outcomes: &[Outcome],
    info: &RunInfo,
) -> Result<Vec<PathBuf>, ReportError> {
    super::replace_dir(out, |dir| {
        let sc = &points[0].scenario;
        let keys: Vec<String> = settings.iter().map(|s| s.key.text.clone()).collect();
        let mut label_cols = vec!["point".to_string()];
        label_cols.extend(keys.iter().cloned());
        let values_of = |p: &Point| -> Vec<String> {
            settings
                .iter()
                .map(|st| {
                    p.assigns
                        .iter()
                        .rev()
                        .find(|a| a.key == st.key)
                        .map(|a| a.value.text.clone())
                        .unwrap_or_default()
                })
                .collect()
        };
        let rows: Vec<(Vec<String>, &Outcome)> = points
            .iter()
            .zip(outcomes)
            .enumerate()
            .map(|(i, (p, o))| {
                let mut l = vec![i.to_string()];
                l.extend(values_of(p));
                (l, o)
            })
            .collect();
        let mut files = vec![
            replications_csv(&dir.join("sweep.csv"), &label_cols, &rows)?,
            summary_csv(&dir.join("sweep_summary.csv"), &label_cols, &rows)?,
        ];
        let heads = headline_metrics(outcomes);
        if let Some(xk) = x_key {
            let xs = &settings[xk];
            let numeric = xs.values.iter().all(|v| v.as_f64().is_some());
            let xkind = if numeric {
                XKind::Numeric(xs.key.text.clone())
            } else {
                XKind::Categories(xs.key.text.clone(), xs.values.iter().map(|v| v.text.clone()).collect())
            };
            // Series: the other keys' combinations, in point order.
            let other = |p: &Point| -> String {
                p.assigns
                    .iter()
                    .filter(|a| a.key != xs.key && settings.iter().any(|s| s.key == a.key && s.values.len() > 1))
                    .map(|a| a.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut series_names: Vec<String> = vec![];
            for p in points {
                let o = other(p);
                if !series_names.contains(&o) {
                    series_names.push(o);
                }
            }
            let panels: Vec<LinePanel> = heads
                .iter()
                .map(|&(m, label, _)| LinePanel {
                    title: label.to_string(),
                    threshold: None,
                    series: series_names
                        .iter()
                        .map(|sn| Series {
                            label: sn.clone(),
                            points: points
                                .iter()
                                .zip(outcomes)
                                .filter(|(p, _)| &other(p) == sn)
                                .filter_map(|(p, o)| {
                                    let a = p.assigns.iter().rev().find(|a| a.key == xs.key)?;
                                    let x = if numeric {
                                        a.value.as_f64()?
                                    } else {
                                        xs.values.iter().position(|v| v.text == a.value.text)? as f64
                                    };
                                    let (mean, ci) = agg(o, m);
                                    Some((x, mean, ci))
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect();
            let title = format!("{}: metrics against {} (mean and 95 % CI)", sc.name, xs.key.text);
            files.extend(write_lines(dir, "sweep", &title, &xkind, &panels)?);
        }
        let md = sweep_md(sc, settings, points, outcomes, info, &files, dir, &heads);
        finish(dir, md, files)
    })
}

#[allow(clippy::too_many_arguments)]
fn sweep_md(
    sc: &Scenario,
    settings: &[Setting],
    points: &[Point],
    outcomes: &[Outcome],
    info: &RunInfo,
    files: &[PathBuf],
    dir: &Path,
    heads: &[(&'static str, &'static str, bool)],
) -> String {
    let mut s = format!("# wscap sweep: {}\n\n", sc.name);
    // A point by its swept keys only.
    let point_label = |p: &Point| -> String {
        p.assigns
            .iter()
            .filter(|a| settings.iter().any(|st| st.key == a.key))
            .map(|a| a.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let swept: Vec<String> = settings
        .iter()
        .map(|st| {
            let vals: Vec<&str> = st.values.iter().map(|v| v.text.as_str()).collect();
            format!("`{}` over {}", st.key.text, vals.join(", "))
        })
        .collect();
    let _ = write!(
        s,
        "**Answer.** {} points ({}), {} replications each.",
        points.len(),
        swept.join("; "),
        outcomes.first().map_or(0, |o| o.replications.len())
    );
    // The answer names the key metrics; the table has them all.
    let primary = if heads.iter().any(|h| h.0 == "move_ms_p99") {
        "move_ms_p99"
    } else {
        "connect_ms_p99"
    };
    for &(m, label, big) in heads
        .iter()
        .filter(|h| [primary, "clients_refused_ratio", "imbalance_max_over_mean"].contains(&h.0))
    {
        let mut idx: Vec<usize> = (0..points.len())
            .filter(|&i| !agg(&outcomes[i], m).0.is_nan())
            .collect();
        idx.sort_by(|&a, &b| agg(&outcomes[a], m).0.total_cmp(&agg(&outcomes[b], m).0));
        let (Some(&lo), Some(&hi)) = (idx.first(), idx.last()) else {
            continue;
        };
        if agg(&outcomes[lo], m).0 == agg(&outcomes[hi], m).0 {
            let _ = write!(s, " {label}: {} at every point.", fmt(agg(&outcomes[lo], m).0));
            continue;
        }
        let (best, worst) = if big { (hi, lo) } else { (lo, hi) };
        let (bm, bc) = agg(&outcomes[best], m);
        let (wm, wc) = agg(&outcomes[worst], m);
        let _ = write!(
            s,
            " {label}: best {} at {}, worst {} at {}.",
            pm(bm, bc),
            point_label(&points[best]),
            pm(wm, wc),
            point_label(&points[worst])
        );
    }
    s.push_str("\n\n");
    let _ = writeln!(
        s,
        "Every point runs the same replications with the same seeds (common random numbers). Values are means ± \
         95 % CI half-widths over {} replications of {} (warm-up {} not counted).\n",
        outcomes.first().map_or(0, |o| o.replications.len()),
        sc.duration,
        sc.warmup
    );
    let _ = write!(s, "| point |");
    for st in settings {
        let _ = write!(s, " {} |", st.key.text);
    }
    for (_, label, _) in heads {
        let _ = write!(s, " {label} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(settings.len() + heads.len()));
    s.push('\n');
    for (i, (p, o)) in points.iter().zip(outcomes).enumerate() {
        let _ = write!(s, "| {i} |");
        for st in settings {
            let v = p
                .assigns
                .iter()
                .rev()
                .find(|a| a.key == st.key)
                .map(|a| a.value.text.replace('|', "\\|"))
                .unwrap_or_default();
            let _ = write!(s, " {v} |");
        }
        for (m, ..) in heads {
            let (mean, ci) = agg(o, m);
            let _ = write!(s, " {} |", pm(mean, ci));
        }
        s.push('\n');
    }
    s.push_str("\nEvery metric of every point and replication: `sweep.csv`; means and CIs: `sweep_summary.csv`.\n\n");
    if files.iter().any(|f| f.ends_with("sweep.svg")) {
        s.push_str("## Charts\n\n![Headline metrics against the swept key, mean and 95 % CI](sweep.svg)\n\n");
    }
    // Per component: the busiest server and the servers' CPU per point.
    let comps: Vec<(&str, &str)> = [
        ("max_conn_per_server", "busiest server (peak connections)"),
        ("imbalance_max_over_mean", "imbalance max/mean"),
        ("cpu_util_mean", "mean server CPU"),
        ("cpu_util_max", "busiest interval CPU"),
        ("relay_ms_p99", "relay p99 (ms)"),
        ("relay_backlog_max", "relay backlog (max)"),
    ]
    .into_iter()
    .filter(|(m, _)| outcomes.iter().any(|o| !agg(o, m).0.is_nan() && agg(o, m).0 != 0.0))
    .collect();
    if !comps.is_empty() {
        s.push_str("## Per component\n\n| point |");
        for (_, l) in &comps {
            let _ = write!(s, " {l} |");
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(comps.len()));
        s.push('\n');
        for (i, (p, o)) in points.iter().zip(outcomes).enumerate() {
            let _ = write!(s, "| {i}: {} |", point_label(p).replace('|', "\\|"));
            for (m, _) in &comps {
                let (mean, ci) = agg(o, m);
                let _ = write!(s, " {} |", pm(mean, ci));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s.push_str(&sections::scenario_as_run(sc).replace(
        "All defaults filled in",
        &format!(
            "Point 0 ({}); the others differ only in the swept keys. All defaults filled in",
            point_label(&points[0])
        ),
    ));
    s.push_str(&sections::assumptions(sc));
    s.push_str(&outputs_list(files, dir));
    s.push_str(&reproduce(info, sc.seed));
    s
}

// ---------------------------------------------------------------------------
// plan

/// How to name `n` of the varied key in a sentence.
fn value_phrase(key: &str, n: i64) -> String {
    match key {
        "servers.count" => format!("{n} server{}", if n == 1 { "" } else { "s" }),
        "servers.cores" => format!("{n} core{} per server", if n == 1 { "" } else { "s" }),
        "servers.max_connections" => format!("{n} connections per server"),
        _ => format!("`{key}` = {n}"),
    }
}

/// Whether `value_phrase(key, n)` is a plural noun.
fn plural(key: &str, n: i64) -> bool {
    matches!(key, "servers.count" | "servers.cores" | "servers.max_connections") && n != 1
}

/// Writes the outputs of `wscap plan`; `start` is the scenario as given
/// (with `--set`, `--seed`, `--replications`: its name and seed title the
/// report), `chosen` the scenario of the answer (its replication 0 gets the
/// usual run charts).
pub fn write_plan(
    out: &Path,
    plan: &Plan,
    start: &Scenario,
    chosen: Option<&Scenario>,
    info: &RunInfo,
) -> Result<Vec<PathBuf>, ReportError> {
    super::replace_dir(out, |dir| {
        let slos = &plan.request.slos;
        let key = plan.request.key.text.clone();
        let mut header = vec![
            key.clone(),
            "replications".into(),
            "meets_slos".into(),
            "rejected".into(),
        ];
        for s in slos {
            for suffix in ["mean", "ci95", "bound", "met"] {
                header.push(format!("{}_{suffix}", s.metric));
            }
        }
        let eval_row = |label: String, e: &crate::study::plan::Eval| -> Vec<String> {
            let mut row = vec![
                label,
                e.replications().to_string(),
                e.met().to_string(),
                e.rejected.clone().unwrap_or_default(),
            ];
            for (i, _) in slos.iter().enumerate() {
                match e.checks.get(i) {
                    Some(c) => row.extend([num(c.mean), num(c.ci95), num(c.bound), c.met.to_string()]),
                    None => row.extend([String::new(), String::new(), String::new(), "false".into()]),
                }
            }
            row
        };
        let rows: Vec<Vec<String>> = plan.evals.iter().map(|(v, e)| eval_row(v.to_string(), e)).collect();
        let mut files = vec![write_csv(&dir.join("plan.csv"), &header, &rows)?];
        let reps: Vec<(Vec<String>, &Outcome)> = plan
            .evals
            .iter()
            .map(|(v, e)| (vec![v.to_string()], &e.outcome))
            .collect();
        files.push(replications_csv(
            &dir.join("plan_replications.csv"),
            std::slice::from_ref(&key),
            &reps,
        )?);
        if let Some(h) = &plan.headroom {
            let mut hh = header.clone();
            hh[0] = "load_factor".into();
            let rows: Vec<Vec<String>> = h.evals.iter().map(|(f, e)| eval_row(format!("{f:.4}"), e)).collect();
            files.push(write_csv(&dir.join("headroom.csv"), &hh, &rows)?);
        }

        // The capacity curve: every SLO metric, plus p99 and refusals.
        let any = |m: &str| plan.evals.values().any(|e| !agg(&e.outcome, m).0.is_nan());
        let mut metrics: Vec<(&str, Option<(f64, String)>)> = slos
            .iter()
            .map(|s| (s.metric, Some((s.threshold, format!("SLO {}", s.text)))))
            .collect();
        let p99 = if any("move_ms_p99") {
            "move_ms_p99"
        } else {
            "connect_ms_p99"
        };
        for m in [p99, "refused_ratio"] {
            if !metrics.iter().any(|x| x.0 == m) && any(m) {
                metrics.push((m, None));
            }
        }
        let evaluated: Vec<(&i64, &crate::study::plan::Eval)> =
            plan.evals.iter().filter(|(_, e)| e.rejected.is_none()).collect();
        let panels: Vec<LinePanel> = metrics
            .iter()
            .map(|(m, thr)| LinePanel {
                title: m.to_string(),
                threshold: thr.clone(),
                series: vec![Series {
                    label: String::new(),
                    points: evaluated
                        .iter()
                        .map(|(v, e)| {
                            let (mean, ci) = agg(&e.outcome, m);
                            (**v as f64, mean, ci)
                        })
                        .collect(),
                }],
            })
            .collect();
        let title = format!("{}: capacity curve against {key} (mean and 95 % CI)", start.name);
        files.extend(write_lines(
            dir,
            "capacity",
            &title,
            &XKind::Numeric(key.clone()),
            &panels,
        )?);
        if let (Some(sc), Some(v)) = (chosen, plan.answer)
            && let Some(r) = plan.evals.get(&v).and_then(|e| e.outcome.replications.first())
        {
            files.extend(charts::write_charts(
                dir,
                r,
                &sc.faults,
                sc.sample_interval.as_secs_f64(),
                sc.warmup.as_secs_f64(),
            )?);
        }
        let md = plan_md(plan, start, chosen, info, &files, dir);
        finish(dir, md, files)
    })
}

fn checks_text(plan: &Plan, e: &crate::study::plan::Eval, only_broken: bool) -> String {
    plan.request
        .slos
        .iter()
        .zip(&e.checks)
        .filter(|(_, c)| !only_broken || !c.met)
        .map(|(s, c)| check_sentence(s, c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plan_md(
    plan: &Plan,
    start: &Scenario,
    chosen: Option<&Scenario>,
    info: &RunInfo,
    files: &[PathBuf],
    dir: &Path,
) -> String {
    let req = &plan.request;
    let key = req.key.text.as_str();
    let mut s = format!("# wscap plan: {}\n\n**Answer.** ", start.name);
    match plan.answer {
        Some(v) => {
            let e = &plan.evals[&v];
            let meets = format!(
                "{} {} every SLO with 95 % confidence: {}.",
                value_phrase(key, v),
                if plural(key, v) { "meet" } else { "meets" },
                checks_text(plan, e, false)
            );
            match plan.evals.range(..v).next_back() {
                Some((b, eb)) if *b == v - 1 => {
                    let why = match &eb.rejected {
                        Some(r) => format!("the scenario rejects it ({})", r.lines().last().unwrap_or("")),
                        None if eb.checks.iter().any(|c| !c.met && c.decided) => checks_text(plan, eb, true),
                        None => format!(
                            "{} (not met with 95 % confidence after {} replications)",
                            checks_text(plan, eb, true),
                            eb.replications()
                        ),
                    };
                    // A breach that only the fault windows make: say so.
                    let faults: Vec<String> = req
                        .slos
                        .iter()
                        .zip(&eb.checks)
                        .filter(|(_, c)| !c.met)
                        .filter_map(|(slo, _)| only_in_faults(&eb.outcome, slo))
                        .collect();
                    let why = if faults.is_empty() {
                        why
                    } else {
                        format!("{why}; but {}", faults.join("; "))
                    };
                    let _ = write!(
                        s,
                        "{} {} {}: {why}. {meets}",
                        value_phrase(key, *b),
                        if plural(key, *b) { "are" } else { "is" },
                        if eb.rejected.is_some() {
                            "not possible"
                        } else {
                            "not enough"
                        }
                    );
                }
                _ if v == req.lo => {
                    let _ = write!(s, "{meets} ({v} is the bottom of the search range.)");
                }
                _ => s.push_str(&meets),
            }
            match &plan.headroom {
                Some(h) => {
                    let pct = (h.factor - 1.0) * 100.0;
                    match &h.broken {
                        Some((f, _)) if h.evals.iter().any(|(g, e)| g == f && e.rejected.is_some()) => {
                            let why = h
                                .evals
                                .iter()
                                .find_map(|(g, e)| if g == f { e.rejected.as_deref() } else { None })
                                .unwrap_or("");
                            let _ = write!(
                                s,
                                " Headroom: at least **{pct:.0} %** more load still meets every SLO; {:.0} % more was \
                                 not run ({why}).",
                                (f - 1.0) * 100.0
                            );
                        }
                        Some((f, which)) => {
                            let names: Vec<&str> = which.iter().map(|&i| req.slos[i].text.as_str()).collect();
                            let _ = write!(
                                s,
                                " Headroom: **{pct:.0} %** more load still meets every SLO; at {:.0} % more, {} \
                                 no longer holds.",
                                (f - 1.0) * 100.0,
                                if names.is_empty() {
                                    "an SLO".to_string()
                                } else {
                                    names.join(" and ")
                                }
                            );
                        }
                        None => {
                            let _ = write!(
                                s,
                                " Headroom: more than **{pct:.0} %**: every SLO still holds at {:.1}× the load.",
                                h.factor
                            );
                        }
                    }
                }
                None if req.headroom => {}
                None => s.push_str(" (Headroom not measured: `--no-headroom`.)"),
            }
        }
        None => {
            let top = plan.evals.iter().next_back();
            let _ = write!(
                s,
                "No value of `{key}` from {} to {} meets every SLO with 95 % confidence",
                req.lo, req.hi
            );
            let mut flat = vec![];
            match top {
                Some((v, e)) if e.rejected.is_none() => {
                    let _ = write!(s, ": at {}, {}.", value_phrase(key, *v), checks_text(plan, e, true));
                    // An SLO whose metric does not improve from the lowest
                    // value tried to the highest: more of the key will not help.
                    if let Some((lo_v, lo_e)) = plan.evals.iter().find(|(_, e)| e.rejected.is_none())
                        && lo_v < v
                    {
                        for (slo, c) in req.slos.iter().zip(&e.checks) {
                            if c.met {
                                continue;
                            }
                            let Some(d) = paired(&e.outcome, &lo_e.outcome, slo.metric) else {
                                continue;
                            };
                            let better = if matches!(slo.cmp, Cmp::Lt | Cmp::Le) {
                                d.mean < 0.0
                            } else {
                                d.mean > 0.0
                            };
                            let lo_mean = agg(&lo_e.outcome, slo.metric).0;
                            let measured = !lo_mean.is_nan() && !c.mean.is_nan();
                            if measured && !(d.significant() && better) {
                                flat.push(format!(
                                    "{} does not improve as `{key}` grows ({} at {lo_v}, {} at {v}: the difference \
                                     {} is {}), so more of it will not meet {}",
                                    slo.metric,
                                    fmt(lo_mean),
                                    fmt(c.mean),
                                    pm(d.mean, d.ci95),
                                    if d.significant() {
                                        "the wrong way"
                                    } else {
                                        "not significant"
                                    },
                                    slo.text
                                ));
                            }
                        }
                    }
                }
                _ => s.push('.'),
            }
            // An SLO whose metric is set by something capacity does not
            // change (retries against a server not yet DOWN, the network,
            // the relay), or whose breach comes only from the fault windows.
            if let Some((_, e)) = top
                && e.rejected.is_none()
            {
                for (slo, c) in req.slos.iter().zip(&e.checks) {
                    if c.met {
                        continue;
                    }
                    if let Some(why) = not_capacity(&e.outcome, slo.metric, key) {
                        flat.push(why);
                    } else if let Some(why) = only_in_faults(&e.outcome, slo)
                        && !flat.iter().any(|f| f.starts_with(slo.metric))
                    {
                        flat.push(why);
                    }
                }
            }
            // Each SLO alone: from which value on it is met.
            let alone: Vec<String> = req
                .slos
                .iter()
                .enumerate()
                .map(|(i, slo)| {
                    let ok = |e: &crate::study::plan::Eval| e.checks.get(i).is_some_and(|c| c.met);
                    let from = plan
                        .evals
                        .iter()
                        .filter(|(v, e)| ok(e) && plan.evals.range(**v..).all(|(_, e)| ok(e)))
                        .map(|(v, _)| *v)
                        .next();
                    match from {
                        Some(v) => format!(
                            "{} is met from {} on (of the values tried)",
                            slo.text,
                            value_phrase(key, v)
                        ),
                        None => format!("{} at no value tried", slo.text),
                    }
                })
                .collect();
            if req.slos.len() > 1 {
                let _ = write!(s, " Taken alone, {}.", alone.join("; "));
            }
            if flat.is_empty() {
                s.push_str(" Widen the range (`--vary key=lo..hi`) or relax the SLOs.");
            } else {
                let why = flat.join("; ");
                let _ = write!(
                    s,
                    " {why}. Relax that SLO or change what drives it (the report's assumptions list the model's inputs)."
                );
            }
            s.push_str(" `wscap plan` exits with status 3.");
        }
    }
    s.push_str("\n\n");
    let _ = writeln!(
        s,
        "**How this was decided.** A value *meets* an SLO `metric < x` when the one-sided 95 % upper confidence \
         bound of the metric's mean over the replications, mean + t(0.95, n−1)·s/√n, is below x (for `>`: the lower \
         bound above x). Each value starts with {} replications; while an SLO's 95 % interval straddles its \
         threshold the replications are doubled, up to {} (still undecided then counts as not met). Larger values \
         of `{key}` are assumed to help. The search starts at the scenario's value ({}), steps by 1, 2, 4, … and \
         bisects, within {}..={}. Headroom scales every population's arrival rate, ramp target and step count by \
         a factor (1.05, 1.1, 1.2, 1.4, …, then bisection to 1 %) until an SLO is no longer met.\n",
        req.replications, req.max_replications, plan.current, req.lo, req.hi
    );
    s.push_str("## Values evaluated\n\n| ");
    s.push_str(key);
    s.push_str(" | replications |");
    for slo in &req.slos {
        let _ = write!(s, " {} |", slo.text);
    }
    s.push_str(" verdict |\n|---|---|");
    s.push_str(&"---|".repeat(req.slos.len() + 1));
    s.push('\n');
    let row = |s: &mut String, label: String, e: &crate::study::plan::Eval| {
        let _ = write!(s, "| {label} | {} |", e.replications());
        if let Some(r) = &e.rejected {
            let _ = write!(
                s,
                " rejected by the scenario: {} |",
                r.lines().last().unwrap_or("").replace('|', "\\|")
            );
            s.push_str(&" |".repeat(req.slos.len().saturating_sub(1)));
            s.push_str(" no |\n");
            return;
        }
        for c in &e.checks {
            let _ = write!(
                s,
                " {} (bound {}) {} |",
                pm(c.mean, c.ci95),
                fmt(c.bound),
                if c.met { "✓" } else { "✗" }
            );
        }
        let _ = writeln!(s, " {} |", if e.met() { "**meets**" } else { "does not meet" });
    };
    for (v, e) in &plan.evals {
        row(&mut s, v.to_string(), e);
    }
    s.push('\n');
    if let Some(h) = &plan.headroom {
        s.push_str("## Headroom\n\n| load factor | replications |");
        for slo in &req.slos {
            let _ = write!(s, " {} |", slo.text);
        }
        s.push_str(" verdict |\n|---|---|");
        s.push_str(&"---|".repeat(req.slos.len() + 1));
        s.push('\n');
        for (f, e) in &h.evals {
            row(&mut s, format!("{f:.3}"), e);
        }
        if !h.unscaled.is_empty() {
            let _ = writeln!(
                s,
                "\nNot scaled (trace arrivals replay fixed times): {}.",
                h.unscaled.join(", ")
            );
        }
        s.push('\n');
    }
    for n in &plan.notes {
        let _ = writeln!(s, "Note: {n}\n");
    }
    s.push_str("## Charts\n\n![Capacity curve: the SLO metrics against the varied key, mean and 95 % CI; dashed: the SLO](capacity.svg)\n\n");
    if let Some(v) = plan.answer {
        for (file, title) in [
            ("connections", "Connections per server"),
            ("connect_latency", "Connect latency p50/p99"),
            ("refusals", "Refusals and reconnects"),
            ("move_latency", "Move latency over time"),
            ("spectator_cdf", "Delivery-latency distribution"),
            ("relay_backlog", "Relay backlog"),
            ("cpu", "Server CPU utilisation"),
        ] {
            if files.iter().any(|f| f.ends_with(format!("{file}.svg"))) {
                let _ = writeln!(
                    s,
                    "![{title}, {} (replication 0; shaded: outages)]({file}.svg)\n",
                    value_phrase(key, v)
                );
            }
        }
    }
    if let (Some(sc), Some(v)) = (chosen, plan.answer)
        && let Some(r) = plan.evals.get(&v).and_then(|e| e.outcome.replications.first())
    {
        s.push_str(&sections::servers_table(
            sc,
            r,
            &format!("## Per server, {}", value_phrase(key, v)),
        ));
        s.push_str(&sections::scenario_as_run(sc).replace(
            "All defaults filled in",
            &format!("The chosen deployment ({key} = {v}). All defaults filled in"),
        ));
        s.push_str(&sections::assumptions(sc));
    } else if plan.answer.is_none() {
        s.push_str(&sections::scenario_as_run(start).replace(
            "All defaults filled in",
            &format!(
                "The scenario as given ({key} = {}; the search varied it). All defaults filled in",
                plan.current
            ),
        ));
        s.push_str(&sections::assumptions(start));
    }
    s.push_str(&outputs_list(files, dir));
    s.push_str(&reproduce(info, start.seed));
    if let (Some(sc), Some(v)) = (chosen, plan.answer) {
        // `--seed` is given as such, not as the `seed` key it was applied as.
        let fixed: Vec<String> = req
            .fixed
            .iter()
            .filter(|a| a.key.text != "seed")
            .map(|a| format!(" --set {}", quote(&a.label())))
            .collect();
        let slos: String = req.slos.iter().map(|x| format!(" --slo {}", quote(&x.text))).collect();
        let _ = writeln!(
            s,
            "\nThe chosen deployment alone, with the same SLO verdict (exit status 0 when every SLO is \
             met, 3 when not):\n\n```\nwscap run {}{} --set {key}={v}{slos} --seed {} --replications {}\n```",
            info.scenario_file.display(),
            fixed.join(""),
            sc.seed,
            plan.evals[&v].replications()
        );
    }
    s
}

/// `s` quoted for a POSIX shell when it needs it.
fn quote(s: &str) -> String {
    if s.chars().all(|c| c.is_alphanumeric() || "-_.=,:/+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// "connect_ms_p99 is set by HAProxy retries … (97 % of its slowest 1 %),
/// which more `servers.count` does not shorten: what moves it is …" —
/// when the largest part of the metric's tail is not capacity.
fn not_capacity(o: &Outcome, metric: &str, key: &str) -> Option<String> {
    let lat = crate::explain::Latency::of_metric(metric)?;
    let d = crate::explain::drivers(o, lat).into_iter().next()?;
    (!d.capacity).then(|| {
        format!(
            "{metric}: its slowest 1 % spent {:.0} % of their time {}, which more `{key}` does not shorten; what \
             moves it: {}",
            d.share * 100.0,
            d.what,
            d.knobs
        )
    })
}

/// "refused_ratio breaks only in the fault windows (…)": when the SLO's
/// metric has a steady-state twin that meets it.
fn only_in_faults(o: &Outcome, slo: &crate::study::plan::Slo) -> Option<String> {
    let steady = format!("{}_steady", slo.metric);
    let faults = format!("{}_faults", slo.metric);
    let (st, fa) = (agg(o, &steady).0, agg(o, &faults).0);
    if fa.is_nan() {
        return None;
    }
    // Nothing measured in steady state (everyone connected in the warm-up):
    // steady state broke nothing either.
    let meets = st.is_nan()
        || match slo.cmp {
            Cmp::Lt => st < slo.threshold,
            Cmp::Le => st <= slo.threshold,
            Cmp::Gt => st > slo.threshold,
            Cmp::Ge => st >= slo.threshold,
        };
    let in_steady = if st.is_nan() {
        "nothing measured in steady state".to_string()
    } else {
        format!("{} in steady state", fmt(st))
    };
    meets.then(|| {
        format!(
            "{} breaks only because of the faults ({in_steady}, {} in the fault windows): put the SLO on \
             `{steady}` to size capacity, and read what each fault costs in the run's per-fault table",
            slo.metric,
            fmt(fa)
        )
    })
}
