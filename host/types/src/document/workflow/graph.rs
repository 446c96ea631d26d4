//! The checks of a workflow's graph: unique stage names, existing
//! `dependsOn` references, no cycles, depth at most [`MAX_DEPTH`], and
//! placeholders and conditions that refer to upstream stages only.

use std::collections::{BTreeSet, HashMap};

use super::stage::{MAX_DEPTH, Stage, relocate};
use crate::document::fields::{Errors, join};

/// Names, references, cycles, depth, and that placeholders and conditions
/// refer to upstream stages.
pub(super) fn check_graph(stages: &[Stage], errors: &mut Errors) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (at, stage) in stages.iter().enumerate() {
        if let Some(first) = index.insert(&stage.name, at) {
            errors.add(
                &join(&stage.path, "name"),
                format!(
                    "duplicate stage name {:?} (also {}); stage names must be unique",
                    stage.name, stages[first].path
                ),
            );
            index.insert(&stage.name, first);
        }
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (at, stage) in stages.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for (position, name) in stage.depends_on.iter().enumerate() {
            let path = format!("{}.dependsOn[{position}]", stage.path);
            match index.get(name.as_str()) {
                _ if !seen.insert(name) => {
                    errors.add(&path, format!("{name:?} is listed twice"));
                }
                Some(&upstream) if upstream == at => {
                    errors.add(&path, "a stage cannot depend on itself");
                }
                Some(&upstream) => edges[at].push(upstream),
                None => errors.add(&path, unknown_stage(name, stages)),
            }
        }
    }
    if !errors.0.is_empty() {
        return;
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&at| stages[at].name.as_str()).collect();
        errors.add(
            &format!("{}.dependsOn", stages[cycle[0]].path),
            format!(
                "the stages depend on each other in a cycle: {}; a workflow must be a graph without cycles",
                names.join(" → ")
            ),
        );
        return;
    }
    let depth = longest_chain(&edges);
    if depth > MAX_DEPTH {
        errors.add(
            "spec",
            format!(
                "the longest chain of dependent stages has {depth} stages, over the limit of {MAX_DEPTH}"
            ),
        );
    }
    let ancestors = ancestors(&edges);
    for (at, stage) in stages.iter().enumerate() {
        let upstream = |name: &str| {
            index
                .get(name)
                .is_some_and(|upstream| ancestors[at].contains(upstream))
        };
        for found in &stage.placeholders {
            let Some(name) = found.reference.stage() else {
                continue;
            };
            if !upstream(name) {
                errors.add(
                    &relocate(&found.path, &join(&stage.path, "spec")),
                    format!(
                        "{} refers to {}",
                        found.text,
                        not_upstream(name, &stage.name, stages)
                    ),
                );
            }
        }
        if let Some(condition) = &stage.condition
            && !upstream(&condition.stage)
        {
            errors.add(
                &format!("{}.condition.stage", stage.path),
                not_upstream(&condition.stage, &stage.name, stages),
            );
        }
    }
}

fn unknown_stage(name: &str, stages: &[Stage]) -> String {
    let names: Vec<&str> = stages.iter().map(|stage| stage.name.as_str()).collect();
    format!(
        "no stage is named {name:?}; the stages are: {}",
        names.join(", ")
    )
}

fn not_upstream(name: &str, stage: &str, stages: &[Stage]) -> String {
    if stages.iter().any(|other| other.name == name) {
        format!(
            "stage {name:?}, which is not upstream of {stage:?}: it may finish after {stage:?} starts; add it to dependsOn (directly or through a stage in between)"
        )
    } else {
        unknown_stage(name, stages)
    }
}

/// A cycle in the graph (`edges[a]` lists what `a` depends on), as the
/// stages along it, first one repeated at the end.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(at: usize, edges: &[Vec<usize>], marks: &mut [Mark], stack: &mut Vec<usize>) -> bool {
        marks[at] = Mark::Open;
        stack.push(at);
        for &next in &edges[at] {
            let mark = marks[next];
            if mark == Mark::Open {
                let start = stack.iter().position(|&s| s == next).unwrap_or(0);
                stack.drain(..start);
                stack.push(next);
                return true;
            }
            if mark == Mark::New && visit(next, edges, marks, stack) {
                return true;
            }
        }
        stack.pop();
        marks[at] = Mark::Done;
        false
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut stack = Vec::new();
    for start in 0..edges.len() {
        if marks[start] == Mark::New && visit(start, edges, &mut marks, &mut stack) {
            // The stack runs downstream → upstream; show it upstream first.
            stack.reverse();
            return Some(stack);
        }
    }
    None
}

/// The most stages on one chain of dependencies (the graph has no cycle).
fn longest_chain(edges: &[Vec<usize>]) -> usize {
    fn depth(at: usize, edges: &[Vec<usize>], memo: &mut [usize]) -> usize {
        if memo[at] == 0 {
            memo[at] = 1 + edges[at]
                .iter()
                .map(|&up| depth(up, edges, memo))
                .max()
                .unwrap_or(0);
        }
        memo[at]
    }
    let mut memo = vec![0; edges.len()];
    (0..edges.len())
        .map(|at| depth(at, edges, &mut memo))
        .max()
        .unwrap_or(0)
}

/// Every stage's upstream stages, direct or not.
fn ancestors(edges: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
    fn collect(at: usize, edges: &[Vec<usize>], memo: &mut Vec<Option<BTreeSet<usize>>>) {
        if memo[at].is_some() {
            return;
        }
        let mut all = BTreeSet::new();
        for &up in &edges[at] {
            collect(up, edges, memo);
            all.insert(up);
            all.extend(memo[up].iter().flatten().copied());
        }
        memo[at] = Some(all);
    }
    let mut memo = vec![None; edges.len()];
    for at in 0..edges.len() {
        collect(at, edges, &mut memo);
    }
    memo.into_iter().map(Option::unwrap_or_default).collect()
}
