//! A workflow's stage graph as an SVG picture.
//!
//! Stages are laid out in layers by their longest path from a root (a
//! stage sits one layer right of its latest upstream stage), each layer a
//! column in document order, and each dependency an arrow from the upstream
//! stage's right edge to the downstream stage's left edge. Every node is a
//! `<g class="node" data-task-id data-state>`, so the page's script can
//! recolour a stage when its state changes.

use std::collections::HashMap;
use std::fmt::Write as _;

/// One stage as the graph needs it.
pub struct Node<'a> {
    /// Stage name.
    pub name: &'a str,
    /// Its task's id.
    pub task_id: &'a str,
    /// Its state.
    pub state: &'a str,
    /// The stages it waits for.
    pub depends_on: &'a [String],
}

const NODE_W: f64 = 150.0;
const NODE_H: f64 = 44.0;
const GAP_X: f64 = 60.0;
const GAP_Y: f64 = 18.0;
const PAD: f64 = 10.0;
/// Room above the first row for arrows that jump over a layer.
const ARC_ROOM: f64 = 30.0;

/// The layer of each stage: 0 for a root, else one more than its deepest
/// upstream stage. A reference to an unknown stage is ignored; workflows
/// are checked acyclic on submit, and a cycle here would only stop at the
/// stage count.
fn layers(nodes: &[Node<'_>]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(at, node)| (node.name, at))
        .collect();
    let mut layer = vec![0usize; nodes.len()];
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (at, node) in nodes.iter().enumerate() {
            let deepest = node
                .depends_on
                .iter()
                .filter_map(|upstream| index.get(upstream.as_str()))
                .map(|&upstream| layer[upstream] + 1)
                .max()
                .unwrap_or(0);
            if deepest > layer[at] {
                layer[at] = deepest;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG drawing of `nodes`, every text escaped.
pub fn draw(nodes: &[Node<'_>]) -> String {
    let layer = layers(nodes);
    let mut row_in_layer: HashMap<usize, usize> = HashMap::new();
    let mut position = Vec::with_capacity(nodes.len());
    for &at_layer in &layer {
        let row = row_in_layer.entry(at_layer).or_insert(0);
        position.push((
            PAD + at_layer as f64 * (NODE_W + GAP_X),
            PAD + ARC_ROOM + *row as f64 * (NODE_H + GAP_Y),
        ));
        *row += 1;
    }
    let columns = layer.iter().max().map_or(1, |deepest| deepest + 1);
    let rows = row_in_layer.values().max().copied().unwrap_or(1);
    let width = 2.0 * PAD + columns as f64 * NODE_W + (columns as f64 - 1.0) * GAP_X;
    let height = 2.0 * PAD + ARC_ROOM + rows as f64 * NODE_H + (rows as f64 - 1.0) * GAP_Y;
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(at, node)| (node.name, at))
        .collect();

    let mut svg = format!(
        r#"<svg class="graph" id="stage-graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="stage graph">"#
    );
    svg.push_str(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>"#,
    );
    for (at, node) in nodes.iter().enumerate() {
        let (x2, y2) = position[at];
        for upstream in node.depends_on {
            let Some(&from) = index.get(upstream.as_str()) else {
                continue;
            };
            let (x1, y1) = position[from];
            if layer[at] > layer[from] + 1 {
                // Over the stages between: from the top of one to the top
                // of the other, arcing above the row.
                let (sx, sy) = (x1 + NODE_W / 2.0, y1);
                let (ex, ey) = (x2 + NODE_W / 2.0, y2 - 2.0);
                let top = sy.min(ey) - ARC_ROOM + 4.0;
                let _ = write!(
                    svg,
                    r#"<path class="edge" d="M {sx} {sy} C {sx} {top}, {ex} {top}, {ex} {ey}" marker-end="url(#arrow)"/>"#,
                );
                continue;
            }
            let (sx, sy) = (x1 + NODE_W, y1 + NODE_H / 2.0);
            let (ex, ey) = (x2 - 2.0, y2 + NODE_H / 2.0);
            let bend = (ex - sx) / 2.0;
            let _ = write!(
                svg,
                r#"<path class="edge" d="M {sx} {sy} C {} {sy}, {} {ey}, {ex} {ey}" marker-end="url(#arrow)"/>"#,
                sx + bend,
                ex - bend,
            );
        }
    }
    for (at, node) in nodes.iter().enumerate() {
        let (x, y) = position[at];
        let name = escape(node.name);
        let state = escape(node.state);
        let _ = write!(
            svg,
            r##"<g class="node" data-task-id="{id}" data-state="{state}" data-stage="{name}"><a href="/tasks/{id}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8"/><text class="stage-name" x="{tx}" y="{ty1}">{name}</text><text class="stage-state" x="{tx}" y="{ty2}">{state}</text><title>{name}: {state}</title></a></g>"##,
            id = escape(node.task_id),
            tx = x + 10.0,
            ty1 = y + 18.0,
            ty2 = y + 35.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node<'a>(name: &'a str, depends_on: &'a [String]) -> Node<'a> {
        Node {
            name,
            task_id: name,
            state: "pending",
            depends_on,
        }
    }

    #[test]
    fn a_stage_sits_right_of_its_deepest_upstream_stage() {
        let a: Vec<String> = vec![];
        let b = vec!["a".to_string()];
        let c = vec!["a".to_string(), "b".to_string()];
        let nodes = [node("a", &a), node("b", &b), node("c", &c)];
        assert_eq!(layers(&nodes), vec![0, 1, 2]);
    }

    #[test]
    fn names_are_escaped_and_every_stage_is_drawn_with_its_state() {
        let none: Vec<String> = vec![];
        let nodes = [node("<b>", &none), node("x", &none)];
        let svg = draw(&nodes);
        assert!(svg.contains("&lt;b&gt;"));
        assert!(!svg.contains("<b>"));
        assert_eq!(svg.matches(r#"class="node""#).count(), 2);
    }
}
