//! Growing one tree, level by level (or best first), from gradient histograms.
//!
//! Each level: find the best split of every open node from its histogram,
//! partition the node's rows (a stable in-place partition of one index array,
//! so every node owns a contiguous range), then build the histogram of the
//! smaller child only and get its sibling by subtracting it from the parent's.
//!
//! With `grow_policy: lossguide` ([`TreeParams::lossguide`]) the open node
//! whose best split lowers the loss most is split next, one at a time (ties
//! to the lower node index), until `max_leaves` leaves, the depth limit or no
//! gainful split is left; the histograms and the subtraction trick are the same.
//!
//! Histograms are built in [`histogram`](super::histogram) and rows split in
//! [`partition`](super::partition). Determinism: parallel tasks cover fixed
//! chunks of rows or single nodes, each loops in row order on its own output,
//! and results are combined in a fixed order, so the tree does not depend on
//! the thread count; ties between equally good splits go to the lower feature
//! and bin.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::split::rng::Rng;

use super::binning::{BinnedMatrix, MISSING_BIN, SLOTS};
use super::histogram::{Entry, Hist, build_histograms};
use super::partition::partition_level;
use super::tree::Tree;
use crate::cluster::Cluster;
use crate::error::BuiltinError;

/// First and second derivative of the loss for one row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GradPair {
    pub g: f32,
    pub h: f32,
}

/// Gradient sums, in double precision so a million rows add up exactly enough.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sum {
    pub g: f64,
    pub h: f64,
}

impl Sum {
    pub fn plus(self, o: Sum) -> Sum {
        Sum {
            g: self.g + o.g,
            h: self.h + o.h,
        }
    }
    pub fn minus(self, o: Sum) -> Sum {
        Sum {
            g: self.g - o.g,
            h: self.h - o.h,
        }
    }
}

/// The regularisation and size limits of a tree.
#[derive(Debug, Clone, Copy)]
pub struct TreeParams {
    pub eta: f64,
    pub lambda: f64,
    pub alpha: f64,
    pub gamma: f64,
    pub min_child_weight: f64,
    /// Cap on a leaf's output before the learning rate (`max_delta_step`; 0: none).
    pub max_delta_step: f64,
    pub max_depth: usize,
    /// 0 means no limit.
    pub max_leaves: usize,
    /// Best-first growth (`grow_policy: lossguide`) instead of level by level.
    pub lossguide: bool,
    /// Fractions of the tree's features each depth, and of the depth's
    /// features each node, that a split may use (`colsample_bylevel`,
    /// `colsample_bynode`; 1: all).
    pub colsample_bylevel: f64,
    pub colsample_bynode: f64,
    /// Seeds this tree's depth and node samples of features.
    pub column_seed: u64,
}

impl TreeParams {
    /// The features a split of node `node` at `depth` may use: a sample of
    /// `tree`'s for the depth, then of the depth's for the node (as
    /// XGBoost's `colsample_bylevel` and `colsample_bynode`), each drawn from
    /// the tree's seed and the depth or node alone, so it is the same on
    /// every thread count and cluster node.
    fn node_features<'a>(&self, tree: &'a [bool], depth: usize, node: usize) -> Cow<'a, [bool]> {
        if self.colsample_bylevel >= 1.0 && self.colsample_bynode >= 1.0 {
            return Cow::Borrowed(tree);
        }
        let mut set = Cow::Borrowed(tree);
        if self.colsample_bylevel < 1.0 {
            let mut rng = Rng::stream(self.column_seed, (depth as u64) << 1);
            set = Cow::Owned(sample_features(&set, self.colsample_bylevel, &mut rng));
        }
        if self.colsample_bynode < 1.0 {
            let mut rng = Rng::stream(self.column_seed, ((node as u64) << 1) | 1);
            set = Cow::Owned(sample_features(&set, self.colsample_bynode, &mut rng));
        }
        set
    }

    fn shrink_l1(&self, g: f64) -> f64 {
        if g > self.alpha {
            g - self.alpha
        } else if g < -self.alpha {
            g + self.alpha
        } else {
            0.0
        }
    }
    /// The leaf output before the learning rate: the optimum, capped at
    /// `max_delta_step` when one is set (as XGBoost's `CalcWeight`).
    fn weight(&self, s: Sum) -> f64 {
        let w = -self.shrink_l1(s.g) / (s.h + self.lambda);
        if self.max_delta_step != 0.0 && w.abs() > self.max_delta_step {
            self.max_delta_step.copysign(w)
        } else {
            w
        }
    }
    /// How much a node with these sums lowers the loss as a leaf (up to a
    /// constant); with a capped output, the loss at that output.
    fn score(&self, s: Sum) -> f64 {
        if self.max_delta_step == 0.0 {
            let t = self.shrink_l1(s.g);
            return t * t / (s.h + self.lambda);
        }
        let w = self.weight(s);
        -(2.0 * s.g * w + (s.h + self.lambda) * w * w)
    }
    /// The leaf output, learning rate applied.
    pub fn leaf_value(&self, s: Sum) -> f64 {
        self.weight(s) * self.eta
    }
}

