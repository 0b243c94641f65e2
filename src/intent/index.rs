//! The TF-IDF index over example questions, answering "which example is nearest?" by cosine.
//!
//! Weights follow scikit-learn's `TfidfVectorizer(sublinear_tf=True)` with its defaults
//! (`smooth_idf=True`, `norm="l2"`): `tf = 1 + ln(count)`, `idf = ln((1 + n) / (1 + df)) + 1`,
//! every vector scaled to unit length, so a dot product is the cosine. Terms the index has not
//! seen are ignored in a query, as `transform` does.
//!
//! Layout: an inverted index in compressed-row form (for each term, the documents holding it
//! and their weights, in two flat arrays). A query touches only the postings of its own
//! terms, accumulating into a per-thread scratch array that is reset through the list of
//! documents it touched; it never passes over every document, and it does not allocate once
//! the scratch has grown. Immutable once built: a knowledge-base change builds a new index.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::tokenize::for_each_token;

/// The nearest example: its label (what the caller indexed it under) and the cosine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearest {
    pub label: u32,
    pub score: f32,
}

#[derive(Default)]
pub struct IntentIndex {
    vocabulary: HashMap<Box<str>, u32, BuildHasherDefault<FxHasher>>,
    idf: Vec<f32>,
    /// `postings_start[t]..postings_start[t + 1]` indexes `posting_doc` / `posting_weight`.
    postings_start: Vec<u32>,
    posting_doc: Vec<u32>,
    posting_weight: Vec<f32>,
    doc_label: Vec<u32>,
}

impl IntentIndex {
    /// Indexes `(text, label)` documents.
    pub fn build<'a>(documents: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut index = IntentIndex::default();
        let mut doc_terms: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut scratch = String::new();
        let mut term_ids = Vec::new();
        for (text, label) in documents {
            term_ids.clear();
            for_each_token(text, &mut scratch, |token| {
                let next = index.vocabulary.len() as u32;
                let id = *index.vocabulary.entry(token.into()).or_insert(next);
                term_ids.push(id);
            });
            doc_terms.push(counted(&mut term_ids));
            index.doc_label.push(label);
        }
        let n_terms = index.vocabulary.len();
        let mut df = vec![0u32; n_terms];
        for terms in &doc_terms {
            for &(t, _) in terms {
                df[t as usize] += 1;
            }
        }
        let n = doc_terms.len() as f64;
        index.idf = df
            .iter()
            .map(|&d| (((1.0 + n) / (1.0 + f64::from(d))).ln() + 1.0) as f32)
            .collect();
        index.postings_start = Vec::with_capacity(n_terms + 1);
        let mut start = 0u32;
        for &d in &df {
            index.postings_start.push(start);
            start += d;
        }
        index.postings_start.push(start);
        let total = start as usize;
        index.posting_doc = vec![0; total];
        index.posting_weight = vec![0.0; total];
        let mut fill: Vec<u32> = index.postings_start[..n_terms].to_vec();
        for (doc, terms) in doc_terms.iter().enumerate() {
            let weights: Vec<f32> = terms
                .iter()
                .map(|&(t, count)| sublinear_tf(count) * index.idf[t as usize])
                .collect();
            let norm = weights.iter().map(|w| w * w).sum::<f32>().sqrt();
            for (&(t, _), w) in terms.iter().zip(weights) {
                let slot = &mut fill[t as usize];
                index.posting_doc[*slot as usize] = doc as u32;
                index.posting_weight[*slot as usize] = w / norm;
                *slot += 1;
            }
        }
        index
    }

    /// How many documents are indexed.
    pub fn len(&self) -> usize {
        self.doc_label.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_label.is_empty()
    }

    /// How many distinct terms the index knows (the width of [`IntentIndex::features`]).
    pub fn n_terms(&self) -> usize {
        self.idf.len()
    }

    /// `text` as the index weighs it: `(term, weight)` pairs sorted by term, unit length,
    /// unknown terms dropped (empty when `text` shares no term with the index). The same
    /// vector a query is compared with, for models trained over the index's vocabulary.
    pub fn features(&self, text: &str, out: &mut Vec<(u32, f32)>) {
        out.clear();
        SCRATCH.with(|cell| {
            let s = &mut *cell.borrow_mut();
            s.terms.clear();
            for_each_token(text, &mut s.lowered, |token| {
                if let Some(&t) = self.vocabulary.get(token) {
                    s.terms.push(t);
                }
            });
            for (t, count) in counted(&mut s.terms) {
                out.push((t, sublinear_tf(count) * self.idf[t as usize]));
            }
        });
        let norm = out.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        for (_, w) in out.iter_mut() {
            *w /= norm;
        }
    }

    /// Bytes held by the index's arrays and vocabulary (an estimate: hash-table overhead is
    /// counted as one key pointer and id per slot).
    pub fn memory_bytes(&self) -> usize {
        let vocab: usize = self.vocabulary.keys().map(|k| k.len() + 16 + 4).sum();
        vocab
            + 4 * (self.idf.len()
                + self.postings_start.len()
                + self.posting_doc.len()
                + self.posting_weight.len()
                + self.doc_label.len())
    }

    /// The document nearest to `text`, or `None` when `text` shares no term with any.
    /// Ties go to the document indexed first (as an argmax over scikit-learn's matrix).
    pub fn nearest(&self, text: &str) -> Option<Nearest> {
        SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            self.nearest_with(text, scratch)
        })
    }

    fn nearest_with(&self, text: &str, s: &mut Scratch) -> Option<Nearest> {
        s.terms.clear();
        for_each_token(text, &mut s.lowered, |token| {
            if let Some(&t) = self.vocabulary.get(token) {
                s.terms.push(t);
            }
        });
        let query = counted(&mut s.terms);
        if query.is_empty() {
            return None;
        }
        let weights = query
            .iter()
            .map(|&(t, count)| sublinear_tf(count) * self.idf[t as usize]);
        let norm = weights.clone().map(|w| w * w).sum::<f32>().sqrt();
        if s.score.len() < self.len() {
            s.score.resize(self.len(), 0.0);
        }
        for (&(t, _), w) in query.iter().zip(weights) {
            let q = w / norm;
            let range = self.postings_start[t as usize] as usize
                ..self.postings_start[t as usize + 1] as usize;
            for (&doc, &d) in self.posting_doc[range.clone()]
                .iter()
                .zip(&self.posting_weight[range])
            {
                let slot = &mut s.score[doc as usize];
                if *slot == 0.0 {
                    s.touched.push(doc);
                }
                *slot += q * d;
            }
        }
        let mut best: Option<(u32, f32)> = None;
        for &doc in &s.touched {
            let score = s.score[doc as usize];
            s.score[doc as usize] = 0.0;
            let better = match best {
                None => true,
                Some((b, bs)) => score > bs || (score == bs && doc < b),
            };
            if better {
                best = Some((doc, score));
            }
        }
        s.touched.clear();
        best.map(|(doc, score)| Nearest {
            label: self.doc_label[doc as usize],
            score: score.min(1.0),
        })
    }
}

