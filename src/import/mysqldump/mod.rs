//! A streaming reader of `mysqldump` output (and of hand-written SQL of the same shape), for
//! importing another system's MySQL data without a MySQL server.
//!
//! What it owns: a window over the input, the column lists of the `CREATE TABLE`s seen so far,
//! the current statement delimiter (`DELIMITER`) and the dump's time zone (`SET TIME_ZONE`).
//! Every tuple of every `INSERT`/`REPLACE ... VALUES` goes to a [`DumpSink`] as a [`Row`], one
//! tuple at a time; every other statement (comments, `SET`, `LOCK TABLES`, `DROP`, `USE`,
//! `ALTER`, trigger and procedure bodies in `DELIMITER` blocks, ...) is skipped.
//!
//! Files: this one (what callers see: values, rows, problems, the sink, limits), `reader.rs`
//! (the window over the input and the loop over statements), `scan.rs` (the pure parser's
//! cursor: blanks, comments, names), `insert.rs` (an `INSERT`'s header and tuples),
//! `values.rs` (literals into a tuple's values), `statements.rs` (everything else: `CREATE
//! TABLE`, `SET TIME_ZONE`, executable comments, finding a statement's end).
//!
//! Invariants:
//! - Bounded memory: the window holds the tuple being read (at most [`MAX_TUPLE_BYTES`]) plus
//!   one read; an `INSERT` of any size is streamed tuple by tuple. Of other statements only the
//!   first MiB is kept, to read `CREATE TABLE` and `SET TIME_ZONE`.
//! - Nothing is dropped silently: each tuple is either delivered as a row or reported as
//!   [`Malformed`] with its line. After a syntax error the rest of the statement (up to its
//!   delimiter outside quotes and comments) is skipped and that is reported too; a tuple with
//!   the wrong number of values is reported alone and the tuples after it are still read.
//! - Zero-copy: a row's values borrow from the window or, for strings with escapes and
//!   hex/bit literals, from an arena reused across rows; they live for the callback only.
//! - Values are bytes: whether a string is UTF-8 is the caller's question
//!   ([`Value::as_str`]), and a character set introducer (`_latin1'...'`) is not applied.
//! - Time stamps: mysqldump writes `TIMESTAMP` columns in the zone of its
//!   `/*!40103 SET TIME_ZONE='+00:00' */`; each row carries the zone in force
//!   ([`Row::time_zone_minutes`]) for `crate::import::time::parse_time`.

mod insert;
mod reader;
mod scan;
mod statements;
#[cfg(test)]
mod tests;
mod values;

use std::fmt;
use std::io;

pub use reader::DumpReader;
use values::{Kind, Slot, Store};

/// The largest tuple (one row's `(...)`) the reader holds; a larger one is reported and the
/// rest of its statement skipped.
pub const MAX_TUPLE_BYTES: usize = 256 << 20;
/// How much of a statement other than `INSERT` is kept to read it (`CREATE TABLE`, `SET`).
const MAX_STATEMENT_TEXT_BYTES: usize = 1 << 20;
/// The most an `INSERT` header (`INSERT INTO t (columns) VALUES`) may take.
const MAX_INSERT_HEADER_BYTES: usize = 1 << 20;
/// The most a `DELIMITER` command line may take.
const MAX_DELIMITER_LINE_BYTES: usize = 4096;
/// The window's initial size, and the least free space worth a read before compacting.
const READ_CHUNK_BYTES: usize = 256 << 10;
/// Enough look-ahead to tell a comment or an executable comment from a statement.
const STATEMENT_START_LOOKAHEAD: usize = 16;

/// One value of a row, borrowed from the reader's buffers for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// `NULL` (unquoted; `'NULL'` is [`Value::Text`]).
    Null,
    /// An integer, decimal or float as written (`-12`, `3.50`, `1e-3`); `TRUE`/`FALSE` as
    /// `1`/`0`.
    Number(&'a str),
    /// A quoted string with its escapes resolved.
    Text(&'a [u8]),
    /// A hex or bit literal (`0xAB`, `X'AB'`, `b'0101'`) decoded, or a `_binary '...'` string.
    Binary(&'a [u8]),
}

/// Why a [`Value`] is not what an accessor asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// The value is `NULL`.
    Null,
    /// The bytes are not UTF-8 from this offset on.
    NotUtf8 { valid_up_to: usize },
    /// The value is not an integer that fits an `i64`.
    NotInteger,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Null => f.write_str("the value is NULL"),
            ValueError::NotUtf8 { valid_up_to } => {
                write!(f, "the value is not UTF-8 after byte {valid_up_to}")
            }
            ValueError::NotInteger => f.write_str("the value is not an integer"),
        }
    }
}