/// `fraction` of the features flagged in `set` (at least one), drawn with `rng`.
fn sample_features(set: &[bool], fraction: f64, rng: &mut Rng) -> Vec<bool> {
    let mut have: Vec<usize> = (0..set.len()).filter(|&f| set[f]).collect();
    let want = ((fraction * have.len() as f64) as usize)
        .max(1)
        .min(have.len());
    for i in 0..want {
        let j = i + rng.below(have.len() - i);
        have.swap(i, j);
    }
    let mut out = vec![false; set.len()];
    for &f in &have[..want] {
        out[f] = true;
    }
    out
}

/// The best split found for a node.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub gain: f64,
    pub feature: usize,
    /// Rows with bin `<= bin` go left.
    pub bin: u8,
    pub default_left: bool,
    pub left: Sum,
    pub right: Sum,
}

/// A node still open for splitting: its tree index, its rows and gradient sums.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    sum: Sum,
    hist: Hist,
}

/// A tree plus what training needs to apply it to the rows it was grown on.
pub struct Grown {
    pub tree: Tree,
    /// For each split node, the bin threshold (rows with bin `<= b` go left).
    pub split_bin: Vec<u8>,
    /// `(leaf node, start, end)`: the rows `rows[start..end]` ended in that leaf.
    pub leaves: Vec<(usize, usize, usize)>,
}

