//! Charts of one replication, as PNG and SVG.
//!
//! [`write_charts`] draws time charts of a replication's per-interval
//! samples: connections per server, connect latency (p50/p99) and refusals
//! and reconnects per second, and, when the run carried game traffic, move
//! latency, relay backlog and CPU per server. Every time chart carries the
//! fault markers of the timeline (crash, restarted, marked-down, marked-up…)
//! as dashed vertical lines with labels stacked in rows so that none
//! overlaps (those that do not fit are counted in the legend), shades each
//! crash-to-restart outage red and the warm-up grey. Each fault (a crash of
//! a server, balancer node, Redis or database node, a scale-out or -in, a
//! deploy) also gets a close-up in panels, `fault_<k>_<kind>`, from 20 s
//! before it to 60 s after the component is back ([`fault_closeups`]).
//! A game run also gets the distribution of move delivery latency
//! (CDFs after the warm-up), with the p50/p99/p99.9 of the spectator curve
//! as labelled guide lines. With a storage tier, `replica_lag` draws each
//! replica's lag and `cache_backlog` the moves at risk, the unflushed moves
//! and Redis's queue over time (a `promoted` replica is a marker too).
//!
//! Text is drawn with the DejaVu Sans font embedded from `assets/`, so no
//! system font library is needed, and the output is deterministic: the same
//! replication gives byte-identical files.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::experiment::Replication;
use crate::metrics::{FaultWindow, Happening, Sample, ServerSample, StorageSample, TimelineEvent, db_node_name};
use crate::scenario::Fault;
use crate::time::SimTime;

pub mod study;

/// Chart size in pixels (PNG and SVG alike).
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 600;
/// Height of each panel of a figure of several charts (a fault close-up).
const PANEL_H: u32 = 450;
/// Width of the legend panel on the right.
const LEGEND_W: u32 = 215;
/// Above this many servers the per-server charts show a min–max band and
/// the mean instead of one line per server.
const MAX_SERVER_LINES: usize = 12;
/// Rows of marker labels at the top of the plot; labels that do not fit are
/// left out (the marker line is still drawn).
const MAX_LABEL_ROWS: usize = 6;
const LABEL_ROW_H: i32 = 17;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static FONT_ONCE: Once = Once::new();
static FONT_OK: AtomicBool = AtomicBool::new(false);

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot create chart directory {dir}: {error}")]
    Dir { dir: PathBuf, error: std::io::Error },
    #[error("cannot load the embedded chart font (assets/DejaVuSans.ttf)")]
    Font,
    #[error("cannot draw {file}: {message}")]
    Draw { file: PathBuf, message: String },
}

/// Registers the embedded font with plotters, once per process.
fn register_font() -> Result<(), ChartError> {
    FONT_ONCE.call_once(|| {
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok();
        FONT_OK.store(ok, Ordering::SeqCst);
    });
    if FONT_OK.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(ChartError::Font)
    }
}

/// Writes the charts of `rep` into `dir` (created if missing), each as PNG
/// and SVG, and returns the files written (PNG and SVG are separate
/// entries).
///
/// Always `connections`, `connect_latency` and `refusals`; with game traffic
/// also `move_latency` (if moves were delivered), `spectator_cdf` (if a
/// move latency distribution was measured), `relay_backlog` (if the run
/// used a relay) and `cpu` (if the servers' cores were busy); with a
/// `[database]` that has replicas `replica_lag`, with a `[cache]`
/// `cache_backlog`. A run without game traffic or faults gets exactly the
/// first three. Then a close-up per fault of the timeline
/// ([`fault_closeups`]: `fault_<k>_<kind>`, at most [`MAX_FAULT_CHARTS`]).
///
/// `sample_interval_s` is the sampling interval in seconds, used to turn
/// per-interval counts into rates; if it is not a positive number the
/// spacing of the samples is used instead. Time charts shade the warm-up,
/// from 0 to `warmup_s` (none if it is not positive).
pub fn write_charts(
    dir: &Path,
    rep: &Replication,
    faults: &[Fault],
    sample_interval_s: f64,
    warmup_s: f64,
) -> Result<Vec<PathBuf>, ChartError> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(|error| ChartError::Dir {
        dir: dir.to_path_buf(),
        error,
    })?;
    let marks = Marks::new(&rep.timeline, warmup_s);
    let time = x_range(rep, &marks);
    let interval = interval_s(&rep.samples, sample_interval_s);
    let mut charts = vec![
        connections_chart(rep, &marks),
        latency_chart(rep),
        refusals_chart(rep, interval),
    ];
    charts.extend(game_charts(rep, &marks));
    charts.extend(cluster_charts(rep));
    charts.extend(web_charts(rep));
    charts.extend(storage_charts(rep));
    let mut figures: Vec<(String, Vec<ChartSpec>)> =
        charts.into_iter().map(|c| (c.stem.to_string(), vec![c])).collect();
    for fault in fault_closeups(rep, faults).0 {
        let panels = closeup_charts(rep, &marks, &fault, interval);
        figures.push((fault.stem, panels));
    }
    let draw = |(stem, panels): &(String, Vec<ChartSpec>)| -> Result<[PathBuf; 2], ChartError> {
        let draw_err = |file: &Path| {
            let file = file.to_path_buf();
            move |message| ChartError::Draw { file, message }
        };
        let height = if panels.len() == 1 {
            HEIGHT
        } else {
            PANEL_H * panels.len() as u32
        };
        let png = dir.join(format!("{stem}.png"));
        let root = BitMapBackend::new(&png, (WIDTH, height)).into_drawing_area();
        render_panels(root, panels, &marks, &time).map_err(draw_err(&png))?;
        let svg = dir.join(format!("{stem}.svg"));
        let root = SVGBackend::new(&svg, (WIDTH, height)).into_drawing_area();
        render_panels(root, panels, &marks, &time).map_err(draw_err(&svg))?;
        Ok([png, svg])
    };
    // Each figure is a file of its own, drawn the same on any thread: on
    // the caller's worker pool (`--threads`) when it runs in one, else in
    // turn. Never on rayon's global pool, which would ignore `--threads`.
    let drawn: Vec<Result<[PathBuf; 2], ChartError>> = if rayon::current_thread_index().is_some() {
        use rayon::prelude::*;
        figures.par_iter().map(draw).collect()
    } else {
        figures.iter().map(draw).collect()
    };
    let mut written = Vec::with_capacity(2 * figures.len());
    for files in drawn {
        written.extend(files?);
    }
    Ok(written)
}

/// Draws `panels` one above the other on `root` (time charts over `time`
/// with the markers `marks`) and presents it.
fn render_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    panels: &[ChartSpec],
    marks: &Marks,
    time: &Range<f64>,
) -> Result<(), String> {
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, chart) in areas.into_iter().zip(panels) {
        let (marks, x_range, x_scale) = match &chart.x {
            XAxis::Time => (marks, time.clone(), Scale::Linear),
            XAxis::Latency { range, scale, guides } => (guides, range.clone(), *scale),
            XAxis::Window { range, marks } => (marks, range.clone(), Scale::Linear),
        };
        draw_chart(area, chart, marks, x_range, x_scale)?;
    }
    root.present().map_err(err)
}

// ---------------------------------------------------------------------------
// Chart data, independent of the backend

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scale {
    Linear,
    Log,
}

/// A line; `None` points break it.
struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, Option<f64>)>,
    /// Radius of a dot drawn at every point (for sparse series, whose
    /// short runs would otherwise look like a dashed line).
    dots: Option<u32>,
}

/// A filled band: `(time, lower, upper)` points.
struct Band {
    label: String,
    color: RGBAColor,
    points: Vec<(f64, f64, f64)>,
}

#[derive(Clone, Copy)]
enum LegendKey {
    Line(RGBColor, u32),
    Fill(RGBAColor),
    Dashed(RGBColor),
    None,
}

/// What the x axis shows.
enum XAxis {
    /// Simulated time over the whole run, with the timeline's fault markers
    /// and outages.
    Time,
    /// Latency in ms over `range`, with `guides` as the markers (no
    /// outages).
    Latency {
        range: Range<f64>,
        scale: Scale,
        guides: Marks,
    },
    /// Simulated time over a window of the run (a failover close up), with
    /// the markers and outages inside it.
    Window { range: Range<f64>, marks: Marks },
}

struct ChartSpec {
    stem: &'static str,
    title: String,
    x: XAxis,
    x_desc: &'static str,
    y_desc: &'static str,
    scale: Scale,
    /// A linear y axis reaches at least this value (e.g. 100 %).
    y_top: Option<f64>,
    bands: Vec<Band>,
    lines: Vec<Line>,
    /// Legend entries beyond the series (e.g. "… 3 more").
    extra_legend: Vec<(LegendKey, String)>,
    /// Shown in the middle of an empty chart.
    note: Option<String>,
    /// Whether the markers are named at the top of the plot (else only
    /// drawn, e.g. on the lower panel of a figure).
    marker_labels: bool,
}

impl ChartSpec {
    /// A time chart of `rep` on a linear y axis, without series yet.
    fn time(rep: &Replication, stem: &'static str, title: &str, y_desc: &'static str) -> Self {
        ChartSpec {
            stem,
            title: format!("{title} (replication {})", rep.index),
            x: XAxis::Time,
            x_desc: "time (s)",
            y_desc,
            scale: Scale::Linear,
            y_top: None,
            bands: vec![],
            lines: vec![],
            extra_legend: vec![],
            note: rep.samples.is_empty().then(|| "no samples".to_string()),
            marker_labels: true,
        }
    }

    /// Finite values drawn on the y axis.
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        let bands = self.bands.iter().flat_map(|b| b.points.iter().flat_map(|p| [p.1, p.2]));
        let lines = self.lines.iter().flat_map(|l| l.points.iter().filter_map(|p| p.1));
        bands.chain(lines).filter(|v| v.is_finite())
    }

    /// Smallest and largest finite y values (infinite when there are none).
    fn y_bounds(&self) -> (f64, f64) {
        self.values()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }
}

const SERIES_COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(0, 0, 128),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(128, 0, 64),
    RGBColor(0, 128, 128),
];
const BLUE: RGBColor = SERIES_COLORS[0];
const PURPLE: RGBColor = SERIES_COLORS[1];
const BROWN: RGBColor = SERIES_COLORS[2];
const GREEN: RGBColor = SERIES_COLORS[8];
const ORANGE: RGBColor = SERIES_COLORS[9];

fn secs(s: &Sample) -> f64 {
    s.time.as_secs_f64()
}

/// The sampling interval in seconds: `given` if usable, else the spacing of
/// the first samples, else 1.
fn interval_s(samples: &[Sample], given: f64) -> f64 {
    if given.is_finite() && given > 0.0 {
        return given;
    }
    let spacing = match samples {
        [a, b, ..] => secs(b) - secs(a),
        [a] => secs(a),
        [] => 0.0,
    };
    if spacing.is_finite() && spacing > 0.0 {
        spacing
    } else {
        1.0
    }
}

/// The time axis: from 0 to the end of the run, the last sample or the last
/// marker, whichever is latest.
fn x_range(rep: &Replication, marks: &Marks) -> Range<f64> {
    let last_sample = rep.samples.iter().map(secs).fold(0.0, f64::max);
    let last_mark = marks.events.iter().map(|m| m.t).fold(0.0, f64::max);
    let end = rep.end.as_secs_f64().max(last_sample).max(last_mark);
    let end = if end.is_finite() && end > 0.0 { end } else { 1.0 };
    0.0..end
}

