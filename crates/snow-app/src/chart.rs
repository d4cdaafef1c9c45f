//! The weekly series as an SVG bar chart, drawn on the app's side: no
//! script, no fonts to fetch, readable by a screen reader (every bar has
//! a `<title>`, the chart a `<desc>`), and a hidden count looks hidden.

use maud::{html, Markup};
use snow_core::stats::{Bucket, Count};

use crate::texts::Texts;

/// One bar: a period and what is known of its count.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// `2026-W47`, `2026-11`, …
    pub label: String,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Exact(u64),
    /// Between 1 and the disclosure threshold − 1: only the bound is known.
    Below(u32),
    /// Outside the weeks the lab has data for.
    NoData,
}

impl Bar {
    /// The positive count of a search bucket.
    pub fn positive(b: &Bucket) -> Bar {
        let value = match b.counts.map(|c| c.positive) {
            None => Value::NoData,
            Some(Count::Exact(n)) => Value::Exact(n),
            Some(Count::Below(t)) => Value::Below(t),
        };
        Bar { label: b.label.clone(), value }
    }
}

/// A threshold drawn over one bar (an alert's week).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub bar: usize,
    pub value: f64,
}

/// The narrowest a bar gets; with few bars they widen to fill
/// [`MIN_WIDTH`], so the chart's text keeps its size when it is scaled.
const W_BAR: f64 = 36.0;
const MIN_WIDTH: f64 = 760.0;
const H: f64 = 220.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;
const LEFT: f64 = 44.0;

/// The chart; `title` names it for assistive technology.
pub fn bars(title: &str, bars: &[Bar], threshold: Option<Threshold>, t: &Texts) -> Markup {
    let n = bars.len().max(1);
    let w_bar = W_BAR.max((MIN_WIDTH - LEFT - 10.0) / n as f64);
    let width = LEFT + w_bar * n as f64 + 10.0;
    let plot_h = H - TOP - BOTTOM;
    let top_value = bars
        .iter()
        .map(|b| match b.value {
            Value::Exact(v) => v as f64,
            Value::Below(t) => f64::from(t),
            Value::NoData => 0.0,
        })
        .chain(threshold.map(|t| if t.value.is_finite() { t.value } else { 0.0 }))
        .fold(1.0_f64, f64::max);
    let scale = nice_ceiling(top_value);
    let y = |v: f64| TOP + plot_h - (v / scale) * plot_h;
    let ticks: Vec<f64> = (0..=4).map(|i| scale * f64::from(i) / 4.0).collect();
    // Every label if they fit, else every k-th.
    let step = (n / 16).max(1);
    let desc = describe(bars, threshold, t);
    html! {
        svg class="chart" role="img" viewBox=(format!("0 0 {width:.0} {H:.0}")) xmlns="http://www.w3.org/2000/svg"
            aria-labelledby="chart-title chart-desc" {
            title id="chart-title" { (title) }
            desc id="chart-desc" { (desc) }
            defs {
                pattern id="hidden" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                    rect width="6" height="6" fill="#fff" {}
                    line x1="0" y1="0" x2="0" y2="6" stroke="#6b7c93" stroke-width="3" {}
                }
            }
            @for v in &ticks {
                line class="grid" x1=(LEFT) x2=(width - 10.0) y1=(fmt(y(*v))) y2=(fmt(y(*v))) {}
                text class="tick" x=(LEFT - 6.0) y=(fmt(y(*v) + 4.0)) text-anchor="end" { (tick(*v)) }
            }
            @for (i, b) in bars.iter().enumerate() {
                @let x = LEFT + w_bar * i as f64 + 4.0;
                @match b.value {
                    Value::Exact(v) => {
                        rect class="bar" x=(fmt(x)) y=(fmt(y(v as f64))) width=(w_bar - 8.0)
                            height=(fmt(plot_h + TOP - y(v as f64))) {
                            title { (b.label) ": " (v) }
                        }
                    }
                    Value::Below(th) => {
                        rect class="bar-hidden" x=(fmt(x)) y=(fmt(y(f64::from(th)))) width=(w_bar - 8.0)
                            height=(fmt(plot_h + TOP - y(f64::from(th)))) fill="url(#hidden)" {
                            title { (b.label) ": <" (th) " (" (t.suppressed) ")" }
                        }
                        text class="bar-note" x=(fmt(x + (w_bar - 8.0) / 2.0)) y=(fmt(y(f64::from(th)) - 4.0))
                            text-anchor="middle" { "<" (th) }
                    }
                    Value::NoData => {
                        text class="bar-note" x=(fmt(x + (w_bar - 8.0) / 2.0)) y=(fmt(TOP + plot_h - 4.0))
                            text-anchor="middle" {
                            "–"
                            title { (b.label) ": " (t.no_data) }
                        }
                    }
                }
                @if i % step == 0 {
                    text class="label" x=(fmt(x + (w_bar - 8.0) / 2.0)) y=(fmt(H - BOTTOM + 16.0)) text-anchor="middle" {
                        (short(&b.label))
                    }
                }
            }
            @if let Some(th) = threshold.filter(|t| t.bar < bars.len() && t.value.is_finite()) {
                @let x = LEFT + w_bar * th.bar as f64;
                line class="threshold" x1=(fmt(x)) x2=(fmt(x + w_bar)) y1=(fmt(y(th.value))) y2=(fmt(y(th.value))) {}
                // Right-aligned at the bar's right edge: never cut off at the chart's end.
                text class="threshold-label" x=(fmt(x + w_bar)) y=(fmt(y(th.value) - 6.0)) text-anchor="end" {
                    (t.chart_threshold) " " (format!("{:.1}", th.value))
                }
            }
            line class="axis" x1=(LEFT) x2=(width - 10.0) y1=(TOP + plot_h) y2=(TOP + plot_h) {}
        }
    }
}

