//! Smart routing: the knowledge base, the bot, the assignment scheduler and summaries.
//!
//! - [`knowledge`]: entries by intent and their intent index; import/export formats.
//! - [`bot`]: answer from the knowledge base or hand over to a person.
//! - [`scheduler`]: who gets which waiting conversation (one decider: the dispatcher thread).
//! - [`summary`]: extractive summaries and the facts in a conversation; [`llm`]: optional
//!   summaries from a language model on the LAN.
//! - [`report`]: time to assignment, first response and resolution, per day.

pub mod bot;
pub mod knowledge;
pub mod llm;
pub mod report;
pub mod scheduler;
pub mod summary;
pub mod training;
