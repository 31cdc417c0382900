//! Charts drawn on the server as SVG: a line chart with interval bands (rates over days) and
//! a stacked bar chart (counts over days). The geometry is computed here; `chart.svg` and
//! `bars.svg` only print it, escaping every label.
//!
//! Every data point is an element with `data-series`, `data-x` and `data-value` attributes
//! and a `<title>` tooltip, so what a chart draws can be read back (and tested) exactly.

use askama::Template;

/// The series colours, in order (colour-blind-safe, after Okabe and Ito).
const PALETTE: &[&str] = &[
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f", "#000000",
];

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// The colour of series `index`.
pub(crate) fn color(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// How values read on the axis and in tooltips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scale {
    /// 0..1 as percentages.
    Rate,
    /// Counts.
    Count,
}

impl Scale {
    fn format(self, value: f64) -> String {
        match self {
            Self::Rate => format!("{:.1}%", value * 100.0),
            Self::Count => format!("{}", value.round() as i64),
        }
    }
}

/// One point of a line series: a value at category `x`, with an optional interval.
#[derive(Clone, Debug)]
pub(crate) struct LinePoint {
    pub(crate) x: usize,
    pub(crate) value: f64,
    pub(crate) low: f64,
    pub(crate) high: f64,
    /// What the tooltip adds after the value (e.g. `3 of 120 responses`).
    pub(crate) detail: String,
}

/// One line.
#[derive(Clone, Debug)]
pub(crate) struct LineSeries {
    pub(crate) name: String,
    pub(crate) points: Vec<LinePoint>,
}

/// A line chart over categories (days).
#[derive(Clone, Debug)]
pub(crate) struct LineChart {
    pub(crate) title: String,
    pub(crate) x_labels: Vec<String>,
    pub(crate) series: Vec<LineSeries>,
    pub(crate) scale: Scale,
}

struct Tick {
    y: f64,
    label: String,
}

struct XLabel {
    x: f64,
    label: String,
}

struct DrawnPoint {
    cx: f64,
    cy: f64,
    x_label: String,
    value: f64,
    tooltip: String,
}

struct DrawnSeries {
    name: String,
    color: &'static str,
    line: String,
    band: String,
    points: Vec<DrawnPoint>,
}

#[derive(Template)]
#[template(path = "chart.svg", escape = "html")]
struct LineSvg<'a> {
    title: &'a str,
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    bottom: f64,
    ticks: Vec<Tick>,
    x_labels: Vec<XLabel>,
    series: Vec<DrawnSeries>,
}

/// A y-axis maximum at or above `max` that reads well (1, 2 or 5 times a power of ten).
fn nice_max(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= max)
        .unwrap_or(10.0 * magnitude)
}

struct Frame {
    columns: usize,
    y_max: f64,
}

impl Frame {
    fn x(&self, index: usize) -> f64 {
        let inner = WIDTH - LEFT - RIGHT;
        if self.columns <= 1 {
            LEFT + inner / 2.0
        } else {
            LEFT + inner * index as f64 / (self.columns - 1) as f64
        }
    }

    fn y(&self, value: f64) -> f64 {
        let inner = HEIGHT - TOP - BOTTOM;
        TOP + inner * (1.0 - (value / self.y_max).clamp(0.0, 1.0))
    }

    fn ticks(&self, scale: Scale) -> Vec<Tick> {
        (0..=4)
            .map(|step| {
                let value = self.y_max * f64::from(step) / 4.0;
                Tick {
                    y: self.y(value),
                    label: scale.format(value),
                }
            })
            .collect()
    }

    /// At most about ten labels along the x axis.
    fn x_labels(&self, labels: &[String], x: impl Fn(usize) -> f64) -> Vec<XLabel> {
        let every = labels.len().div_ceil(10).max(1);
        labels
            .iter()
            .enumerate()
            .filter(|(index, _)| index % every == 0 || *index + 1 == labels.len())
            .map(|(index, label)| XLabel {
                x: x(index),
                label: label.clone(),
            })
            .collect()
    }
}