/// A line over the samples, `y` of each (`None` breaks the line).
fn sample_line(
    rep: &Replication,
    label: impl Into<String>,
    color: RGBColor,
    y: impl Fn(&Sample) -> Option<f64>,
) -> Line {
    Line {
        label: label.into(),
        color,
        width: 2,
        points: rep.samples.iter().map(|s| (secs(s), y(s))).collect(),
        dots: None,
    }
}

fn connections_chart(rep: &Replication, marks: &Marks) -> ChartSpec {
    let spec = ChartSpec::time(rep, "connections", "Connections per server", "connections");
    per_server(rep, marks, spec, |v| v.connections as f64)
}

/// Below this peak (%) the CPU chart zooms in instead of showing 0–100 %.
const CPU_ZOOM_BELOW: f64 = 20.0;

fn cpu_chart(rep: &Replication, marks: &Marks) -> ChartSpec {
    let spec = ChartSpec::time(rep, "cpu", "CPU utilisation per server", "busy cores (%)");
    let mut spec = per_server(rep, marks, spec, |v| 100.0 * v.cpu_util);
    let (_, peak) = spec.y_bounds();
    if peak >= CPU_ZOOM_BELOW {
        spec.y_top = Some(100.0);
    } else if peak.is_finite() {
        // A nearly idle run would be a flat line at 0 on a 0–100 % axis.
        spec.extra_legend
            .push((LegendKey::None, format!("peak {} % (axis zoomed)", fmt_num(&peak))));
    }
    spec
}

/// Fills `spec` with `value` of each server over time: one line per server,
/// or for many servers the spread as a band, the mean, and the servers that
/// appear in the fault markers.
fn per_server(rep: &Replication, marks: &Marks, mut spec: ChartSpec, value: fn(&ServerSample) -> f64) -> ChartSpec {
    let n = rep.samples.iter().map(|s| s.servers.len()).max().unwrap_or(0);
    let server_line =
        |i: usize, color: RGBColor| sample_line(rep, format!("server-{i}"), color, |s| s.servers.get(i).map(value));
    if n <= MAX_SERVER_LINES {
        spec.lines = (0..n).map(|i| server_line(i, SERIES_COLORS[i])).collect();
        return spec;
    }
    let mut band = Vec::with_capacity(rep.samples.len());
    let mut mean = Vec::with_capacity(rep.samples.len());
    for s in &rep.samples {
        let t = secs(s);
        if s.servers.is_empty() {
            mean.push((t, None));
            continue;
        }
        let c = s.servers.iter().map(value);
        let lo = c.clone().fold(f64::INFINITY, f64::min);
        let hi = c.clone().fold(f64::NEG_INFINITY, f64::max);
        band.push((t, lo, hi));
        mean.push((t, Some(c.sum::<f64>() / s.servers.len() as f64)));
    }
    spec.bands.push(Band {
        label: format!("min–max of {n} servers"),
        color: BLUE.mix(0.22),
        points: band,
    });
    spec.lines.push(Line {
        label: "mean per server".into(),
        color: RGBColor(20, 70, 130),
        width: 2,
        points: mean,
        dots: None,
    });
    let faulty = marks.servers(n);
    let shown = faulty.len().min(MAX_SERVER_LINES - 1);
    for (k, &i) in faulty.iter().take(shown).enumerate() {
        spec.lines
            .push(server_line(i, SERIES_COLORS[1 + k % (SERIES_COLORS.len() - 1)]));
    }
    if faulty.len() > shown {
        let more = faulty.len() - shown;
        spec.extra_legend
            .push((LegendKey::None, format!("… {more} more faulty servers")));
    }
    spec
}

type Series = (&'static str, RGBColor, fn(&Sample) -> Option<f64>);

/// A latency time chart of `series` (ms): on a log scale when the values
/// span more than two decades; `none` is the note when there are none.
fn latency_time_chart(mut spec: ChartSpec, rep: &Replication, series: &[Series], none: &str) -> ChartSpec {
    let valid = |v: Option<f64>| v.filter(|x| x.is_finite() && *x > 0.0);
    spec.lines = series
        .iter()
        .map(|&(label, color, f)| sample_line(rep, label, color, |s| valid(f(s))))
        .collect();
    let (lo, hi) = spec.y_bounds();
    if lo > 0.0 && hi / lo > 100.0 {
        spec.scale = Scale::Log;
        spec.y_desc = "latency (ms, log scale)";
    }
    if spec.note.is_none() && !lo.is_finite() {
        spec.note = Some(none.into());
    }
    spec
}

fn latency_chart(rep: &Replication) -> ChartSpec {
    let spec = ChartSpec::time(rep, "connect_latency", "Connect latency per interval", "latency (ms)");
    let series: [Series; 2] = [
        ("p50", BLUE, |s| s.connect_ms_p50),
        ("p99", PURPLE, |s| s.connect_ms_p99),
    ];
    latency_time_chart(spec, rep, &series, "no connections accepted")
}

fn refusals_chart(rep: &Replication, interval_s: f64) -> ChartSpec {
    let mut spec = ChartSpec::time(rep, "refusals", "Refused connections and reconnects", "per second");
    let rate = |f: fn(&Sample) -> u64| move |s: &Sample| Some(f(s) as f64 / interval_s);
    spec.lines = vec![
        // Refusals last, on top: they are usually the rarer series.
        sample_line(rep, "reconnects", BLUE, rate(|s| s.reconnects)),
        sample_line(rep, "refused (503)", BROWN, rate(|s| s.refused)),
    ];
    spec
}

// ---------------------------------------------------------------------------
// Balancer cluster

/// With several balancer nodes: client connections per node; with TLS, the
/// nodes' core utilisation.
fn cluster_charts(rep: &Replication) -> Vec<ChartSpec> {
    let nodes = rep.samples.iter().map(|s| s.nodes.len()).max().unwrap_or(0);
    let mut charts = vec![];
    if nodes > 1 {
        let mut spec = ChartSpec::time(
            rep,
            "balancer_nodes",
            "Client connections per balancer node",
            "connections",
        );
        spec.lines = (0..nodes.min(MAX_SERVER_LINES))
            .map(|k| {
                sample_line(rep, format!("balancer-{k}"), SERIES_COLORS[k], move |s| {
                    s.nodes.get(k).map(|n| n.connections as f64)
                })
            })
            .collect();
        charts.push(spec);
    }
    if rep.samples.iter().flat_map(|s| &s.nodes).any(|n| n.cpu_util > 0.0) {
        let mut spec = ChartSpec::time(
            rep,
            "balancer_cpu",
            "TLS handshake load per balancer node",
            "busy cores (%)",
        );
        spec.y_top = Some(100.0);
        spec.lines = (0..nodes.min(MAX_SERVER_LINES))
            .map(|k| {
                sample_line(rep, format!("balancer-{k}"), SERIES_COLORS[k], move |s| {
                    s.nodes.get(k).map(|n| 100.0 * n.cpu_util)
                })
            })
            .collect();
        charts.push(spec);
    }
    charts
}

// ---------------------------------------------------------------------------
// Fault close-ups

/// At most this many faults get a close-up (the first ones in time).
pub const MAX_FAULT_CHARTS: usize = 8;
/// A close-up starts this long before its fault…
const CLOSEUP_BEFORE_S: f64 = 20.0;
/// …and ends this long after the component is back…
const CLOSEUP_AFTER_S: f64 = 60.0;
/// …or this long after the fault if it never comes back…
const CLOSEUP_NO_RECOVERY_S: f64 = 120.0;
/// …and at most this long after the fault.
const CLOSEUP_MAX_S: f64 = 600.0;

/// A fault of the run and its close-up.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultCloseUp {
    /// `fault_<k>_<kind>`: k counts the faults in time order from 0; kind
    /// is the scenario's fault kind with `_` for `-` (`crash`,
    /// `balancer_crash`, `cache_crash`, `db_crash`, `scale_out`,
    /// `scale_in`, `rolling_restart`).
    pub stem: String,
    /// What happened and when, e.g. "fault 0: server-7 crash (process) at
    /// 20m, restart after 1m".
    pub title: String,
    /// When the fault happened (s).
    pub start: f64,
    /// When its component was back, as its statistics window judged it
    /// (`metrics::windows`): restarted and marked up, VIP moved, replica
    /// promoted, servers added or removed, deploy done.
    pub back: Option<f64>,
    /// The time window drawn (s).
    pub range: Range<f64>,
}

/// The faults of `rep` (described by the scenario's `faults`) in time
/// order, each with the window of its close-up: from 20 s before the fault
/// to 60 s after the component is back and at least 10 s past the end of
/// its statistics window (2 min after the fault if it never is back), at
/// most 10 min after the fault and within the run. Returns at most
/// [`MAX_FAULT_CHARTS`] of them and how many more there were.
pub fn fault_closeups(rep: &Replication, faults: &[Fault]) -> (Vec<FaultCloseUp>, usize) {
    let mut windows: Vec<&FaultWindow> = rep.fault_windows.iter().filter(|w| w.fault < faults.len()).collect();
    windows.sort_by_key(|w| (w.start, w.fault));
    let end = rep.end.as_secs_f64();
    let mut out: Vec<FaultCloseUp> = windows
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let f = &faults[w.fault];
            let t0 = w.start.as_secs_f64();
            let back = w.restored.map(|t| t.as_secs_f64());
            let closed = (w.end != SimTime::MAX).then(|| w.end.as_secs_f64() + 10.0);
            let after = match back {
                Some(b) => (b + CLOSEUP_AFTER_S).max(closed.unwrap_or(0.0)),
                None => t0 + CLOSEUP_NO_RECOVERY_S,
            };
            let stop = after.min(t0 + CLOSEUP_MAX_S).min(end.max(t0 + 1.0));
            FaultCloseUp {
                stem: format!("fault_{k}_{}", f.kind().replace('-', "_")),
                // Short enough for a panel title: without the restart.
                title: format!(
                    "fault {k}: {}",
                    f.describe().split(", restart").next().unwrap_or_default()
                ),
                start: t0,
                back,
                range: (t0 - CLOSEUP_BEFORE_S).max(0.0)..stop,
            }
        })
        .collect();
    let more = out.len().saturating_sub(MAX_FAULT_CHARTS);
    out.truncate(MAX_FAULT_CHARTS);
    (out, more)
}