impl std::error::Error for ValueError {}

impl<'a> Value<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value's bytes (a number's text); `None` for `NULL`.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Null => None,
            Value::Number(text) => Some(text.as_bytes()),
            Value::Text(bytes) | Value::Binary(bytes) => Some(bytes),
        }
    }

    /// The value as UTF-8 text; `NULL` is an error ([`Value::as_opt_str`] allows it).
    pub fn as_str(&self) -> Result<&'a str, ValueError> {
        self.as_opt_str()?.ok_or(ValueError::Null)
    }

    /// The value as UTF-8 text, `None` for `NULL`.
    pub fn as_opt_str(&self) -> Result<Option<&'a str>, ValueError> {
        match self.as_bytes() {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|e| ValueError::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                }),
        }
    }

    /// The value as an integer: a number, or a string holding one (`'42'`).
    pub fn as_i64(&self) -> Result<i64, ValueError> {
        self.as_str()?
            .trim()
            .parse()
            .map_err(|_| ValueError::NotInteger)
    }
}

/// One tuple of an `INSERT`, valid for the callback only.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    table: &'a str,
    columns: &'a [String],
    line: u64,
    time_zone_minutes: Option<i32>,
    slots: &'a [Slot],
    window: &'a [u8],
    arena: &'a [u8],
}

impl<'a> Row<'a> {
    /// The table, without its database qualification.
    pub fn table(&self) -> &'a str {
        self.table
    }

    /// The statement's column list, or the table's from its `CREATE TABLE`; empty when
    /// neither was seen (the values are then positional only).
    pub fn columns(&self) -> &'a [String] {
        self.columns
    }

    /// The position of `column` (ASCII case-insensitive, as MySQL compares column names).
    pub fn column_index(&self, column: &str) -> Option<usize> {
        column_index(self.columns, column)
    }

    /// The 1-based line where the row's `(` is.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The dump's `TIME_ZONE` offset in minutes when the row was read, if it set one.
    pub fn time_zone_minutes(&self) -> Option<i32> {
        self.time_zone_minutes
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The value at `index`; `None` past the row's end.
    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        let slot = self.slots.get(index)?;
        let bytes = match slot.store {
            Store::Window => &self.window[slot.start..slot.end],
            Store::Arena => &self.arena[slot.start..slot.end],
        };
        Some(match slot.kind {
            Kind::Null => Value::Null,
            // Number slots hold only ASCII digits, signs, dots and exponents.
            Kind::Number => Value::Number(std::str::from_utf8(bytes).unwrap_or_default()),
            Kind::Text => Value::Text(bytes),
            Kind::Binary => Value::Binary(bytes),
        })
    }

    /// The value of `column`; for many rows, look the index up once per statement instead
    /// ([`DumpSink::insert_start`]).
    pub fn get_named(&self, column: &str) -> Option<Value<'a>> {
        self.get(self.column_index(column)?)
    }

    pub fn values(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        (0..self.len()).filter_map(move |index| self.get(index))
    }
}

/// An `INSERT` statement about to deliver its rows.
#[derive(Debug, Clone, Copy)]
pub struct InsertStatement<'a> {
    table: &'a str,
    columns: &'a [String],
    line: u64,
}

impl<'a> InsertStatement<'a> {
    pub fn table(&self) -> &'a str {
        self.table
    }

    /// As [`Row::columns`]: the same slice for every row of the statement.
    pub fn columns(&self) -> &'a [String] {
        self.columns
    }

    pub fn column_index(&self, column: &str) -> Option<usize> {
        column_index(self.columns, column)
    }

    /// The 1-based line where the statement starts.
    pub fn line(&self) -> u64 {
        self.line
    }
}