fn coordinates(points: impl Iterator<Item = (f64, f64)>) -> String {
    points
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl LineChart {
    /// The chart as SVG markup.
    pub(crate) fn svg(&self) -> Result<String, askama::Error> {
        let max = self
            .series
            .iter()
            .flat_map(|series| &series.points)
            .map(|point| point.high.max(point.value))
            .fold(0.0, f64::max);
        let frame = Frame {
            columns: self.x_labels.len(),
            y_max: match self.scale {
                Scale::Rate => nice_max(max).min(1.0),
                Scale::Count => nice_max(max),
            },
        };
        let series = self
            .series
            .iter()
            .enumerate()
            .map(|(index, series)| {
                let upper = series
                    .points
                    .iter()
                    .map(|point| (frame.x(point.x), frame.y(point.high)));
                let lower = series
                    .points
                    .iter()
                    .rev()
                    .map(|point| (frame.x(point.x), frame.y(point.low)));
                DrawnSeries {
                    name: series.name.clone(),
                    color: color(index),
                    line: coordinates(
                        series
                            .points
                            .iter()
                            .map(|point| (frame.x(point.x), frame.y(point.value))),
                    ),
                    band: coordinates(upper.chain(lower)),
                    points: series
                        .points
                        .iter()
                        .map(|point| {
                            let x_label = self.x_labels.get(point.x).cloned().unwrap_or_default();
                            DrawnPoint {
                                cx: frame.x(point.x),
                                cy: frame.y(point.value),
                                tooltip: format!(
                                    "{} · {x_label}: {} ({}–{}), {}",
                                    series.name,
                                    self.scale.format(point.value),
                                    self.scale.format(point.low),
                                    self.scale.format(point.high),
                                    point.detail
                                ),
                                x_label,
                                value: point.value,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        LineSvg {
            title: &self.title,
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right: WIDTH - RIGHT,
            bottom: HEIGHT - BOTTOM,
            ticks: frame.ticks(self.scale),
            x_labels: frame.x_labels(&self.x_labels, |index| frame.x(index)),
            series,
        }
        .render()
    }
}

/// Stacked bars over categories (days): `stacks[x]` holds `(series index, count)`.
#[derive(Clone, Debug)]
pub(crate) struct BarChart {
    pub(crate) title: String,
    pub(crate) x_labels: Vec<String>,
    pub(crate) series: Vec<String>,
    /// Per x, the counts of each series (same order as `series`).
    pub(crate) counts: Vec<Vec<u64>>,
}

struct Bar {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    color: &'static str,
    series: String,
    x_label: String,
    value: u64,
}

#[derive(Template)]
#[template(path = "bars.svg", escape = "html")]
struct BarSvg<'a> {
    title: &'a str,
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    bottom: f64,
    ticks: Vec<Tick>,
    x_labels: Vec<XLabel>,
    bars: Vec<Bar>,
}

impl BarChart {
    /// The chart as SVG markup.
    pub(crate) fn svg(&self) -> Result<String, askama::Error> {
        let totals: Vec<u64> = self.counts.iter().map(|stack| stack.iter().sum()).collect();
        let max = totals.iter().copied().max().unwrap_or(0) as f64;
        let frame = Frame {
            columns: self.x_labels.len(),
            y_max: nice_max(max),
        };
        let inner = WIDTH - LEFT - RIGHT;
        let slot = inner / self.x_labels.len().max(1) as f64;
        let bar_width = (slot * 0.7).max(1.0);
        let center = |index: usize| LEFT + slot * (index as f64 + 0.5);
        let mut bars = Vec::new();
        for (index, stack) in self.counts.iter().enumerate() {
            let mut base = 0u64;
            for (series, &value) in stack.iter().enumerate() {
                if value == 0 {
                    continue;
                }
                let top = frame.y((base + value) as f64);
                let bottom = frame.y(base as f64);
                bars.push(Bar {
                    x: center(index) - bar_width / 2.0,
                    y: top,
                    width: bar_width,
                    height: (bottom - top).max(0.5),
                    color: color(series),
                    series: self.series.get(series).cloned().unwrap_or_default(),
                    x_label: self.x_labels.get(index).cloned().unwrap_or_default(),
                    value,
                });
                base += value;
            }
        }
        BarSvg {
            title: &self.title,
            width: WIDTH,
            height: HEIGHT,
            left: LEFT,
            right: WIDTH - RIGHT,
            bottom: HEIGHT - BOTTOM,
            ticks: frame.ticks(Scale::Count),
            x_labels: frame.x_labels(&self.x_labels, center),
            bars,
        }
        .render()
    }
}

/// One row of an interval chart: a rate and its interval.
#[derive(Clone, Debug)]
pub(crate) struct IntervalRow {
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) low: f64,
    pub(crate) high: f64,
    pub(crate) detail: String,
}

/// Rates with their intervals, one row each (a forest plot), sharing one axis.
#[derive(Clone, Debug)]
pub(crate) struct IntervalChart {
    pub(crate) title: String,
    pub(crate) rows: Vec<IntervalRow>,
}

struct DrawnRow {
    y: f64,
    name: String,
    color: &'static str,
    x: f64,
    x_low: f64,
    x_high: f64,
    value: f64,
    tooltip: String,
}

struct VTick {
    x: f64,
    label: String,
}

#[derive(Template)]
#[template(path = "intervals.svg", escape = "html")]
struct IntervalSvg<'a> {
    title: &'a str,
    width: f64,
    height: f64,
    left: f64,
    top: f64,
    bottom: f64,
    ticks: Vec<VTick>,
    rows: Vec<DrawnRow>,
}

impl IntervalChart {
    /// The chart as SVG markup.
    pub(crate) fn svg(&self) -> Result<String, askama::Error> {
        const ROW: f64 = 26.0;
        const NAMES: f64 = 220.0;
        let height = TOP + BOTTOM + ROW * self.rows.len().max(1) as f64;
        let max = nice_max(self.rows.iter().map(|row| row.high).fold(0.0, f64::max)).min(1.0);
        let inner = WIDTH - NAMES - RIGHT;
        let x = |value: f64| NAMES + inner * (value / max).clamp(0.0, 1.0);
        let rows = self
            .rows
            .iter()
            .enumerate()
            .map(|(index, row)| DrawnRow {
                y: TOP + ROW * (index as f64 + 0.5),
                name: row.name.clone(),
                color: color(index),
                x: x(row.value),
                x_low: x(row.low),
                x_high: x(row.high),
                value: row.value,
                tooltip: format!(
                    "{}: {} ({}–{}), {}",
                    row.name,
                    Scale::Rate.format(row.value),
                    Scale::Rate.format(row.low),
                    Scale::Rate.format(row.high),
                    row.detail
                ),
            })
            .collect();
        let ticks = (0..=4)
            .map(|step| {
                let value = max * f64::from(step) / 4.0;
                VTick {
                    x: x(value),
                    label: Scale::Rate.format(value),
                }
            })
            .collect();
        IntervalSvg {
            title: &self.title,
            width: WIDTH,
            height,
            left: NAMES,
            top: TOP,
            bottom: height - BOTTOM,
            ticks,
            rows,
        }
        .render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_read_well() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(0.13), 0.2);
        assert_eq!(nice_max(0.26), 0.5);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(120.0), 200.0);
    }

    #[test]
    fn a_line_chart_draws_each_point_and_escapes_names() {
        let chart = LineChart {
            title: "Failure rate".into(),
            x_labels: vec!["2026-12-01".into(), "2026-12-02".into()],
            series: vec![LineSeries {
                name: "answer@<v2>".into(),
                points: vec![
                    LinePoint {
                        x: 0,
                        value: 0.1,
                        low: 0.05,
                        high: 0.2,
                        detail: "1 of 10".into(),
                    },
                    LinePoint {
                        x: 1,
                        value: 0.3,
                        low: 0.2,
                        high: 0.4,
                        detail: "3 of 10".into(),
                    },
                ],
            }],
            scale: Scale::Rate,
        };
        let svg = chart.svg().unwrap();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(svg.contains("data-x=\"2026-12-02\""), "{svg}");
        assert!(svg.contains("data-value=\"0.3\""), "{svg}");
        assert!(
            svg.contains("answer@&#60;v2&#62;") || svg.contains("answer@&lt;v2&gt;"),
            "{svg}"
        );
        assert!(!svg.contains("<v2>"), "{svg}");
    }

    #[test]
    fn an_interval_chart_has_a_row_per_rate() {
        let chart = IntervalChart {
            title: "Failure rate".into(),
            rows: vec![
                IntervalRow {
                    name: "answer@v3".into(),
                    value: 0.15,
                    low: 0.1,
                    high: 0.2,
                    detail: "15 of 100".into(),
                },
                IntervalRow {
                    name: "answer@v4".into(),
                    value: 0.05,
                    low: 0.02,
                    high: 0.09,
                    detail: "5 of 100".into(),
                },
            ],
        };
        let svg = chart.svg().unwrap();
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(
            svg.contains("data-series=\"answer@v4\" data-value=\"0.05\""),
            "{svg}"
        );
    }

    #[test]
    fn bars_stack_per_day() {
        let chart = BarChart {
            title: "Failures by category".into(),
            x_labels: vec!["d1".into(), "d2".into()],
            series: vec!["hallucination".into(), "missing_context".into()],
            counts: vec![vec![2, 3], vec![0, 1]],
        };
        let svg = chart.svg().unwrap();
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(
            svg.contains("data-series=\"missing_context\" data-x=\"d1\" data-value=\"3\""),
            "{svg}"
        );
    }
}
