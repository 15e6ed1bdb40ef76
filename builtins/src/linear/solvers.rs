//! The optimisers behind `optimizer`.
//!
//! Full-batch solvers (Newton, L-BFGS, FISTA) run until the objective stops
//! improving; they need no learning rate and give the same answer as any
//! other exact method, which is what makes results comparable with other
//! libraries. The mini-batch solvers (SGD, Adam) follow `epochs`,
//! `mini_batch_size` and `learning_rate` like SageMaker's trainer.

use crate::dense::{Rng, cholesky_solve};

use super::objective::Problem;

/// Where a solver stopped.
pub struct Solution {
    pub theta: Vec<f64>,
    /// Objective value at `theta` (smooth part plus any L1 term).
    pub objective: f64,
    pub iterations: usize,
}

type Log<'a> = &'a (dyn Fn(&str) + Sync);

fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Newton's method with a backtracking line search, for one-output problems
/// (logistic or squared loss). On least squares the first full step is the
/// exact solution of the normal equations. Stops when the largest gradient
/// entry is at most `gtol`, or the objective stops decreasing.
pub fn newton(p: &Problem, gtol: f64, log: Log) -> Solution {
    let m = p.dim();
    let mut theta = vec![0f64; m];
    let (mut f, mut g) = p.value_grad(&theta);
    let mut it = 0;
    while it < 50 {
        if inf_norm(&g) <= gtol {
            break;
        }
        it += 1;
        let h = p.hessian(&theta);
        let neg: Vec<f64> = g.iter().map(|v| -v).collect();
        let dir = solve_with_jitter(&h, m, &neg);
        let slope = dot(&g, &dir);
        let mut t = 1.0;
        let (cand, fc, gc) = loop {
            let cand: Vec<f64> = theta.iter().zip(&dir).map(|(a, d)| a + t * d).collect();
            let (fc, gc) = p.value_grad(&cand);
            if fc <= f + 1e-4 * t * slope || t < 1e-10 {
                break (cand, fc, gc);
            }
            t *= 0.5;
        };
        let stalled = f - fc <= 1e-15 * f.abs().max(1.0);
        log(&format!(
            "linear-learner: newton iteration {it}, objective {fc:.10e}, largest gradient entry {:.2e}",
            inf_norm(&gc)
        ));
        if fc <= f {
            theta = cand;
            f = fc;
            g = gc;
        }
        if stalled {
            break;
        }
    }
    Solution {
        theta,
        objective: f,
        iterations: it,
    }
}

/// Solves `h x = b`, adding a growing ridge when `h` is singular (constant
/// or duplicated features without `wd`), which picks a small-norm solution.
fn solve_with_jitter(h: &[f64], m: usize, b: &[f64]) -> Vec<f64> {
    let scale = (0..m)
        .map(|i| h[i * m + i].abs())
        .fold(0.0, f64::max)
        .max(1e-300);
    let mut jitter = 0.0;
    let mut hh = h.to_vec();
    loop {
        if let Some(x) = cholesky_solve(&hh, m, b)
            && x.iter().all(|v| v.is_finite())
        {
            return x;
        }
        jitter = if jitter == 0.0 {
            1e-12 * scale
        } else {
            jitter * 100.0
        };
        if jitter > 1e6 * scale {
            // Nothing positive definite nearby: fall back to a gradient step.
            return b.iter().map(|v| v / scale).collect();
        }
        hh.copy_from_slice(h);
        for i in 0..m {
            hh[i * m + i] += jitter;
        }
    }
}