/// The panels of a fault's close-up, over its window: connect latency
/// p50/p99, with game traffic move latency (opponent p50/p99, spectator
/// p99), and refusals, reconnects and drops per second; with a web tier
/// also web response time p50/p99 and failed web requests per second (and
/// only those when the run had no WebSocket clients).
fn closeup_charts(rep: &Replication, marks: &Marks, fault: &FaultCloseUp, interval_s: f64) -> Vec<ChartSpec> {
    let range = fault.range.clone();
    // Where the fault's statistics window (the per-fault table's) ends.
    let window_end = rep
        .fault_windows
        .iter()
        .find(|w| (w.start.as_secs_f64() - fault.start).abs() < 1e-6)
        .filter(|w| w.end != SimTime::MAX)
        .map(|w| {
            let label = match w.ending {
                crate::metrics::Ending::Recovered => "window ends: back in band",
                crate::metrics::Ending::Capped => "window ends: capped",
                crate::metrics::Ending::NextFault => "window ends: next fault",
                crate::metrics::Ending::Open => "window open",
            };
            (w.end.as_secs_f64(), label)
        });
    let window = |title: String, y_desc| {
        let mut spec = ChartSpec::time(rep, "", "", y_desc);
        spec.title = title;
        let mut marks = marks.window(&range);
        if let Some((t, label)) = window_end
            && range.contains(&t)
        {
            marks.events.push(Mark {
                t,
                color: WINDOW_END_COLOR,
                label: label.to_string(),
                // Not a timeline event: its legend entry follows.
                kind: None,
            });
            marks.kinds.push(("fault window ends".to_string(), WINDOW_END_COLOR));
        }
        spec.x = XAxis::Window {
            range: range.clone(),
            marks,
        };
        spec
    };
    let inside = |l: Line| Line {
        points: l.points.into_iter().filter(|p| range.contains(&p.0)).collect(),
        ..l
    };
    let title = |what: &str| {
        let mut t = fault.title.clone();
        t[..1].make_ascii_uppercase();
        format!("{t}: {what} (replication {})", rep.index)
    };
    // WebSocket series when the run had WebSocket clients, web series when
    // it had a web tier.
    let sockets = rep
        .samples
        .iter()
        .any(|s| s.connect_ms_p99.is_some() || s.refused + s.reconnects + s.dropped > 0);
    let web = rep.samples.iter().any(|s| s.web.is_some());
    let mut series: Vec<Series> = vec![];
    if sockets || !web {
        series.push(("connect p50", BLUE, |s| s.connect_ms_p50));
        series.push(("connect p99", PURPLE, |s| s.connect_ms_p99));
    }
    if web {
        series.push(("web p50", GREEN, |s| s.web.and_then(|w| w.ms_p50)));
        series.push(("web p99", ORANGE, |s| s.web.and_then(|w| w.ms_p99)));
    }
    let what = match (sockets || !web, web) {
        (true, true) => "connect latency and web response time",
        (false, true) => "web response time",
        _ => "connect latency",
    };
    let mut lat = window(title(what), "latency (ms)");
    lat.lines = series
        .iter()
        .map(|&(label, color, f)| {
            inside(sample_line(rep, label, color, |s| {
                f(s).filter(|x| x.is_finite() && *x > 0.0)
            }))
        })
        .collect();
    let (lo, hi) = lat.y_bounds();
    if lo > 0.0 && hi / lo > 100.0 {
        lat.scale = Scale::Log;
        lat.y_desc = "latency (ms, log scale)";
    }
    if lat.note.is_none() && !lo.is_finite() {
        lat.note = Some("nothing answered in this window".into());
    }
    let what = match (sockets || !web, web) {
        (true, true) => "refusals, reconnects, drops and failed web requests",
        (false, true) => "failed web requests",
        _ => "refusals, reconnects and drops",
    };
    let mut failed = window(title(what), "per second");
    let rate = |f: fn(&Sample) -> u64| move |s: &Sample| Some(f(s) as f64 / interval_s);
    if sockets || !web {
        failed.lines = vec![
            sample_line(rep, "reconnects", BLUE, rate(|s| s.reconnects)),
            sample_line(rep, "dropped", ORANGE, rate(|s| s.dropped)),
            sample_line(rep, "refused (503 or timeout)", BROWN, rate(|s| s.refused)),
        ];
    }
    if web {
        let failed_web = |s: &Sample| s.web.map(|w| w.failed as f64 / interval_s);
        failed.lines.push(sample_line(
            rep,
            "web requests failed",
            RGBColor(200, 30, 30),
            failed_web,
        ));
    }
    failed.lines = failed.lines.into_iter().map(inside).collect();
    // The markers are named once, on the upper panel.
    failed.marker_labels = false;
    let mut panels = vec![lat];
    // With game traffic, what the fault did to the moves, in between.
    if rep.samples.iter().any(has_move_samples) {
        let series: [Series; 3] = [
            ("opponent p50", BLUE, |s| s.move_ms_p50),
            ("opponent p99", PURPLE, |s| s.move_ms_p99),
            ("spectator p99", ORANGE, |s| s.spectator_ms_p99),
        ];
        let none = "no moves delivered in this window";
        let mut moves = latency_time_chart(window(title("move latency"), "latency (ms)"), rep, &series, none);
        moves.lines = moves
            .lines
            .into_iter()
            .map(inside)
            .filter(|l| l.points.iter().any(|p| p.1.is_some()))
            .collect();
        // The scale and the note follow what is inside the window.
        let (lo, hi) = moves.y_bounds();
        (moves.scale, moves.y_desc) = if lo > 0.0 && hi / lo > 100.0 {
            (Scale::Log, "latency (ms, log scale)")
        } else {
            (Scale::Linear, "latency (ms)")
        };
        if moves.note.is_none() && !lo.is_finite() {
            moves.note = Some(none.into());
        }
        for line in &mut moves.lines {
            if is_sparse(&line.points) {
                line.dots = Some(4);
            }
        }
        moves.marker_labels = false;
        panels.push(moves);
    }
    panels.push(failed);
    panels
}

// ---------------------------------------------------------------------------
// Web tier

/// With a web tier: HTTP response time over time, and how busy nginx and
/// the app workers are.
fn web_charts(rep: &Replication) -> Vec<ChartSpec> {
    if !rep.samples.iter().any(|s| s.web.is_some()) {
        return vec![];
    }
    let spec = ChartSpec::time(rep, "web_latency", "Web response time per interval", "latency (ms)");
    let series: [Series; 2] = [
        ("p50", BLUE, |s| s.web.and_then(|w| w.ms_p50)),
        ("p99", PURPLE, |s| s.web.and_then(|w| w.ms_p99)),
    ];
    let latency = latency_time_chart(spec, rep, &series, "no web requests answered");
    let mut load = ChartSpec::time(rep, "web_load", "Web tier load", "busy (%)");
    load.y_top = Some(100.0);
    load.lines = vec![
        sample_line(rep, "nginx cores", GREEN, |s| s.web.map(|w| 100.0 * w.nginx_util)),
        sample_line(rep, "app workers", ORANGE, |s| s.web.map(|w| 100.0 * w.app_util)),
    ];
    vec![latency, load]
}

// ---------------------------------------------------------------------------
// Game traffic

/// The CDF points named `name` (empty if not measured).
fn cdf<'a>(rep: &'a Replication, name: &str) -> &'a [(f64, f64)] {
    rep.cdfs.iter().find(|c| c.0 == name).map_or(&[], |c| c.1.as_slice())
}

fn has_move_samples(s: &Sample) -> bool {
    [s.move_ms_p50, s.move_ms_p99, s.spectator_ms_p50, s.spectator_ms_p99]
        .iter()
        .any(Option::is_some)
}

/// The latency distributions of the CDF chart: name, legend label, colour.
const CDF_CURVES: [(&str, &str, RGBColor); 3] = [
    ("move", "opponent (each move)", BLUE),
    ("spectator", "spectator (each delivery)", GREEN),
    ("last_spectator", "last spectator of a move", ORANGE),
];

/// The charts of game traffic, each only when there is data for it; none
/// for a run without game traffic.
fn game_charts(rep: &Replication, marks: &Marks) -> Vec<ChartSpec> {
    let moves = rep.samples.iter().any(has_move_samples);
    let cdfs = CDF_CURVES.iter().any(|c| !cdf(rep, c.0).is_empty());
    let relay = !cdf(rep, "relay").is_empty() || rep.samples.iter().any(|s| s.relay_backlog > 0);
    let game = moves || cdfs || relay || rep.samples.iter().any(|s| s.moves > 0);
    let busy = rep.samples.iter().flat_map(|s| &s.servers).any(|v| v.cpu_util > 0.0);
    let mut charts = vec![];
    if moves {
        charts.push(move_latency_chart(rep));
    }
    if cdfs {
        charts.push(cdf_chart(rep));
    }
    if relay {
        charts.push(relay_chart(rep));
    }
    // Connects keep the cores busy too: without game traffic the CPU chart
    // is left out, so such runs keep exactly the three connection charts.
    if game && busy {
        charts.push(cpu_chart(rep, marks));
    }
    charts
}

fn relay_chart(rep: &Replication) -> ChartSpec {
    let mut spec = ChartSpec::time(rep, "relay_backlog", "Relay backlog", "messages");
    let backlog = |s: &Sample| Some(s.relay_backlog as f64);
    spec.lines = vec![sample_line(rep, "in the relay", BLUE, backlog)];
    // The backlog is taken at the sample instants: a relay that passes each
    // message in milliseconds is usually empty then.
    if spec.note.is_none() && rep.samples.iter().all(|s| s.relay_backlog == 0) {
        let note = match quantile(cdf(rep, "relay"), 0.5) {
            Some(p50) => format!("empty at every sample time (relay p50 {} ms)", fmt_num(&p50)),
            None => "empty at every sample time".into(),
        };
        spec.note = Some(note);
    }
    spec
}

fn move_latency_chart(rep: &Replication) -> ChartSpec {
    let spec = ChartSpec::time(rep, "move_latency", "Move latency per interval", "latency (ms)");
    // Each p50 is drawn over its p99: with one delivery in an interval
    // they are equal, and the larger p99 dot still shows around it.
    let series: [Series; 4] = [
        ("opponent p99", PURPLE, |s| s.move_ms_p99),
        ("opponent p50", BLUE, |s| s.move_ms_p50),
        ("spectator p99", ORANGE, |s| s.spectator_ms_p99),
        ("spectator p50", GREEN, |s| s.spectator_ms_p50),
    ];
    let mut spec = latency_time_chart(spec, rep, &series, "no moves delivered");
    // A run without spectators (or without players' moves) has no lines
    // for them: leave them out of the legend.
    spec.lines.retain(|l| l.points.iter().any(|p| p.1.is_some()));
    for line in &mut spec.lines {
        if is_sparse(&line.points) {
            line.dots = Some(if line.label.ends_with("p99") { 6 } else { 4 });
        }
    }
    spec
}

/// More than a tenth of the intervals between the first and the last
/// point have no value (e.g. one game, a move every few intervals).
fn is_sparse(points: &[(f64, Option<f64>)]) -> bool {
    let (Some(a), Some(b)) = (
        points.iter().position(|p| p.1.is_some()),
        points.iter().rposition(|p| p.1.is_some()),
    ) else {
        return false;
    };
    let gaps = points[a..=b].iter().filter(|p| p.1.is_none()).count();
    gaps * 10 > b - a + 1
}

