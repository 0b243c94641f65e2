//! Statements other than `INSERT`: what the reader learns from them, and where any
//! statement ends.
//!
//! What it owns: the meaning of a skipped statement's text ([`Statement`]: a `CREATE TABLE`'s
//! columns, a `SET TIME_ZONE`'s offset, MySQL and MariaDB executable comments) and
//! [`skip_scan`], which finds the delimiter outside quotes and comments.
//!
//! Invariants: classification only reads the text it is given (the first MiB of a
//! statement), never the input; a named zone (`SYSTEM`, `Asia/Shanghai`) is `None`, not a
//! guess; [`skip_scan`] stops early only where it needs bytes it has not seen, so a
//! statement split anywhere by reads ends in the same place.

use super::scan::{bad, is_space, Scan, Step};
use super::values::find_quote_or_backslash;
use super::Problem;

/// What a statement other than `INSERT` means to the reader.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Statement {
    CreateTable {
        table: String,
        columns: Vec<String>,
    },
    BadCreateTable,
    /// `SET TIME_ZONE = '...'`: the offset in minutes, `None` for a zone not given as one.
    TimeZone(Option<i32>),
    Other,
}

/// Classifies a whole statement (without its delimiter).
pub(super) fn classify_statement(text: &[u8]) -> Statement {
    let body = executable_comment_body(text);
    let scan = Scan {
        s: body,
        eof: true,
        delimiter: b";",
    };
    let Ok(i) = scan.skip_blank(0) else {
        return Statement::Other;
    };
    if matches!(scan.keyword_at(i, b"CREATE"), Ok(true)) {
        match create_table(scan, i + b"CREATE".len()) {
            Ok(Some((table, columns))) => Statement::CreateTable { table, columns },
            Ok(None) => Statement::Other,
            Err(_) => Statement::BadCreateTable,
        }
    } else if matches!(scan.keyword_at(i, b"SET"), Ok(true)) {
        match time_zone_assignment(&body[i + b"SET".len()..]) {
            Some(zone) => Statement::TimeZone(zone),
            None => Statement::Other,
        }
    } else {
        Statement::Other
    }
}

/// `[TEMPORARY] TABLE [IF NOT EXISTS] name (columns and keys...)` after `CREATE`: the table
/// and its columns, `None` for another `CREATE` or a table without a column list.
fn create_table(scan: Scan<'_>, i: usize) -> Step<Option<(String, Vec<String>)>> {
    let mut i = scan.skip_blank(i)?;
    if scan.keyword_at(i, b"TEMPORARY")? {
        i = scan.skip_blank(i + b"TEMPORARY".len())?;
    }
    if !scan.keyword_at(i, b"TABLE")? {
        return Ok(None);
    }
    i = scan.skip_blank(i + b"TABLE".len())?;
    if scan.keyword_at(i, b"IF")? {
        for _ in ["IF", "NOT", "EXISTS"] {
            let (_, j) = scan.word(i)?;
            i = scan.skip_blank(j)?;
        }
    }
    let (table, j) = scan.table_name(i)?;
    i = scan.skip_blank(j)?;
    if scan.peek(i)? != Some(b'(') {
        return Ok(None);
    }
    i += 1;
    let mut columns = Vec::new();
    loop {
        i = scan.skip_blank(i)?;
        match scan.byte(i)? {
            b')' => break,
            b'`' | b'"' => columns.push(scan.identifier(i)?.0),
            found => {
                let (word, _) = scan.word(i)?;
                if word.is_empty() {
                    let expected = "a column or key definition";
                    return Err(bad(Problem::Unexpected { found, expected }, i));
                }
                if !is_table_constraint(word) {
                    columns.push(String::from_utf8_lossy(word).into_owned());
                }
            }
        }
        let (after, closed) = scan.element_end(i)?;
        i = after;
        if closed {
            break;
        }
    }
    Ok(Some((table, columns)))
}

fn is_table_constraint(word: &[u8]) -> bool {
    const KEYWORDS: [&[u8]; 10] = [
        b"PRIMARY",
        b"UNIQUE",
        b"KEY",
        b"INDEX",
        b"CONSTRAINT",
        b"FULLTEXT",
        b"SPATIAL",
        b"FOREIGN",
        b"CHECK",
        b"PERIOD",
    ];
    KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// In the assignments of a `SET`: the session `time_zone` given as a literal, if any.
fn time_zone_assignment(assignments: &[u8]) -> Option<Option<i32>> {
    let mut zone = None;
    for assignment in split_top_level(assignments, b',') {
        let Some(equals) = assignment.iter().position(|&b| b == b'=') else {
            continue;
        };
        let name = trim(&assignment[..equals]);
        let name = trim(name.strip_suffix(b":").unwrap_or(name));
        if !is_session_time_zone(name) {
            continue;
        }
        if let Some(text) = unquote(trim(&assignment[equals + 1..])) {
            zone = Some(parse_utc_offset(text));
        }
    }
    zone
}

fn is_session_time_zone(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    let mut name = &lower[..];
    for prefix in [
        &b"@@session."[..],
        b"@@local.",
        b"@@",
        b"session ",
        b"local ",
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = trim(rest);
            break;
        }
    }
    name == b"time_zone"
}