/// Grows one tree on `rows` (ascending row indices; reordered in place) using the
/// features flagged in `use_feature`.
///
/// With several nodes (`cluster`), `m`, `grads` and `rows` are this node's
/// shard; gradient sums and histograms are added over the nodes, so every
/// node grows the same tree. Gradients must be on a common grid (see
/// [`snap_to_grid`]) for those sums to be exact, and so the same whatever
/// the order of addition.
pub fn grow_tree(
    m: &BinnedMatrix,
    grads: &[GradPair],
    rows: &mut [u32],
    use_feature: &[bool],
    p: &TreeParams,
    cluster: &dyn Cluster,
) -> Result<Grown, BuiltinError> {
    if p.lossguide {
        return grow_lossguide(m, grads, rows, use_feature, p, cluster);
    }
    let multi = cluster.size() > 1;
    let (mut entries, root_sum, root_hist) = grow_root(m, grads, rows, use_feature, cluster)?;
    let mut tree = Tree::default();
    tree.push_leaf(p.leaf_value(root_sum) as f32, root_sum.h as f32);
    let mut split_bin = vec![0u8];
    let mut open = vec![Open {
        node: 0,
        start: 0,
        end: rows.len(),
        sum: root_sum,
        hist: root_hist,
    }];
    let mut leaves = Vec::new();
    let mut n_leaves = 1usize;
    for depth in 0..p.max_depth {
        if open.is_empty() {
            break;
        }
        let splits: Vec<Option<Split>> = open
            .par_iter()
            .map(|o| {
                let features = p.node_features(use_feature, depth, o.node);
                best_split(m, &o.hist, o.sum, &features, p)
            })
            .collect();
        // Under a leaf budget, the most useful splits of the level go first.
        let mut order: Vec<usize> = (0..open.len()).filter(|&i| splits[i].is_some()).collect();
        if p.max_leaves > 0 {
            order.sort_by(|&a, &b| {
                let (ga, gb) = (splits[a].unwrap().gain, splits[b].unwrap().gain);
                gb.total_cmp(&ga).then(a.cmp(&b))
            });
            let room = p.max_leaves.saturating_sub(n_leaves);
            order.truncate(room);
            order.sort_unstable();
        }
        n_leaves += order.len();
        let mut expand = vec![false; open.len()];
        for &i in &order {
            expand[i] = true;
        }
        let ranges: Vec<(usize, usize, Option<Split>)> = open
            .iter()
            .enumerate()
            .map(|(i, o)| (o.start, o.end, splits[i].filter(|_| expand[i])))
            .collect();
        let n_left = partition_level(&mut entries, m, &ranges);
        // Which child is smaller decides only which histogram is built (the
        // other is the difference, exactly); with several nodes, all must agree.
        let sizes: Vec<(u64, u64)> = if multi {
            let mut v: Vec<u64> = (0..open.len())
                .flat_map(|i| [n_left[i] as u64, (open[i].end - open[i].start) as u64])
                .collect();
            cluster.allreduce_sum_u64(&mut v)?;
            v.chunks_exact(2).map(|c| (c[0], c[1])).collect()
        } else {
            (0..open.len())
                .map(|i| (n_left[i] as u64, (open[i].end - open[i].start) as u64))
                .collect()
        };
        let mut next = Vec::new();
        let mut to_build = Vec::new();
        let mut parents = Vec::new();
        for (i, o) in open.into_iter().enumerate() {
            let Some(s) = splits[i].filter(|_| expand[i]) else {
                leaves.push((o.node, o.start, o.end));
                continue;
            };
            let mid = o.start + n_left[i];
            let (l, r) = apply_split(&mut tree, &mut split_bin, m, p, o.node, &s);
            let (gl, gn) = sizes[i];
            let left_smaller = gl <= gn - gl;
            to_build.push(if left_smaller {
                (o.start, mid - o.start)
            } else {
                (mid, o.end - mid)
            });
            parents.push((o.hist, left_smaller));
            next.push((l, o.start, mid, s.left));
            next.push((r, mid, o.end, s.right));
        }
        // Children at the depth limit, or beyond the leaf budget, are final: no histograms.
        let full = p.max_leaves > 0 && n_leaves >= p.max_leaves;
        if depth + 1 >= p.max_depth || full {
            leaves.extend(
                next.into_iter()
                    .map(|(node, start, end, _)| (node, start, end)),
            );
            open = Vec::new();
            break;
        }
        let mut built = build_histograms(m, &entries, &to_build, use_feature);
        if multi {
            reduce_histograms(&mut built, m, use_feature, cluster)?;
        }
        let mut new_open = Vec::with_capacity(next.len());
        let mut kids = next.into_iter();
        for (small, (parent, left_smaller)) in built.into_iter().zip(parents) {
            let big: Hist = parent
                .iter()
                .zip(&small)
                .map(|(a, b)| std::array::from_fn(|i| a[i].minus(b[i])))
                .collect();
            let (lh, rh) = if left_smaller {
                (small, big)
            } else {
                (big, small)
            };
            for hist in [lh, rh] {
                let (node, start, end, sum) = kids.next().expect("two children a split");
                new_open.push(Open {
                    node,
                    start,
                    end,
                    sum,
                    hist,
                });
            }
        }
        open = new_open;
    }
    leaves.extend(open.into_iter().map(|o| (o.node, o.start, o.end)));
    rows.par_iter_mut()
        .zip(entries.par_iter())
        .for_each(|(r, e)| *r = e.row);
    Ok(Grown {
        tree,
        split_bin,
        leaves,
    })
}

/// Turns leaf `node` into split `s` and records its bin threshold; returns
/// the two new leaves. Depth-wise and loss-guided growth share it.
fn apply_split(
    tree: &mut Tree,
    split_bin: &mut Vec<u8>,
    m: &BinnedMatrix,
    p: &TreeParams,
    node: usize,
    s: &Split,
) -> (usize, usize) {
    let children = tree.split(
        node,
        s.feature as u32,
        m.cuts[s.feature].cuts[s.bin as usize],
        s.default_left,
        s.gain as f32,
        (p.leaf_value(s.left) as f32, s.left.h as f32),
        (p.leaf_value(s.right) as f32, s.right.h as f32),
    );
    split_bin[node] = s.bin;
    split_bin.extend([0, 0]);
    children
}