/// The guide lines of the CDF chart.
const GUIDE_COLOR: RGBColor = RGBColor(90, 90, 90);
const GUIDE_QUANTILES: [(f64, &str); 3] = [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")];

/// The smallest latency whose fraction reaches `q` (the last point if none
/// does, `None` for an empty CDF).
fn quantile(points: &[(f64, f64)], q: f64) -> Option<f64> {
    let hit = points.iter().find(|p| p.1 >= q - 1e-12).or(points.last());
    hit.map(|p| p.0)
}

fn cdf_chart(rep: &Replication) -> ChartSpec {
    let curves: Vec<_> = CDF_CURVES
        .iter()
        .map(|&(name, label, color)| (name, label, color, cdf(rep, name)))
        .filter(|c| c.3.iter().any(|p| p.0.is_finite() && p.0 > 0.0))
        .collect();
    let xs = || {
        curves
            .iter()
            .flat_map(|c| c.3.iter().map(|p| p.0))
            .filter(|x| x.is_finite() && *x > 0.0)
    };
    let lo = xs().fold(f64::INFINITY, f64::min);
    let hi = xs().fold(f64::NEG_INFINITY, f64::max);
    let log = lo.is_finite() && hi / lo > 100.0;
    let range = if log {
        lo / 1.3..hi * 1.3
    } else if hi.is_finite() {
        0.0..hi * 1.05
    } else {
        0.0..1.0
    };

    // Percentile guides of the spectator curve (of the first curve drawn
    // when nobody watched), one line per distinct latency.
    let guided = curves.iter().find(|c| c.0 == "spectator").or(curves.first());
    let mut events: Vec<Mark> = vec![];
    let mut kinds = vec![];
    if let Some(&(name, ..)) = guided {
        let points = cdf(rep, name);
        for (q, tag) in GUIDE_QUANTILES {
            let Some(t) = quantile(points, q) else { continue };
            match events.last_mut() {
                Some(m) if m.t == t => m.label = m.label.replacen(' ', &format!(", {tag} "), 1),
                _ => events.push(Mark {
                    t,
                    color: GUIDE_COLOR,
                    label: format!("{tag} {} ms", fmt_num(&t)),
                    kind: None,
                }),
            }
        }
        let name = if name == "move" { "opponent" } else { name };
        kinds.push((format!("{name} p50 / p99 / p99.9"), GUIDE_COLOR));
    }

    ChartSpec {
        stem: "spectator_cdf",
        title: format!(
            "Move delivery latency after the warm-up, CDF (replication {})",
            rep.index
        ),
        x: XAxis::Latency {
            range,
            scale: if log { Scale::Log } else { Scale::Linear },
            guides: Marks {
                events,
                outages: vec![],
                kinds,
                components: vec![],
                warmup: None,
            },
        },
        x_desc: if log { "latency (ms, log scale)" } else { "latency (ms)" },
        y_desc: "fraction ≤ latency",
        scale: Scale::Linear,
        y_top: None,
        bands: vec![],
        lines: curves
            .iter()
            .map(|&(_, label, color, points)| Line {
                label: label.into(),
                color,
                width: 2,
                // The curve rises from 0 at its first latency.
                points: points
                    .first()
                    .map(|p| (p.0, Some(0.0)))
                    .into_iter()
                    .chain(points.iter().map(|p| (p.0, Some(p.1))))
                    .collect(),
                dots: None,
            })
            .collect(),
        extra_legend: vec![],
        note: None,
        marker_labels: true,
    }
}

// ---------------------------------------------------------------------------
// Storage tier

/// `replica_lag` (with replicas) and `cache_backlog` (with a cache).
fn storage_charts(rep: &Replication) -> Vec<ChartSpec> {
    let ss = &rep.storage_samples;
    let mut charts = vec![];
    let nodes = ss.iter().map(|s| s.db_nodes.len()).max().unwrap_or(0);
    let has_lag = |i: usize| ss.iter().any(|s| s.db_nodes.get(i).is_some_and(|n| n.lag_s.is_some()));
    let lagging: Vec<usize> = (0..nodes).filter(|&i| has_lag(i)).collect();
    if !lagging.is_empty() {
        let mut spec = ChartSpec::time(
            rep,
            "replica_lag",
            "Replica lag (unapplied rows ÷ apply rate)",
            "lag (s)",
        );
        spec.lines = lagging
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                storage_line(ss, db_node_name(i), SERIES_COLORS[k % SERIES_COLORS.len()], |s| {
                    s.db_nodes.get(i).and_then(|n| n.lag_s)
                })
            })
            .collect();
        charts.push(spec);
    }
    if ss.iter().any(|s| s.cache.is_some()) {
        let mut spec = ChartSpec::time(rep, "cache_backlog", "Redis backlog and moves at risk", "moves / ops");
        spec.lines = vec![
            storage_line(ss, "moves at risk", BROWN, |s| Some(s.moves_at_risk as f64)),
            storage_line(ss, "unflushed in Redis", BLUE, |s| s.cache.map(|c| c.unflushed as f64)),
            storage_line(ss, "Redis queue (ops)", GREEN, |s| s.cache.map(|c| c.backlog as f64)),
        ];
        charts.push(spec);
    }
    charts
}

/// A line over the storage samples.
fn storage_line(
    ss: &[StorageSample],
    label: impl Into<String>,
    color: RGBColor,
    y: impl Fn(&StorageSample) -> Option<f64>,
) -> Line {
    Line {
        label: label.into(),
        color,
        width: 2,
        points: ss.iter().map(|s| (s.time.as_secs_f64(), y(s))).collect(),
        dots: None,
    }
}

// ---------------------------------------------------------------------------
// Fault markers (and the guide lines of latency charts)

/// A labelled dashed vertical line at `t` on the x axis (seconds on a time
/// chart, ms on a latency chart).
struct Mark {
    t: f64,
    color: RGBColor,
    label: String,
    /// The timeline event it shows (`None` for a guide line).
    kind: Option<Happening>,
}

/// The marker events of a timeline and the crash-to-restart outages, or
/// the guide lines of a latency chart (no outages).
struct Marks {
    events: Vec<Mark>,
    /// Disjoint (start, end) in time order; `end` is `None` if a crashed
    /// component never restarted.
    outages: Vec<(f64, Option<f64>)>,
    /// Legend entries of the markers.
    kinds: Vec<(String, RGBColor)>,
    components: Vec<String>,
    /// The warm-up, shaded grey: (start, end) on the x axis, if any.
    warmup: Option<(f64, f64)>,
}

fn marker_color(event: Happening) -> RGBColor {
    use Happening as H;
    match event {
        H::Crash | H::Stopped => RGBColor(215, 25, 28),
        H::MarkedDown | H::Drain | H::ScaleIn => RGBColor(245, 130, 20),
        H::Restarted => RGBColor(30, 90, 220),
        H::VipMoved => RGBColor(0, 140, 150),
        H::ServersUpdated | H::ScaleOut => RGBColor(120, 60, 170),
        H::Promoted => RGBColor(190, 40, 150),
        H::Slowdown | H::SlowdownOver => RGBColor(150, 100, 30),
        _ => RGBColor(20, 150, 50),
    }
}

const OUTAGE_COLOR: RGBAColor = RGBAColor(215, 25, 28, 0.10);
/// The end of a fault's statistics window on its close-up.
const WINDOW_END_COLOR: RGBColor = RGBColor(60, 60, 60);
const WARMUP_COLOR: RGBAColor = RGBAColor(120, 120, 120, 0.13);

impl Marks {
    /// The markers and outages of `timeline`, and the warm-up from 0 to
    /// `warmup_s` (none if it is not positive).
    fn new(timeline: &[TimelineEvent], warmup_s: f64) -> Self {
        let mut evs: Vec<&TimelineEvent> = timeline
            .iter()
            .filter(|e| e.is_marker() && e.time.as_secs_f64().is_finite())
            .collect();
        evs.sort_by_key(|e| e.time);
        // Events of one kind at the same instant share a line and a label.
        let mut events: Vec<Mark> = vec![];
        for group in evs.chunk_by(|a, b| a.time == b.time && a.event == b.event) {
            let e = group[0];
            let label = match group.len() {
                1 => format!("{} {}", e.component, e.event),
                n => format!("{} {} (+{} more)", e.component, e.event, n - 1),
            };
            events.push(Mark {
                t: e.time.as_secs_f64(),
                color: marker_color(e.event),
                label,
                kind: Some(e.event),
            });
        }
        // Outages: a server's crash or stop until it restarts (a server
        // stopped and never restarted was scaled in: no outage), a lost VIP
        // until it has moved. (A dead balancer node is not an outage in
        // itself: its VIP's move is.)
        let mut all: Vec<&TimelineEvent> = timeline.iter().filter(|e| e.time.as_secs_f64().is_finite()).collect();
        all.sort_by_key(|e| e.time);
        let mut outages = vec![];
        for (i, e) in all.iter().enumerate() {
            // A database primary's outage (of the writes it served) ends
            // at its restart or when a replica is promoted.
            let db = e.component.starts_with("db-") && e.detail.starts_with("primary crash");
            let until = match e.event {
                Happening::Crash | Happening::Stopped if e.component.starts_with("server-") || db => {
                    Happening::Restarted
                }
                Happening::Crash if e.component == "cache" || e.component.starts_with("db-") => Happening::Restarted,
                Happening::VipLost => Happening::VipMoved,
                // A slowed network is shaded over its window.
                Happening::Slowdown => Happening::SlowdownOver,
                _ => continue,
            };
            let end = all[i + 1..]
                .iter()
                .find(|r| (r.component == e.component && r.event == until) || (db && r.event == Happening::Promoted))
                .map(|r| r.time.as_secs_f64());
            // A server stopped for good was scaled in, not lost.
            if e.event == Happening::Stopped && end.is_none() {
                continue;
            }
            outages.push((e.time.as_secs_f64(), end));
        }
        // Overlapping outages are shaded once (the colour is translucent).
        outages.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut merged: Vec<(f64, Option<f64>)> = vec![];
        for (a, b) in outages {
            match merged.last_mut() {
                Some((_, end)) if end.is_none_or(|e| a <= e) => {
                    *end = match (*end, b) {
                        (Some(e), Some(b)) => Some(e.max(b)),
                        _ => None,
                    };
                }
                _ => merged.push((a, b)),
            }
        }
        let outages = merged;
        let mut kinds = vec![];
        for kind in [
            Happening::Crash,
            Happening::Stopped,
            Happening::MarkedDown,
            Happening::Restarted,
            Happening::MarkedUp,
            Happening::VipMoved,
            Happening::Drain,
            Happening::ScaleOut,
            Happening::ScaleIn,
            Happening::ServersUpdated,
            Happening::Promoted,
            Happening::Slowdown,
            Happening::SlowdownOver,
        ] {
            if evs.iter().any(|e| e.event == kind) {
                kinds.push((kind.as_str().to_string(), marker_color(kind)));
            }
        }
        let mut components: Vec<String> = vec![];
        for e in &evs {
            if !components.contains(&e.component) {
                components.push(e.component.clone());
            }
        }
        Marks {
            events,
            outages,
            kinds,
            components,
            warmup: (warmup_s.is_finite() && warmup_s > 0.0).then_some((0.0, warmup_s)),
        }
    }

    /// The markers and outages inside `range` (outages clipped to it).
    fn window(&self, range: &Range<f64>) -> Marks {
        Marks {
            events: self
                .events
                .iter()
                .filter(|m| range.contains(&m.t))
                .map(|m| Mark {
                    t: m.t,
                    color: m.color,
                    label: m.label.clone(),
                    kind: m.kind,
                })
                .collect(),
            outages: self
                .outages
                .iter()
                .filter(|(a, b)| *a < range.end && b.is_none_or(|b| b > range.start))
                .map(|&(a, b)| (a.max(range.start), Some(b.unwrap_or(range.end).min(range.end))))
                .collect(),
            kinds: self
                .kinds
                .iter()
                .filter(|(k, _)| {
                    self.events
                        .iter()
                        .any(|m| range.contains(&m.t) && m.kind.is_some_and(|h| h.as_str() == k))
                })
                .cloned()
                .collect(),
            components: self.components.clone(),
            warmup: self
                .warmup
                .map(|(a, b)| (a.max(range.start), b.min(range.end)))
                .filter(|(a, b)| a < b),
        }
    }