/// Per-thread query buffers: reused, so a query does not allocate.
#[derive(Default)]
struct Scratch {
    lowered: String,
    terms: Vec<u32>,
    score: Vec<f32>,
    touched: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn sublinear_tf(count: u32) -> f32 {
    1.0 + (count as f32).ln()
}

/// Sorts term ids and returns `(term, count)` pairs.
fn counted(terms: &mut [u32]) -> Vec<(u32, u32)> {
    terms.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(terms.len());
    for &t in terms.iter() {
        match out.last_mut() {
            Some((last, n)) if *last == t => *n += 1,
            _ => out.push((t, 1)),
        }
    }
    out
}

/// The Fx hash (as in rustc): a multiply and rotate per word. Vocabulary keys are short and
/// not attacker-chosen in bulk (a knowledge base is written by the shop), so a keyed SipHash
/// buys nothing here and costs a third of a query.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-5
    }

    /// Values computed by hand (and by scikit-learn 1.5: `TfidfVectorizer(sublinear_tf=True)`
    /// on the same three documents gives the same cosines).
    #[test]
    fn scores_match_hand_computed_tfidf() {
        let docs = ["refund my order", "order status", "refund refund please"];
        let index = IntentIndex::build(docs.iter().enumerate().map(|(i, d)| (*d, i as u32)));
        // n = 3. df: refund 2, my 1, order 2, status 1, please 1.
        let idf2 = (4.0f64 / 3.0).ln() + 1.0; // refund, order
        let idf1 = (4.0f64 / 2.0).ln() + 1.0; // my, status, please
                                              // Query "order status": weights order=idf2, status=idf1, unit length.
        let qn = (idf2 * idf2 + idf1 * idf1).sqrt();
        // Doc 1 is the same text: cosine 1. Doc 0 shares "order".
        let d0n = (idf2 * idf2 + idf1 * idf1 + idf2 * idf2).sqrt();
        let cos0 = (idf2 / qn) * (idf2 / d0n);
        let best = index.nearest("Order STATUS?").unwrap();
        assert_eq!(best.label, 1);
        assert!(close(best.score, 1.0), "{best:?}");
        let only_order = index.nearest("my order").unwrap();
        // "my order" vs doc 0 ("refund my order"): shares my and order.
        let q2n = (idf1 * idf1 + idf2 * idf2).sqrt();
        let cos_my_order = (idf1 * idf1 + idf2 * idf2) / (q2n * d0n);
        assert_eq!(only_order.label, 0);
        assert!(
            close(only_order.score, cos_my_order),
            "{only_order:?} vs {cos_my_order}"
        );
        assert!(cos0 < cos_my_order);
        // Sublinear tf: "refund refund please" has refund weight (1 + ln 2) * idf2.
        let w_refund = (1.0 + 2f64.ln()) * idf2;
        let d2n = (w_refund * w_refund + idf1 * idf1).sqrt();
        let q3 = index.nearest("refund").unwrap();
        let cos_d2 = w_refund / d2n; // query "refund" is the unit vector on refund
        let cos_d0 = idf2 / d0n;
        assert_eq!(q3.label, if cos_d2 > cos_d0 { 2 } else { 0 });
        assert!(close(q3.score, cos_d2.max(cos_d0)), "{q3:?}");
    }

    #[test]
    fn unknown_words_and_empty_text_match_nothing() {
        let index = IntentIndex::build([("退货", 0), ("shipping cost", 1)]);
        assert_eq!(index.nearest("zzz qqq"), None);
        assert_eq!(index.nearest(""), None);
        assert_eq!(index.nearest("我要退货").unwrap().label, 0);
        assert!(IntentIndex::build(std::iter::empty())
            .nearest("x")
            .is_none());
    }

    #[test]
    fn ties_go_to_the_first_document() {
        let index = IntentIndex::build([("hello there", 7), ("hello there", 3)]);
        assert_eq!(index.nearest("hello").unwrap().label, 7);
    }

    #[test]
    fn scratch_is_reset_between_queries() {
        let index = IntentIndex::build([("alpha beta", 0), ("gamma", 1)]);
        let first = index.nearest("alpha").unwrap();
        let again = index.nearest("alpha").unwrap();
        assert_eq!(first, again);
        assert_eq!(index.nearest("gamma").unwrap().label, 1);
    }
}
