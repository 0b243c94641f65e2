//! The trained intent classifier: a one-vs-rest linear SVM over the index's TF-IDF features,
//! with a calibrated probability that its answer is right. Pure: no threads of its own beyond
//! the scoped workers of one `train` call, no clock, no I/O.
//!
//! - Training: for each intent, an L2-regularised squared-hinge SVM (liblinear's
//!   `L2R_L2LOSS_SVC_DUAL`, scikit-learn's `LinearSVC` defaults) solved by dual coordinate
//!   descent, with a bias feature of 1 (regularised, as liblinear's `intercept_scaling=1`).
//!   `C` is fixed at 1 (the standard choice for unit-length TF-IDF rows), never tuned to a
//!   test set. Shrinks the active set as liblinear does, and stops when the projected-gradient
//!   spread over all examples is under 0.1 (liblinear's default) or after [`MAX_EPOCHS`].
//! - Determinism: every epoch visits the examples in an order drawn from a fixed seed per
//!   intent, and intents are independent, so the model is the same bit for bit whatever the
//!   number of worker threads.
//! - Confidence: the model's answer is scored by `s = m1 + (m1 - max(m2, -1))`, the winning
//!   intent's margin plus its lead over the runner-up (a question one intent claims clearly and
//!   the others reject). The score the bot sees is `P(right | s)`, a Platt sigmoid fitted on
//!   held-out data from the knowledge base itself: a fifth of the intents (seeded choice) are
//!   held out whole and stand for out-of-scope questions (right means refused, so any answer
//!   is wrong), and a fifth of the other intents' examples (intents with 5 or more) are held
//!   out as in-scope questions; a model trained on the rest answers them. The final model is
//!   then trained on every example and keeps that sigmoid, the held-out intents' questions
//!   weighted to [`OUT_OF_SCOPE_PRIOR`] of the fit, so the bot's threshold reads as
//!   "answer when at least this likely to be right, counting questions the knowledge base does
//!   not cover". The sigmoid's slope is kept non-negative: a higher `s` never scores lower.
//! - When a model is worth training: [`trainable`] (at least 2 intents, 20 examples and 5 per
//!   intent on average, and a weight matrix of at most [`MAX_WEIGHTS`]). Below that the
//!   knowledge base answers from the nearest-example index alone.
//!
//! Invariants: `weights` is term-major (`weights[t * n_labels + c]`), `n_terms` rows of the
//! index the model was trained with, which it holds (`Arc`), so a query is featurised with the
//! same vocabulary and idf whatever index the knowledge base holds by then.

use std::sync::Arc;

use super::index::IntentIndex;

/// The SVM's regularisation (scikit-learn's and liblinear's default).
pub const C: f64 = 1.0;
/// liblinear's default stopping tolerance for the dual solvers.
const EPS: f64 = 0.1;
pub const MAX_EPOCHS: usize = 1_000;
const SEED: u64 = 0x6b65_6675_645f_6964;
/// A model of more weights than this is not trained (32 MiB of `f32`).
pub const MAX_WEIGHTS: usize = 8 << 20;
pub const MIN_INTENTS: usize = 2;
pub const MIN_EXAMPLES: usize = 20;
pub const MIN_MEAN_EXAMPLES_PER_INTENT: usize = 5;
/// The share of customer questions assumed to be about nothing in the knowledge base: the
/// held-out intents' questions are weighted to this share of the calibration data. An
/// assumption about traffic (one question in five), not fitted to any data set.
pub const OUT_OF_SCOPE_PRIOR: f64 = 0.2;
/// One in this many of an intent's examples is held out for calibration.
const HOLD_OUT_EVERY: usize = 5;

/// Whether a knowledge base of this shape gets a trained model (otherwise nearest example).
pub fn trainable(n_intents: usize, n_examples: usize, n_terms: usize) -> bool {
    n_intents >= MIN_INTENTS
        && n_examples >= MIN_EXAMPLES
        && n_examples >= MIN_MEAN_EXAMPLES_PER_INTENT * n_intents
        && n_intents.saturating_mul(n_terms + 1) <= MAX_WEIGHTS
}

/// The model's answer for one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub label: u32,
    /// The confidence statistic `m1 + (m1 - max(m2, -1))` (see the module header).
    pub margin: f32,
    /// Calibrated probability that `label` is right, in `[0, 1]`.
    pub score: f32,
}

/// Platt's sigmoid: `P = 1 / (1 + exp(a * s + b))`, with `a <= 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

