//! [`Scan`]: a pure parser's cursor over the unconsumed window, and how its steps stop.
//!
//! What it owns: nothing but a borrowed slice. Its primitives read blanks and comments,
//! keywords, words, names (quoted or bare) and the end of a parenthesised element; `insert.rs`
//! and `values.rs` add the steps that read an `INSERT`, and `statements.rs` reuses the same
//! primitives on a whole statement's text.
//!
//! Invariants: a step never consumes anything itself (positions are indices into the slice);
//! one that reaches the end of the slice before it can decide returns [`Stop::More`] unless
//! `eof`, in which case it reports what is wrong ([`Stop::Bad`]); so running it again on a
//! longer slice gives the answer it would have given on the whole input.

use super::Problem;

/// Why a scan step stopped.
pub(super) enum Stop {
    /// The window ends before the step could finish: read more and run it again.
    More,
    Bad(BadAt),
}

/// A malformed spot: `at` is reported, skipping to the end of the statement starts at
/// `resume_at` (the start of a bad literal, so that its quotes are seen by the skipper).
#[derive(Debug)]
pub(super) struct BadAt {
    pub(super) problem: Problem,
    pub(super) at: usize,
    pub(super) resume_at: usize,
}

impl BadAt {
    pub(super) fn new(problem: Problem, at: usize) -> BadAt {
        BadAt {
            problem,
            at,
            resume_at: at,
        }
    }

    pub(super) fn here(problem: Problem) -> BadAt {
        BadAt::new(problem, 0)
    }
}

pub(super) type Step<T> = Result<T, Stop>;

pub(super) fn bad(problem: Problem, at: usize) -> Stop {
    Stop::Bad(BadAt::new(problem, at))
}

/// A pure parser over the unconsumed window `s`: every position is an index into `s`, and a
/// step that reaches the end of `s` before it can decide asks for more ([`Stop::More`])
/// unless `eof`.
#[derive(Clone, Copy)]
pub(super) struct Scan<'a> {
    pub(super) s: &'a [u8],
    pub(super) eof: bool,
    pub(super) delimiter: &'a [u8],
}

impl<'a> Scan<'a> {
    pub(super) fn peek(&self, i: usize) -> Step<Option<u8>> {
        match self.s.get(i) {
            Some(&b) => Ok(Some(b)),
            None if self.eof => Ok(None),
            None => Err(Stop::More),
        }
    }

    pub(super) fn byte(&self, i: usize) -> Step<u8> {
        self.peek(i)?
            .ok_or_else(|| bad(Problem::Truncated, self.s.len()))
    }

    /// The end of the window inside something: more input, or `problem` at the end.
    pub(super) fn ended(&self, problem: Problem) -> Stop {
        if self.eof {
            bad(problem, self.s.len())
        } else {
            Stop::More
        }
    }

    /// Skips blanks and comments (`-- `, `#`, `/* */`; executable comments included).
    pub(super) fn skip_blank(&self, mut i: usize) -> Step<usize> {
        loop {
            match self.peek(i)? {
                Some(b) if is_space(b) => i += 1,
                Some(b'#') => i = self.line_end(i)?,
                Some(b'-') => {
                    let comment = self.peek(i + 1)? == Some(b'-')
                        && self.peek(i + 2)?.map_or(true, |b| b <= b' ');
                    if !comment {
                        return Ok(i);
                    }
                    i = self.line_end(i)?;
                }
                Some(b'/') => {
                    if self.peek(i + 1)? != Some(b'*') {
                        return Ok(i);
                    }
                    i = self.comment_end(i)?;
                }
                _ => return Ok(i),
            }
        }
    }

    fn line_end(&self, i: usize) -> Step<usize> {
        match self.s[i..].iter().position(|&b| b == b'\n') {
            Some(n) => Ok(i + n + 1),
            None if self.eof => Ok(self.s.len()),
            None => Err(Stop::More),
        }
    }

    /// `i` is at `/*`; the index after the closing `*/`.
    fn comment_end(&self, i: usize) -> Step<usize> {
        let body = i + 2;
        match self.s[body..].windows(2).position(|pair| pair == b"*/") {
            Some(n) => Ok(body + n + 2),
            None => Err(self.ended(Problem::Truncated)),
        }
    }

    /// Whether `keyword` (upper case) is at `i`, as a whole word, in any case.
    pub(super) fn keyword_at(&self, i: usize, keyword: &[u8]) -> Step<bool> {
        let available = &self.s[i.min(self.s.len())..self.s.len().min(i + keyword.len())];
        if !available.eq_ignore_ascii_case(&keyword[..available.len()]) {
            return Ok(false);
        }
        if available.len() < keyword.len() {
            return if self.eof { Ok(false) } else { Err(Stop::More) };
        }
        Ok(!self.peek(i + keyword.len())?.is_some_and(is_word_byte))
    }

    pub(super) fn word(&self, i: usize) -> Step<(&'a [u8], usize)> {
        let mut j = i;
        while let Some(b) = self.peek(j)? {
            if !is_word_byte(b) {
                break;
            }
            j += 1;
        }
        Ok((&self.s[i..j], j))
    }

    /// A name: `back-quoted` (a doubled back quote is one), "double-quoted" or bare.
    pub(super) fn identifier(&self, i: usize) -> Step<(String, usize)> {
        match self.byte(i)? {
            quote @ (b'`' | b'"') => {
                let mut name = Vec::new();
                let mut j = i + 1;
                loop {
                    let b = self.byte(j)?;
                    if b == quote {
                        if self.peek(j + 1)? != Some(quote) {
                            return Ok((String::from_utf8_lossy(&name).into_owned(), j + 1));
                        }
                        j += 1;
                    }
                    name.push(b);
                    j += 1;
                }
            }
            b if is_word_byte(b) => {
                let (word, j) = self.word(i)?;
                Ok((String::from_utf8_lossy(word).into_owned(), j))
            }
            found => Err(bad(
                Problem::Unexpected {
                    found,
                    expected: "a name",
                },
                i,
            )),
        }
    }

    /// A table name, optionally qualified by its database (`db`.`t`): the table part.
    pub(super) fn table_name(&self, i: usize) -> Step<(String, usize)> {
        let (mut name, mut j) = self.identifier(i)?;
        while self.peek(j)? == Some(b'.') {
            (name, j) = self.identifier(j + 1)?;
        }
        Ok((name, j))
    }

    /// From inside a parenthesised list: the index after the element's end (a `,` or `)` at
    /// depth 0, skipping quotes, comments and nested parentheses), and whether it was `)`.
    pub(super) fn element_end(&self, mut i: usize) -> Step<(usize, bool)> {
        let mut depth = 0usize;
        loop {
            match self.byte(i)? {
                b'(' => depth += 1,
                b')' if depth == 0 => return Ok((i + 1, true)),
                b')' => depth -= 1,
                b',' if depth == 0 => return Ok((i + 1, false)),
                quote @ (b'\'' | b'"' | b'`') => {
                    i = self.quoted_end(i, quote)?;
                    continue;
                }
                b'#' | b'-' | b'/' => {
                    let after = self.skip_blank(i)?;
                    if after > i {
                        i = after;
                        continue;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// The index after the quoted text opened at `open`.
    fn quoted_end(&self, open: usize, quote: u8) -> Step<usize> {
        let mut i = open + 1;
        loop {
            let b = self.byte(i)?;
            if b == b'\\' && quote != b'`' {
                i += 2;
            } else if b == quote {
                if self.peek(i + 1)? != Some(quote) {
                    return Ok(i + 1);
                }
                i += 2;
            } else {
                i += 1;
            }
        }
    }
}

pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}
