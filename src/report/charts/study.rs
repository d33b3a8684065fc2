//! Charts of studies (`compare`, `sweep`, `plan`), as PNG and SVG.
//!
//! - [`write_bars`]: a figure of panels, one per metric, each with a bar per
//!   strategy and its 95 % CI whisker (compare).
//! - [`write_lines`]: a figure of panels, one per metric, each with a line
//!   per series over a numeric or categorical x axis, CI whiskers at every
//!   point and an optional threshold line (sweep, the plan's capacity
//!   curve).
//! - [`write_time`]: one time chart with a line per series and the fault
//!   markers and outage shading of the usual time charts (compare's latency
//!   over time).
//!
//! Each figure is drawn twice, into a PNG and an SVG, with the embedded font.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    ChartError, ChartSpec, Line, Marks, SERIES_COLORS, Scale, XAxis, err, fmt_num, font, register_font, render,
};
use crate::metrics::{Happening, TimelineEvent};

/// Pixels of one panel row, the figure title and the legend row.
const PANEL_H: u32 = 330;
const TITLE_H: u32 = 46;
const LEGEND_ROW_H: u32 = 24;
const FIG_W: u32 = 1200;

/// One bar: a mean with its 95 % CI half-width (NaN: none).
#[derive(Clone, Debug)]
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub ci95: f64,
}

/// One metric of a bar figure.
#[derive(Clone, Debug)]
pub struct BarPanel {
    pub title: String,
    pub bars: Vec<Bar>,
}

/// A line: (x, mean, 95 % CI half-width) points.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// One metric of a line figure.
#[derive(Clone, Debug)]
pub struct LinePanel {
    pub title: String,
    pub series: Vec<Series>,
    /// A horizontal threshold (an SLO) and its label.
    pub threshold: Option<(f64, String)>,
}

/// The x axis of a line figure.
#[derive(Clone, Debug)]
pub enum XKind {
    Numeric(String),
    /// Positions 0, 1, … named by these labels.
    Categories(String, Vec<String>),
}

/// A labelled time series: (seconds, value) points, `None` breaks it.
pub type TimeSeries = (String, Vec<(f64, Option<f64>)>);

type DrawPng<'a> = &'a dyn Fn(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>;
type DrawSvg<'a> = &'a dyn Fn(DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>;

fn color(i: usize) -> RGBColor {
    SERIES_COLORS[i % SERIES_COLORS.len()]
}

fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 3);
    (n.div_ceil(cols).max(1), cols)
}

/// Draws `draw` into `dir/stem.png` and `dir/stem.svg`.
fn both(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    draw: DrawPng,
    draw_svg: DrawSvg,
) -> Result<Vec<PathBuf>, ChartError> {
    register_font()?;
    std::fs::create_dir_all(dir).map_err(|error| ChartError::Dir {
        dir: dir.to_path_buf(),
        error,
    })?;
    let png = dir.join(format!("{stem}.png"));
    draw(BitMapBackend::new(&png, size).into_drawing_area()).map_err(|message| ChartError::Draw {
        file: png.clone(),
        message,
    })?;
    let svg = dir.join(format!("{stem}.svg"));
    draw_svg(SVGBackend::new(&svg, size).into_drawing_area()).map_err(|message| ChartError::Draw {
        file: svg.clone(),
        message,
    })?;
    Ok(vec![png, svg])
}

fn figure_size(panels: usize, legend_rows: u32) -> (u32, u32) {
    let (rows, _) = grid(panels);
    (FIG_W, TITLE_H + rows as u32 * PANEL_H + legend_rows * LEGEND_ROW_H + 10)
}

/// Bars per strategy, one panel per metric.
pub fn write_bars(dir: &Path, stem: &str, title: &str, panels: &[BarPanel]) -> Result<Vec<PathBuf>, ChartError> {
    let labels: Vec<String> = panels
        .first()
        .map(|p| p.bars.iter().map(|b| b.label.clone()).collect())
        .unwrap_or_default();
    let legend = legend_rows(&labels);
    let size = figure_size(panels.len(), legend);
    both(
        dir,
        stem,
        size,
        &|root| draw_bars(root, title, panels, &labels),
        &|root| draw_bars(root, title, panels, &labels),
    )
}

