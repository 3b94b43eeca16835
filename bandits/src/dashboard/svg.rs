//! The dashboard's two inline SVG charts: each arm's share of traffic over time (stacked, one column per
//! time bucket) and each arm's CTR with its 95 % interval. Pure functions of report data, so they are
//! rendered identically by the page and by the unit tests.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use super::{escape, pct};
use crate::report::{Rate, SeriesPoint};

/// Arm colours, by the arm's position in the slot (the table's swatches use the same).
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// The colour of the arm at position `i` of the slot.
pub(super) fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const WIDTH: f64 = 760.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const PLOT_H: f64 = 220.0;
/// Below the plot: tick labels, the axis title, then the legend.
const AXIS_H: f64 = 56.0;
const LEGEND_ROW: f64 = 20.0;

macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        let _ = write!($dst, $($arg)*);
    };
}

/// `<svg …>` with the chart's accessible name.
fn open(out: &mut String, testid: &str, height: f64, label: &str) {
    w!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" data-testid="{testid}" role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {height}" width="100%" style="max-width:{WIDTH}px" font-family="system-ui, sans-serif" font-size="12"><title>{label}</title>"#,
        label = escape(label)
    );
}

/// Horizontal grid lines and y tick labels at `ticks` (fractions of the axis), labelled by `fmt`.
fn y_axis(out: &mut String, ticks: &[f64], max: f64, title: &str, fmt: impl Fn(f64) -> String) {
    let right = WIDTH - RIGHT;
    for &v in ticks {
        let y = TOP + PLOT_H * (1.0 - v / max);
        w!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            escape(&fmt(v))
        );
    }
    let cy = TOP + PLOT_H / 2.0;
    w!(
        out,
        r##"<text x="14" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 14 {cy:.1})" font-weight="600">{}</text>"##,
        escape(title)
    );
    let bottom = TOP + PLOT_H;
    w!(
        out,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#333"/><line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>"##
    );
}

fn x_title(out: &mut String, title: &str) {
    w!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="600">{}</text>"##,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        TOP + PLOT_H + 40.0,
        escape(title)
    );
}

/// Legend items laid out left to right, wrapping; returns the rows used.
fn legend_rows(arms: &[String]) -> Vec<Vec<(usize, f64)>> {
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new()];
    let mut x = LEFT;
    for (i, a) in arms.iter().enumerate() {
        let w = 24.0 + 7.0 * a.chars().count() as f64 + 16.0;
        if x + w > WIDTH - RIGHT && x > LEFT {
            rows.push(Vec::new());
            x = LEFT;
        }
        if let Some(r) = rows.last_mut() {
            r.push((i, x));
        }
        x += w;
    }
    rows
}

fn legend(out: &mut String, arms: &[String], rows: &[Vec<(usize, f64)>]) {
    out.push_str(r#"<g data-testid="legend">"#);
    for (r, row) in rows.iter().enumerate() {
        let y = TOP + PLOT_H + AXIS_H + LEGEND_ROW * r as f64;
        for &(i, x) in row {
            w!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="14" height="14" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                y - 2.0,
                color(i),
                x + 20.0,
                y + 10.0,
                escape(&arms[i])
            );
        }
    }
    out.push_str("</g>");
}