/// Limited-memory BFGS (10 pairs) with a backtracking Armijo line search;
/// stops like scikit-learn's: largest gradient entry at most `gtol`, or a
/// relative decrease of the objective below `64 * f64::EPSILON`.
pub fn lbfgs(p: &Problem, gtol: f64, max_iter: usize, log: Log) -> Solution {
    const MEM: usize = 10;
    let m = p.dim();
    let mut x = vec![0f64; m];
    let (mut f, mut g) = p.value_grad(&x);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut it = 0;
    while it < max_iter && inf_norm(&g) > gtol {
        it += 1;
        // Two-loop recursion: dir = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let a = dot(s, &q) / dot(y, s);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y), a) in s_hist.iter().zip(&y_hist).zip(alphas.iter().rev()) {
            let b = dot(y, &q) / dot(y, s);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 || !slope.is_finite() {
            s_hist.clear();
            y_hist.clear();
            dir = g.iter().map(|v| -v).collect();
            slope = dot(&g, &dir);
        }
        let mut t = if s_hist.is_empty() {
            (1.0 / dot(&g, &g).sqrt()).min(1.0)
        } else {
            1.0
        };
        let (xn, fnew, gnew) = loop {
            let xn: Vec<f64> = x.iter().zip(&dir).map(|(a, d)| a + t * d).collect();
            let (fc, gc) = p.value_grad(&xn);
            if fc <= f + 1e-4 * t * slope || t < 1e-12 {
                break (xn, fc, gc);
            }
            t *= 0.5;
        };
        if fnew > f {
            break;
        }
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gnew.iter().zip(&g).map(|(a, b)| a - b).collect();
        if dot(&s, &y) > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
            if s_hist.len() == MEM {
                s_hist.remove(0);
                y_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
        }
        let rel = (f - fnew) / f.abs().max(fnew.abs()).max(1.0);
        x = xn;
        f = fnew;
        g = gnew;
        if it % 10 == 0 {
            log(&format!(
                "linear-learner: lbfgs iteration {it}, objective {f:.10e}"
            ));
        }
        if rel <= 64.0 * f64::EPSILON {
            break;
        }
    }
    Solution {
        theta: x,
        objective: f,
        iterations: it,
    }
}

/// Soft-thresholds the weights (not the bias, the last `c` entries).
fn shrink(theta: &mut [f64], n_weights: usize, amount: f64) {
    for v in &mut theta[..n_weights] {
        *v = v.signum() * (v.abs() - amount).max(0.0);
    }
}

/// FISTA (accelerated proximal gradient with adaptive restart) for
/// `smooth + l1 |W|_1`; the step size is found by backtracking. Stops when
/// the proximal gradient mapping is at most `gtol` in every entry.
pub fn fista(p: &Problem, l1: f64, gtol: f64, max_iter: usize, log: Log) -> Solution {
    let m = p.dim();
    let nw = p.d * p.c;
    let l1_term = |th: &[f64]| l1 * th[..nw].iter().map(|v| v.abs()).sum::<f64>();
    let mut x = vec![0f64; m];
    let mut fx = p.value_grad(&x).0;
    let mut y = x.clone();
    let mut t = 1.0f64;
    let mut lip = 1.0f64;
    let mut it = 0;
    while it < max_iter {
        it += 1;
        let (fy, gy) = p.value_grad(&y);
        let (xn, fxn) = loop {
            let mut xn: Vec<f64> = y.iter().zip(&gy).map(|(a, g)| a - g / lip).collect();
            shrink(&mut xn, nw, l1 / lip);
            let diff: Vec<f64> = xn.iter().zip(&y).map(|(a, b)| a - b).collect();
            let fxn = p.value_grad(&xn).0;
            if fxn <= fy + dot(&gy, &diff) + 0.5 * lip * dot(&diff, &diff) + 1e-12 * fy.abs()
                || lip > 1e12
            {
                break (xn, fxn);
            }
            lip *= 2.0;
        };
        let obj_new = fxn + l1_term(&xn);
        let obj_old = fx + l1_term(&x);
        // The gradient mapping `lip (y - xn)` is zero exactly at a minimiser.
        let residual = lip
            * xn.iter()
                .zip(&y)
                .fold(0.0f64, |mx, (a, b)| mx.max((a - b).abs()));
        let tn = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        // Restart the momentum when the step turns against the gradient
        // mapping (O'Donoghue and Candes): a test on directions, not on
        // objective values, so it stays reliable close to the optimum.
        let against: f64 = y
            .iter()
            .zip(&xn)
            .zip(&x)
            .map(|((yi, xni), xi)| (yi - xni) * (xni - xi))
            .sum();
        let restart = against > 0.0 || obj_new > obj_old;
        let (t_prev, tn) = if restart { (1.0, 1.0) } else { (t, tn) };
        y = xn
            .iter()
            .zip(&x)
            .map(|(a, b)| a + (t_prev - 1.0) / tn * (a - b))
            .collect();
        t = tn;
        x = xn;
        fx = fxn;
        lip *= 0.9;
        if it % 50 == 0 {
            log(&format!(
                "linear-learner: proximal iteration {it}, objective {obj_new:.10e}"
            ));
        }
        if residual <= gtol {
            break;
        }
    }
    Solution {
        objective: fx + l1_term(&x),
        theta: x,
        iterations: it,
    }
}