/// The chart in words, for a screen reader.
fn describe(bars: &[Bar], threshold: Option<Threshold>, t: &Texts) -> String {
    let mut parts: Vec<String> = bars
        .iter()
        .map(|b| match b.value {
            Value::Exact(v) => format!("{} {v}", b.label),
            Value::Below(th) => format!("{} <{th}", b.label),
            Value::NoData => format!("{} {}", b.label, t.no_data),
        })
        .collect();
    if let Some(th) = threshold.filter(|th| th.bar < bars.len()) {
        parts.push(format!("{} {:.1} ({})", t.chart_threshold, th.value, bars[th.bar].label));
    }
    parts.join("; ")
}

/// The axis's top: four ticks of a whole step of 1, 2 or 5 times a power
/// of ten (counts are whole numbers, so are the ticks).
fn nice_ceiling(v: f64) -> f64 {
    let v = if v.is_finite() { v.max(1.0) } else { 1.0 };
    let quarter = v / 4.0;
    let magnitude = 10f64.powf(quarter.log10().floor()).max(1.0);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * magnitude >= quarter {
            return 4.0 * m * magnitude;
        }
    }
    40.0 * magnitude
}

fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `2026-W47` → `W47`, `2026-11` → `11`: the year is in the title.
fn short(label: &str) -> &str {
    label.rsplit_once('-').map(|(_, s)| s).unwrap_or(label)
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::texts::EN;

    fn bar(label: &str, value: Value) -> Bar {
        Bar { label: label.into(), value }
    }

    #[test]
    fn hidden_counts_and_missing_data_are_marked_and_described() {
        let svg = bars(
            "INFA",
            &[bar("2026-W45", Value::Exact(12)), bar("2026-W46", Value::Below(5)), bar("2026-W47", Value::NoData)],
            Some(Threshold { bar: 0, value: 7.53 }),
            &EN,
        )
        .into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("2026-W45 12; 2026-W46 &lt;5; 2026-W47 no data; threshold 7.5 (2026-W45)"), "{svg}");
        assert!(svg.contains("url(#hidden)") && svg.contains("threshold 7.5"), "{svg}");
        assert_eq!(svg.matches("class=\"bar\"").count(), 1);
    }

    #[test]
    fn labels_are_escaped_and_odd_values_do_not_break_the_scale() {
        let svg =
            bars("<x>", &[bar("<script>", Value::Exact(u64::MAX))], Some(Threshold { bar: 9, value: f64::NAN }), &EN)
                .into_string();
        assert!(!svg.contains("<script>") && svg.contains("&lt;x&gt;"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let empty = bars("empty", &[], None, &EN).into_string();
        assert!(empty.contains("viewBox"), "{empty}");
    }

    #[test]
    fn the_axis_ends_on_a_round_number() {
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(7.53), 8.0);
        assert_eq!(nice_ceiling(30.0), 40.0);
        assert_eq!(nice_ceiling(230.0), 400.0);
        assert_eq!(nice_ceiling(0.0), 4.0);
        // Whole ticks for any count.
        for v in 0..2000 {
            let top = nice_ceiling(f64::from(v));
            assert!(top >= f64::from(v) && (top / 4.0).fract() == 0.0, "{v}: {top}");
        }
    }
}