fn time_label(t: DateTime<Utc>, span: Duration) -> String {
    if span > Duration::days(2) {
        t.format("%d %b %H:%M").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

/// Each arm's share of the bucket's decisions, stacked, one column per time bucket of the window.
pub(super) fn share_chart(
    arms: &[String],
    series: &[SeriesPoint],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket_secs: i64,
) -> String {
    let rows = legend_rows(arms);
    let height = TOP + PLOT_H + AXIS_H + LEGEND_ROW * rows.len() as f64;
    let mut out = String::new();
    open(
        &mut out,
        "share-chart",
        height,
        "Share of traffic per arm over time",
    );
    y_axis(
        &mut out,
        &[0.0, 0.25, 0.5, 0.75, 1.0],
        1.0,
        "Share of decisions",
        |v| pct(v, 0),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let span = (until - since).num_seconds().max(1) as f64;
    let x_of = |t: DateTime<Utc>| {
        let s = (t - since).num_seconds() as f64 / span;
        LEFT + plot_w * s.clamp(0.0, 1.0)
    };
    let step = (until - since) / 4;
    for k in 0..=4 {
        let t = since + step * k;
        let x = x_of(t);
        // The outer labels stay inside the chart.
        let anchor = match k {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        w!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##,
            TOP + PLOT_H,
            TOP + PLOT_H + 5.0,
            TOP + PLOT_H + 18.0,
            escape(&time_label(t, until - since))
        );
    }
    x_title(&mut out, "Time (UTC)");
    let mut drawn = 0;
    out.push_str(r#"<g data-testid="share-columns">"#);
    for p in series {
        let total: u64 = p.decisions.values().sum();
        if total == 0 {
            continue;
        }
        let x0 = x_of(p.bucket);
        let x1 = x_of(p.bucket + Duration::seconds(bucket_secs.max(1)));
        let width = (x1 - x0).max(1.0);
        let mut below = 0.0;
        for (i, a) in arms.iter().enumerate() {
            let n = p.decisions.get(a).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let s = n as f64 / total as f64;
            let y = TOP + PLOT_H * (1.0 - below - s);
            w!(
                out,
                r#"<rect x="{x0:.1}" y="{y:.2}" width="{width:.2}" height="{:.2}" fill="{}"><title>{}: {} of {} decisions ({}), from {}</title></rect>"#,
                PLOT_H * s,
                color(i),
                escape(a),
                n,
                total,
                pct(s, 1),
                p.bucket.format("%Y-%m-%d %H:%M UTC")
            );
            below += s;
            drawn += 1;
        }
    }
    out.push_str("</g>");
    if drawn == 0 {
        w!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#666">No decisions in this window</text>"##,
            LEFT + plot_w / 2.0,
            TOP + PLOT_H / 2.0
        );
    }
    legend(&mut out, arms, &rows);
    out.push_str("</svg>");
    out
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at least `x` (an axis maximum that reads well).
fn nice_ceiling(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let base = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * base >= x * (1.0 - 1e-12) {
            return m * base;
        }
    }
    10.0 * base
}

/// Each arm's CTR (dot) with its 95 % Wilson interval (error bar).
pub(super) fn ctr_chart(arms: &[(String, Rate)]) -> String {
    let names: Vec<String> = arms.iter().map(|a| a.0.clone()).collect();
    let rows = legend_rows(&names);
    let height = TOP + PLOT_H + AXIS_H + LEGEND_ROW * rows.len() as f64;
    let mut out = String::new();
    open(
        &mut out,
        "ctr-chart",
        height,
        "Click-through rate per arm with 95% interval",
    );
    let top = arms
        .iter()
        .map(|a| a.1.upper.max(a.1.value))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let max = nice_ceiling(top.max(0.01)).min(1.0);
    let ticks: Vec<f64> = (0..=4).map(|k| max * k as f64 / 4.0).collect();
    let decimals = if max <= 0.05 { 2 } else { 1 };
    y_axis(&mut out, &ticks, max, "Click-through rate", |v| {
        pct(v, decimals)
    });
    x_title(&mut out, "Arm (dot: CTR; bar: 95% interval)");
    let plot_w = WIDTH - LEFT - RIGHT;
    let slot_w = plot_w / arms.len().max(1) as f64;
    let y_of = |v: f64| TOP + PLOT_H * (1.0 - (v / max).clamp(0.0, 1.0));
    for (i, (arm, r)) in arms.iter().enumerate() {
        let x = LEFT + slot_w * (i as f64 + 0.5);
        let (yl, yu, yv) = (y_of(r.lower), y_of(r.upper), y_of(r.value));
        let c = color(i);
        w!(
            out,
            r#"<g data-testid="ctr-bar-{id}"><title>{id}: CTR {v} (95% interval {l} – {u})</title><line x1="{x:.1}" y1="{yl:.2}" x2="{x:.1}" y2="{yu:.2}" stroke="{c}" stroke-width="2"/><line x1="{:.1}" y1="{yl:.2}" x2="{:.1}" y2="{yl:.2}" stroke="{c}" stroke-width="2"/><line x1="{:.1}" y1="{yu:.2}" x2="{:.1}" y2="{yu:.2}" stroke="{c}" stroke-width="2"/><circle cx="{x:.1}" cy="{yv:.2}" r="5" fill="{c}"/><text x="{:.1}" y="{:.2}">{v}</text><text x="{x:.1}" y="{:.1}" text-anchor="middle">{id}</text></g>"#,
            x - 8.0,
            x + 8.0,
            x - 8.0,
            x + 8.0,
            x + 9.0,
            yv + 4.0,
            TOP + PLOT_H + 18.0,
            id = escape(arm),
            v = pct(r.value, 2),
            l = pct(r.lower, 2),
            u = pct(r.upper, 2),
        );
    }
    legend(&mut out, &names, &rows);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_read_well() {
        assert_eq!(nice_ceiling(0.043), 0.05);
        assert_eq!(nice_ceiling(0.18), 0.2);
        assert_eq!(nice_ceiling(0.21), 0.25);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
    }

    #[test]
    fn legends_wrap() {
        let many: Vec<String> = (0..30).map(|i| format!("banner_number_{i}")).collect();
        let rows = legend_rows(&many);
        assert!(rows.len() > 1);
        assert_eq!(rows.iter().map(Vec::len).sum::<usize>(), 30);
    }
}