impl Calibration {
    pub fn probability(&self, margin: f32) -> f32 {
        let z = self.a * f64::from(margin) + self.b;
        let p = if z >= 0.0 {
            (-z).exp() / (1.0 + (-z).exp())
        } else {
            1.0 / (1.0 + z.exp())
        };
        p as f32
    }

    /// Fits the sigmoid to `(margin, right)` pairs (Lin, Lin and Weng's Newton method with
    /// Platt's smoothed targets, as libsvm's `sigmoid_train`).
    pub fn fit(points: &[(f32, bool)]) -> Calibration {
        let weighted: Vec<(f32, bool, f64)> = points.iter().map(|&(f, y)| (f, y, 1.0)).collect();
        Calibration::fit_weighted(&weighted)
    }

    /// [`Calibration::fit`] with a weight per point.
    pub fn fit_weighted(points: &[(f32, bool, f64)]) -> Calibration {
        let pos: f64 = points.iter().filter(|p| p.1).map(|p| p.2).sum();
        let neg: f64 = points.iter().filter(|p| !p.1).map(|p| p.2).sum();
        let hi = (pos + 1.0) / (pos + 2.0);
        let lo = 1.0 / (neg + 2.0);
        let data: Vec<(f64, f64, f64)> = points
            .iter()
            .map(|&(f, y, w)| (f64::from(f), if y { hi } else { lo }, w))
            .collect();
        let objective = |a: f64, b: f64| -> f64 {
            data.iter()
                .map(|&(f, t, w)| {
                    let z = f * a + b;
                    w * if z >= 0.0 {
                        t * z + (-z).exp().ln_1p()
                    } else {
                        (t - 1.0) * z + z.exp().ln_1p()
                    }
                })
                .sum()
        };
        let (mut a, mut b) = (0.0, ((neg + 1.0) / (pos + 1.0)).ln());
        let mut value = objective(a, b);
        for _ in 0..100 {
            let (mut h11, mut h22, mut h21, mut g1, mut g2) = (1e-12, 1e-12, 0.0, 0.0, 0.0);
            for &(f, t, w) in &data {
                let z = f * a + b;
                let (p, q) = if z >= 0.0 {
                    let e = (-z).exp();
                    (e / (1.0 + e), 1.0 / (1.0 + e))
                } else {
                    let e = z.exp();
                    (1.0 / (1.0 + e), e / (1.0 + e))
                };
                let d2 = w * p * q;
                h11 += f * f * d2;
                h22 += d2;
                h21 += f * d2;
                let d1 = w * (t - p);
                g1 += f * d1;
                g2 += d1;
            }
            if g1.abs() < 1e-5 && g2.abs() < 1e-5 {
                break;
            }
            let det = h11 * h22 - h21 * h21;
            let da = -(h22 * g1 - h21 * g2) / det;
            let db = -(-h21 * g1 + h11 * g2) / det;
            let gd = g1 * da + g2 * db;
            let mut step = 1.0;
            while step >= 1e-10 {
                let (na, nb) = (a + step * da, b + step * db);
                let nv = objective(na, nb);
                if nv < value + 1e-4 * step * gd {
                    (a, b, value) = (na, nb, nv);
                    break;
                }
                step /= 2.0;
            }
            if step < 1e-10 {
                break;
            }
        }
        // A larger margin must never mean a less likely answer.
        Calibration { a: a.min(0.0), b }
    }
}

/// A trained model. Immutable.
pub struct LinearModel {
    index: Arc<IntentIndex>,
    n_labels: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    calibration: Calibration,
    /// Held-out examples the calibration was fitted on, how many were of known intents, and
    /// how many of those the held-out model got right (for reports).
    pub held_out: usize,
    pub held_out_in_scope: usize,
    pub held_out_right: usize,
}

/// Training rows in compressed-row form.
struct Rows {
    start: Vec<usize>,
    terms: Vec<u32>,
    values: Vec<f32>,
    labels: Vec<u32>,
}

impl Rows {
    fn new(index: &IntentIndex, examples: &[(&str, u32)]) -> Rows {
        let mut rows = Rows {
            start: vec![0],
            terms: Vec::new(),
            values: Vec::new(),
            labels: Vec::new(),
        };
        let mut x = Vec::new();
        for &(text, label) in examples {
            index.features(text, &mut x);
            for &(t, v) in &x {
                rows.terms.push(t);
                rows.values.push(v);
            }
            rows.start.push(rows.terms.len());
            rows.labels.push(label);
        }
        rows
    }

    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.start[i]..self.start[i + 1];
        (&self.terms[r.clone()], &self.values[r])
    }
}

