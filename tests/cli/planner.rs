//! Property tests of the planner through the library API: for random DAGs
//! of command steps, the planned order and the ready queue never run a step
//! before what it depends on, and a back edge is always reported as a cycle.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use pipeline::dag::{Plan, ReadyQueue};
use pipeline::spec::source::Source;
use pipeline::spec::{LoadOptions, load_source};
use proptest::prelude::*;

/// A random DAG: step `i` depends on some steps `j < i`, through `after:` or
/// through a data reference to `j`'s output. `order` is the order the steps
/// are written in the file, so file order and dependency order differ.
#[derive(Debug, Clone)]
struct Dag {
    /// `deps[i]`: (j, by data?) for each dependency of step i.
    deps: Vec<Vec<(usize, bool)>>,
    order: Vec<usize>,
}

fn dag(max_steps: usize) -> impl Strategy<Value = Dag> {
    (1..=max_steps)
        .prop_flat_map(|n| {
            let deps = (0..n)
                .map(|i| {
                    proptest::collection::vec((0..i.max(1), any::<bool>()), 0..=i.min(3)).prop_map(
                        move |v| {
                            // Step 0 has nothing before it; drop duplicate targets.
                            let mut seen = BTreeSet::new();
                            v.into_iter()
                                .filter(|(j, _)| i > 0 && seen.insert(*j))
                                .collect::<Vec<_>>()
                        },
                    )
                })
                .collect::<Vec<_>>();
            let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
            (deps, order)
        })
        .prop_map(|(deps, order)| Dag { deps, order })
}

fn step_name(i: usize) -> String {
    format!("s{i}")
}

/// The pipeline file for `dag`, with an optional extra `after:` edge `from -> to`.
fn yaml(dag: &Dag, extra: Option<(usize, usize)>) -> String {
    let mut y = String::from("name: prop\nsteps:\n");
    for &i in &dag.order {
        y.push_str(&format!(
            "  {}:\n    kind: command\n    run: \"true\"\n    outputs: [out]\n",
            step_name(i)
        ));
        let data: Vec<usize> = dag.deps[i].iter().filter(|d| d.1).map(|d| d.0).collect();
        let mut after: Vec<usize> = dag.deps[i].iter().filter(|d| !d.1).map(|d| d.0).collect();
        if let Some((from, _)) = extra.filter(|&(_, to)| to == i) {
            after.push(from);
        }
        if !data.is_empty() {
            y.push_str("    inputs:\n");
            for j in data {
                y.push_str(&format!("      in{j}: {}.out\n", step_name(j)));
            }
        }
        if !after.is_empty() {
            let names: Vec<String> = after.iter().map(|&j| step_name(j)).collect();
            y.push_str(&format!("    after: [{}]\n", names.join(", ")));
        }
    }
    y
}

fn load(text: String) -> Result<Plan, String> {
    let source = Arc::new(Source {
        name: "p.yaml".into(),
        text,
    });
    let loaded =
        load_source(source, Path::new("."), &LoadOptions::default()).map_err(|e| e.to_string())?;
    Plan::build(Arc::new(loaded.pipeline), &loaded.source).map_err(|d| d.to_string())
}

