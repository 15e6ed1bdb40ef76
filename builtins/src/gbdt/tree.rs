//! One regression tree as parallel arrays, the layout XGBoost itself uses.
//!
//! Arrays rather than boxed nodes keep prediction cache-friendly and make the
//! XGBoost export a field-by-field copy. A node is a leaf when `left[i] < 0`.

use serde::{Deserialize, Serialize};

/// A binary tree; node 0 is the root.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// Left child of each node, `-1` for a leaf.
    pub left: Vec<i32>,
    /// Right child of each node, `-1` for a leaf.
    pub right: Vec<i32>,
    /// Feature index tested at each split (0 for a leaf).
    pub feature: Vec<u32>,
    /// A row goes left when its value is `< threshold` (0 for a leaf).
    pub threshold: Vec<f32>,
    /// Where a missing (NaN) value goes.
    pub default_left: Vec<bool>,
    /// The leaf's output (learning rate applied); for a split node, the output it would have as a leaf.
    pub value: Vec<f32>,
    /// Loss reduction of each split (0 for a leaf).
    pub gain: Vec<f32>,
    /// Sum of hessians of the training rows reaching each node.
    pub cover: Vec<f32>,
}

impl Tree {
    pub fn n_nodes(&self) -> usize {
        self.left.len()
    }

    pub fn is_leaf(&self, node: usize) -> bool {
        self.left[node] < 0
    }

    /// Appends a leaf and returns its index.
    pub(crate) fn push_leaf(&mut self, value: f32, cover: f32) -> usize {
        self.left.push(-1);
        self.right.push(-1);
        self.feature.push(0);
        self.threshold.push(0.0);
        self.default_left.push(false);
        self.value.push(value);
        self.gain.push(0.0);
        self.cover.push(cover);
        self.left.len() - 1
    }

    /// Turns leaf `node` into a split with two new leaf children; returns their indices.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn split(
        &mut self,
        node: usize,
        feature: u32,
        threshold: f32,
        default_left: bool,
        gain: f32,
        left: (f32, f32),
        right: (f32, f32),
    ) -> (usize, usize) {
        let l = self.push_leaf(left.0, left.1);
        let r = self.push_leaf(right.0, right.1);
        self.left[node] = l as i32;
        self.right[node] = r as i32;
        self.feature[node] = feature;
        self.threshold[node] = threshold;
        self.default_left[node] = default_left;
        self.gain[node] = gain;
        (l, r)
    }

    /// The leaf `row` (all features, in training order) falls into.
    pub fn leaf_of(&self, row: &[f32]) -> usize {
        let mut n = 0usize;
        while self.left[n] >= 0 {
            let v = row[self.feature[n] as usize];
            let go_left = if v.is_nan() {
                self.default_left[n]
            } else {
                v < self.threshold[n]
            };
            n = if go_left { self.left[n] } else { self.right[n] } as usize;
        }
        n
    }

    pub fn predict_row(&self, row: &[f32]) -> f32 {
        self.value[self.leaf_of(row)]
    }

    /// Depth of the deepest leaf (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        fn walk(t: &Tree, n: usize) -> usize {
            if t.is_leaf(n) {
                0
            } else {
                1 + walk(t, t.left[n] as usize).max(walk(t, t.right[n] as usize))
            }
        }
        walk(self, 0)
    }

    /// Checks the arrays describe a tree (for files read from disk).
    pub(crate) fn validate(&self, n_features: usize) -> Result<(), String> {
        let n = self.left.len();
        let lens = [
            self.right.len(),
            self.feature.len(),
            self.threshold.len(),
            self.default_left.len(),
            self.value.len(),
            self.gain.len(),
            self.cover.len(),
        ];
        if n == 0 || lens.iter().any(|&l| l != n) {
            return Err("node arrays are empty or of unequal length".into());
        }
        for i in 0..n {
            let (l, r) = (self.left[i], self.right[i]);
            if (l < 0) != (r < 0) {
                return Err(format!("node {i} has one child"));
            }
            // Children after their parent rules out cycles.
            if l >= 0 && (l as usize <= i || r as usize <= i || l as usize >= n || r as usize >= n)
            {
                return Err(format!("node {i} has children out of order"));
            }
            if l >= 0 && self.feature[i] as usize >= n_features {
                return Err(format!(
                    "node {i} tests feature {} of {n_features}",
                    self.feature[i]
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_threshold_and_missing_direction() {
        let mut t = Tree::default();
        t.push_leaf(0.0, 10.0);
        let (l, _) = t.split(0, 1, 2.5, true, 1.0, (-1.0, 4.0), (1.0, 6.0));
        t.split(l, 0, 0.0, false, 0.5, (-2.0, 2.0), (-0.5, 2.0));
        assert_eq!(t.predict_row(&[5.0, 3.0]), 1.0);
        assert_eq!(t.predict_row(&[-1.0, 2.0]), -2.0);
        assert_eq!(t.predict_row(&[0.0, 2.0]), -0.5);
        assert_eq!(t.predict_row(&[f32::NAN, f32::NAN]), -0.5);
        assert_eq!(t.depth(), 2);
        t.validate(2).unwrap();
        assert!(t.validate(1).is_err());
    }
}
