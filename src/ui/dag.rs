//! A run's step graph as an SVG drawing: steps in columns by their depth
//! (the longest chain of dependencies before them), in file order within a
//! column, edges from each step to those that wait for it. Each step is a
//! group `id="node-STEP"` whose class is its status, which the run page's
//! script changes as the run goes on.

use std::collections::BTreeMap;

use crate::ui::html_escape;

const BOX_W: f64 = 170.0;
const BOX_H: f64 = 30.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 14.0;
const MARGIN: f64 = 10.0;

/// `graph` is a run's `graph.json`; `states` each step's status now.
pub fn svg(graph: &serde_json::Value, states: &BTreeMap<String, String>) -> String {
    let Some(steps) = graph["steps"].as_array() else {
        return String::new();
    };
    let names: Vec<&str> = steps
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            s["deps"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(|e| e["step"].as_str().and_then(|n| index.get(n).copied()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    // Depth by the longest chain; the graph is acyclic (the planner refused
    // cycles), and a bound keeps a damaged file from looping.
    let n = names.len();
    let mut depth = vec![0usize; n];
    for _ in 0..n.min(10_000) {
        let mut changed = false;
        for i in 0..n {
            for &j in &deps[i] {
                if depth[j] + 1 > depth[i] && depth[j] < n {
                    depth[i] = depth[j] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let columns = depth.iter().max().map_or(0, |d| d + 1);
    let mut row_of = vec![0usize; n];
    let mut rows = vec![0usize; columns];
    for i in 0..n {
        row_of[i] = rows[depth[i]];
        rows[depth[i]] += 1;
    }
    let tallest = rows.iter().copied().max().unwrap_or(0);
    let width = MARGIN * 2.0 + columns as f64 * BOX_W + columns.saturating_sub(1) as f64 * GAP_X;
    let height = MARGIN * 2.0 + tallest as f64 * (BOX_H + GAP_Y);
    let at = |i: usize| {
        (
            MARGIN + depth[i] as f64 * (BOX_W + GAP_X),
            MARGIN + row_of[i] as f64 * (BOX_H + GAP_Y),
        )
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"step graph\">"
    );
    for (i, ds) in deps.iter().enumerate() {
        let (x2, y2) = at(i);
        for &j in ds {
            let (x1, y1) = at(j);
            let (ax, ay) = (x1 + BOX_W, y1 + BOX_H / 2.0);
            let (bx, by) = (x2, y2 + BOX_H / 2.0);
            let mid = (ax + bx) / 2.0;
            out.push_str(&format!(
                "<path class=\"edge\" d=\"M{ax:.1},{ay:.1} C{mid:.1},{ay:.1} {mid:.1},{by:.1} {bx:.1},{by:.1}\"/>"
            ));
        }
    }
    for (i, s) in steps.iter().enumerate() {
        let (x, y) = at(i);
        let name = names[i];
        let status = states.get(name).map(String::as_str).unwrap_or("pending");
        let label = s["label"].as_str().unwrap_or(name);
        let shown: String = if name.chars().count() > 22 {
            name.chars().take(21).chain(['…']).collect()
        } else {
            name.to_string()
        };
        out.push_str(&format!(
            "<g id=\"node-{id}\" class=\"node st-{status}\" data-step=\"{id}\"><title>{title}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"5\"/><text x=\"{tx:.1}\" y=\"{ty:.1}\">{text}</text></g>",
            id = html_escape(name),
            status = html_escape(status),
            title = html_escape(label),
            tx = x + 8.0,
            ty = y + BOX_H / 2.0 + 4.0,
            text = html_escape(&shown),
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_placed_by_depth_and_escaped() {
        let g = serde_json::json!({"steps": [
            {"name": "split", "label": "split: split", "deps": []},
            {"name": "train<x>", "label": "train", "deps": [{"step": "split", "kind": "data"}]},
            {"name": "eval", "label": "eval", "deps": [{"step": "train<x>", "kind": "data"}, {"step": "split", "kind": "data"}]},
        ]});
        let states = BTreeMap::from([("split".to_string(), "succeeded".to_string())]);
        let s = svg(&g, &states);
        assert!(s.contains("id=\"node-split\" class=\"node st-succeeded\""));
        assert!(s.contains("id=\"node-train&lt;x&gt;\" class=\"node st-pending\""));
        assert_eq!(s.matches("class=\"edge\"").count(), 3);
        // Three columns: eval is after train, which is after split.
        assert!(s.contains(&format!("x=\"{:.1}\"", MARGIN + 2.0 * (BOX_W + GAP_X))));
    }
}
