//! The tokenizer: the same for the knowledge base's example questions and for customer text.
//!
//! - Latin (and any other script with word spacing): maximal runs of letters, digits and `_`,
//!   lower-cased, kept when at least two characters long — scikit-learn's default
//!   `token_pattern` (`\b\w\w+\b`), so English matches its TfidfVectorizer exactly.
//! - CJK (Han, kana, Hangul): no spaces and no dictionary, so every character is a token and
//!   every pair of adjacent characters in a run is another ("退货" → 退, 货, 退货).
//! - Everything else (spaces, punctuation, emoji) separates tokens and is dropped.
//!
//! Tokens borrow from the input where they can (CJK tokens, already lower-case words); a word
//! that needs lower-casing is written into the caller's scratch buffer, so the hot path does not
//! allocate once the buffer has grown.

/// Whether `c` is written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // CJK Extensions B-F, Compatibility Supplement
}

/// Python's `\w` as scikit-learn's pattern uses it (letters, digits, underscore).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Calls `emit` with every token of `text`, in order. `scratch` holds lower-cased words.
pub fn for_each_token(text: &str, scratch: &mut String, mut emit: impl FnMut(&str)) {
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if is_cjk(c) {
            // Unigram, then the bigram with the next character if it is CJK too.
            let end = start + c.len_utf8();
            emit(&text[start..end]);
            if let Some(&(next_start, next)) = chars.peek() {
                if is_cjk(next) {
                    emit(&text[start..next_start + next.len_utf8()]);
                }
            }
        } else if is_word_char(c) {
            let mut end = start + c.len_utf8();
            let mut count = 1;
            let mut lower = !c.is_uppercase();
            while let Some(&(i, next)) = chars.peek() {
                if !is_word_char(next) || is_cjk(next) {
                    break;
                }
                lower &= !next.is_uppercase();
                end = i + next.len_utf8();
                count += 1;
                chars.next();
            }
            if count < 2 {
                continue;
            }
            let word = &text[start..end];
            if lower {
                emit(word);
            } else {
                scratch.clear();
                scratch.extend(word.chars().flat_map(char::to_lowercase));
                emit(scratch);
            }
        }
    }
}

/// The tokens of `text`, owned (for building the index and for tests).
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut scratch = String::new();
    for_each_token(text, &mut scratch, |t| out.push(t.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn english_is_lower_cased_words_of_two_or_more() {
        assert_eq!(
            tokens("Where's my ORDER #A-1234? I paid 5 dollars"),
            ["where", "my", "order", "1234", "paid", "dollars"]
        );
    }

    #[test]
    fn chinese_is_unigrams_and_bigrams() {
        assert_eq!(
            tokens("我要退货"),
            ["我", "我要", "要", "要退", "退", "退货", "货"]
        );
        assert_eq!(tokens("好"), ["好"]);
    }

    #[test]
    fn punctuation_breaks_cjk_runs() {
        assert_eq!(
            tokens("你好，退货"),
            ["你", "你好", "好", "退", "退货", "货"]
        );
    }

    #[test]
    fn mixed_scripts_split_at_the_boundary() {
        assert_eq!(
            tokens("打开Sky电话 54乘上45"),
            [
                "打", "打开", "开", "sky", "电", "电话", "话", "54", "乘", "乘上", "上", "45"
            ]
        );
    }

    #[test]
    fn emoji_and_empty_give_nothing_or_separate() {
        assert!(tokens("").is_empty());
        assert!(tokens("   👍🎉 !!").is_empty());
        assert_eq!(tokens("👍好的👍ok"), ["好", "好的", "的", "ok"]);
    }

    #[test]
    fn other_spaced_scripts_are_words() {
        assert_eq!(tokens("Привет МИР é"), ["привет", "мир"]);
        assert_eq!(
            tokens("ありがとう"),
            ["あ", "あり", "り", "りが", "が", "がと", "と", "とう", "う"]
        );
    }
}
