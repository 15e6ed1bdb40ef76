//! The human-readable evaluation report: one self-contained HTML page
//! (minijinja template, inline SVG plots, no scripts or external files), written
//! beside an evaluate step's metrics and linked from `pipeline runs show`.

use serde::Serialize;

pub mod tune;

const TEMPLATE: &str = include_str!("template.html");

/// A report page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub title: String,
    pub subtitle: String,
    pub metrics: Vec<MetricRow>,
    pub has_intervals: bool,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    pub name: String,
    pub value: String,
    /// `[lower, upper]`, when a bootstrap interval was computed.
    pub interval: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Section {
    pub title: String,
    pub note: Option<String>,
    pub table: Option<Table>,
    /// Inline SVG documents made by this module.
    pub svgs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub text: String,
    /// Background intensity 0..1 (for a heat map such as a confusion matrix).
    pub shade: f64,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            shade: 0.0,
        }
    }
}

impl Report {
    pub fn metric(&mut self, name: &str, value: f64, interval: Option<(f64, f64)>) {
        if interval.is_some() {
            self.has_intervals = true;
        }
        self.metrics.push(MetricRow {
            name: name.to_string(),
            value: fmt_num(value),
            interval: interval
                .map(|(l, u)| format!("[{}, {}]", fmt_num(l), fmt_num(u)))
                .unwrap_or_default(),
        });
    }

    pub fn render(&self) -> Result<String, String> {
        // The `.html` name turns on HTML escaping of every value but the SVGs (`| safe`).
        let env = minijinja::Environment::new();
        env.render_named_str(
            "report.html",
            TEMPLATE,
            minijinja::Value::from(minijinja::value::Serde(self)),
        )
        .map_err(|e| format!("render the report: {e}"))
    }
}

/// Numbers as a person reads them: 4 significant decimals, scientific when huge or tiny.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{x:.4e}")
    } else {
        format!("{x:.4}")
    }
}

/// A confusion matrix as a shaded table (`m[true][predicted]`).
pub fn confusion_table(labels: &[String], m: &[Vec<u64>]) -> Table {
    let max = m.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let mut header = vec!["true \\ predicted".to_string()];
    header.extend(labels.iter().cloned());
    let rows = labels
        .iter()
        .zip(m)
        .map(|(l, row)| {
            let mut cells = vec![Cell::plain(l.clone())];
            cells.extend(row.iter().map(|&c| Cell {
                text: c.to_string(),
                shade: (c as f64 / max * 0.6 * 100.0).round() / 100.0,
            }));
            cells
        })
        .collect();
    Table { header, rows }
}

const W: f64 = 300.0;
const H: f64 = 240.0;
const PAD: f64 = 36.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn fit(points: impl Iterator<Item = (f64, f64)>) -> Frame {
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            return Frame {
                x0: 0.0,
                x1: 1.0,
                y0: 0.0,
                y1: 1.0,
            };
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        if y1 - y0 < 1e-12 {
            y1 = y0 + 1.0;
        }
        Frame { x0, x1, y0, y1 }
    }
    fn px(&self, x: f64) -> f64 {
        PAD + (x - self.x0) / (self.x1 - self.x0) * (W - PAD - 10.0)
    }
    fn py(&self, y: f64) -> f64 {
        H - PAD - (y - self.y0) / (self.y1 - self.y0) * (H - PAD - 24.0)
    }
}

fn axes(title: &str, xl: &str, yl: &str, f: &Frame) -> String {
    format!(
        concat!(
            "<text x=\"{cx}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">{t}</text>",
            "<line x1=\"{p}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#888\"/>",
            "<line x1=\"{p}\" y1=\"24\" x2=\"{p}\" y2=\"{b}\" stroke=\"#888\"/>",
            "<text x=\"{cx}\" y=\"{xl_y}\" text-anchor=\"middle\" font-size=\"11\">{xl}</text>",
            "<text x=\"10\" y=\"{cy}\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 10 {cy})\">{yl}</text>",
            "<text x=\"{p}\" y=\"{tick_y}\" font-size=\"9\" text-anchor=\"middle\">{x0}</text>",
            "<text x=\"{r}\" y=\"{tick_y}\" font-size=\"9\" text-anchor=\"end\">{x1}</text>",
            "<text x=\"{ylab_x}\" y=\"{b}\" font-size=\"9\" text-anchor=\"end\">{y0}</text>",
            "<text x=\"{ylab_x}\" y=\"28\" font-size=\"9\" text-anchor=\"end\">{y1}</text>"
        ),
        cx = W / 2.0,
        t = esc(title),
        p = PAD,
        b = H - PAD,
        r = W - 10.0,
        xl_y = H - 6.0,
        xl = esc(xl),
        cy = H / 2.0,
        yl = esc(yl),
        tick_y = H - PAD + 11.0,
        x0 = short(f.x0),
        x1 = short(f.x1),
        ylab_x = PAD - 3.0,
        y0 = short(f.y0),
        y1 = short(f.y1),
    )
}