/// Lines over the x axis, one panel per metric.
pub fn write_lines(
    dir: &Path,
    stem: &str,
    title: &str,
    x: &XKind,
    panels: &[LinePanel],
) -> Result<Vec<PathBuf>, ChartError> {
    let labels: Vec<String> = panels
        .first()
        .map(|p| p.series.iter().map(|s| s.label.clone()).collect())
        .unwrap_or_default();
    let labels = if labels.len() == 1 && labels[0].is_empty() {
        vec![]
    } else {
        labels
    };
    let legend = legend_rows(&labels);
    let size = figure_size(panels.len(), legend);
    both(
        dir,
        stem,
        size,
        &|root| draw_lines(root, title, x, panels, &labels),
        &|root| draw_lines(root, title, x, panels, &labels),
    )
}

/// One time chart: a line per series (seconds, value; `None` breaks a
/// line), with the crash/restart markers and outages of `timeline` and the
/// warm-up (0 to `warmup_s`) shaded.
#[allow(clippy::too_many_arguments)]
pub fn write_time(
    dir: &Path,
    stem: &'static str,
    title: String,
    y_desc: &'static str,
    series: Vec<TimeSeries>,
    timeline: &[TimelineEvent],
    end_s: f64,
    warmup_s: f64,
) -> Result<Vec<PathBuf>, ChartError> {
    // Health-check marks differ from one strategy to the next: keep the
    // faults themselves.
    let faults: Vec<TimelineEvent> = timeline
        .iter()
        .filter(|e| matches!(e.event, Happening::Crash | Happening::Restarted))
        .cloned()
        .collect();
    let marks = Marks::new(&faults, warmup_s);
    let mut spec = ChartSpec {
        stem,
        title,
        x: XAxis::Time,
        x_desc: "time (s)",
        y_desc,
        scale: Scale::Linear,
        y_top: None,
        bands: vec![],
        lines: series
            .into_iter()
            .enumerate()
            .map(|(i, (label, points))| Line {
                label,
                color: color(i),
                width: 2,
                points: points
                    .into_iter()
                    .map(|(t, v)| (t, v.filter(|x| x.is_finite() && *x > 0.0)))
                    .collect(),
                dots: None,
            })
            .collect(),
        extra_legend: vec![],
        note: None,
        marker_labels: true,
    };
    let (lo, hi) = spec.y_bounds();
    if lo > 0.0 && hi / lo > 100.0 {
        spec.scale = Scale::Log;
        spec.y_desc = "latency (ms, log scale)";
    }
    if !lo.is_finite() {
        spec.note = Some("nothing measured".into());
    }
    let last = spec
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(end_s, f64::max);
    let range = 0.0..if last > 0.0 { last } else { 1.0 };
    let size = (super::WIDTH, super::HEIGHT);
    both(
        dir,
        stem,
        size,
        &|root| render(root, &spec, &marks, range.clone(), Scale::Linear),
        &|root| render(root, &spec, &marks, range.clone(), Scale::Linear),
    )
}

/// Legend rows needed for `labels` (about five per row).
fn legend_rows(labels: &[String]) -> u32 {
    if labels.is_empty() {
        0
    } else {
        labels.len().div_ceil(5) as u32
    }
}

fn draw_title<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(
        title.to_string(),
        (FIG_W as i32 / 2, 14),
        font(21.0).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(err)
}

