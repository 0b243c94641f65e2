//! A tuple's values: literals read into slots over the window or an arena.
//!
//! What it owns: [`Values`] (the slots of the tuple being read, and the arena for bytes that
//! differ from the input) and the literal steps of [`Scan`]: quoted strings with MySQL's
//! escapes, numbers as written, hex and bit literals, character set introducers, `NULL`,
//! `TRUE` and `FALSE`.
//!
//! Invariants: a string without escapes stays in the window (a slot of its bytes); anything
//! else is written to the arena, so a slot is either a window range or an arena range and
//! [`super::Row`] resolves it for the callback. Number slots hold only ASCII.

use super::scan::{bad, is_space, Scan, Step, Stop};
use super::Problem;

/// Where a value's bytes are: in the window (no escapes) or in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Store {
    Window,
    Arena,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    Number,
    Text,
    Binary,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) kind: Kind,
    pub(super) store: Store,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Slot {
    pub(super) const NULL: Slot = Slot {
        kind: Kind::Null,
        store: Store::Window,
        start: 0,
        end: 0,
    };

    fn window(kind: Kind, start: usize, end: usize) -> Slot {
        Slot {
            kind,
            store: Store::Window,
            start,
            end,
        }
    }
}

/// The values of the tuple being read: slots, and the arena for bytes that differ from the
/// input (unescaped strings, decoded literals). Reused across tuples.
#[derive(Debug, Default)]
pub(super) struct Values {
    pub(super) slots: Vec<Slot>,
    pub(super) arena: Vec<u8>,
}

impl Values {
    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.arena.clear();
    }

    /// Pushes a slot for the arena bytes written since `start`.
    fn push_arena(&mut self, kind: Kind, start: usize) {
        self.slots.push(Slot {
            kind,
            store: Store::Arena,
            start,
            end: self.arena.len(),
        });
    }
}