/// SplitMix64: small, seeded, enough for shuffling.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// One intent's SVM by dual coordinate descent: `w` (bias last) over `rows` (indices).
fn train_one(data: &Rows, rows: &[usize], class: u32, n_terms: usize) -> Vec<f64> {
    let mut w = vec![0.0f64; n_terms + 1];
    let diag = 1.0 / (2.0 * C);
    let y: Vec<f64> = rows
        .iter()
        .map(|&i| if data.labels[i] == class { 1.0 } else { -1.0 })
        .collect();
    let qd: Vec<f64> = rows
        .iter()
        .map(|&i| {
            let (_, v) = data.row(i);
            v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() + 1.0 + diag
        })
        .collect();
    let mut alpha = vec![0.0f64; rows.len()];
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = Rng(SEED ^ u64::from(class).wrapping_mul(0x2545_f491_4f6c_dd1d));
    // liblinear's shrinking: an example at alpha = 0 whose gradient exceeds last epoch's
    // largest projected gradient leaves the active set until the active set converges.
    let mut active = rows.len();
    let mut pg_max_old = f64::INFINITY;
    for _ in 0..MAX_EPOCHS {
        rng.shuffle(&mut order[..active]);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        let mut s = 0;
        while s < active {
            let j = order[s];
            let (t, v) = data.row(rows[j]);
            let mut dot = w[n_terms];
            for (&t, &x) in t.iter().zip(v) {
                dot += w[t as usize] * f64::from(x);
            }
            let g = y[j] * dot - 1.0 + diag * alpha[j];
            let pg = if alpha[j] == 0.0 {
                if g > pg_max_old {
                    active -= 1;
                    order.swap(s, active);
                    continue;
                }
                g.min(0.0)
            } else {
                g
            };
            s += 1;
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[j];
                alpha[j] = (old - g / qd[j]).max(0.0);
                let d = (alpha[j] - old) * y[j];
                for (&t, &x) in t.iter().zip(v) {
                    w[t as usize] += d * f64::from(x);
                }
                w[n_terms] += d;
            }
        }
        if pg_max - pg_min <= EPS {
            if active == rows.len() {
                break;
            }
            active = rows.len();
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    w
}

/// Every intent's SVM over `rows`, on up to `threads` threads: (term-major weights, bias).
/// Inactive labels (`active[c] == false`) are not trained and never win (bias `-inf`).
fn train_all(
    data: &Rows,
    rows: &[usize],
    active: &[bool],
    n_terms: usize,
    threads: usize,
) -> (Vec<f32>, Vec<f32>) {
    let n_labels = active.len();
    let threads = threads.clamp(1, n_labels.max(1));
    let per_class: Vec<Vec<f64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    (k..n_labels)
                        .step_by(threads)
                        .filter(|&c| active[c])
                        .map(|c| (c, train_one(data, rows, c as u32, n_terms)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = vec![Vec::new(); n_labels];
        for worker in workers {
            for (c, w) in worker.join().expect("invariant: training does not panic") {
                out[c] = w;
            }
        }
        out
    });
    let mut weights = vec![0.0f32; n_terms * n_labels];
    let mut bias = vec![0.0f32; n_labels];
    for (c, w) in per_class.iter().enumerate() {
        if !active[c] {
            bias[c] = f32::NEG_INFINITY;
            continue;
        }
        for t in 0..n_terms {
            weights[t * n_labels + c] = w[t] as f32;
        }
        bias[c] = w[n_terms] as f32;
    }
    (weights, bias)
}

/// Top label and confidence statistic of `x` under (weights, bias); `None` for an empty
/// vector.
fn top(weights: &[f32], bias: &[f32], x: &[(u32, f32)]) -> Option<(u32, f32)> {
    if x.is_empty() || bias.is_empty() {
        return None;
    }
    let k = bias.len();
    let mut scores = bias.to_vec();
    for &(t, v) in x {
        let row = &weights[t as usize * k..(t as usize + 1) * k];
        for (s, &w) in scores.iter_mut().zip(row) {
            *s += v * w;
        }
    }
    let mut best = 0;
    for (c, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = c;
        }
    }
    let m1 = scores[best];
    let m2 = scores
        .iter()
        .enumerate()
        .filter(|&(c, _)| c != best)
        .map(|(_, &s)| s)
        .fold(-1.0f32, f32::max);
    Some((best as u32, m1 + (m1 - m2)))
}

