//! The plan: steps as a graph (petgraph), checked for cycles, in a stable order.
//!
//! Edges come from references (`split.train`), from `when:` conditions that
//! read a step's metrics, and from `after:`. The plan is immutable; the
//! scheduler walks it with a [`ReadyQueue`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::spec::model::{Pipeline, RefTarget};
use crate::spec::source::{Diagnostic, Source, Span};

/// Why one step depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// The step reads the other's output.
    Data,
    /// The step's `when:` reads the other's metrics.
    Condition,
    /// `after:` only: order, no data.
    Order,
    /// A tune step reads its trials' results; a bayesian trial, earlier trials' results.
    Trial,
}

#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub kind: EdgeKind,
    /// Where the dependency was written.
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub pipeline: Arc<Pipeline>,
    /// Node i is step i (file order).
    pub graph: DiGraph<usize, Edge>,
    /// Topological order; among ready steps, file order first.
    pub order: Vec<usize>,
    /// Step index by name (lookups stay constant-time in big pipelines).
    index: HashMap<String, usize>,
}

impl Plan {
    /// Builds the plan; a cycle is an error naming the steps in it.
    pub fn build(pipeline: Arc<Pipeline>, source: &Arc<Source>) -> Result<Plan, Diagnostic> {
        let n = pipeline.steps.len();
        let index: HashMap<String, usize> = pipeline
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name().to_string(), i))
            .collect();
        let mut graph = DiGraph::<usize, Edge>::with_capacity(n, n * 2);
        for i in 0..n {
            graph.add_node(i);
        }
        for (i, step) in pipeline.steps.iter().enumerate() {
            let mut add = |dep: &str, kind: EdgeKind, span: Span| {
                if let Some(&j) = index.get(dep)
                    && j != i
                {
                    graph.add_edge(NodeIndex::new(j), NodeIndex::new(i), Edge { kind, span });
                }
            };
            for (_, r) in step.inputs() {
                if let RefTarget::Output { step: s, .. } = &r.target {
                    add(s, EdgeKind::Data, r.span);
                }
            }
            if let (Some(e), Some(w)) = (&step.when_expr, &step.when) {
                for path in e.paths() {
                    if path.len() == 3 && path[1] == "metrics" {
                        add(&path[0], EdgeKind::Condition, w.span);
                    }
                }
            }
            for a in &step.after {
                add(&a.value, EdgeKind::Order, a.span);
            }
            for t in crate::spec::tune::waits_for(step) {
                add(&t, EdgeKind::Trial, step.name.span);
            }
        }
        let order = match stable_topo_order(&graph) {
            Ok(o) => o,
            Err(cycle) => return Err(cycle_error(&pipeline, &graph, &cycle, source)),
        };
        Ok(Plan {
            pipeline,
            graph,
            order,
            index,
        })
    }

    /// The index of the step called `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.pipeline.steps.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pipeline.steps.is_empty()
    }

    /// The steps `i` waits for, with the kind of each dependency (deduplicated, strongest kind kept).
    pub fn deps(&self, i: usize) -> Vec<(usize, EdgeKind)> {
        let mut out: Vec<(usize, EdgeKind)> = Vec::new();
        for e in self
            .graph
            .edges_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
        {
            let j = petgraph::visit::EdgeRef::source(&e).index();
            let k = e.weight().kind;
            match out.iter_mut().find(|(x, _)| *x == j) {
                Some(entry) => {
                    if k == EdgeKind::Data {
                        entry.1 = k;
                    }
                }
                None => out.push((j, k)),
            }
        }
        out.sort_by_key(|(j, _)| *j);
        out
    }

    /// The steps that wait for `i`.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        let set: BTreeSet<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
            .map(|n| n.index())
            .collect();
        set.into_iter().collect()
    }
}

