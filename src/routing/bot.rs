//! The bot's decision for one customer message: answer from the knowledge base, or hand the
//! conversation to a person. Pure; the dispatcher journals what it decides.
//!
//! - The customer asks for a person (a configured keyword: "人工", "agent", ...) → a person,
//!   for the team of the best intent if that match is confident.
//! - The best intent clears the threshold and has an answer → the bot answers.
//! - Otherwise (no match, below the threshold, an entry without an answer) → a person.
//!
//! The dispatcher asks only while no agent holds the conversation and it has not been handed
//! over: the bot never answers a conversation an agent has taken.

use super::knowledge::{KnowledgeBase, Matched};
use crate::intent::tokenize::is_cjk;
use crate::op::HandoffReason;

#[derive(Debug, Clone, PartialEq)]
pub struct BotConfig {
    /// Score at or above which the bot answers (see `KnowledgeBase::classify`).
    pub threshold: f32,
    /// Lower-case words or phrases with which a customer asks for a person.
    pub human_keywords: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub enum Decision<'a> {
    Answer(&'a str),
    ToHuman {
        team: &'a str,
        reason: HandoffReason,
    },
}

pub fn decide<'a>(
    kb: &'a KnowledgeBase,
    text: &str,
    cfg: &BotConfig,
) -> (Option<Matched<'a>>, Decision<'a>) {
    let best = kb.classify(text);
    let confident = best.filter(|m| m.score >= cfg.threshold);
    let team = confident.map_or("", |m| m.entry.team.as_str());
    let decision = if asks_for_human(text, &cfg.human_keywords) {
        Decision::ToHuman {
            team,
            reason: HandoffReason::Asked,
        }
    } else {
        match confident {
            Some(m) if !m.entry.answer.is_empty() => Decision::Answer(&m.entry.answer),
            _ => Decision::ToHuman {
                team,
                reason: HandoffReason::NotConfident,
            },
        }
    };
    (best, decision)
}

/// Whether `text` contains one of `keywords`: CJK keywords as substrings (no word breaks in
/// Chinese), others as whole words, ignoring case.
pub fn asks_for_human(text: &str, keywords: &[String]) -> bool {
    let lower = text.to_lowercase();
    keywords.iter().any(|k| {
        if k.chars().any(is_cjk) {
            return lower.contains(k.as_str());
        }
        lower.match_indices(k.as_str()).any(|(at, _)| {
            let before = lower[..at].chars().next_back();
            let after = lower[at + k.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::KbEntry;

    fn kb() -> KnowledgeBase {
        KnowledgeBase::new([
            KbEntry {
                intent: "returns".into(),
                examples: vec!["我要退货".into(), "how do i return an item".into()],
                answer: "30天内凭小票退货。".into(),
                team: "after-sales".into(),
            },
            KbEntry {
                intent: "complaint".into(),
                examples: vec!["我要投诉".into()],
                answer: String::new(),
                team: "managers".into(),
            },
        ])
    }

    fn cfg() -> BotConfig {
        BotConfig {
            threshold: 0.5,
            human_keywords: vec!["人工".into(), "agent".into(), "human".into()],
        }
    }

    #[test]
    fn confident_match_is_answered() {
        let kb = kb();
        let (best, d) = decide(&kb, "我要退货", &cfg());
        assert_eq!(best.unwrap().entry.intent, "returns");
        assert_eq!(d, Decision::Answer("30天内凭小票退货。"));
    }

    #[test]
    fn asking_for_a_person_wins_and_keeps_the_team() {
        let kb = kb();
        let (_, d) = decide(&kb, "我要退货，转人工", &cfg());
        assert_eq!(
            d,
            Decision::ToHuman {
                team: "after-sales",
                reason: HandoffReason::Asked
            }
        );
        let (_, d) = decide(&kb, "Can I talk to an AGENT?", &cfg());
        assert!(matches!(
            d,
            Decision::ToHuman {
                reason: HandoffReason::Asked,
                ..
            }
        ));
    }

    #[test]
    fn weak_or_answerless_matches_go_to_a_person() {
        let kb = kb();
        let (_, d) = decide(&kb, "the weather today", &cfg());
        assert_eq!(
            d,
            Decision::ToHuman {
                team: "",
                reason: HandoffReason::NotConfident
            }
        );
        let (_, d) = decide(&kb, "我要投诉", &cfg());
        assert_eq!(
            d,
            Decision::ToHuman {
                team: "managers",
                reason: HandoffReason::NotConfident
            }
        );
    }

    #[test]
    fn keywords_are_whole_words_in_latin_text() {
        let k = cfg().human_keywords;
        assert!(asks_for_human("human please", &k));
        assert!(asks_for_human("我要人工服务", &k));
        assert!(!asks_for_human("the reagent arrived", &k));
        assert!(!asks_for_human("humane society", &k));
        assert!(!asks_for_human("", &k));
    }
}