impl Scan<'_> {
    pub(super) fn value(&self, i: usize, values: &mut Values) -> Step<usize> {
        let b = self.byte(i)?;
        match b {
            b'\'' | b'"' => self.string(i, Kind::Text, values),
            b'0' if matches!(self.peek(i + 1)?, Some(b'x' | b'X')) => {
                self.hex_literal(i, i + 2, None, values)
            }
            b'0' if matches!(self.peek(i + 1)?, Some(b'b' | b'B')) => {
                self.bit_literal(i, i + 2, None, values)
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => self.number(i, values),
            b'x' | b'X' if self.peek(i + 1)? == Some(b'\'') => {
                self.hex_literal(i, i + 2, Some(b'\''), values)
            }
            b'b' | b'B' if self.peek(i + 1)? == Some(b'\'') => {
                self.bit_literal(i, i + 2, Some(b'\''), values)
            }
            b'n' | b'N' if self.peek(i + 1)? == Some(b'\'') => {
                self.string(i + 1, Kind::Text, values)
            }
            b'_' => self.introduced(i, values),
            b if b.is_ascii_alphabetic() => self.keyword_value(i, values),
            found => Err(bad(
                Problem::Unexpected {
                    found,
                    expected: "a value",
                },
                i,
            )),
        }
    }

    /// A quoted string at `open`; without escapes its bytes stay in the window.
    fn string(&self, open: usize, kind: Kind, values: &mut Values) -> Step<usize> {
        let s = self.s;
        let quote = s[open];
        let start = open + 1;
        let Some(n) = find_quote_or_backslash(&s[start..], quote) else {
            return Err(self.ended(Problem::UnterminatedString));
        };
        let mut i = start + n;
        if s[i] == quote {
            match s.get(i + 1) {
                Some(&next) if next == quote => {}
                None if !self.eof => return Err(Stop::More),
                _ => {
                    values.slots.push(Slot::window(kind, start, i));
                    return Ok(i + 1);
                }
            }
        }
        // Escapes or a doubled quote: build the value in the arena.
        let arena_start = values.arena.len();
        values.arena.extend_from_slice(&s[start..i]);
        loop {
            // s[i] is the quote or a backslash.
            let next = s.get(i + 1).copied();
            if s[i] == b'\\' {
                let Some(escaped) = next else {
                    return Err(self.ended(Problem::UnterminatedString));
                };
                match escaped {
                    b'0' => values.arena.push(0),
                    b'b' => values.arena.push(0x08),
                    b'n' => values.arena.push(b'\n'),
                    b'r' => values.arena.push(b'\r'),
                    b't' => values.arena.push(b'\t'),
                    b'Z' => values.arena.push(0x1a),
                    // MySQL keeps the backslash of \% and \_ (they are LIKE escapes).
                    b'%' | b'_' => values.arena.extend_from_slice(&[b'\\', escaped]),
                    other => values.arena.push(other),
                }
                i += 2;
            } else if next == Some(quote) {
                values.arena.push(quote);
                i += 2;
            } else if next.is_none() && !self.eof {
                return Err(Stop::More);
            } else {
                values.push_arena(kind, arena_start);
                return Ok(i + 1);
            }
            let Some(n) = find_quote_or_backslash(&s[i..], quote) else {
                return Err(self.ended(Problem::UnterminatedString));
            };
            values.arena.extend_from_slice(&s[i..i + n]);
            i += n;
        }
    }

    fn number(&self, i: usize, values: &mut Values) -> Step<usize> {
        let mut j = i;
        if matches!(self.peek(j)?, Some(b'+' | b'-')) {
            j += 1;
        }
        let integer_start = j;
        j = self.digits(j)?;
        let mut mantissa_digits = j - integer_start;
        if self.peek(j)? == Some(b'.') {
            let fraction_end = self.digits(j + 1)?;
            mantissa_digits += fraction_end - (j + 1);
            j = fraction_end;
        }
        if mantissa_digits == 0 {
            return Err(bad(Problem::BadLiteral("a number without digits"), i));
        }
        if matches!(self.peek(j)?, Some(b'e' | b'E')) {
            j += 1;
            if matches!(self.peek(j)?, Some(b'+' | b'-')) {
                j += 1;
            }
            let exponent_end = self.digits(j)?;
            if exponent_end == j {
                return Err(bad(
                    Problem::BadLiteral("a number with an empty exponent"),
                    i,
                ));
            }
            j = exponent_end;
        }
        values.slots.push(Slot::window(Kind::Number, i, j));
        Ok(j)
    }

    fn digits(&self, mut j: usize) -> Step<usize> {
        while let Some(b'0'..=b'9') = self.peek(j)? {
            j += 1;
        }
        Ok(j)
    }

    /// Hex digits from `digits`: `0x...` (`close` None) or `X'...'` (`close` the quote).
    fn hex_literal(
        &self,
        start: usize,
        digits: usize,
        close: Option<u8>,
        values: &mut Values,
    ) -> Step<usize> {
        let mut end = digits;
        while let Some(b) = self.peek(end)? {
            if hex_value(b).is_none() {
                break;
            }
            end += 1;
        }
        let after = match close {
            Some(quote) if self.byte(end)? == quote => end + 1,
            Some(_) => return Err(bad(Problem::BadLiteral("a non-hex digit in X'...'"), start)),
            None if end == digits => {
                return Err(bad(Problem::BadLiteral("0x without hex digits"), start))
            }
            None => end,
        };
        let arena_start = values.arena.len();
        push_hex(&mut values.arena, &self.s[digits..end]);
        values.push_arena(Kind::Binary, arena_start);
        Ok(after)
    }

    /// Bit digits from `digits`: `0b...` (`close` None) or `b'...'` (`close` the quote).
    fn bit_literal(
        &self,
        start: usize,
        digits: usize,
        close: Option<u8>,
        values: &mut Values,
    ) -> Step<usize> {
        let mut end = digits;
        while let Some(b'0' | b'1') = self.peek(end)? {
            end += 1;
        }
        let after = match close {
            Some(quote) if self.byte(end)? == quote => end + 1,
            Some(_) => return Err(bad(Problem::BadLiteral("a non-bit digit in b'...'"), start)),
            None if end == digits => {
                return Err(bad(Problem::BadLiteral("0b without bit digits"), start))
            }
            None => end,
        };
        let arena_start = values.arena.len();
        push_bits(&mut values.arena, &self.s[digits..end]);
        values.push_arena(Kind::Binary, arena_start);
        Ok(after)
    }

    /// `_charset'...'` (or `_charset 0x...`): the literal, binary for `_binary`.
    fn introduced(&self, i: usize, values: &mut Values) -> Step<usize> {
        let (charset, mut j) = self.word(i + 1)?;
        while self.peek(j)?.is_some_and(is_space) {
            j += 1;
        }
        let kind = if charset.eq_ignore_ascii_case(b"binary") {
            Kind::Binary
        } else {
            Kind::Text
        };
        match (self.byte(j)?, self.peek(j + 1)?) {
            (b'\'' | b'"', _) => self.string(j, kind, values),
            (b'0', Some(b'x' | b'X')) => self.hex_literal(j, j + 2, None, values),
            (b'x' | b'X', Some(b'\'')) => self.hex_literal(j, j + 2, Some(b'\''), values),
            (b'0', Some(b'b' | b'B')) => self.bit_literal(j, j + 2, None, values),
            (b'b' | b'B', Some(b'\'')) => self.bit_literal(j, j + 2, Some(b'\''), values),
            _ => Err(bad(
                Problem::BadLiteral("a character set introducer without a literal"),
                i,
            )),
        }
    }

    /// `NULL`, `TRUE` or `FALSE`; any other word is not a literal.
    fn keyword_value(&self, i: usize, values: &mut Values) -> Step<usize> {
        let (word, j) = self.word(i)?;
        if word.eq_ignore_ascii_case(b"NULL") {
            values.slots.push(Slot::NULL);
        } else if word.eq_ignore_ascii_case(b"TRUE") || word.eq_ignore_ascii_case(b"FALSE") {
            let arena_start = values.arena.len();
            let digit = if word.len() == 4 { b'1' } else { b'0' };
            values.arena.push(digit);
            values.push_arena(Kind::Number, arena_start);
        } else {
            return Err(bad(
                Problem::BadLiteral("an unquoted word or expression"),
                i,
            ));
        }
        Ok(j)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex digits (already checked); an odd count has an implied leading 0, as in MySQL.
fn push_hex(arena: &mut Vec<u8>, digits: &[u8]) {
    let nibble = |b: u8| hex_value(b).unwrap_or(0);
    let (head, pairs) = digits.split_at(digits.len() % 2);
    arena.extend(head.iter().map(|&d| nibble(d)));
    arena.extend(
        pairs
            .chunks_exact(2)
            .map(|p| (nibble(p[0]) << 4) | nibble(p[1])),
    );
}

/// Decodes bit digits (already checked) into bytes, padded with leading zero bits.
fn push_bits(arena: &mut Vec<u8>, digits: &[u8]) {
    let mut byte = 0u8;
    let mut filled = (8 - digits.len() % 8) % 8;
    for &d in digits {
        byte = (byte << 1) | (d - b'0');
        filled += 1;
        if filled == 8 {
            arena.push(byte);
            (byte, filled) = (0, 0);
        }
    }
}

/// The first `quote` or backslash in `haystack`, eight bytes at a time.
pub(super) fn find_quote_or_backslash(haystack: &[u8], quote: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let quotes = ONES * u64::from(quote);
    let backslashes = ONES * u64::from(b'\\');
    // A byte of `x` is zero where the input byte matched; the lowest flagged byte of
    // (x - ONES) & !x & HIGHS is the first zero byte (borrows only flag bytes above it).
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let found = zero_bytes(word ^ quotes) | zero_bytes(word ^ backslashes);
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == quote || b == b'\\')
        .map(|n| offset + n)
}