/// Kahn's algorithm, always taking the ready step that comes first in the file,
/// so plans read in the order the user wrote them. `Err` holds the steps left in cycles.
fn stable_topo_order(g: &DiGraph<usize, Edge>) -> Result<Vec<usize>, Vec<usize>> {
    let n = g.node_count();
    let mut indeg = vec![0usize; n];
    for e in g.raw_edges() {
        indeg[e.target().index()] += 1;
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for m in g.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing) {
            let m = m.index();
            indeg[m] -= 1;
            if indeg[m] == 0 {
                ready.insert(m);
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err((0..n).filter(|&i| indeg[i] > 0).collect())
    }
}

fn cycle_error(
    p: &Pipeline,
    g: &DiGraph<usize, Edge>,
    left: &[usize],
    source: &Arc<Source>,
) -> Diagnostic {
    // Find one concrete cycle among the strongly connected steps, starting from the first in the file.
    let sccs = petgraph::algo::tarjan_scc(g);
    let scc: Vec<usize> = sccs
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.into_iter().map(|n| n.index()).collect::<Vec<_>>())
        .min_by_key(|c| *c.iter().min().unwrap())
        .unwrap_or_else(|| left.to_vec());
    let start = *scc.iter().min().unwrap();
    let mut path = vec![start];
    let mut cur = start;
    // Walk successors inside the component until we come back to the start.
    loop {
        let next = g
            .neighbors_directed(NodeIndex::new(cur), petgraph::Direction::Outgoing)
            .map(|n| n.index())
            .filter(|m| scc.contains(m))
            .min_by_key(|m| {
                if *m == start {
                    0
                } else if path.contains(m) {
                    usize::MAX
                } else {
                    m + 1
                }
            });
        match next {
            Some(m) if m == start => break,
            Some(m) if !path.contains(&m) => {
                path.push(m);
                cur = m;
            }
            _ => break,
        }
    }
    let names: Vec<&str> = path
        .iter()
        .chain(std::iter::once(&start))
        .map(|&i| p.steps[i].name())
        .collect();
    // Point at the dependency that closes the cycle (written in the start step).
    let last = *path.last().unwrap();
    let span = g
        .find_edge(NodeIndex::new(last), NodeIndex::new(start))
        .map(|e| g[e].span)
        .unwrap_or(p.steps[start].name.span);
    Diagnostic::at(
        source,
        span,
        format!("the steps form a cycle: {}", names.join(" -> ")),
    )
    .label(format!(
        "`{}` depends on `{}` here",
        p.steps[start].name(),
        p.steps[last].name()
    ))
    .help("a step can only read what runs before it: remove one of these references")
}

/// Hands out steps whose dependencies have finished, like a build tool's job queue.
#[derive(Debug, Clone)]
pub struct ReadyQueue {
    /// Unfinished dependencies per step.
    waiting_on: Vec<usize>,
    /// Ready steps, by file order.
    ready: BTreeSet<usize>,
    dependents: Vec<Vec<usize>>,
}

impl ReadyQueue {
    pub fn new(plan: &Plan) -> Self {
        let n = plan.len();
        let waiting_on = (0..n).map(|i| plan.deps(i).len()).collect::<Vec<_>>();
        let ready = (0..n).filter(|&i| waiting_on[i] == 0).collect();
        let dependents = (0..n).map(|i| plan.dependents(i)).collect();
        ReadyQueue {
            waiting_on,
            ready,
            dependents,
        }
    }
    /// Takes the next ready step.
    pub fn dequeue(&mut self) -> Option<usize> {
        self.ready.pop_first()
    }
    /// Takes the first ready step `allowed` accepts (the others stay ready).
    pub fn dequeue_where(&mut self, allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let i = self.ready.iter().copied().find(|&i| allowed(i))?;
        self.ready.remove(&i);
        Some(i)
    }
    /// Marks `i` finished; steps it unblocks become ready.
    pub fn finish(&mut self, i: usize) {
        for &d in &self.dependents[i] {
            self.waiting_on[d] -= 1;
            if self.waiting_on[d] == 0 {
                self.ready.insert(d);
            }
        }
    }
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}