fn short(x: f64) -> String {
    let s = fmt_num(x);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn open(svg_title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(svg_title)
    )
}

/// Line plot of one or more series; `diagonal` draws the y = x reference (ROC).
pub fn line_plot(
    title: &str,
    xl: &str,
    yl: &str,
    series: &[(String, Vec<(f64, f64)>)],
    unit_square: bool,
    diagonal: bool,
) -> String {
    let f = if unit_square {
        Frame {
            x0: 0.0,
            x1: 1.0,
            y0: 0.0,
            y1: 1.0,
        }
    } else {
        Frame::fit(series.iter().flat_map(|(_, p)| p.iter().copied()))
    };
    let mut s = open(title);
    s.push_str(&axes(title, xl, yl, &f));
    if diagonal {
        s.push_str(&format!(
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>",
            f.px(0.0),
            f.py(0.0),
            f.px(1.0),
            f.py(1.0)
        ));
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = thin(pts, 400)
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", f.px(*x), f.py(*y)))
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" points=\"{}\"/>",
            path.join(" ")
        ));
        if series.len() > 1 {
            s.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{color}\">{}</text>",
                W - 90.0,
                40.0 + 12.0 * i as f64,
                esc(name)
            ));
        }
    }
    s.push_str("</svg>");
    s
}

/// Scatter plot (e.g. residuals against predictions), at most `max` points drawn.
pub fn scatter_plot(
    title: &str,
    xl: &str,
    yl: &str,
    pts: &[(f64, f64)],
    zero_line: bool,
) -> String {
    let f = Frame::fit(pts.iter().copied());
    let mut s = open(title);
    s.push_str(&axes(title, xl, yl, &f));
    if zero_line && f.y0 < 0.0 && f.y1 > 0.0 {
        s.push_str(&format!("<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>", PAD, W - 10.0, y = f.py(0.0)));
    }
    for (x, y) in thin(pts, 1500) {
        if x.is_finite() && y.is_finite() {
            s.push_str(&format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.6\" fill=\"#1f77b4\" fill-opacity=\"0.45\"/>", f.px(x), f.py(y)));
        }
    }
    s.push_str("</svg>");
    s
}

/// Bar chart (e.g. cluster sizes, per-fold scores).
pub fn bar_chart(title: &str, yl: &str, bars: &[(String, f64)]) -> String {
    let max = bars
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let f = Frame {
        x0: 0.0,
        x1: bars.len().max(1) as f64,
        y0: 0.0,
        y1: max,
    };
    let mut s = open(title);
    s.push_str(&axes(title, "", yl, &f));
    let bw = (W - PAD - 10.0) / bars.len().max(1) as f64;
    for (i, (name, v)) in bars.iter().enumerate() {
        let x = f.px(i as f64) + bw * 0.1;
        let y = f.py(*v);
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#1f77b4\"><title>{}: {}</title></rect>",
            bw * 0.8,
            (H - PAD - y).max(0.0),
            esc(name),
            fmt_num(*v)
        ));
        if bars.len() <= 20 {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
                x + bw * 0.4,
                H - PAD + 22.0,
                esc(name)
            ));
        }
    }
    s.push_str("</svg>");
    s
}

/// Every k-th point, so no plot carries more than about `max` points.
fn thin(pts: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if pts.len() <= max {
        return pts.to_vec();
    }
    let step = pts.len().div_ceil(max);
    let mut out: Vec<(f64, f64)> = pts.iter().step_by(step).copied().collect();
    if let Some(last) = pts.last() {
        out.push(*last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_self_contained_page() {
        let mut r = Report {
            title: "evaluate <x>".into(),
            subtitle: "holdout".into(),
            ..Default::default()
        };
        r.metric("accuracy", 0.975, Some((0.95, 0.99)));
        r.sections.push(Section {
            title: "Confusion matrix".into(),
            table: Some(confusion_table(
                &["a".into(), "b".into()],
                &[vec![5, 1], vec![0, 4]],
            )),
            svgs: vec![line_plot(
                "ROC",
                "false positive rate",
                "true positive rate",
                &[("b".into(), vec![(0.0, 0.0), (0.2, 0.8), (1.0, 1.0)])],
                true,
                true,
            )],
            ..Default::default()
        });
        let html = r.render().unwrap();
        assert!(html.contains("evaluate &lt;x&gt;"));
        assert!(html.contains("<polyline"));
        assert!(html.contains("[0.9500, 0.9900]"));
        assert!(!html.contains("<script"));
    }
}
