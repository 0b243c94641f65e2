//! Extractive conversation summaries, computed on the device: the few sentences that carry
//! the most weight, and the facts an agent looks for.
//!
//! Sentences are scored by TF-IDF over the conversation's own sentences (the same tokenizer
//! as intent detection, so Chinese works): a sentence's score is its cosine with the
//! conversation's centroid, so the sentences most representative of what was discussed win;
//! the chosen ones are shown in conversation order. Facts are scanned for without a regex
//! engine: order numbers, phone numbers, amounts of money, and the knowledge-base intents the
//! customer's messages matched (the topics).

use std::collections::HashMap;

use serde::Serialize;

use crate::intent::tokenize::for_each_token;
use crate::model::Sender;

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// The chosen sentences, in conversation order, each with who said it.
    pub sentences: Vec<SummarySentence>,
    pub order_numbers: Vec<String>,
    pub phone_numbers: Vec<String>,
    pub amounts: Vec<String>,
    pub topics: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SummarySentence {
    pub sender: &'static str,
    pub text: String,
}

/// Summarises `messages` (sender, text) in at most `max_sentences` sentences. `topics` are
/// the intents already detected in it.
pub fn summarise(
    messages: &[(Sender, String)],
    max_sentences: usize,
    topics: Vec<String>,
) -> Summary {
    let mut summary = Summary {
        topics,
        ..Summary::default()
    };
    let mut sentences: Vec<(Sender, &str)> = Vec::new();
    for (sender, text) in messages {
        for s in split_sentences(text) {
            sentences.push((*sender, s));
        }
        if *sender == Sender::Visitor {
            scan_facts(text, &mut summary);
        }
    }
    let mut scratch = String::new();
    let vectors: Vec<HashMap<String, f32>> = sentences
        .iter()
        .map(|(_, s)| {
            let mut tf: HashMap<String, f32> = HashMap::new();
            for_each_token(s, &mut scratch, |t| {
                *tf.entry(t.to_string()).or_default() += 1.0
            });
            tf
        })
        .collect();
    let mut df: HashMap<&str, f32> = HashMap::new();
    for v in &vectors {
        for t in v.keys() {
            *df.entry(t.as_str()).or_default() += 1.0;
        }
    }
    let n = vectors.len() as f32;
    let weighted: Vec<HashMap<&str, f32>> = vectors
        .iter()
        .map(|v| {
            let mut w: HashMap<&str, f32> = v
                .iter()
                .map(|(t, c)| {
                    (
                        t.as_str(),
                        (1.0 + c.ln()) * (((1.0 + n) / (1.0 + df[t.as_str()])).ln() + 1.0),
                    )
                })
                .collect();
            let norm = w.values().map(|x| x * x).sum::<f32>().sqrt();
            w.values_mut()
                .for_each(|x| *x /= norm.max(f32::MIN_POSITIVE));
            w
        })
        .collect();
    let mut centroid: HashMap<&str, f32> = HashMap::new();
    for w in &weighted {
        for (t, x) in w {
            *centroid.entry(t).or_default() += x;
        }
    }
    let mut scored: Vec<(usize, f32)> = weighted
        .iter()
        .enumerate()
        .filter(|(i, w)| !w.is_empty() && sentences[*i].1.chars().count() >= 4)
        .map(|(i, w)| (i, w.iter().map(|(t, x)| x * centroid[t]).sum::<f32>()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<usize> = scored.iter().take(max_sentences).map(|(i, _)| *i).collect();
    chosen.sort_unstable();
    summary.sentences = chosen
        .into_iter()
        .map(|i| SummarySentence {
            sender: sentences[i].0.as_str(),
            text: sentences[i].1.to_string(),
        })
        .collect();
    summary
}

/// Splits at sentence ends (。！？!? ; and '.' before a space or the end) and line breaks.
fn split_sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match c {
            '。' | '！' | '？' | '!' | '?' | '\n' | '；' | ';' => true,
            '.' => chars.peek().map_or(true, |(_, n)| n.is_whitespace()),
            _ => false,
        };
        if end {
            out.push(&text[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    out.push(&text[start..]);
    out.into_iter().map(str::trim).filter(|s| !s.is_empty())
}

const CURRENCY_BEFORE: [&str; 7] = ["¥", "￥", "$", "€", "£", "rmb", "usd"];
const CURRENCY_AFTER: [&str; 8] = ["元", "块", "rmb", "yuan", "usd", "dollars", "eur", "euros"];
const ORDER_WORDS: [&str; 4] = ["order", "订单", "单号", "tracking"];

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// Finds phone numbers, order numbers and amounts in one customer message.
fn scan_facts(text: &str, summary: &mut Summary) {
    let lower = text.to_lowercase();
    let chars: Vec<(usize, char)> = lower.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let token_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '#' || c == '+';
        if !token_char(c) {
            i += 1;
            continue;
        }
        let mut j = i;
        // A space, '.' or ',' between two digits stays inside the token ("+86 21 5555",
        // "59.90").
        let joins_digits = |j: usize| {
            matches!(chars[j].1, ' ' | '.' | ',')
                && j > i
                && chars[j - 1].1.is_ascii_digit()
                && chars.get(j + 1).is_some_and(|(_, n)| n.is_ascii_digit())
        };
        while j < chars.len() && (token_char(chars[j].1) || joins_digits(j)) {
            j += 1;
        }
        let end = chars.get(j).map_or(lower.len(), |(b, _)| *b);
        let token = lower[start..end].trim_matches(|c: char| c == '-' || c == ' ');
        let digits = token.chars().filter(char::is_ascii_digit).count();
        let letters = token.chars().filter(char::is_ascii_alphabetic).count();
        let before = &lower[..start];
        let after = &lower[end..];
        let money_before = CURRENCY_BEFORE
            .iter()
            .any(|c| before.trim_end().ends_with(c));
        let money_after = CURRENCY_AFTER
            .iter()
            .any(|c| after.trim_start().starts_with(c));
        let near_order_word = ORDER_WORDS.iter().any(|w| {
            before
                .chars()
                .rev()
                .take(12)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
                .contains(w)
        });
        if digits > 0 && letters == 0 && (money_before || money_after) {
            let unit_before = CURRENCY_BEFORE
                .iter()
                .find(|c| before.trim_end().ends_with(*c));
            let unit_after = CURRENCY_AFTER
                .iter()
                .find(|c| after.trim_start().starts_with(*c));
            let amount = match (unit_before, unit_after) {
                (Some(u), _) => format!("{u}{token}"),
                (None, Some(u)) => format!("{token} {u}"),
                (None, None) => token.to_string(),
            };
            push_unique(&mut summary.amounts, amount);
        } else if letters == 0
            && (7..=15).contains(&digits)
            && !near_order_word
            && (token.starts_with('+')
                || token.contains('-')
                || token.contains(' ')
                || (digits == 11 && token.starts_with('1')))
        {
            push_unique(&mut summary.phone_numbers, token.to_string());
        } else if digits >= 4
            && (near_order_word || token.starts_with('#') || letters > 0 || digits >= 6)
        {
            push_unique(
                &mut summary.order_numbers,
                token.trim_start_matches('#').to_uppercase(),
            );
        }
        i = j.max(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(lines: &[(Sender, &str)]) -> Vec<(Sender, String)> {
        lines.iter().map(|(s, t)| (*s, t.to_string())).collect()
    }

    #[test]
    fn picks_the_central_sentences_in_order() {
        let messages = conv(&[
            (Sender::Visitor, "你好。"),
            (Sender::Visitor, "我买的咖啡机坏了，咖啡机不出水。"),
            (Sender::Agent, "请问咖啡机是什么时候买的？"),
            (Sender::Visitor, "上周买的。今天天气不错。"),
            (Sender::Agent, "咖啡机不出水可以免费维修。"),
        ]);
        let s = summarise(&messages, 2, vec![]);
        assert_eq!(s.sentences.len(), 2);
        assert!(
            s.sentences.iter().all(|x| x.text.contains("咖啡机")),
            "{s:?}"
        );
        // Conversation order is kept.
        let texts: Vec<&str> = s.sentences.iter().map(|x| x.text.as_str()).collect();
        let positions: Vec<usize> = texts
            .iter()
            .map(|t| messages.iter().position(|(_, m)| m.contains(t)).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    }

    #[test]
    fn finds_orders_phones_and_amounts() {
        let messages = conv(&[
            (
                Sender::Visitor,
                "My order A12345678 has not arrived, I paid $59.90 for it.",
            ),
            (
                Sender::Visitor,
                "订单号 20261127001，退款 199元。电话 13812345678",
            ),
            (Sender::Visitor, "or call +86 21 5555 0100, ticket #8812"),
            (Sender::Agent, "Agent text 99999999 is not scanned"),
        ]);
        let s = summarise(&messages, 3, vec!["returns".into()]);
        assert_eq!(
            s.order_numbers,
            ["A12345678", "20261127001", "8812"],
            "{s:?}"
        );
        assert_eq!(
            s.phone_numbers,
            ["13812345678", "+86 21 5555 0100"],
            "{s:?}"
        );
        assert_eq!(s.amounts, ["$59.90", "199 元"], "{s:?}");
        assert_eq!(s.topics, ["returns"]);
    }

    #[test]
    fn empty_and_emoji_only_conversations_give_an_empty_summary() {
        assert_eq!(summarise(&[], 3, vec![]), Summary::default());
        let s = summarise(&conv(&[(Sender::Visitor, "👍👍")]), 3, vec![]);
        assert!(s.sentences.is_empty());
    }
}