impl LinearModel {
    /// Trains on `examples` (`(text, label)`, labels below `n_labels`), featurised by `index`
    /// (which should be built from the same examples), on up to `threads` threads.
    pub fn train(
        index: Arc<IntentIndex>,
        examples: &[(&str, u32)],
        n_labels: usize,
        threads: usize,
    ) -> LinearModel {
        let n_terms = index.n_terms();
        let data = Rows::new(&index, examples);
        let held = split(&data.labels, n_labels);
        let mut points = Vec::with_capacity(held.rows.len());
        if !held.rows.is_empty() {
            let (w, b) = train_all(&data, &held.fit, &held.known, n_terms, threads);
            let mut x = Vec::new();
            for &i in &held.rows {
                let (t, v) = data.row(i);
                x.clear();
                x.extend(t.iter().copied().zip(v.iter().copied()));
                let right = |label: u32| label == data.labels[i];
                let (s, y) = top(&w, &b, &x).map_or((-1.0, false), |(l, s)| (s, right(l)));
                points.push((s, y, held.known[data.labels[i] as usize]));
            }
        }
        // Weights: in-scope rows 1; out-of-scope rows together OUT_OF_SCOPE_PRIOR of the whole.
        let n_in = points.iter().filter(|p| p.2).count() as f64;
        let n_out = points.len() as f64 - n_in;
        let w_out = if n_in > 0.0 && n_out > 0.0 {
            OUT_OF_SCOPE_PRIOR / (1.0 - OUT_OF_SCOPE_PRIOR) * n_in / n_out
        } else {
            1.0
        };
        let weighted: Vec<(f32, bool, f64)> = points
            .iter()
            .map(|&(s, y, known)| (s, y, if known { 1.0 } else { w_out }))
            .collect();
        let calibration = Calibration::fit_weighted(&weighted);
        let all: Vec<usize> = (0..examples.len()).collect();
        let (weights, bias) = train_all(&data, &all, &vec![true; n_labels], n_terms, threads);
        LinearModel {
            index,
            n_labels,
            weights,
            bias,
            calibration,
            held_out: points.len(),
            held_out_in_scope: n_in as usize,
            held_out_right: points.iter().filter(|p| p.1).count(),
        }
    }

    /// The most likely label for `text`, or `None` when it shares no term with the training
    /// examples.
    pub fn predict(&self, text: &str) -> Option<Prediction> {
        let mut x = Vec::new();
        self.index.features(text, &mut x);
        let (label, margin) = top(&self.weights, &self.bias, &x)?;
        Some(Prediction {
            label,
            margin,
            score: self.calibration.probability(margin),
        })
    }

    pub fn n_labels(&self) -> usize {
        self.n_labels
    }

    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// Bytes of the weights and biases (the index it shares is counted by the index).
    pub fn memory_bytes(&self) -> usize {
        4 * (self.weights.len() + self.bias.len())
    }
}

/// The calibration split.
#[derive(Debug, PartialEq)]
struct HeldOut {
    /// Rows the calibration model trains on.
    fit: Vec<usize>,
    /// Rows it answers: in-scope ones of known labels, and every row of an unknown label.
    rows: Vec<usize>,
    /// Labels the calibration model knows.
    known: Vec<bool>,
}