    /// Indices of the servers (below `n`) named in the markers, in order of
    /// first appearance.
    fn servers(&self, n: usize) -> Vec<usize> {
        self.components
            .iter()
            .filter_map(|c| c.strip_prefix("server-")?.parse::<usize>().ok())
            .filter(|&i| i < n)
            .collect()
    }
}

/// A marker label: its text starts at backend pixel `x`, is `w` wide and
/// sits in label row `row` (0 at the top of the plot).
struct Placed {
    mark: usize,
    x: i32,
    w: i32,
    row: usize,
}

/// Places the labels in rows at the top of the plot, left to right, each in
/// the first row where it does not overlap another label.
fn place_labels(xs: &[(i32, i32)], plot_x: Range<i32>) -> (Vec<Placed>, usize) {
    const GAP: i32 = 6;
    let mut rows: Vec<Vec<Range<i32>>> = vec![];
    let mut placed = vec![];
    let mut omitted = 0;
    for (mark, &(x, w)) in xs.iter().enumerate() {
        // Text starts right of the line, or ends left of it near the edge.
        let left = if x + 4 + w <= plot_x.end - 2 {
            x + 4
        } else {
            (x - 4 - w).max(plot_x.start + 2)
        };
        let span = left - GAP / 2..left + w + GAP / 2;
        let free = |row: &Vec<Range<i32>>| row.iter().all(|r| r.end <= span.start || span.end <= r.start);
        let row = match rows.iter().position(free) {
            Some(r) => r,
            None if rows.len() < MAX_LABEL_ROWS => {
                rows.push(vec![]);
                rows.len() - 1
            }
            None => {
                omitted += 1;
                continue;
            }
        };
        rows[row].push(span);
        placed.push(Placed { mark, x: left, w, row });
    }
    (placed, omitted)
}

// ---------------------------------------------------------------------------
// Drawing, generic over the backend

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Formats an axis value with three significant digits (all the integer
/// digits of large values), without trailing zeros.
fn fmt_num(v: &f64) -> String {
    let v = *v;
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (2 - mag).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

const PLOT_MARGIN: u32 = 12;
const X_LABEL_AREA: u32 = 50;
const Y_LABEL_AREA: u32 = 80;

fn builder<'a, 'b, DB: DrawingBackend>(area: &'a DrawingArea<DB, Shift>) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.margin(PLOT_MARGIN)
        .margin_right(2 * PLOT_MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA);
    b
}

/// Draws one chart on `root` and presents it.
fn render<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    spec: &ChartSpec,
    marks: &Marks,
    x_range: Range<f64>,
    x_scale: Scale,
) -> Result<(), String> {
    draw_chart(root.clone(), spec, marks, x_range, x_scale)?;
    root.present().map_err(err)
}

/// Draws one chart (plot, markers, legend) on `root`, which may be a part
/// of a figure.
fn draw_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    spec: &ChartSpec,
    marks: &Marks,
    x_range: Range<f64>,
    x_scale: Scale,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (main, legend) = root.split_horizontally(WIDTH - LEGEND_W);
    let body = main.margin(10, 0, 0, 0).titled(&spec.title, font(22.0)).map_err(err)?;
    let (omitted, plot_top) = match x_scale {
        Scale::Log if x_range.start > 0.0 && x_range.end > x_range.start => {
            render_plot(&root, &body, spec, marks, x_range.log_scale())?
        }
        _ => render_plot(&root, &body, spec, marks, x_range)?,
    };
    draw_legend(&legend, spec, marks, omitted, plot_top - root.get_base_pixel().1)
}

/// Draws the plot of `spec` on `body` with the x axis `x`; returns the
/// number of marker labels left out and the top of the plot in pixels.
fn render_plot<DB, X>(
    root: &DrawingArea<DB, Shift>,
    body: &DrawingArea<DB, Shift>,
    spec: &ChartSpec,
    marks: &Marks,
    x: X,
) -> Result<(usize, i32), String>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64> + Clone,
    X::CoordDescType: ValueFormatter<f64>,
{
    // Lay out the marker labels on a probe chart: the x mapping does not
    // depend on the y range.
    let (plot_x, plot_y, xs) = {
        let probe = builder(body).build_cartesian_2d(x.clone(), 0.0..1.0).map_err(err)?;
        let (px, py) = probe.plotting_area().get_pixel_range();
        let mut xs = Vec::with_capacity(marks.events.len());
        for m in marks.events.iter().filter(|_| spec.marker_labels) {
            let (w, _) = root.estimate_text_size(&m.label, &font(13.0)).map_err(err)?;
            xs.push((probe.backend_coord(&(m.t, 0.0)).0, w as i32));
        }
        (px, py, xs)
    };
    let (placed, omitted) = place_labels(&xs, plot_x);
    let rows = placed.iter().map(|p| p.row + 1).max().unwrap_or(0) as i32;
    let headroom = if rows == 0 {
        0.0
    } else {
        f64::from(rows * LABEL_ROW_H + 8) / f64::from((plot_y.end - plot_y.start).max(1))
    };
    let headroom = headroom.min(0.5);

    let (lo, hi) = spec.y_bounds();
    let plot = Plot {
        spec,
        marks,
        placed: &placed,
        root,
    };
    match spec.scale {
        Scale::Log if lo > 0.0 && hi.is_finite() => {
            let (l0, l1) = ((lo / 1.5).ln(), (hi * 1.3).ln());
            let l1 = l0 + (l1 - l0) / (1.0 - headroom);
            let y = (l0.exp()..l1.exp()).log_scale();
            let mut chart = builder(body).build_cartesian_2d(x, y).map_err(err)?;
            plot.draw(&mut chart)?;
        }
        _ => {
            let lo = if lo.is_finite() { lo.min(0.0) } else { 0.0 };
            let hi = if hi.is_finite() && hi > lo {
                lo + (hi - lo) * 1.05
            } else {
                lo + 1.0
            };
            let hi = spec.y_top.map_or(hi, |top| hi.max(top));
            let hi = lo + (hi - lo) / (1.0 - headroom);
            let mut chart = builder(body).build_cartesian_2d(x, lo..hi).map_err(err)?;
            plot.draw(&mut chart)?;
        }
    }
    Ok((omitted, plot_y.start))
}

struct Plot<'a, DB: DrawingBackend> {
    spec: &'a ChartSpec,
    marks: &'a Marks,
    placed: &'a [Placed],
    root: &'a DrawingArea<DB, Shift>,
}