fn draw_legend<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, labels: &[String], top: i32) -> Result<(), String> {
    let per_row = 5;
    let col_w = (FIG_W as i32 - 40) / per_row;
    for (i, l) in labels.iter().enumerate() {
        let x = 20 + (i as i32 % per_row) * col_w;
        let y = top + (i as i32 / per_row) * LEGEND_ROW_H as i32 + 10;
        root.draw(&Rectangle::new([(x, y - 6), (x + 26, y + 6)], color(i).filled()))
            .map_err(err)?;
        root.draw(&Text::new(
            l.clone(),
            (x + 34, y),
            font(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Whether a panel's metric is one that cannot be negative: every finite
/// mean is ≥ 0 (latencies, ratios, counts, utilisations).
fn nonnegative(means: impl Iterator<Item = f64>) -> bool {
    means.filter(|m| m.is_finite()).all(|m| m >= 0.0)
}

/// The ends of a CI whisker, `mean ± ci95`, the lower one clipped at 0 for a
/// non-negative metric (a latency's interval does not reach below 0 ms);
/// `None` without a usable mean and half-width.
fn ci_span(mean: f64, ci95: f64, nonneg: bool) -> Option<(f64, f64)> {
    if !(mean.is_finite() && ci95.is_finite() && ci95 > 0.0) {
        return None;
    }
    let lo = mean - ci95;
    Some((if nonneg { lo.max(0.0) } else { lo }, mean + ci95))
}

/// The y range of values with whiskers (and a threshold), from 0 when all
/// are non-negative.
fn y_range(vals: impl Iterator<Item = (f64, f64)> + Clone, threshold: Option<f64>) -> (f64, f64) {
    let nonneg = nonnegative(vals.clone().map(|v| v.0));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (m, c) in vals {
        if !m.is_finite() {
            continue;
        }
        let (a, b) = ci_span(m, c, nonneg).unwrap_or((m, m));
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if let Some(t) = threshold.filter(|t| t.is_finite()) {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = if lo >= 0.0 { 0.0 } else { lo * 1.1 };
    let hi = if hi > lo { hi + (hi - lo) * 0.12 } else { lo + 1.0 };
    (lo, hi)
}

fn panel_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: (f64, f64),
    x_desc: &str,
    categorical: bool,
    integer_x: bool,
) -> Result<ChartContext<'a, DB, Coords>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(16.0))
        .margin(8)
        .margin_right(16)
        .x_label_area_size(if categorical { 44 } else { 40 })
        .y_label_area_size(62)
        .build_cartesian_2d(x, y.0..y.1)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.y_labels(6)
        .y_label_formatter(&fmt_num)
        .label_style(font(12.0))
        .axis_desc_style(font(13.0))
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(242, 242, 242));
    // Whole-number keys (server counts) get whole-number ticks only.
    let whole = |v: &f64| {
        if v.fract().abs() > 1e-9 {
            String::new()
        } else {
            fmt_num(v)
        }
    };
    if categorical {
        mesh.disable_x_mesh().x_labels(0);
    } else if integer_x {
        mesh.x_labels(10).x_label_formatter(&whole).x_desc(x_desc);
    } else {
        mesh.x_labels(8).x_label_formatter(&fmt_num).x_desc(x_desc);
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}

/// Category names under the x axis (and the axis description below them).
type Coords = Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

fn category_labels<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, Coords>,
    names: &[String],
    desc: &str,
) -> Result<(), String> {
    let (_, py) = chart.plotting_area().get_pixel_range();
    let (ax, ay) = area.get_base_pixel();
    let size = if names.len() > 6 { 10.0 } else { 12.0 };
    let mut right = 0;
    for (i, n) in names.iter().enumerate() {
        let (x, _) = chart.backend_coord(&(i as f64, 0.0));
        area.draw(&Text::new(
            n.clone(),
            (x - ax, py.end - ay + 6),
            font(size).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
        right = right.max(x - ax);
    }
    if !desc.is_empty() {
        let (px, _) = chart.plotting_area().get_pixel_range();
        area.draw(&Text::new(
            desc.to_string(),
            ((px.start + px.end) / 2 - ax, py.end - ay + 24),
            font(12.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Draws the CI whisker `span` (see [`ci_span`]) at `x` with caps
/// `cap` wide on either side.
fn whisker<DB: DrawingBackend, C>(
    chart: &mut ChartContext<'_, DB, C>,
    x: f64,
    span: Option<(f64, f64)>,
    cap: f64,
    col: RGBColor,
) -> Result<(), String>
where
    C: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    let Some((lo, hi)) = span else {
        return Ok(());
    };
    let style = col.stroke_width(2);
    let segs = [
        vec![(x, lo), (x, hi)],
        vec![(x - cap, lo), (x + cap, lo)],
        vec![(x - cap, hi), (x + cap, hi)],
    ];
    chart
        .draw_series(segs.into_iter().map(|s| PathElement::new(s, style)))
        .map_err(err)?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[BarPanel],
    labels: &[String],
) -> Result<(), String> {
    draw_title(&root, title)?;
    let (rows, cols) = grid(panels.len());
    let (_, body) = root.split_vertically(TITLE_H);
    let (grid_area, legend) = body.split_vertically(rows as u32 * PANEL_H);
    let areas = grid_area.split_evenly((rows, cols));
    for (area, p) in areas.iter().zip(panels) {
        let n = p.bars.len();
        let y = y_range(p.bars.iter().map(|b| (b.mean, b.ci95)), None);
        let nonneg = nonnegative(p.bars.iter().map(|b| b.mean));
        let mut chart = panel_chart(area, &p.title, -0.6..(n as f64 - 0.4), y, "", true, false)?;
        for (i, b) in p.bars.iter().enumerate() {
            if !b.mean.is_finite() {
                continue;
            }
            let x = i as f64;
            let base = 0f64.clamp(y.0, y.1);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.36, base), (x + 0.36, b.mean)],
                    color(i).mix(0.85).filled(),
                )))
                .map_err(err)?;
            whisker(
                &mut chart,
                x,
                ci_span(b.mean, b.ci95, nonneg),
                0.12,
                RGBColor(40, 40, 40),
            )?;
            let top = b.mean + if b.ci95.is_finite() { b.ci95 } else { 0.0 };
            chart
                .draw_series(std::iter::once(Text::new(
                    fmt_num(&b.mean),
                    (x, top),
                    font(11.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .map_err(err)?;
        }
        let names: Vec<String> = p.bars.iter().map(|b| b.label.clone()).collect();
        category_labels(area, &chart, &names, "")?;
    }
    draw_legend(&legend, labels, 0)?;
    root.present().map_err(err)
}

fn draw_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x: &XKind,
    panels: &[LinePanel],
    labels: &[String],
) -> Result<(), String> {
    draw_title(&root, title)?;
    let (rows, cols) = grid(panels.len());
    let (_, body) = root.split_vertically(TITLE_H);
    let (grid_area, legend) = body.split_vertically(rows as u32 * PANEL_H);
    let areas = grid_area.split_evenly((rows, cols));
    for (area, p) in areas.iter().zip(panels) {
        let xs = || p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
        let (xr, categorical, desc) = match x {
            XKind::Categories(desc, names) => (-0.5..(names.len() as f64 - 0.5), true, desc.as_str()),
            XKind::Numeric(desc) => {
                let lo = xs().fold(f64::INFINITY, f64::min);
                let hi = xs().fold(f64::NEG_INFINITY, f64::max);
                let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
                let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
                (lo - pad..hi + pad, false, desc.as_str())
            }
        };
        let y = y_range(
            p.series.iter().flat_map(|s| s.points.iter().map(|q| (q.1, q.2))),
            p.threshold.as_ref().map(|t| t.0),
        );
        let nonneg = nonnegative(p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1)));
        let integer_x = xs().all(|v| v.fract() == 0.0);
        let mut chart = panel_chart(area, &p.title, xr.clone(), y, desc, categorical, integer_x)?;
        if let Some((t, label)) = &p.threshold {
            let red = RGBColor(200, 30, 30);
            chart
                .draw_series(DashedLineSeries::new(
                    [(xr.start, *t), (xr.end, *t)],
                    8,
                    5,
                    red.stroke_width(2),
                ))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (xr.start, *t),
                    font(12.0).color(&red).pos(Pos::new(HPos::Left, VPos::Bottom)),
                )))
                .map_err(err)?;
        }
        let cap = (xr.end - xr.start) * 0.012;
        for (i, s) in p.series.iter().enumerate() {
            let col = color(i);
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|q| q.1.is_finite())
                .map(|q| (q.0, q.1))
                .collect();
            if pts.len() > 1 {
                chart
                    .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                    .map_err(err)?;
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, col.filled())))
                .map_err(err)?;
            for q in &s.points {
                whisker(&mut chart, q.0, ci_span(q.1, q.2, nonneg), cap, col)?;
            }
        }
        if let XKind::Categories(desc, names) = x {
            category_labels(area, &chart, names, desc)?;
        }
    }
    draw_legend(&legend, labels, 0)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiskers_of_nonnegative_metrics_stop_at_zero() {
        // A p99 of 3 ms ± 5 ms: the interval is [0, 8], not [-2, 8].
        assert_eq!(ci_span(3.0, 5.0, true), Some((0.0, 8.0)));
        assert_eq!(ci_span(3.0, 5.0, false), Some((-2.0, 8.0)));
        assert_eq!(ci_span(3.0, 1.0, true), Some((2.0, 4.0)));
        for (m, c) in [(f64::NAN, 1.0), (1.0, f64::NAN), (1.0, 0.0), (1.0, f64::INFINITY)] {
            assert_eq!(ci_span(m, c, true), None);
        }
        assert!(nonnegative([0.0, 2.0, f64::NAN].into_iter()));
        assert!(!nonnegative([1.0, -0.5].into_iter()));
        // Every lower end of a non-negative panel is ≥ 0, and so is its axis.
        let vals = [(0.001, 0.004), (0.0, 0.0), (0.02, 0.05), (5.0, 20.0)];
        for (m, c) in vals {
            assert!(ci_span(m, c, true).is_none_or(|(lo, _)| lo >= 0.0));
        }
        assert_eq!(y_range(vals.into_iter(), None).0, 0.0);
        // A metric with negative means keeps its whole interval.
        assert!(y_range([(-1.0, 0.5), (1.0, 0.5)].into_iter(), None).0 < -1.5);
    }

    #[test]
    fn figures_are_written_and_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let bars = vec![
            BarPanel {
                title: "move p99 (ms)".into(),
                bars: vec![
                    Bar {
                        label: "leastconn".into(),
                        mean: 40.0,
                        ci95: 2.0
                    },
                    Bar {
                        label: "random(2)".into(),
                        mean: 45.0,
                        ci95: f64::NAN
                    },
                    Bar {
                        label: "first".into(),
                        mean: 1.0,
                        ci95: 9.0
                    },
                ],
            };
            4
        ];
        let files = write_bars(dir.path(), "bars", "Strategies <compared>", &bars).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(dir.path().join("bars.svg")).unwrap();
        assert!(svg.contains("random(2)") && svg.contains("&lt;compared&gt;"), "{svg}");
        let lines = vec![LinePanel {
            title: "refused ratio".into(),
            series: vec![Series {
                label: "leastconn".into(),
                points: vec![(10.0, 0.01, 0.001), (11.0, 0.001, 0.0005), (12.0, 0.0, 0.0)],
            }],
            threshold: Some((0.002, "SLO < 0.002".into())),
        }];
        write_lines(
            dir.path(),
            "lines",
            "Sweep",
            &XKind::Numeric("servers.count".into()),
            &lines,
        )
        .unwrap();
        let a = std::fs::read(dir.path().join("lines.svg")).unwrap();
        write_lines(
            dir.path(),
            "lines",
            "Sweep",
            &XKind::Numeric("servers.count".into()),
            &lines,
        )
        .unwrap();
        assert_eq!(a, std::fs::read(dir.path().join("lines.svg")).unwrap());
        let cats = XKind::Categories("strategy".into(), vec!["a".into(), "b".into(), "c".into()]);
        write_lines(dir.path(), "cats", "Sweep", &cats, &lines).unwrap();
        assert!(
            std::fs::read_to_string(dir.path().join("lines.svg"))
                .unwrap()
                .contains("SLO &lt; 0.002")
        );
        let t = write_time(
            dir.path(),
            "time",
            "Latency".into(),
            "latency (ms)",
            vec![("a".into(), vec![(1.0, Some(3.0)), (2.0, None), (3.0, Some(4.0))])],
            &[],
            3.0,
            1.0,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
    }
}