/// The rows as histogram entries, the root's gradient sums and its histogram
/// (added over the nodes).
fn grow_root(
    m: &BinnedMatrix,
    grads: &[GradPair],
    rows: &[u32],
    use_feature: &[bool],
    cluster: &dyn Cluster,
) -> Result<(Vec<Entry>, Sum, Hist), BuiltinError> {
    let multi = cluster.size() > 1;
    // Rows travel with their gradients, so histogram loops read gradients in order.
    let entries: Vec<Entry> = rows
        .par_iter()
        .map(|&r| {
            let gp = grads[r as usize];
            Entry {
                row: r,
                g: gp.g,
                h: gp.h,
            }
        })
        .collect();
    let root_sum = entries
        .par_chunks(1 << 16)
        .map(|c| {
            c.iter().fold(Sum::default(), |s, e| {
                s.plus(Sum {
                    g: e.g as f64,
                    h: e.h as f64,
                })
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Sum::default(), Sum::plus);
    let root_sum = if multi {
        let mut v = [root_sum.g, root_sum.h];
        cluster.allreduce_sum_f64(&mut v)?;
        Sum { g: v[0], h: v[1] }
    } else {
        root_sum
    };
    let mut root_hist = build_histograms(m, &entries, &[(0, entries.len())], use_feature);
    if multi {
        reduce_histograms(&mut root_hist, m, use_feature, cluster)?;
    }
    let root_hist = root_hist.pop().expect("one histogram a node");
    Ok((entries, root_sum, root_hist))
}

/// A node open for splitting under `lossguide`, with its depth and best split.
struct Candidate {
    open: Open,
    depth: usize,
    split: Option<Split>,
}

/// Best-first growth: always split the open node with the largest gain.
fn grow_lossguide(
    m: &BinnedMatrix,
    grads: &[GradPair],
    rows: &mut [u32],
    use_feature: &[bool],
    p: &TreeParams,
    cluster: &dyn Cluster,
) -> Result<Grown, BuiltinError> {
    let multi = cluster.size() > 1;
    let (mut entries, root_sum, root_hist) = grow_root(m, grads, rows, use_feature, cluster)?;
    let mut tree = Tree::default();
    tree.push_leaf(p.leaf_value(root_sum) as f32, root_sum.h as f32);
    let mut split_bin = vec![0u8];
    let splittable = |depth: usize| depth < p.max_depth;
    let root_split = if splittable(0) {
        best_split(
            m,
            &root_hist,
            root_sum,
            &p.node_features(use_feature, 0, 0),
            p,
        )
    } else {
        None
    };
    let mut open = vec![Candidate {
        open: Open {
            node: 0,
            start: 0,
            end: rows.len(),
            sum: root_sum,
            hist: root_hist,
        },
        depth: 0,
        split: root_split,
    }];
    let mut leaves = Vec::new();
    let mut n_leaves = 1usize;
    while p.max_leaves == 0 || n_leaves < p.max_leaves {
        // The largest gain; among equal gains the lowest node, so growth is deterministic.
        let best = open
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.split.map(|s| (i, s.gain, c.open.node)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)));
        let Some((i, _, _)) = best else { break };
        let Candidate {
            open: o,
            depth,
            split,
        } = open.swap_remove(i);
        let s = split.expect("chosen for its split");
        let n_left = partition_level(&mut entries, m, &[(o.start, o.end, Some(s))])[0];
        let (gl, gn) = if multi {
            let mut v = [n_left as u64, (o.end - o.start) as u64];
            cluster.allreduce_sum_u64(&mut v)?;
            (v[0], v[1])
        } else {
            (n_left as u64, (o.end - o.start) as u64)
        };
        let mid = o.start + n_left;
        let (l, r) = apply_split(&mut tree, &mut split_bin, m, p, o.node, &s);
        n_leaves += 1;
        let full = p.max_leaves > 0 && n_leaves >= p.max_leaves;
        if !splittable(depth + 1) || full {
            leaves.push((l, o.start, mid));
            leaves.push((r, mid, o.end));
            continue;
        }
        let left_smaller = gl <= gn - gl;
        let small_range = if left_smaller {
            (o.start, mid - o.start)
        } else {
            (mid, o.end - mid)
        };
        let mut built = build_histograms(m, &entries, &[small_range], use_feature);
        if multi {
            reduce_histograms(&mut built, m, use_feature, cluster)?;
        }
        let small = built.pop().expect("one histogram a node");
        let big: Hist = o
            .hist
            .iter()
            .zip(&small)
            .map(|(a, b)| std::array::from_fn(|i| a[i].minus(b[i])))
            .collect();
        let (lh, rh) = if left_smaller {
            (small, big)
        } else {
            (big, small)
        };
        let kids = [(l, o.start, mid, s.left, lh), (r, mid, o.end, s.right, rh)];
        let found: Vec<Option<Split>> = kids
            .par_iter()
            .map(|(node, _, _, sum, hist)| {
                let features = p.node_features(use_feature, depth + 1, *node);
                best_split(m, hist, *sum, &features, p)
            })
            .collect();
        for ((node, start, end, sum, hist), split) in kids.into_iter().zip(found) {
            open.push(Candidate {
                open: Open {
                    node,
                    start,
                    end,
                    sum,
                    hist,
                },
                depth: depth + 1,
                split,
            });
        }
    }
    leaves.extend(
        open.into_iter()
            .map(|c| (c.open.node, c.open.start, c.open.end)),
    );
    rows.par_iter_mut()
        .zip(entries.par_iter())
        .for_each(|(r, e)| *r = e.row);
    Ok(Grown {
        tree,
        split_bin,
        leaves,
    })
}

/// Adds the histograms over the nodes: the value bins and the missing bin of
/// the features in use (the rest stay zero), in one message.
fn reduce_histograms(
    hists: &mut [Hist],
    m: &BinnedMatrix,
    use_feature: &[bool],
    cluster: &dyn Cluster,
) -> Result<(), BuiltinError> {
    let slots = |f: usize| {
        let nb = m.cuts[f].n_bins();
        (0..nb).chain(std::iter::once(MISSING_BIN as usize))
    };
    let used: Vec<usize> = (0..use_feature.len()).filter(|&f| use_feature[f]).collect();
    let mut flat = Vec::new();
    for h in hists.iter() {
        for &f in &used {
            for b in slots(f) {
                flat.push(h[f][b].g);
                flat.push(h[f][b].h);
            }
        }
    }
    cluster.allreduce_sum_f64(&mut flat)?;
    let mut it = flat.chunks_exact(2);
    for h in hists.iter_mut() {
        for &f in &used {
            for b in slots(f) {
                let v = it.next().expect("as many sums as sent");
                h[f][b] = Sum { g: v[0], h: v[1] };
            }
        }
    }
    Ok(())
}

/// The power of two that gradients bounded by `max_abs` are rounded to so
/// that any sum of `n` of them is exact in `f64` (and so does not depend on
/// the order of addition: not on threads, nor on how rows are split between
/// nodes). Sums stay below `2^51` units; a unit is about `n max_abs 2^-50`,
/// far below `f32` resolution for typical rows. 0 when there is nothing to round.
pub fn grid_unit(max_abs: f64, n: usize) -> f64 {
    let bound = max_abs * n.max(1) as f64;
    if !(bound > 0.0 && bound.is_finite()) {
        return 0.0;
    }
    let unit = 2f64.powi(bound.log2().ceil() as i32 - 50);
    if unit.is_normal() { unit } else { 0.0 }
}

/// Rounds to a multiple of `unit` (a power of two; 0 leaves `x` alone), for
/// `|x| <= 2^50 unit` as [`grid_unit`] guarantees.
#[inline]
pub fn snap(x: f64, unit: f64) -> f64 {
    if unit == 0.0 {
        x
    } else {
        snap_scaled(x, 1.0 / unit, unit)
    }
}

/// `x` rounded to a multiple of `unit`, with `inv = 1 / unit` (both powers
/// of two, so the scalings are exact). Adding and taking away `1.5 * 2^52`
/// rounds to the nearest integer for magnitudes below `2^51`: two additions
/// the compiler vectorises, where `round()` is a call a value.
#[inline(always)]
fn snap_scaled(x: f64, inv: f64, unit: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    ((x * inv + MAGIC) - MAGIC) * unit
}

/// The largest `|g|` and `|h|` of `grads`.
pub fn max_abs(grads: &[GradPair]) -> (f64, f64) {
    grads
        .par_chunks(1 << 16)
        .map(|c| {
            c.iter().fold((0f64, 0f64), |(a, b), gp| {
                (a.max((gp.g as f64).abs()), b.max((gp.h as f64).abs()))
            })
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)))
}