/// Maps plan indices (file order) back to the generated step numbers.
fn ids(plan: &Plan) -> Vec<usize> {
    plan.pipeline
        .steps
        .iter()
        .map(|s| s.name()[1..].parse().expect("generated name"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn planned_order_respects_every_dependency(d in dag(14)) {
        let plan = load(yaml(&d, None)).map_err(TestCaseError::fail)?;
        let ids = ids(&plan);
        prop_assert_eq!(plan.order.len(), d.deps.len());
        let mut position = vec![usize::MAX; d.deps.len()];
        for (pos, &idx) in plan.order.iter().enumerate() {
            prop_assert_eq!(position[ids[idx]], usize::MAX, "step planned twice");
            position[ids[idx]] = pos;
        }
        for (i, deps) in d.deps.iter().enumerate() {
            for &(j, _) in deps {
                prop_assert!(
                    position[j] < position[i],
                    "s{} is planned before its dependency s{}: {:?}", i, j, plan.order
                );
            }
        }
        // The plan's own view of the graph agrees with what was written.
        for (idx, &i) in ids.iter().enumerate() {
            let got: BTreeSet<usize> = plan.deps(idx).into_iter().map(|(j, _)| ids[j]).collect();
            let want: BTreeSet<usize> = d.deps[i].iter().map(|&(j, _)| j).collect();
            prop_assert_eq!(got, want, "dependencies of s{}", i);
        }
    }

    #[test]
    fn ready_queue_hands_out_each_step_once_after_its_deps(
        d in dag(14),
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 64),
        finish_first in proptest::collection::vec(any::<bool>(), 64),
    ) {
        let plan = load(yaml(&d, None)).map_err(TestCaseError::fail)?;
        let ids = ids(&plan);
        let n = d.deps.len();
        let mut queue = ReadyQueue::new(&plan);
        let mut running: Vec<usize> = Vec::new();
        let mut finished = vec![false; n];
        let mut handed_out = vec![false; n];
        let mut round = 0usize;
        // Interleave dequeues and finishes at random, as a scheduler with
        // steps of random durations would.
        loop {
            let coin = finish_first[round % finish_first.len()];
            let pick = picks[round % picks.len()];
            round += 1;
            prop_assert!(round < 10 * n + 10, "the queue stalled");
            if (coin || !queue.has_ready()) && !running.is_empty() {
                let idx = running.swap_remove(pick.index(running.len()));
                finished[ids[idx]] = true;
                queue.finish(idx);
                continue;
            }
            match queue.dequeue() {
                Some(idx) => {
                    let i = ids[idx];
                    prop_assert!(!handed_out[i], "s{} handed out twice", i);
                    handed_out[i] = true;
                    for &(j, _) in &d.deps[i] {
                        prop_assert!(finished[j], "s{} handed out before s{} finished", i, j);
                    }
                    running.push(idx);
                }
                None if running.is_empty() => break,
                None => {}
            }
        }
        prop_assert!(handed_out.iter().all(|&h| h), "steps never handed out: {:?}", handed_out);
    }

    #[test]
    fn a_back_edge_is_reported_as_a_cycle(d in dag(12), a in any::<proptest::sample::Index>(), b in any::<proptest::sample::Index>()) {
        // Take a written dependency `j -> i` (and, when there is one, a step
        // `tail` that depends on `i`); making `j` wait for `tail` closes a
        // cycle of two or three steps.
        let edges: Vec<(usize, usize)> = d
            .deps
            .iter()
            .enumerate()
            .flat_map(|(i, ds)| ds.iter().map(move |&(j, _)| (j, i)))
            .collect();
        prop_assume!(!edges.is_empty());
        let (j, i) = edges[a.index(edges.len())];
        let mut tail = i;
        let downstream: Vec<usize> = (0..d.deps.len())
            .filter(|&k| d.deps[k].iter().any(|&(x, _)| x == tail))
            .collect();
        if !downstream.is_empty() {
            tail = downstream[b.index(downstream.len())];
        }
        // `j` now waits for `tail`, which (through i) waits for `j`.
        let err = match load(yaml(&d, Some((tail, j)))) {
            Ok(plan) => return Err(TestCaseError::fail(format!("planned a cycle: {:?}", plan.order))),
            Err(e) => e,
        };
        prop_assert!(err.contains("cycle"), "not a cycle error: {}", err);
        // The message names the cycle as `x -> ... -> x`.
        let line = err.lines().next().unwrap_or_default();
        let path = line.rsplit(": ").next().unwrap_or_default();
        let names: Vec<&str> = path.split(" -> ").collect();
        prop_assert!(names.len() >= 3, "no `a -> b -> a` path in: {}", line);
        prop_assert_eq!(names.first(), names.last(), "the path does not close: {}", line);
        prop_assert!(names.contains(&step_name(j).as_str()), "s{} is not in: {}", j, line);
    }
}