/// Deterministic split: one in [`HOLD_OUT_EVERY`] labels (seeded choice) is unknown, all its
/// rows held out; of each known label with at least [`HOLD_OUT_EVERY`] rows, one in
/// [`HOLD_OUT_EVERY`] rows (seeded choice) is held out.
fn split(labels: &[u32], n_labels: usize) -> HeldOut {
    let mut rng = Rng(SEED);
    let mut order: Vec<usize> = (0..n_labels).collect();
    rng.shuffle(&mut order);
    let mut known = vec![true; n_labels];
    for &c in &order[..n_labels / HOLD_OUT_EVERY] {
        known[c] = false;
    }
    let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); n_labels];
    for (i, &l) in labels.iter().enumerate() {
        by_label[l as usize].push(i);
    }
    let mut is_held = vec![false; labels.len()];
    for (c, rows) in by_label.iter_mut().enumerate() {
        if !known[c] {
            rows.iter().for_each(|&i| is_held[i] = true);
        } else if rows.len() >= HOLD_OUT_EVERY {
            rng.shuffle(rows);
            rows[..rows.len() / HOLD_OUT_EVERY]
                .iter()
                .for_each(|&i| is_held[i] = true);
        }
    }
    HeldOut {
        fit: (0..labels.len()).filter(|&i| !is_held[i]).collect(),
        rows: (0..labels.len()).filter(|&i| is_held[i]).collect(),
        known,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(examples: &[(&str, u32)], n_labels: usize, threads: usize) -> LinearModel {
        let index = Arc::new(IntentIndex::build(examples.iter().copied()));
        LinearModel::train(index, examples, n_labels, threads)
    }

    const TOY: [(&str, u32); 12] = [
        ("refund my order", 0),
        ("i want a refund", 0),
        ("refund please", 0),
        ("money back refund", 0),
        ("where is my parcel", 1),
        ("parcel tracking", 1),
        ("track the parcel", 1),
        ("parcel not arrived", 1),
        ("opening hours today", 2),
        ("when are you open", 2),
        ("hours on sunday", 2),
        ("open hours", 2),
    ];

    #[test]
    fn separable_toy_data_is_learned_exactly() {
        let m = model(&TOY, 3, 1);
        for (text, label) in TOY {
            assert_eq!(m.predict(text).unwrap().label, label, "{text}");
        }
        assert_eq!(m.predict("refund").unwrap().label, 0);
        assert_eq!(m.predict("parcel").unwrap().label, 1);
        assert!(m.predict("zzz").is_none());
    }

    #[test]
    fn training_is_deterministic_whatever_the_threads() {
        let a = model(&TOY, 3, 1);
        let b = model(&TOY, 3, 1);
        let c = model(&TOY, 3, 3);
        assert_eq!(a.weights, b.weights);
        assert_eq!(a.weights, c.weights);
        assert_eq!(a.bias, c.bias);
        assert_eq!(a.calibration, c.calibration);
    }

    #[test]
    fn calibration_is_monotone_and_tracks_the_data() {
        // Right answers at high margins, wrong ones at low margins.
        let mut points = Vec::new();
        for i in 0..100 {
            let m = i as f32 / 50.0 - 1.0;
            points.push((m, i % 7 != 0 && m > -0.5));
        }
        let cal = Calibration::fit(&points);
        assert!(cal.a < 0.0, "{cal:?}");
        let ps: Vec<f32> = (-20..=20)
            .map(|i| cal.probability(i as f32 / 10.0))
            .collect();
        assert!(ps.windows(2).all(|w| w[0] <= w[1]), "{ps:?}");
        assert!(ps[0] < 0.3 && ps[40] > 0.8, "{ps:?}");
        // Inverted data may not make the score decrease with the margin.
        let inverted: Vec<(f32, bool)> = points.iter().map(|&(m, y)| (-m, y)).collect();
        let cal = Calibration::fit(&inverted);
        assert!(cal.probability(1.0) >= cal.probability(-1.0));
        // The model's scores are probabilities.
        let m = model(&TOY, 3, 1);
        let p = m.predict("refund my order").unwrap();
        assert!((0.0..=1.0).contains(&p.score), "{p:?}");
    }

    #[test]
    fn empty_and_one_intent_knowledge_bases() {
        let m = model(&[], 0, 2);
        assert!(m.predict("anything").is_none());
        let one = [("hello there", 0), ("hi", 0), ("hey you", 0)];
        let m = model(&one, 1, 2);
        assert_eq!(m.predict("hello").unwrap().label, 0);
        assert!(!trainable(1, 100, 50));
        assert!(!trainable(0, 0, 0));
        assert!(!trainable(3, 12, 20));
        assert!(trainable(3, 30, 20));
        assert!(!trainable(10_000, 100_000, 5_000));
    }

    #[test]
    fn split_holds_out_a_fifth_of_intents_and_of_examples() {
        // Two intents: none unknown; only the large one gives examples.
        let labels: Vec<u32> = (0..23).map(|i| u32::from(i >= 20)).collect();
        let h = split(&labels, 2);
        assert_eq!(h.rows.len(), 4);
        assert!(h.rows.iter().all(|&i| labels[i] == 0));
        assert_eq!(h.fit.len() + h.rows.len(), labels.len());
        assert_eq!(split(&labels, 2), h);
        // Ten intents of ten: two unknown (all 20 rows held), 8 x 2 rows held.
        let labels: Vec<u32> = (0..100).map(|i| i / 10).collect();
        let h = split(&labels, 10);
        assert_eq!(h.known.iter().filter(|k| !**k).count(), 2);
        assert_eq!(h.rows.len(), 20 + 16);
        assert!(h.fit.iter().all(|&i| h.known[labels[i] as usize]));
    }
}