/// Rounds gradients and hessians onto the grids of units `(ug, uh)` (see
/// [`grid_unit`]). The rounded values are still exact `f32`s: a grid coarser
/// than a value's own precision keeps at most 24 significant bits of it.
pub fn snap_to_grid(grads: &mut [GradPair], (ug, uh): (f64, f64)) {
    if ug == 0.0 || uh == 0.0 {
        grads.par_chunks_mut(1 << 16).for_each(|c| {
            for gp in c {
                gp.g = snap(gp.g as f64, ug) as f32;
                gp.h = snap(gp.h as f64, uh) as f32;
            }
        });
        return;
    }
    let (ig, ih) = (1.0 / ug, 1.0 / uh);
    grads.par_chunks_mut(1 << 16).for_each(|c| {
        for gp in c {
            gp.g = snap_scaled(gp.g as f64, ig, ug) as f32;
            gp.h = snap_scaled(gp.h as f64, ih, uh) as f32;
        }
    });
}

/// The best split of a node over all used features, or `None` when no split
/// gains more than `gamma` with both children heavy enough.
fn best_split(
    m: &BinnedMatrix,
    hist: &[[Sum; SLOTS]],
    total: Sum,
    use_feature: &[bool],
    p: &TreeParams,
) -> Option<Split> {
    let parent = p.score(total);
    let mut best: Option<Split> = None;
    for (f, h) in hist.iter().enumerate() {
        if !use_feature[f] {
            continue;
        }
        let nb = m.cuts[f].n_bins();
        let missing = h[MISSING_BIN as usize];
        let has_missing = missing.h > 0.0 || missing.g != 0.0;
        let mut cum = Sum::default();
        for (b, &hb) in h.iter().enumerate().take(nb - 1) {
            cum = cum.plus(hb);
            let candidates = [(false, cum), (true, cum.plus(missing))];
            for (default_left, left) in candidates.into_iter().take(1 + usize::from(has_missing)) {
                let right = total.minus(left);
                if left.h < p.min_child_weight
                    || right.h < p.min_child_weight
                    || left.h <= 0.0
                    || right.h <= 0.0
                {
                    continue;
                }
                let gain = p.score(left) + p.score(right) - parent;
                if gain > best.map_or(0.0, |s| s.gain) {
                    best = Some(Split {
                        gain,
                        feature: f,
                        bin: b as u8,
                        default_left,
                        left,
                        right,
                    });
                }
            }
        }
    }
    // XGBoost's epsilon for "no real gain", and gamma, the minimum loss reduction.
    best.filter(|s| s.gain > 1e-6 && s.gain > p.gamma)
}

