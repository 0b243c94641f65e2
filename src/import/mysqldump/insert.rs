//! An `INSERT`'s syntax around its values: the header (table, columns, `VALUES`) and the
//! tuples' boundaries, as steps of [`Scan`].
//!
//! Invariants: a header names its table without the database part; a tuple's values are
//! pushed in order into the [`Values`] given (cleared by the caller); after the last tuple the
//! step says whether the statement ends at the delimiter or goes on with a trailer
//! (`ON DUPLICATE KEY UPDATE`, `AS alias`) that carries no rows.

use super::scan::{bad, BadAt, Scan, Step, Stop};
use super::values::Values;
use super::Problem;

/// What follows in an `INSERT` after its header or a tuple.
pub(super) enum TupleStep {
    Row { open: usize, close: usize },
    End { after: usize },
    Trailer { at: usize },
}

pub(super) struct InsertHeader {
    pub(super) table: String,
    pub(super) columns: Option<Vec<String>>,
    pub(super) after: usize,
}

impl Scan<'_> {
    /// `INSERT|REPLACE [modifiers] [INTO] table [PARTITION (...)] [(columns)] VALUES|VALUE`.
    pub(super) fn insert_header(&self) -> Step<InsertHeader> {
        let (_verb, mut i) = self.word(0)?;
        loop {
            i = self.skip_blank(i)?;
            let (word, j) = self.word(i)?;
            let modifier = [
                &b"LOW_PRIORITY"[..],
                b"DELAYED",
                b"HIGH_PRIORITY",
                b"IGNORE",
            ]
            .iter()
            .any(|m| word.eq_ignore_ascii_case(m));
            if modifier {
                i = j;
                continue;
            }
            if word.eq_ignore_ascii_case(b"INTO") {
                i = self.skip_blank(j)?;
            }
            break;
        }
        let (table, j) = self.table_name(i)?;
        i = self.skip_blank(j)?;
        if self.keyword_at(i, b"PARTITION")? {
            i = self.skip_blank(i + b"PARTITION".len())?;
            if self.byte(i)? == b'(' {
                let (after, _) = self.element_end(i + 1)?;
                i = self.skip_blank(after)?;
            }
        }
        let mut columns = None;
        if self.byte(i)? == b'(' {
            let mut list = Vec::new();
            i = self.skip_blank(i + 1)?;
            if self.byte(i)? == b')' {
                i += 1;
            } else {
                loop {
                    let (column, j) = self.identifier(i)?;
                    list.push(column);
                    i = self.skip_blank(j)?;
                    match self.byte(i)? {
                        b',' => i = self.skip_blank(i + 1)?,
                        b')' => {
                            i += 1;
                            break;
                        }
                        found => {
                            let expected = "',' or ')' in the column list";
                            return Err(bad(Problem::Unexpected { found, expected }, i));
                        }
                    }
                }
            }
            columns = Some(list);
            i = self.skip_blank(i)?;
        }
        for keyword in [&b"VALUES"[..], b"VALUE"] {
            if self.keyword_at(i, keyword)? {
                let after = i + keyword.len();
                return Ok(InsertHeader {
                    table,
                    columns,
                    after,
                });
            }
        }
        for keyword in [&b"SELECT"[..], b"SET", b"WITH", b"TABLE"] {
            if self.keyword_at(i, keyword)? {
                return Err(bad(Problem::UnsupportedInsert, i));
            }
        }
        if self.byte(i)? == b'(' {
            return Err(bad(Problem::UnsupportedInsert, i));
        }
        let found = self.byte(i)?;
        Err(bad(
            Problem::Unexpected {
                found,
                expected: "VALUES",
            },
            i,
        ))
    }

    /// After the header (`first`) or a tuple: the next tuple, or the end of the statement.
    pub(super) fn next_tuple(&self, first: bool, values: &mut Values) -> Step<TupleStep> {
        let mut i = self.skip_blank(0)?;
        if !first {
            if self.at_delimiter(i)? {
                let after = i + self.delimiter.len();
                return Ok(TupleStep::End { after });
            }
            if self.keyword_at(i, b"ON")? || self.keyword_at(i, b"AS")? {
                return Ok(TupleStep::Trailer { at: i });
            }
            match self.byte(i)? {
                b',' => i = self.skip_blank(i + 1)?,
                found => {
                    let expected = "',' or the end of the statement";
                    return Err(bad(Problem::Unexpected { found, expected }, i));
                }
            }
        }
        match self.byte(i)? {
            b'(' => {}
            found => {
                return Err(bad(
                    Problem::Unexpected {
                        found,
                        expected: "'('",
                    },
                    i,
                ))
            }
        }
        let close = self.tuple(i, values).map_err(|stop| match stop {
            Stop::Bad(BadAt {
                problem, resume_at, ..
            }) => Stop::Bad(BadAt {
                problem,
                at: i,
                resume_at,
            }),
            more => more,
        })?;
        Ok(TupleStep::Row { open: i, close })
    }

    fn at_delimiter(&self, i: usize) -> Step<bool> {
        let available = &self.s[i.min(self.s.len())..self.s.len().min(i + self.delimiter.len())];
        if !self.delimiter.starts_with(available) {
            return Ok(false);
        }
        if available.len() < self.delimiter.len() {
            return if self.eof { Ok(false) } else { Err(Stop::More) };
        }
        Ok(true)
    }

    /// The values of the tuple whose `(` is at `open`; the index after its `)`.
    fn tuple(&self, open: usize, values: &mut Values) -> Step<usize> {
        let mut i = self.skip_blank(open + 1)?;
        if self.byte(i)? == b')' {
            return Ok(i + 1);
        }
        loop {
            i = self.skip_blank(i)?;
            i = self.value(i, values)?;
            let mut b = self.byte(i)?;
            if b != b',' && b != b')' {
                i = self.skip_blank(i)?;
                b = self.byte(i)?;
            }
            match b {
                b',' => i += 1,
                b')' => return Ok(i + 1),
                found => {
                    let expected = "',' or ')' after a value";
                    return Err(bad(Problem::Unexpected { found, expected }, i));
                }
            }
        }
    }
}
