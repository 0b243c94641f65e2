//! Intent detection: which knowledge-base entry a customer's message is about, on the device,
//! in microseconds, in Chinese and English.
//!
//! - [`tokenize`]: words for spaced scripts, character unigrams + bigrams for CJK.
//! - [`index`]: TF-IDF (scikit-learn's sublinear, smoothed, l2 variant) in an inverted index,
//!   nearest example by cosine.
//!
//! A message's intent is the entry of its nearest example question, and its score that
//! example's cosine (1-nearest-neighbour, as the benchmark's scikit-learn baseline).

pub mod index;
pub mod tokenize;

pub use index::{IntentIndex, Nearest};