/// The leaf a row reaches, following the bins the tree was grown on.
pub fn leaf_by_bins(g: &Grown, m: &BinnedMatrix, row: usize) -> usize {
    let t = &g.tree;
    let mut n = 0usize;
    while t.left[n] >= 0 {
        let b = m.row(row)[t.feature[n] as usize];
        let left = if b == MISSING_BIN {
            t.default_left[n]
        } else {
            b <= g.split_bin[n]
        };
        n = if left { t.left[n] } else { t.right[n] } as usize;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TreeParams {
        TreeParams {
            eta: 1.0,
            lambda: 0.0,
            alpha: 0.0,
            gamma: 0.0,
            min_child_weight: 0.0,
            max_delta_step: 0.0,
            max_depth: 3,
            max_leaves: 0,
            lossguide: false,
            colsample_bylevel: 1.0,
            colsample_bynode: 1.0,
            column_seed: 0,
        }
    }

    #[test]
    fn feature_samples_nest_and_depend_only_on_the_seed_depth_and_node() {
        let tree = [true, true, false, true, true, true, true, false, true];
        let p = TreeParams {
            colsample_bylevel: 0.5,
            colsample_bynode: 0.5,
            column_seed: 42,
            ..params()
        };
        let level_only = TreeParams {
            colsample_bynode: 1.0,
            ..p
        };
        for depth in 0..4 {
            let level = level_only.node_features(&tree, depth, 99);
            // 7 of the tree's features: 3 a depth, then 1 a node.
            assert_eq!(level.iter().filter(|&&f| f).count(), 3);
            assert!(level.iter().zip(&tree).all(|(l, t)| !l || *t));
            // Every node of a depth samples from the same depth set.
            assert_eq!(level, level_only.node_features(&tree, depth, 5));
            for node in [1, 2, 17] {
                let n = p.node_features(&tree, depth, node);
                assert_eq!(n.iter().filter(|&&f| f).count(), 1);
                assert!(n.iter().zip(level.iter()).all(|(n, l)| !n || *l));
                assert_eq!(n, p.node_features(&tree, depth, node));
            }
        }
        assert!(matches!(
            params().node_features(&tree, 0, 0),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn sums_on_the_grid_do_not_depend_on_their_order() {
        let mut state = 99u64;
        let mut grads: Vec<GradPair> = (0..10_000)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                GradPair {
                    g: ((u - 0.5) * 10f64.powi(i % 7 - 3)) as f32,
                    h: (u * 0.25) as f32,
                }
            })
            .collect();
        let (mg, mh) = max_abs(&grads);
        let units = (grid_unit(mg, grads.len()), grid_unit(mh, grads.len()));
        let before = grads.clone();
        snap_to_grid(&mut grads, units);
        for (a, b) in grads.iter().zip(&before) {
            assert!((a.g as f64 - b.g as f64).abs() <= units.0 / 2.0);
            assert_eq!(snap(a.g as f64, units.0), a.g as f64, "on the grid, as f32");
        }
        let forward: f64 = grads.iter().map(|g| g.g as f64).sum();
        let backward: f64 = grads.iter().rev().map(|g| g.g as f64).sum();
        let pairs: f64 = grads
            .chunks(2)
            .map(|c| c.iter().map(|g| g.g as f64).sum::<f64>())
            .sum();
        assert_eq!(forward, backward);
        assert_eq!(forward, pairs);
        let raw_f: f64 = before.iter().map(|g| g.g as f64).sum();
        let raw_b: f64 = before.iter().rev().map(|g| g.g as f64).sum();
        assert_ne!(
            raw_f, raw_b,
            "the data must be order-sensitive without the grid"
        );
    }

    #[test]
    fn finds_the_step_and_sends_missing_the_right_way() {
        // Target +1 above x = 5 and for missing x, -1 below: squared-error gradients at margin 0.
        let x: Vec<f32> = (0..20)
            .map(|i| if i % 5 == 0 { f32::NAN } else { i as f32 })
            .collect();
        let y: Vec<f32> = x
            .iter()
            .map(|&v| if v.is_nan() || v > 5.0 { 1.0 } else { -1.0 })
            .collect();
        let m = BinnedMatrix::build(&[&x], 20, 256);
        let grads: Vec<GradPair> = y.iter().map(|&t| GradPair { g: -t, h: 1.0 }).collect();
        let mut rows: Vec<u32> = (0..20).collect();
        let g = grow_tree(
            &m,
            &grads,
            &mut rows,
            &[true],
            &params(),
            &crate::cluster::Solo,
        )
        .unwrap();
        let t = &g.tree;
        assert_eq!(t.threshold[0], 6.0);
        assert!(!t.default_left[0]);
        for (i, &v) in x.iter().enumerate() {
            assert_eq!(t.predict_row(&[v]), y[i], "row {i}");
            assert_eq!(leaf_by_bins(&g, &m, i), t.leaf_of(&[v]));
        }
        let covered: usize = g.leaves.iter().map(|l| l.2 - l.1).sum();
        assert_eq!(covered, 20);
    }

    #[test]
    fn respects_depth_leaves_and_min_child_weight() {
        let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let grads: Vec<GradPair> = (0..64)
            .map(|i| GradPair {
                g: (i % 7) as f32 - 3.0,
                h: 1.0,
            })
            .collect();
        let m = BinnedMatrix::build(&[&x], 64, 256);
        let mut rows: Vec<u32> = (0..64).collect();
        let g = grow_tree(
            &m,
            &grads,
            &mut rows,
            &[true],
            &params(),
            &crate::cluster::Solo,
        )
        .unwrap();
        assert!(g.tree.depth() <= 3);
        let mut p = params();
        p.max_leaves = 3;
        let mut rows: Vec<u32> = (0..64).collect();
        let g = grow_tree(&m, &grads, &mut rows, &[true], &p, &crate::cluster::Solo).unwrap();
        assert_eq!(g.leaves.len(), 3);
        p.max_leaves = 0;
        p.min_child_weight = 40.0;
        let mut rows: Vec<u32> = (0..64).collect();
        let g = grow_tree(&m, &grads, &mut rows, &[true], &p, &crate::cluster::Solo).unwrap();
        assert_eq!(g.tree.n_nodes(), 1);
    }

    #[test]
    fn lossguide_splits_the_best_node_first_up_to_max_leaves() {
        // One feature; the gradient jumps at row 48, a little at 8 and 16.
        let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let grads: Vec<GradPair> = (0..64)
            .map(|i| GradPair {
                g: if i >= 48 {
                    5.0
                } else if i < 8 {
                    -1.0
                } else if i < 16 {
                    -0.5
                } else {
                    0.0
                },
                h: 1.0,
            })
            .collect();
        let m = BinnedMatrix::build(&[&x], 64, 256);
        let mut p = params();
        p.max_depth = 10;
        p.max_leaves = 3;
        p.lossguide = true;
        let mut rows: Vec<u32> = (0..64).collect();
        let g = grow_tree(&m, &grads, &mut rows, &[true], &p, &crate::cluster::Solo).unwrap();
        assert_eq!(g.leaves.len(), 3);
        // Best first: the big step at 48, then the best split of the left part;
        // the right part (all 5.0) has nothing to gain, so the tree is lopsided.
        let t = &g.tree;
        assert!((t.threshold[0] - 47.5).abs() < 1.0, "{:?}", t.threshold);
        let left = t.left[0] as usize;
        assert!(t.left[left] >= 0, "the second split goes to the left child");
        // Every row ends in exactly one leaf.
        let covered: usize = g.leaves.iter().map(|(_, s, e)| e - s).sum();
        assert_eq!(covered, 64);
        p.max_leaves = 0;
        p.max_depth = 2;
        let mut rows: Vec<u32> = (0..64).collect();
        let lg = grow_tree(&m, &grads, &mut rows, &[true], &p, &crate::cluster::Solo).unwrap();
        p.lossguide = false;
        let mut rows: Vec<u32> = (0..64).collect();
        let dw = grow_tree(&m, &grads, &mut rows, &[true], &p, &crate::cluster::Solo).unwrap();
        // Without a leaf budget both policies grow every gainful split to the depth limit.
        assert_eq!(lg.leaves.len(), dw.leaves.len());
    }

    /// Data big enough for several histogram and partition chunks a node.
    fn big() -> (BinnedMatrix, Vec<GradPair>) {
        let n = 3 * super::super::histogram::HIST_CHUNK + 123;
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let cols: Vec<Vec<f32>> = (0..3)
            .map(|j| {
                (0..n)
                    .map(|i| if (i + j) % 11 == 0 { f32::NAN } else { next() })
                    .collect()
            })
            .collect();
        let grads = (0..n)
            .map(|i| GradPair {
                g: cols[0][i].max(0.3) - cols[1][i] * next(),
                h: 0.5 + next(),
            })
            .collect();
        let refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
        (BinnedMatrix::build(&refs, n, 64), grads)
    }

    #[test]
    fn chunked_partition_is_a_stable_partition() {
        let (m, _) = big();
        let rows: Vec<u32> = (0..m.n_rows as u32).rev().collect();
        let s = Split {
            gain: 1.0,
            feature: 1,
            bin: 20,
            default_left: true,
            left: Sum::default(),
            right: Sum::default(),
        };
        let goes_left = |r: u32| {
            let b = m.row(r as usize)[1];
            b == MISSING_BIN || b <= 20
        };
        let n = rows.len();
        let original = rows.clone();
        let mut entries: Vec<Entry> = rows
            .iter()
            .map(|&row| Entry {
                row,
                ..Entry::default()
            })
            .collect();
        let n_left = partition_level(&mut entries, &m, &[(0, 5, None), (5, n, Some(s))]);
        let rows: Vec<u32> = entries.iter().map(|e| e.row).collect();
        // The node without a split is untouched; the other is split stably.
        assert_eq!(rows[..5], original[..5]);
        let lefts: Vec<u32> = original[5..]
            .iter()
            .copied()
            .filter(|&r| goes_left(r))
            .collect();
        let rights: Vec<u32> = original[5..]
            .iter()
            .copied()
            .filter(|&r| !goes_left(r))
            .collect();
        assert_eq!(n_left[1], lefts.len());
        assert_eq!(rows[5..5 + lefts.len()], lefts[..]);
        assert_eq!(rows[5 + lefts.len()..], rights[..]);
    }

    #[test]
    fn trees_do_not_depend_on_the_thread_count() {
        let (m, grads) = big();
        let p = TreeParams {
            max_depth: 5,
            ..params()
        };
        let grow_on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut rows: Vec<u32> = (0..m.n_rows as u32).collect();
                grow_tree(
                    &m,
                    &grads,
                    &mut rows,
                    &[true, true, true],
                    &p,
                    &crate::cluster::Solo,
                )
                .unwrap()
                .tree
            })
        };
        let one = grow_on(1);
        assert!(one.n_nodes() > 20);
        assert_eq!(one, grow_on(3));
    }
}