/// Settings of the mini-batch solvers.
pub struct MiniBatch {
    pub adam: bool,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub momentum: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub l1: f64,
    pub seed: u64,
    /// `(patience, tolerance)`: stop after `patience` epochs in which the
    /// objective fell by less than `tolerance` (relative) below its best.
    pub early_stopping: Option<(usize, f64)>,
}

/// Mini-batch SGD (with momentum) or Adam over seeded shuffles of the rows;
/// an L1 penalty is applied as a proximal step after each update.
pub fn minibatch(p: &Problem, s: &MiniBatch, log: Log) -> Solution {
    let m = p.dim();
    let nw = p.d * p.c;
    let mut theta = vec![0f64; m];
    let mut g = vec![0f64; m];
    let mut v = vec![0f64; m];
    let mut m2 = vec![0f64; m];
    let mut order: Vec<usize> = (0..p.n).collect();
    let mut rng = Rng::new(s.seed);
    let mut step = 0i32;
    let mut epochs_run = 0;
    let (mut best, mut stale) = (f64::INFINITY, 0usize);
    log(&format!(
        "linear-learner: training up to {} epochs",
        s.epochs
    ));
    for epoch in 0..s.epochs {
        epochs_run = epoch + 1;
        rng.shuffle(&mut order);
        let mut loss = 0.0;
        let mut batches = 0;
        for batch in order.chunks(s.batch) {
            loss += p.batch_grad(&theta, batch, &mut g);
            batches += 1;
            step += 1;
            if s.adam {
                let (b1, b2) = (s.beta_1, s.beta_2);
                let c1 = 1.0 - b1.powi(step);
                let c2 = 1.0 - b2.powi(step);
                for i in 0..m {
                    v[i] = b1 * v[i] + (1.0 - b1) * g[i];
                    m2[i] = b2 * m2[i] + (1.0 - b2) * g[i] * g[i];
                    theta[i] -= s.learning_rate * (v[i] / c1) / ((m2[i] / c2).sqrt() + 1e-8);
                }
            } else {
                for i in 0..m {
                    v[i] = s.momentum * v[i] - s.learning_rate * g[i];
                    theta[i] += v[i];
                }
            }
            if s.l1 > 0.0 {
                shrink(&mut theta, nw, s.learning_rate * s.l1);
            }
        }
        log(&format!(
            "linear-learner: epoch {}, mean mini-batch loss {:.6e}",
            epoch + 1,
            loss / batches.max(1) as f64
        ));
        if let Some((patience, tol)) = s.early_stopping {
            let l1 = s.l1 * theta[..nw].iter().map(|v| v.abs()).sum::<f64>();
            let objective = p.value_grad(&theta).0 + l1;
            if objective < best - tol * best.abs() || !best.is_finite() {
                (best, stale) = (objective, 0);
            } else {
                stale += 1;
            }
            if stale >= patience {
                log(&format!(
                    "linear-learner: stopped early after epoch {}: the objective {objective:.6e} has not improved on {best:.6e} by a relative {tol} for {patience} epochs",
                    epoch + 1
                ));
                break;
            }
        }
    }
    let l1 = s.l1 * theta[..nw].iter().map(|v| v.abs()).sum::<f64>();
    Solution {
        objective: p.value_grad(&theta).0 + l1,
        theta,
        iterations: epochs_run,
    }
}