/// `+08:00`, `-5:30`, `UTC`: minutes east of UTC; `None` for a named zone such as `SYSTEM`.
pub(super) fn parse_utc_offset(text: &[u8]) -> Option<i32> {
    if text.eq_ignore_ascii_case(b"UTC") || text.eq_ignore_ascii_case(b"GMT") {
        return Some(0);
    }
    let (sign, rest) = match text.split_first()? {
        (b'+', rest) => (1, rest),
        (b'-', rest) => (-1, rest),
        _ => return None,
    };
    let colon = rest.iter().position(|&b| b == b':')?;
    let (hours, minutes) = (&rest[..colon], &rest[colon + 1..]);
    let number = |digits: &[u8], widths: std::ops::RangeInclusive<usize>| -> Option<i32> {
        if !widths.contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0, |acc, &d| acc * 10 + i32::from(d - b'0')),
        )
    };
    let (hours, minutes) = (number(hours, 1..=2)?, number(minutes, 2..=2)?);
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 60 + minutes))
}

/// The body of a statement that is one executable comment (`/*!40103 SET ... */`).
fn executable_comment_body(text: &[u8]) -> &[u8] {
    let text = trim(text);
    let Some(rest) = text
        .strip_prefix(b"/*!")
        .or_else(|| text.strip_prefix(b"/*M!"))
    else {
        return text;
    };
    let rest = &rest[rest.iter().take_while(|b| b.is_ascii_digit()).count()..];
    trim(rest).strip_suffix(b"*/").unwrap_or(rest)
}

/// `/*!` and `/*M!` comments are code, except MariaDB's sandbox marker `/*M!999999\- ... */`.
pub(super) fn is_executable_comment(rest: &[u8]) -> bool {
    if rest.starts_with(b"/*!") {
        return true;
    }
    let Some(after) = rest.strip_prefix(b"/*M!") else {
        return false;
    };
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    !after[digits..].starts_with(b"\\-")
}

fn split_top_level(text: &[u8], separator: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, 0, 0);
    while i < text.len() {
        match text[i] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < text.len() && text[i] != quote {
                    i += if text[i] == b'\\' && quote != b'`' {
                        2
                    } else {
                        1
                    };
                }
            }
            b if b == separator && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start.min(text.len())..]);
    parts
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().take_while(|&&b| is_space(b)).count();
    let end = bytes.len()
        - bytes[start..]
            .iter()
            .rev()
            .take_while(|&&b| is_space(b))
            .count();
    &bytes[start..end]
}

/// The inside of `'...'` or `"..."` (no escapes: used for zones and delimiters).
pub(super) fn unquote(bytes: &[u8]) -> Option<&[u8]> {
    match bytes {
        [open @ (b'\'' | b'"'), inner @ .., close] if open == close => Some(inner),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SkipState {
    Code,
    Quoted(u8),
    Escaped(u8),
    LineComment,
    BlockComment,
}

/// Scans `s` for the delimiter outside quotes and comments, from `state`. Returns how many
/// bytes are consumed and whether the delimiter starts right after them; it stops early only
/// where it needs bytes beyond `s` to decide (never when `eof`).
pub(super) fn skip_scan(
    s: &[u8],
    eof: bool,
    delimiter: &[u8],
    state: &mut SkipState,
) -> (usize, bool) {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        match *state {
            SkipState::Code => {
                if b == delimiter[0] {
                    let available = &s[i..s.len().min(i + delimiter.len())];
                    if available == delimiter {
                        return (i, true);
                    }
                    if !eof && delimiter.starts_with(available) {
                        return (i, false);
                    }
                }
                match b {
                    b'\'' | b'"' | b'`' => *state = SkipState::Quoted(b),
                    b'#' => *state = SkipState::LineComment,
                    b'-' | b'/' if i + 2 >= s.len() && !eof => return (i, false),
                    b'-' if s.get(i + 1) == Some(&b'-')
                        && s.get(i + 2).map_or(true, |&c| c <= b' ') =>
                    {
                        *state = SkipState::LineComment;
                        i += 1;
                    }
                    b'/' if s.get(i + 1) == Some(&b'*') => {
                        *state = SkipState::BlockComment;
                        i += 1;
                    }
                    _ => {}
                }
            }
            SkipState::Quoted(quote) => match find_quote_or_backslash(&s[i..], quote) {
                None => return (s.len(), false),
                Some(n) => {
                    i += n;
                    if s[i] == quote {
                        *state = SkipState::Code;
                    } else if quote != b'`' {
                        *state = SkipState::Escaped(quote);
                    }
                }
            },
            SkipState::Escaped(quote) => *state = SkipState::Quoted(quote),
            SkipState::LineComment => match s[i..].iter().position(|&c| c == b'\n') {
                None => return (s.len(), false),
                Some(n) => {
                    i += n;
                    *state = SkipState::Code;
                }
            },
            SkipState::BlockComment => {
                if b == b'*' {
                    match s.get(i + 1) {
                        None if !eof => return (i, false),
                        Some(b'/') => {
                            *state = SkipState::Code;
                            i += 1;
                        }
                        _ => {}
                    }
                }
            }
        }
        i += 1;
    }
    (i, false)
}