impl<DB: DrawingBackend> Plot<'_, DB> {
    fn draw<X, Y>(&self, chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>) -> Result<(), String>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let (spec, marks) = (self.spec, self.marks);
        let xr = chart.x_range();
        let yr = chart.y_range();
        chart
            .configure_mesh()
            .x_desc(spec.x_desc)
            .y_desc(spec.y_desc)
            .x_labels(12)
            .y_labels(10)
            .x_label_formatter(&fmt_num)
            .y_label_formatter(&fmt_num)
            .label_style(font(14.0))
            .axis_desc_style(font(15.0))
            .bold_line_style(RGBColor(215, 215, 215))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;

        // The warm-up and the outages under everything else.
        if let Some((a, b)) = marks.warmup {
            let (a, b) = (a.max(xr.start), b.min(xr.end));
            if a < b {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(a, yr.start), (b, yr.end)],
                        WARMUP_COLOR.filled(),
                    )))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(marks.outages.iter().map(|&(a, b)| {
                let b = b.unwrap_or(xr.end).min(xr.end);
                Rectangle::new([(a, yr.start), (b, yr.end)], OUTAGE_COLOR.filled())
            }))
            .map_err(err)?;

        for band in &spec.bands {
            let mut pts: Vec<(f64, f64)> = band.points.iter().map(|p| (p.0, p.2)).collect();
            pts.extend(band.points.iter().rev().map(|p| (p.0, p.1)));
            if pts.len() >= 3 {
                chart
                    .draw_series(std::iter::once(Polygon::new(pts, band.color.filled())))
                    .map_err(err)?;
            }
        }

        for line in &spec.lines {
            let style = line.color.stroke_width(line.width);
            for run in line.points.split(|p| p.1.is_none()) {
                let pts: Vec<(f64, f64)> = run.iter().filter_map(|p| Some((p.0, p.1?))).collect();
                if let Some(r) = line.dots {
                    let dots = pts.iter().map(|&p| Circle::new(p, r, line.color.filled()));
                    chart.draw_series(dots).map_err(err)?;
                }
                if pts.len() == 1 && line.dots.is_none() {
                    let c = Circle::new(pts[0], 2 + line.width, line.color.filled());
                    chart.draw_series(std::iter::once(c)).map_err(err)?;
                } else if pts.len() > 1 {
                    chart.draw_series(LineSeries::new(pts, style)).map_err(err)?;
                }
            }
        }

        for m in &marks.events {
            let style = m.color.stroke_width(2);
            let pts = [(m.t, yr.start), (m.t, yr.end)];
            chart
                .draw_series(DashedLineSeries::new(pts, 7, 4, style))
                .map_err(err)?;
        }

        // Labels in pixels, on a light background that hides the other
        // marker lines but not the outage shading. The layout is in backend
        // pixels; `root` may be a panel of a figure, offset by its base.
        let (bx, by) = self.root.get_base_pixel();
        let (_, plot_y) = chart.plotting_area().get_pixel_range();
        let outages: Vec<(i32, i32)> = marks
            .outages
            .iter()
            .map(|&(a, b)| {
                let b = b.unwrap_or(xr.end).min(xr.end);
                (
                    chart.backend_coord(&(a, yr.start)).0 - bx,
                    chart.backend_coord(&(b, yr.start)).0 - bx,
                )
            })
            .collect();
        for p in self.placed {
            let m = &marks.events[p.mark];
            let (x, y) = (p.x - bx, plot_y.start - by + 4 + p.row as i32 * LABEL_ROW_H);
            let (x0, x1, y0, y1) = (x - 2, x + p.w + 2, y - 1, y + LABEL_ROW_H - 3);
            let bg = Rectangle::new([(x0, y0), (x1, y1)], WHITE.filled());
            self.root.draw(&bg).map_err(err)?;
            for &(a, b) in &outages {
                let (a, b) = (a.max(x0), b.min(x1));
                if a < b {
                    self.root
                        .draw(&Rectangle::new([(a, y0), (b, y1)], OUTAGE_COLOR.filled()))
                        .map_err(err)?;
                }
            }
            self.root
                .draw(&Text::new(m.label.clone(), (x, y), font(13.0).color(&m.color)))
                .map_err(err)?;
        }

        if let Some(note) = &spec.note {
            let (px, py) = chart.plotting_area().get_pixel_range();
            let centre = ((px.start + px.end) / 2 - bx, (py.start + py.end) / 2 - by);
            let style = font(18.0)
                .color(&RGBColor(120, 120, 120))
                .pos(Pos::new(HPos::Center, VPos::Center));
            let (w, h) = self.root.estimate_text_size(note, &style).map_err(err)?;
            let (w, h) = (w as i32 / 2 + 8, h as i32 / 2 + 6);
            let bg = Rectangle::new(
                [(centre.0 - w, centre.1 - h), (centre.0 + w, centre.1 + h)],
                WHITE.filled(),
            );
            self.root.draw(&bg).map_err(err)?;
            self.root.draw(&Text::new(note.clone(), centre, style)).map_err(err)?;
        }
        Ok(())
    }
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &ChartSpec,
    marks: &Marks,
    omitted: usize,
    top: i32,
) -> Result<(), String> {
    let mut entries: Vec<(LegendKey, String)> = vec![];
    for b in &spec.bands {
        entries.push((LegendKey::Fill(b.color), b.label.clone()));
    }
    for l in &spec.lines {
        entries.push((LegendKey::Line(l.color, l.width), l.label.clone()));
    }
    entries.extend(spec.extra_legend.iter().cloned());
    if !marks.kinds.is_empty() {
        entries.push((LegendKey::None, String::new()));
        for (kind, color) in &marks.kinds {
            entries.push((LegendKey::Dashed(*color), kind.clone()));
        }
    }
    if !marks.outages.is_empty() {
        entries.push((
            LegendKey::Fill(RGBAColor(215, 25, 28, 0.18)),
            if marks.kinds.iter().any(|(k, _)| k == Happening::Slowdown.as_str()) {
                "outage or slowdown".into()
            } else {
                "outage (down until back)".into()
            },
        ));
    }
    if marks.warmup.is_some() {
        entries.push((
            LegendKey::Fill(RGBAColor(120, 120, 120, 0.25)),
            "warm-up (not counted)".into(),
        ));
    }
    if omitted > 0 {
        let s = if omitted == 1 { "" } else { "s" };
        entries.push((LegendKey::None, format!("({omitted} marker label{s} not shown)")));
    }

    const ENTRY_H: i32 = 21;
    let (_, h) = area.dim_in_pixel();
    let max_entries = ((h as i32 - top - 10) / ENTRY_H).max(1) as usize;
    let text = font(13.0).pos(Pos::new(HPos::Left, VPos::Center));
    // The legend area starts at the top of the canvas, so its y coordinates
    // are backend pixels; x is relative to its left edge.
    let shown = entries.len().min(max_entries);
    for (i, (key, label)) in entries.iter().take(shown).enumerate() {
        let y = top + 8 + i as i32 * ENTRY_H;
        let (ax, ay) = (4, y);
        match key {
            LegendKey::Line(c, w) => area
                .draw(&PathElement::new(vec![(ax, ay), (ax + 30, ay)], c.stroke_width(*w + 1)))
                .map_err(err)?,
            LegendKey::Fill(c) => area
                .draw(&Rectangle::new([(ax, ay - 6), (ax + 30, ay + 6)], c.filled()))
                .map_err(err)?,
            LegendKey::Dashed(c) => {
                let s = c.stroke_width(2);
                area.draw(&PathElement::new(vec![(ax + 15, ay - 8), (ax + 15, ay - 2)], s))
                    .map_err(err)?;
                area.draw(&PathElement::new(vec![(ax + 15, ay + 2), (ax + 15, ay + 8)], s))
                    .map_err(err)?;
            }
            LegendKey::None => {}
        }
        area.draw(&Text::new(label.clone(), (ax + 40, ay), text.clone()))
            .map_err(err)?;
    }
    if shown < entries.len() {
        let y = top + 8 + shown as i32 * ENTRY_H;
        area.draw(&Text::new("…".to_string(), (44, y), text.clone()))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StopReason;
    use crate::metrics::ServerSample;
    use crate::time::{NS_PER_S, SimTime};

    fn sample(t: u64, conns: &[u32], p50: Option<f64>, p99: Option<f64>) -> Sample {
        let servers: Vec<ServerSample> = conns
            .iter()
            .map(|&c| ServerSample {
                connections: c,
                queued: 0,
                cpu_util: 0.25,
                jobs_waiting: 0,
                process_up: true,
                lb_up: true,
            })
            .collect();
        Sample {
            time: SimTime(t * NS_PER_S),
            connections: conns.iter().map(|&c| c as u64).sum(),
            queued: 0,
            arrivals: 3,
            accepted: 2,
            refused: t % 3,
            reconnects: t % 5,
            dropped: 0,
            connect_ms_p50: p50,
            connect_ms_p99: p99,
            move_ms_p50: None,
            move_ms_p99: None,
            spectator_ms_p50: None,
            spectator_ms_p99: None,
            moves: 0,
            relay_backlog: 0,
            servers,
            nodes: vec![],
            web: None,
        }
    }

    fn event(t: u64, server: u32, event: &str) -> TimelineEvent {
        TimelineEvent {
            time: SimTime(t * NS_PER_S),
            component: format!("server-{server}"),
            event: Happening::parse(event).expect("a timeline kind"),
            detail: String::new(),
        }
    }

    /// A crash of `server` at `at` s that restarts 10 s later.
    fn crash_fault(server: u32, at: f64) -> Fault {
        Fault::Crash {
            server,
            at: crate::time::SimDuration((at * NS_PER_S as f64) as u64),
            mode: crate::scenario::CrashMode::Process,
            restart_after: Some(crate::time::SimDuration::from_secs(10)),
        }
    }

    /// Scenario fault `fault`'s statistics window: from `start` s, its
    /// component back at `back` s, closed at `end` s (open without).
    fn window(fault: usize, start: f64, back: Option<f64>, end: Option<f64>) -> FaultWindow {
        let t = |s: f64| SimTime((s * NS_PER_S as f64) as u64);
        FaultWindow {
            fault,
            start: t(start),
            end: end.map_or(SimTime::MAX, t),
            restored: back.map(t),
            recovered: end.map(t),
            ending: if end.is_some() {
                crate::metrics::Ending::Recovered
            } else {
                crate::metrics::Ending::Open
            },
        }
    }

    /// Crash faults for `rep`'s windows, as a scenario would list them.
    fn faults_of(rep: &Replication) -> Vec<Fault> {
        let n = rep.fault_windows.iter().map(|w| w.fault + 1).max().unwrap_or(0);
        (0..n)
            .map(|k| {
                let w = rep.fault_windows.iter().find(|w| w.fault == k);
                crash_fault(1, w.map_or(0.0, |w| w.start.as_secs_f64()))
            })
            .collect()
    }

    fn replication(samples: Vec<Sample>) -> Replication {
        Replication {
            index: 0,
            metrics: vec![],
            samples,
            storage_samples: vec![],
            timeline: vec![
                event(10, 1, "crash"),
                event(12, 1, "marked-down"),
                event(14, 1, "moves-at-risk"), // not a marker
                event(20, 1, "restarted"),
                event(23, 1, "marked-up"),
            ],
            cdfs: Vec::new(),
            faults: Vec::new(),
            fault_windows: vec![window(0, 10.0, Some(23.0), Some(26.0))],
            final_conns: vec![],
            events: 0,
            end: SimTime(30 * NS_PER_S),
            stop: StopReason::EndTime,
        }
    }

    fn synthetic() -> Replication {
        let samples = (1..=30)
            .map(|t| {
                let down = (10..20).contains(&t);
                let p50 = if t == 5 { None } else { Some(1.0 + t as f64 / 10.0) };
                let p99 = match t {
                    7 => Some(f64::NAN),
                    8 => None,
                    _ => Some(if down { 900.0 } else { 4.0 }),
                };
                sample(t, &[10 * t as u32, if down { 0 } else { 9 * t as u32 }, 100], p50, p99)
            })
            .collect();
        replication(samples)
    }

    const STEMS: [&str; 3] = ["connections", "connect_latency", "refusals"];
    const GAME_STEMS: [&str; 4] = ["move_latency", "spectator_cdf", "relay_backlog", "cpu"];

    /// `written` is exactly the PNG and SVG of each of `stems`, in order,
    /// and they are a PNG and an SVG.
    fn check_stems(dir: &Path, written: &[PathBuf], stems: &[&str]) {
        let want: Vec<PathBuf> = stems
            .iter()
            .flat_map(|stem| ["png", "svg"].map(|ext| dir.join(format!("{stem}.{ext}"))))
            .collect();
        assert_eq!(written, want);
        for stem in stems {
            let png = dir.join(format!("{stem}.png"));
            let bytes = std::fs::read(&png).unwrap();
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{} is not a PNG",
                png.display()
            );
            let svg = dir.join(format!("{stem}.svg"));
            let text = std::fs::read_to_string(&svg).unwrap();
            assert!(text.contains("<svg"), "{} is not an SVG", svg.display());
        }
    }

    /// The connection charts and the close-up of `synthetic()`'s crash.
    fn check_files(dir: &Path, written: &[PathBuf]) {
        check_stems(dir, written, &[&STEMS[..], &["fault_0_crash"]].concat());
    }

    /// Writes the charts of `rep` twice, into two folders and once more in
    /// place, and checks the bytes are the same each time.
    fn write_deterministic(rep: &Replication, faults: &[Fault]) -> (tempfile::TempDir, Vec<PathBuf>) {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let written = write_charts(a.path(), rep, faults, 1.0, 2.0).unwrap();
        assert_eq!(
            write_charts(b.path(), rep, faults, 1.0, 2.0).unwrap().len(),
            written.len()
        );
        let same = |what: &str| {
            for f in &written {
                let name = f.file_name().unwrap();
                let first = std::fs::read(f).unwrap();
                assert!(
                    first == std::fs::read(b.path().join(name)).unwrap(),
                    "{name:?} differs {what}"
                );
            }
        };
        same("between folders");
        write_charts(a.path(), rep, faults, 1.0, 2.0).unwrap();
        same("after overwriting");
        (a, written)
    }

    /// A CDF rising evenly from `lo` to `hi` ms over `n` points.
    fn cdf_points(lo: f64, hi: f64, n: usize) -> Vec<(f64, f64)> {
        (1..=n)
            .map(|i| (lo + (hi - lo) * i as f64 / n as f64, i as f64 / n as f64))
            .collect()
    }

    /// `synthetic()` with game traffic: move and spectator latencies,
    /// moves, a relay backlog and the latency distributions.
    fn game() -> Replication {
        let mut rep = synthetic();
        for s in &mut rep.samples {
            let t = secs(s) as u64;
            s.move_ms_p50 = s.connect_ms_p50.map(|v| v * 20.0);
            s.move_ms_p99 = s.connect_ms_p99.map(|v| v * 30.0);
            s.spectator_ms_p50 = (!t.is_multiple_of(4)).then_some(60.0 + t as f64);
            s.spectator_ms_p99 = (!t.is_multiple_of(4)).then_some(90.0 + 2.0 * t as f64);
            s.moves = 100 + t;
            s.relay_backlog = t % 7;
            for (i, v) in s.servers.iter_mut().enumerate() {
                v.cpu_util = 0.02 * (i + 1) as f64;
            }
        }
        rep.cdfs = vec![
            ("connect", cdf_points(1.0, 50.0, 40)),
            ("move", cdf_points(10.0, 400.0, 300)),
            ("spectator", cdf_points(40.0, 9000.0, 2000)),
            ("last_spectator", cdf_points(60.0, 12000.0, 500)),
            ("relay", cdf_points(2.0, 30.0, 100)),
        ];
        rep
    }

    #[test]
    fn writes_six_deterministic_files() {
        // Busy cores but no game traffic: exactly the connection charts.
        let rep = synthetic();
        assert!(rep.samples.iter().all(|s| s.servers.iter().all(|v| v.cpu_util > 0.0)));
        let (a, written) = write_deterministic(&rep, &faults_of(&rep));
        check_files(a.path(), &written);
        let svg = std::fs::read_to_string(a.path().join("connections.svg")).unwrap();
        assert!(svg.contains("server-1 crash") && svg.contains("server-1 marked-up"));
        assert!(!svg.contains("moves-at-risk"));
    }

    #[test]
    fn game_traffic_adds_four_deterministic_charts() {
        let rep = game();
        let (a, written) = write_deterministic(&rep, &faults_of(&rep));
        let stems: Vec<&str> = STEMS
            .iter()
            .chain(&GAME_STEMS)
            .chain(&["fault_0_crash"])
            .copied()
            .collect();
        check_stems(a.path(), &written, &stems);
        let read = |name: &str| std::fs::read_to_string(a.path().join(name)).unwrap();
        let svg = read("move_latency.svg");
        for want in ["opponent p50", "spectator p99", "server-1 crash", "log scale"] {
            assert!(svg.contains(want), "{want} missing from move_latency.svg");
        }
        let svg = read("spectator_cdf.svg");
        for want in [
            "spectator (each delivery)",
            "last spectator",
            "opponent",
            "p50 ",
            "p99 ",
            "p99.9 ",
        ] {
            assert!(svg.contains(want), "{want} missing from spectator_cdf.svg");
        }
        // No fault markers on a latency axis.
        assert!(!svg.contains("server-1 crash"));
        assert!(read("relay_backlog.svg").contains("server-1 restarted"));
        let svg = read("cpu.svg");
        assert!(svg.contains("server-2") && svg.contains("axis zoomed"));
        // The close-up of a game run shows the moves too.
        let svg = read("fault_0_crash.svg");
        for want in [
            "connect latency",
            "move latency",
            "opponent p99",
            "refusals, reconnects",
        ] {
            assert!(svg.contains(want), "{want} missing from the close-up");
        }
    }

    #[test]
    fn game_charts_need_their_data() {
        let stems = |rep: &Replication| -> Vec<&'static str> {
            game_charts(rep, &Marks::new(&rep.timeline, 0.0))
                .iter()
                .map(|c| c.stem)
                .collect()
        };
        assert!(stems(&synthetic()).is_empty());
        assert_eq!(stems(&game()), GAME_STEMS);

        // Only a relay: its backlog, and the cores it kept busy.
        let mut rep = synthetic();
        rep.cdfs = vec![("move", vec![]), ("relay", cdf_points(2.0, 30.0, 10))];
        assert_eq!(stems(&rep), ["relay_backlog", "cpu"]);
        for s in &mut rep.samples {
            s.servers.iter_mut().for_each(|v| v.cpu_util = 0.0);
        }
        assert_eq!(stems(&rep), ["relay_backlog"]);

        // Players without spectators: no spectator lines, guides on the
        // opponent curve.
        let mut rep = game();
        rep.cdfs.retain(|c| c.0 == "move");
        for s in &mut rep.samples {
            (s.spectator_ms_p50, s.spectator_ms_p99, s.relay_backlog) = (None, None, 0);
        }
        assert_eq!(stems(&rep), ["move_latency", "spectator_cdf", "cpu"]);
        let labels: Vec<String> = move_latency_chart(&rep).lines.into_iter().map(|l| l.label).collect();
        assert_eq!(labels, ["opponent p99", "opponent p50"]);
        let spec = cdf_chart(&rep);
        let XAxis::Latency { scale, guides, .. } = &spec.x else {
            panic!("a CDF has a latency axis")
        };
        assert_eq!(*scale, Scale::Linear);
        assert_eq!(guides.kinds[0].0, "opponent p50 / p99 / p99.9");
        assert_eq!(guides.events.len(), 3);
    }

    #[test]
    fn sparse_move_latency_gets_dots() {
        let spec = move_latency_chart(&game());
        let dots: Vec<(&str, Option<u32>)> = spec.lines.iter().map(|l| (l.label.as_str(), l.dots)).collect();
        // Opponent latencies miss 3 of 30 intervals, spectators one in four.
        assert_eq!(
            dots,
            [
                ("opponent p99", None),
                ("opponent p50", None),
                ("spectator p99", Some(6)),
                ("spectator p50", Some(4)),
            ]
        );
        assert!(!is_sparse(&[]) && !is_sparse(&[(1.0, None)]));
        assert!(!is_sparse(&[(1.0, None), (2.0, Some(1.0)), (3.0, None)]));
        assert!(is_sparse(&[(1.0, Some(1.0)), (2.0, None), (3.0, Some(1.0))]));
    }

    #[test]
    fn idle_relay_says_so() {
        let mut rep = game();
        rep.samples.iter_mut().for_each(|s| s.relay_backlog = 0);
        assert_eq!(
            relay_chart(&rep).note.as_deref(),
            Some("empty at every sample time (relay p50 16 ms)")
        );
        assert_eq!(relay_chart(&game()).note, None);
    }

    #[test]
    fn cdf_axis_and_guides() {
        let spec = cdf_chart(&game());
        let XAxis::Latency { range, scale, guides } = &spec.x else {
            panic!("a CDF has a latency axis")
        };
        // 10 ms .. 12 s spans three decades.
        assert_eq!(*scale, Scale::Log);
        assert!(range.start < 10.0 && range.end > 12000.0);
        assert_eq!(spec.lines.len(), 3);
        // Each curve starts at 0 at its first latency.
        assert!(spec.lines.iter().all(|l| l.points[0].1 == Some(0.0)));
        let labels: Vec<&str> = guides.events.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, ["p50 4520 ms", "p99 8910 ms", "p99.9 8991 ms"]);
        assert!(guides.outages.is_empty());

        // Percentiles on the same latency share one guide.
        let mut rep = game();
        rep.cdfs = vec![("spectator", vec![(5.0, 0.2), (7.0, 0.6), (9.0, 1.0)])];
        let spec = cdf_chart(&rep);
        let XAxis::Latency { scale, guides, .. } = &spec.x else {
            panic!("a CDF has a latency axis")
        };
        assert_eq!(*scale, Scale::Linear);
        let labels: Vec<&str> = guides.events.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, ["p50 7 ms", "p99, p99.9 9 ms"]);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn cpu_axis_zooms_on_idle_servers() {
        let rep = game();
        let marks = Marks::new(&rep.timeline, 0.0);
        let spec = cpu_chart(&rep, &marks);
        assert_eq!(spec.y_top, None);
        assert_eq!(spec.extra_legend[0].1, "peak 6 % (axis zoomed)");
        let mut busy = game();
        busy.samples[3].servers[0].cpu_util = 0.8;
        let spec = cpu_chart(&busy, &marks);
        assert_eq!(spec.y_top, Some(100.0));
        assert!(spec.extra_legend.is_empty());
    }

    #[test]
    fn empty_samples() {
        let mut rep = replication(vec![]);
        let dir = tempfile::tempdir().unwrap();
        let written = write_charts(dir.path(), &rep, &faults_of(&rep), 0.0, 0.0).unwrap();
        check_files(dir.path(), &written);
        rep.timeline.clear();
        rep.fault_windows.clear();
        rep.end = SimTime::ZERO;
        let written = write_charts(dir.path(), &rep, &faults_of(&rep), f64::NAN, f64::NAN).unwrap();
        check_stems(dir.path(), &written, &STEMS);
        let svg = std::fs::read_to_string(dir.path().join("connect_latency.svg")).unwrap();
        assert!(svg.contains("no samples"));
    }

    #[test]
    fn many_servers_and_no_latency() {
        let samples = (1..=20)
            .map(|t| {
                let conns: Vec<u32> = (0..100).map(|i| (i * 7 + t as u32 * 3) % 50).collect();
                sample(t, &conns, None, None)
            })
            .collect();
        let mut rep = replication(samples);
        for s in 0..20 {
            rep.timeline.push(event(5, s, "crash"));
            rep.fault_windows.push(window(s as usize + 1, 5.0, None, None));
        }
        let dir = tempfile::tempdir().unwrap();
        let written = write_charts(dir.path(), &rep, &faults_of(&rep), 1.0, 5.0).unwrap();
        // 21 crashes: the first eight get a close-up.
        let closeups: Vec<String> = (0..MAX_FAULT_CHARTS).map(|k| format!("fault_{k}_crash")).collect();
        let closeups: Vec<&str> = closeups.iter().map(String::as_str).collect();
        check_stems(dir.path(), &written, &[&STEMS[..], &closeups].concat());
        assert_eq!(fault_closeups(&rep, &faults_of(&rep)).1, 21 - MAX_FAULT_CHARTS);
        let svg = std::fs::read_to_string(dir.path().join("connections.svg")).unwrap();
        assert!(svg.contains("min–max of 100 servers"));
        let svg = std::fs::read_to_string(dir.path().join("connect_latency.svg")).unwrap();
        assert!(svg.contains("no connections accepted"));

        // Moves but no latencies measured: only the CPU chart, as a band.
        for s in &mut rep.samples {
            s.moves = 7;
            for (i, v) in s.servers.iter_mut().enumerate() {
                v.cpu_util = (i % 10) as f64 / 10.0;
            }
        }
        let written = write_charts(dir.path(), &rep, &faults_of(&rep), 1.0, 5.0).unwrap();
        check_stems(
            dir.path(),
            &written,
            &[&["connections", "connect_latency", "refusals", "cpu"][..], &closeups].concat(),
        );
        let svg = std::fs::read_to_string(dir.path().join("cpu.svg")).unwrap();
        assert!(svg.contains("min–max of 100 servers") && svg.contains("server-10"));
        assert!(svg.contains("9 more faulty servers"));
        assert!(!svg.contains("axis zoomed"));
    }

    #[test]
    fn log_scale_only_for_wide_ranges() {
        let rep = synthetic();
        assert_eq!(latency_chart(&rep).scale, Scale::Log);
        let mut narrow = synthetic();
        for s in &mut narrow.samples {
            s.connect_ms_p99 = s.connect_ms_p99.map(|v| v.min(5.0));
        }
        assert_eq!(latency_chart(&narrow).scale, Scale::Linear);
    }

    #[test]
    fn labels_do_not_overlap() {
        let xs = [(100, 80), (110, 80), (120, 80), (300, 80), (1000, 80)];
        let (placed, omitted) = place_labels(&xs, 50..1050);
        assert_eq!(omitted, 0);
        assert_eq!(placed.iter().map(|p| p.row).collect::<Vec<_>>(), [0, 1, 2, 0, 0]);
        // Near the right edge the text ends at the line.
        assert_eq!(placed[4].x, 1000 - 4 - 80);
        let crowded: Vec<(i32, i32)> = (0..20).map(|i| (100 + i, 80)).collect();
        let (placed, omitted) = place_labels(&crowded, 50..1050);
        assert_eq!(placed.len(), MAX_LABEL_ROWS);
        assert_eq!(omitted, 20 - MAX_LABEL_ROWS);
    }

    /// No two placed labels share pixels in a row, every label is inside
    /// the plot, and each marker is placed or counted as left out.
    fn assert_no_overlap(xs: &[(i32, i32)], plot: Range<i32>) {
        let (placed, omitted) = place_labels(xs, plot.clone());
        assert_eq!(placed.len() + omitted, xs.len());
        for (i, a) in placed.iter().enumerate() {
            assert!(
                a.x >= plot.start && a.x + a.w <= plot.end,
                "label {} outside the plot",
                a.mark
            );
            assert!(a.row < MAX_LABEL_ROWS);
            for b in &placed[i + 1..] {
                let apart = a.x + a.w < b.x || b.x + b.w < a.x;
                assert!(a.row != b.row || apart, "labels {} and {} overlap", a.mark, b.mark);
            }
        }
    }

    #[test]
    fn close_markers_are_stacked_or_counted() {
        // 150k-players: crash, marked-down, restarted and marked-up within
        // 60 s of a one-hour axis (about 15 px), labels about 150 px wide.
        assert_no_overlap(&[(400, 120), (402, 150), (414, 140), (416, 150)], 90..960);
        let (placed, _) = place_labels(&[(400, 120), (402, 150), (414, 140), (416, 150)], 90..960);
        assert_eq!(placed.iter().map(|p| p.row).collect::<Vec<_>>(), [0, 1, 2, 3]);
        // Same, at the right edge: the labels end at their lines.
        assert_no_overlap(&[(950, 120), (952, 150), (955, 140), (958, 150)], 90..960);
        // Many layouts: pseudo-random positions and widths.
        let mut x: u64 = 7;
        for n in [2, 5, 9, 30] {
            let xs: Vec<(i32, i32)> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (90 + (x >> 33) as i32 % 870, 60 + (x >> 50) as i32 % 120)
                })
                .collect();
            let mut sorted = xs.clone();
            sorted.sort();
            assert_no_overlap(&sorted, 90..960);
        }
    }

    #[test]
    fn a_close_up_per_fault() {
        let at = |t: f64, component: &str, event: &str, detail: &str| TimelineEvent {
            time: SimTime((t * NS_PER_S as f64) as u64),
            component: component.into(),
            event: Happening::parse(event).expect("a timeline kind"),
            detail: detail.into(),
        };
        let mut rep = replication(vec![]);
        rep.end = SimTime(2000 * NS_PER_S);
        rep.timeline = vec![
            at(100.0, "server-3", "crash", "process crash"),
            at(105.0, "server-3", "marked-down", ""),
            at(130.0, "server-3", "restarted", ""),
            at(134.0, "server-3", "marked-up", ""),
            at(200.0, "balancer-0", "crash", "host crash"),
            at(200.0, "vip-0", "vip-lost", "balancer-0 held it"),
            at(203.6, "vip-0", "vip-moved", ""),
            at(320.0, "balancer-0", "restarted", ""),
            at(400.0, "db-primary", "crash", "primary crash: 1 commits"),
            at(415.0, "db-replica-0", "promoted", ""),
            at(500.0, "cache", "crash", "Redis crash"),
            at(600.0, "fleet", "scale-out", ""),
            at(630.0, "updater", "servers-updated", ""),
            at(700.0, "server-0", "drain", "deploy: draining for 30s"),
            at(730.0, "server-0", "stopped", ""),
            at(760.0, "server-1", "drain", "deploy: draining for 30s"),
            at(900.0, "fleet", "deploy-done", ""),
            at(1990.0, "server-5", "crash", "process crash"),
        ];
        // The scenario's faults, not in time order, and their windows as
        // the run judged them.
        let secs = crate::time::SimDuration::from_secs;
        let scenario_faults = vec![
            Fault::Crash {
                server: 5,
                at: secs(1990),
                mode: crate::scenario::CrashMode::Process,
                restart_after: None,
            },
            crash_fault(3, 100.0),
            Fault::BalancerCrash {
                node: 0,
                at: secs(200),
                mode: crate::scenario::CrashMode::Host,
                restart_after: Some(secs(120)),
            },
            Fault::DbCrash {
                target: crate::scenario::DbTarget::Primary,
                at: secs(400),
                restart_after: None,
            },
            Fault::CacheCrash {
                at: secs(500),
                restart_after: None,
            },
            Fault::ScaleOut {
                count: 2,
                at: secs(600),
                boot: secs(5),
            },
            Fault::RollingRestart {
                at: secs(700),
                drain: secs(30),
                restart_time: secs(10),
                pause: secs(10),
            },
        ];
        rep.fault_windows = vec![
            window(0, 1990.0, None, None),
            window(1, 100.0, Some(134.0), Some(140.0)),
            window(2, 200.0, Some(204.0), Some(210.0)),
            window(3, 400.0, Some(415.0), Some(420.0)),
            window(4, 500.0, None, None),
            window(5, 600.0, Some(630.0), Some(700.0)),
            window(6, 700.0, Some(900.0), Some(905.0)),
        ];
        let (faults, more) = fault_closeups(&rep, &scenario_faults);
        assert_eq!(more, 0);
        let got: Vec<(&str, Option<f64>, f64, f64)> = faults
            .iter()
            .map(|f| (f.stem.as_str(), f.back, f.range.start, f.range.end))
            .collect();
        assert_eq!(
            got,
            [
                // In time order; back when its window says so; 60 s more.
                ("fault_0_crash", Some(134.0), 80.0, 194.0),
                ("fault_1_balancer_crash", Some(204.0), 180.0, 264.0),
                ("fault_2_db_crash", Some(415.0), 380.0, 475.0),
                // Never back: two minutes.
                ("fault_3_cache_crash", None, 480.0, 620.0),
                // At least 10 s past the end of its statistics window.
                ("fault_4_scale_out", Some(630.0), 580.0, 710.0),
                ("fault_5_rolling_restart", Some(900.0), 680.0, 960.0),
                // Cut at the end of the run.
                ("fault_6_crash", None, 1970.0, 2000.0),
            ]
        );
        assert_eq!(faults[1].title, "fault 1: balancer-0 crash (host) at 200s");
        // A server stopped for good (scaled in) is no outage.
        let outages = Marks::new(&rep.timeline, 0.0).outages;
        assert!(outages.contains(&(100.0, Some(130.0))), "{outages:?}");
        assert!(outages.iter().all(|o| o.0 != 730.0), "{outages:?}");

        // Two faults: two close-ups, each with both panels, markers and
        // the outage of its own window only.
        rep.timeline.truncate(8);
        rep.samples = (1..=400).map(|t| sample(t, &[5, 5], Some(2.0), Some(9.0))).collect();
        rep.fault_windows = vec![
            window(0, 100.0, Some(134.0), Some(140.0)),
            window(1, 200.0, Some(204.0), Some(210.0)),
        ];
        let two = [scenario_faults[1].clone(), scenario_faults[2].clone()];
        let dir = tempfile::tempdir().unwrap();
        let written = write_charts(dir.path(), &rep, &two, 1.0, 30.0).unwrap();
        check_stems(
            dir.path(),
            &written,
            &[&STEMS[..], &["fault_0_crash", "fault_1_balancer_crash"]].concat(),
        );
        let svg = std::fs::read_to_string(dir.path().join("fault_1_balancer_crash.svg")).unwrap();
        for want in [
            "Fault 1: balancer-0 crash (host) at 200s: connect latency",
            "refusals, reconnects and drops",
            "vip-0 vip-moved",
            "outage (down until back)",
        ] {
            assert!(svg.contains(want), "{want} missing from the close-up");
        }
        assert!(!svg.contains("server-3 crash") && !svg.contains("warm-up"));
        let svg = std::fs::read_to_string(dir.path().join("connections.svg")).unwrap();
        assert!(svg.contains("warm-up (not counted)"));

        // A web-only run: the close-up shows the web tier instead.
        let labels = |rep: &Replication| -> Vec<Vec<String>> {
            let fault = &fault_closeups(rep, &two).0[0];
            closeup_charts(rep, &Marks::new(&rep.timeline, 0.0), fault, 1.0)
                .into_iter()
                .map(|c| c.lines.into_iter().map(|l| l.label).collect())
                .collect()
        };
        assert_eq!(
            labels(&rep),
            [
                vec!["connect p50", "connect p99"],
                vec!["reconnects", "dropped", "refused (503 or timeout)"]
            ]
        );
        for s in &mut rep.samples {
            (s.connect_ms_p50, s.connect_ms_p99, s.refused, s.reconnects) = (None, None, 0, 0);
            s.web = Some(crate::metrics::WebSample {
                requests: 10,
                failed: 2,
                ms_p50: Some(40.0),
                ms_p99: Some(200.0),
                nginx_util: 0.1,
                app_util: 0.5,
                app_waiting: 0,
            });
        }
        assert_eq!(labels(&rep), [vec!["web p50", "web p99"], vec!["web requests failed"]]);
    }

    #[test]
    fn number_format() {
        assert_eq!(fmt_num(&0.0), "0");
        assert_eq!(fmt_num(&250.0), "250");
        assert_eq!(fmt_num(&1.5), "1.5");
        assert_eq!(fmt_num(&0.125), "0.125");
        assert_eq!(fmt_num(&12.0), "12");
        assert_eq!(fmt_num(&-0.0001), "-0.0001");
    }

    #[test]
    fn storage_adds_replica_lag_and_cache_backlog() {
        use crate::metrics::{CacheSample, DbNodeSample};
        let mut rep = synthetic();
        let node = |role: &'static str, lag: Option<f64>| DbNodeSample {
            role,
            lag_s: lag,
            apply_backlog: 3,
            util: 0.5,
            read_util: 0.1,
        };
        rep.storage_samples = (1..=30)
            .map(|t| StorageSample {
                time: SimTime(t * NS_PER_S),
                cache: Some(CacheSample {
                    up: !(12..15).contains(&t),
                    backlog: t % 3,
                    unflushed: 10 * t,
                    util: 0.05,
                }),
                moves_at_risk: 12 * t,
                db_nodes: vec![node("primary", None), node("replica", Some(0.5 * t as f64))],
                db_commits: 10,
                db_rows: 100,
            })
            .collect();
        rep.timeline.push(TimelineEvent {
            time: SimTime(22 * NS_PER_S),
            component: "db-primary".into(),
            event: Happening::Crash,
            detail: "primary crash: 2 commits not yet on any running replica".into(),
        });
        rep.timeline.push(TimelineEvent {
            time: SimTime(25 * NS_PER_S),
            component: "db-replica-0".into(),
            event: Happening::Promoted,
            detail: String::new(),
        });
        rep.fault_windows.push(window(1, 22.0, Some(25.0), Some(28.0)));
        let faults = [
            crash_fault(1, 10.0),
            Fault::DbCrash {
                target: crate::scenario::DbTarget::Primary,
                at: crate::time::SimDuration::from_secs(22),
                restart_after: None,
            },
        ];
        let (a, written) = write_deterministic(&rep, &faults);
        check_stems(
            a.path(),
            &written,
            &[
                &STEMS[..],
                &["replica_lag", "cache_backlog", "fault_0_crash", "fault_1_db_crash"],
            ]
            .concat(),
        );
        let svg = std::fs::read_to_string(a.path().join("replica_lag.svg")).unwrap();
        assert!(svg.contains("db-replica-0 promoted") && svg.contains("db-primary crash"));
        assert!(
            svg.contains("db-replica-0") && !svg.contains(">db-primary<"),
            "only replicas have a lag line"
        );
        // The primary's outage ends at the promotion, not at the end.
        let marks = Marks::new(&rep.timeline, 0.0);
        assert!(marks.outages.contains(&(22.0, Some(25.0))), "{:?}", marks.outages);
    }
}
