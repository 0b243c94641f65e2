//! Intent detection: which knowledge-base entry a customer's message is about, on the device,
//! in microseconds, in Chinese and English.
//!
//! - [`tokenize`]: words for spaced scripts, character unigrams + bigrams for CJK.
//! - [`index`]: TF-IDF (scikit-learn's sublinear, smoothed, l2 variant) in an inverted index,
//!   nearest example by cosine.
//!
//! - [`linear`]: a one-vs-rest linear SVM over the index's features, trained on the device,
//!   with a calibrated probability that its answer is right.
//!
//! Which answers: the trained model when the knowledge base is large enough to train on
//! ([`linear::trainable`]: 2+ intents, 20+ examples, 5+ per intent on average, a bounded
//! weight matrix) and a model is ready; otherwise the intent of the nearest example question,
//! scored by its cosine. The nearest-example index is always kept: it featurises text for the
//! model, finds "similar questions" for agents, and answers while a model trains.

pub mod index;
pub mod linear;
pub mod tokenize;

pub use index::{IntentIndex, Nearest};
pub use linear::{LinearModel, Prediction};