fn column_index(columns: &[String], column: &str) -> Option<usize> {
    columns.iter().position(|c| c.eq_ignore_ascii_case(column))
}

/// What is wrong with a part of the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The input ends inside a quoted string.
    UnterminatedString,
    /// The input ends inside a statement.
    Truncated,
    /// A byte that cannot come where it is.
    Unexpected { found: u8, expected: &'static str },
    /// A value that is not a literal this reader knows (a malformed number, hex or bit
    /// literal, or an expression).
    BadLiteral(&'static str),
    /// A tuple with another number of values than the statement has columns.
    Arity { expected: usize, found: usize },
    /// A tuple larger than the reader holds.
    TupleTooLarge { limit: usize },
    /// An `INSERT` header or a `CREATE TABLE` larger than the reader holds.
    StatementTooLarge { limit: usize },
    /// `INSERT ... SELECT` or `INSERT ... SET`: no tuples to read.
    UnsupportedInsert,
    /// A `CREATE TABLE` whose column list cannot be read.
    BadCreateTable,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnterminatedString => f.write_str("the input ends inside a quoted string"),
            Problem::Truncated => f.write_str("the input ends inside a statement"),
            Problem::Unexpected { found, expected } if found.is_ascii_graphic() => {
                write!(f, "expected {expected}, found '{}'", char::from(*found))
            }
            Problem::Unexpected { found, expected } => {
                write!(f, "expected {expected}, found byte 0x{found:02x}")
            }
            Problem::BadLiteral(what) => write!(f, "unreadable value: {what}"),
            Problem::Arity { expected, found } => {
                write!(f, "{found} values for {expected} columns")
            }
            Problem::TupleTooLarge { limit } => write!(f, "a row larger than {limit} bytes"),
            Problem::StatementTooLarge { limit } => {
                write!(
                    f,
                    "an INSERT header or CREATE TABLE larger than {limit} bytes"
                )
            }
            Problem::UnsupportedInsert => {
                f.write_str("INSERT without VALUES (INSERT ... SELECT or SET) is not readable")
            }
            Problem::BadCreateTable => f.write_str("the columns of CREATE TABLE are unreadable"),
        }
    }
}

/// A part of the dump that did not become rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// 1-based: the line of the tuple's `(`, or of the statement or byte at fault.
    pub line: u64,
    /// The `INSERT`'s table, when the header was read.
    pub table: Option<String>,
    pub problem: Problem,
    /// After a syntax error: the line where the skipped statement ended and reading resumed
    /// (`None` when nothing was skipped, or the input ended first).
    pub resumed_at_line: Option<u64>,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        if let Some(table) = &self.table {
            write!(f, "table `{table}`: ")?;
        }
        write!(f, "{}", self.problem)?;
        if let Some(line) = self.resumed_at_line {
            write!(f, " (rest of the statement skipped up to line {line})")?;
        }
        Ok(())
    }
}

/// Receives what [`DumpReader::read`] finds; an `Err` from any method stops the read.
pub trait DumpSink {
    type Error;

    /// Called before the rows of each `INSERT`: the place to look column positions up once.
    fn insert_start(&mut self, insert: &InsertStatement<'_>) -> Result<(), Self::Error> {
        let _ = insert;
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>) -> Result<(), Self::Error>;

    fn malformed(&mut self, malformed: &Malformed) -> Result<(), Self::Error>;
}

/// Counts of a finished read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpStats {
    pub bytes: u64,
    pub insert_statements: u64,
    pub rows: u64,
    pub malformed: u64,
    /// The `TIME_ZONE` in force at the end of the dump.
    pub time_zone_minutes: Option<i32>,
}

/// Why a read stopped before the end of the dump.
#[derive(Debug)]
pub enum ReadError<E> {
    Io(io::Error),
    /// The sink returned this error.
    Sink(E),
}

impl<E> From<io::Error> for ReadError<E> {
    fn from(error: io::Error) -> Self {
        ReadError::Io(error)
    }
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(error) => write!(f, "cannot read the dump: {error}"),
            ReadError::Sink(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(error) => Some(error),
            ReadError::Sink(error) => Some(error),
        }
    }
}
