//! A streaming reader of `mysqldump` output (and of hand-written SQL of the same shape), for
//! importing another system's MySQL data without a MySQL server.
//!
//! What it owns: a window over the input, the column lists of the `CREATE TABLE`s seen so far,
//! the current statement delimiter (`DELIMITER`) and the dump's time zone (`SET TIME_ZONE`).
//! Every tuple of every `INSERT`/`REPLACE ... VALUES` goes to a [`DumpSink`] as a [`Row`], one
//! tuple at a time; every other statement (comments, `SET`, `LOCK TABLES`, `DROP`, `USE`,
//! `ALTER`, trigger and procedure bodies in `DELIMITER` blocks, ...) is skipped.
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
//!   ([`Row::time_zone_minutes`]) for [`parse_datetime`].

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};

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
                write!(f, "a statement header larger than {limit} bytes")
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

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (or `YYYY-MM-DD`) written in a zone `offset_minutes`
/// east of UTC into milliseconds since the Unix epoch. `None` for the zero date
/// `0000-00-00 00:00:00` and for anything that is not a valid date and time.
pub fn parse_datetime(text: &str, offset_minutes: i32) -> Option<i64> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let separator = |at: usize, expected: u8| b.get(at) == Some(&expected);
    if !(separator(4, b'-') && separator(7, b'-')) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (mut hour, mut minute, mut second, mut millis) = (0, 0, 0, 0);
    if b.len() > 10 {
        if !matches!(b[10], b' ' | b'T') || !separator(13, b':') || !separator(16, b':') {
            return None;
        }
        (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if b.len() > 19 {
            let fraction = &b[19..];
            if fraction[0] != b'.' || !(2..=7).contains(&fraction.len()) {
                return None;
            }
            let digits = &fraction[1..];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            millis = digits
                .iter()
                .chain(std::iter::repeat(&b'0'))
                .take(3)
                .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'));
        }
    }
    let valid = year >= 1
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second)
        - i64::from(offset_minutes) * 60;
    Some(seconds * 1000 + i64::from(millis))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (eras of 400 years from March 1st).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Reads a dump from `input` (any [`Read`]; a `BufRead` such as a locked stdin or a
/// `BufReader<File>` works as is) and hands its rows to a [`DumpSink`].
pub struct DumpReader<R> {
    input: R,
    /// `window[pos..end]` is read but not consumed; `window[..pos]` may be discarded.
    window: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Bytes discarded from the window's front so far.
    discarded: u64,
    /// The line number at `window[line_counted_to]`.
    line: u64,
    line_counted_to: usize,
    delimiter: Vec<u8>,
    /// Column lists by table, from `CREATE TABLE`.
    tables: HashMap<String, Vec<String>>,
    time_zone_minutes: Option<i32>,
    /// The current `INSERT`'s table and columns.
    table: String,
    columns: Vec<String>,
    values: Values,
    statement_text: Vec<u8>,
    statement_text_overflowed: bool,
    max_tuple_bytes: usize,
    stats: DumpStats,
}

impl<R: Read> DumpReader<R> {
    pub fn new(input: R) -> Self {
        DumpReader {
            input,
            window: Vec::new(),
            pos: 0,
            end: 0,
            eof: false,
            discarded: 0,
            line: 1,
            line_counted_to: 0,
            delimiter: b";".to_vec(),
            tables: HashMap::new(),
            time_zone_minutes: None,
            table: String::new(),
            columns: Vec::new(),
            values: Values::default(),
            statement_text: Vec::new(),
            statement_text_overflowed: false,
            max_tuple_bytes: MAX_TUPLE_BYTES,
            stats: DumpStats::default(),
        }
    }

    /// Reads the whole dump, delivering rows and problems to `sink` in input order.
    ///
    /// # Errors
    /// [`ReadError::Io`] when the input fails, [`ReadError::Sink`] when the sink stops the read.
    /// A malformed dump is not an error: its problems go to [`DumpSink::malformed`].
    pub fn read<S: DumpSink>(mut self, sink: &mut S) -> Result<DumpStats, ReadError<S::Error>> {
        self.skip_byte_order_mark()?;
        loop {
            match self.skip_between_statements()? {
                Between::End => break,
                Between::UnterminatedComment { line } => {
                    let malformed = Malformed {
                        line,
                        table: None,
                        problem: Problem::Truncated,
                        resumed_at_line: None,
                    };
                    self.report(sink, &malformed)?;
                    break;
                }
                Between::Statement => {}
            }
            if self.at_keyword(b"DELIMITER")? {
                self.delimiter_command()?;
            } else if self.at_keyword(b"INSERT")? || self.at_keyword(b"REPLACE")? {
                self.insert_statement(sink)?;
            } else {
                self.other_statement(sink)?;
            }
        }
        self.stats.bytes = self.discarded + self.end as u64;
        self.stats.time_zone_minutes = self.time_zone_minutes;
        Ok(self.stats)
    }

    fn insert_statement<S: DumpSink>(&mut self, sink: &mut S) -> Result<(), ReadError<S::Error>> {
        self.stats.insert_statements += 1;
        let statement_line = self.line_at(self.pos);
        let header = match self.attempt(MAX_INSERT_HEADER_BYTES, |scan, _| scan.insert_header())? {
            Attempt::Done(header) => header,
            Attempt::Bad(stop) => return self.report_and_skip(sink, stop, None),
            Attempt::TooLarge => {
                let stop = BadAt::here(Problem::StatementTooLarge {
                    limit: MAX_INSERT_HEADER_BYTES,
                });
                return self.report_and_skip(sink, stop, None);
            }
        };
        self.pos += header.after;
        self.columns = match header.columns {
            Some(columns) => columns,
            None => self.known_columns(&header.table),
        };
        self.table = header.table;
        let insert = InsertStatement {
            table: &self.table,
            columns: &self.columns,
            line: statement_line,
        };
        sink.insert_start(&insert).map_err(ReadError::Sink)?;

        let mut first = true;
        loop {
            let step = self.attempt(self.max_tuple_bytes, |scan, values| {
                values.clear();
                scan.next_tuple(first, values)
            })?;
            // The limit holds however the input happened to be buffered.
            let step = match step {
                Attempt::Done(TupleStep::Row { close, .. }) if close > self.max_tuple_bytes => {
                    Attempt::TooLarge
                }
                step => step,
            };
            match step {
                Attempt::Done(TupleStep::Row { open, close }) => {
                    let line = self.line_at(self.pos + open);
                    let base = self.pos;
                    self.pos += close;
                    first = false;
                    self.deliver(sink, base, line)?;
                }
                Attempt::Done(TupleStep::End { after }) => {
                    self.pos += after;
                    return Ok(());
                }
                Attempt::Done(TupleStep::Trailer { at }) => {
                    // ON DUPLICATE KEY UPDATE ... / AS alias: valid SQL after the rows.
                    self.pos += at;
                    self.skip_statement(false)?;
                    return Ok(());
                }
                Attempt::Bad(stop) => {
                    let table = Some(self.table.clone());
                    return self.report_and_skip(sink, stop, table);
                }
                Attempt::TooLarge => {
                    let stop = BadAt::here(Problem::TupleTooLarge {
                        limit: self.max_tuple_bytes,
                    });
                    let table = Some(self.table.clone());
                    return self.report_and_skip(sink, stop, table);
                }
            }
        }
    }

    /// Hands the tuple just parsed (its slots relative to `window[base..]`) to the sink, or
    /// reports it when its arity does not match the columns.
    fn deliver<S: DumpSink>(
        &mut self,
        sink: &mut S,
        base: usize,
        line: u64,
    ) -> Result<(), ReadError<S::Error>> {
        let (expected, found) = (self.columns.len(), self.values.slots.len());
        if expected != 0 && found != expected {
            let malformed = Malformed {
                line,
                table: Some(self.table.clone()),
                problem: Problem::Arity { expected, found },
                resumed_at_line: None,
            };
            return self.report(sink, &malformed);
        }
        self.stats.rows += 1;
        let row = Row {
            table: &self.table,
            columns: &self.columns,
            line,
            time_zone_minutes: self.time_zone_minutes,
            slots: &self.values.slots,
            window: &self.window[base..],
            arena: &self.values.arena,
        };
        sink.row(&row).map_err(ReadError::Sink)
    }

    /// Skips a statement that is not an `INSERT`, learning from `CREATE TABLE` and `SET`.
    fn other_statement<S: DumpSink>(&mut self, sink: &mut S) -> Result<(), ReadError<S::Error>> {
        let line = self.line_at(self.pos);
        self.statement_text.clear();
        self.statement_text_overflowed = false;
        let terminated = self.skip_statement(true)?;
        let problem = if !terminated {
            Some(Problem::Truncated)
        } else {
            match classify_statement(&self.statement_text) {
                Statement::CreateTable { .. } if self.statement_text_overflowed => {
                    Some(Problem::StatementTooLarge {
                        limit: MAX_STATEMENT_TEXT_BYTES,
                    })
                }
                Statement::CreateTable { table, columns } => {
                    self.tables.insert(table, columns);
                    None
                }
                Statement::BadCreateTable => Some(Problem::BadCreateTable),
                Statement::TimeZone(zone) => {
                    self.time_zone_minutes = zone;
                    None
                }
                Statement::Other => None,
            }
        };
        match problem {
            Some(problem) => {
                let malformed = Malformed {
                    line,
                    table: None,
                    problem,
                    resumed_at_line: None,
                };
                self.report(sink, &malformed)
            }
            None => Ok(()),
        }
    }

    /// `DELIMITER <token>`: a client command of one line, not ended by the delimiter.
    fn delimiter_command(&mut self) -> io::Result<()> {
        let line_len = loop {
            let rest = &self.window[self.pos..self.end];
            if let Some(n) = rest.iter().position(|&b| b == b'\n') {
                break n;
            }
            let pending = rest.len();
            if self.eof || pending > MAX_DELIMITER_LINE_BYTES {
                break pending;
            }
            self.fill(pending)?;
        };
        let line = self
            .window
            .get(self.pos + b"DELIMITER".len()..self.pos + line_len)
            .unwrap_or_default();
        if let Some(token) = line
            .split(|b| b.is_ascii_whitespace())
            .find(|token| !token.is_empty())
        {
            let token = unquote(token).unwrap_or(token);
            if !token.is_empty() {
                self.delimiter = token.to_vec();
            }
        }
        self.pos += line_len;
        self.skip_line()
    }

    fn known_columns(&self, table: &str) -> Vec<String> {
        self.tables
            .get(table)
            .or_else(|| {
                self.tables
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(table))
                    .map(|(_, columns)| columns)
            })
            .cloned()
            .unwrap_or_default()
    }

    /// Reports `stop`, then skips from its resume point to the end of the statement.
    fn report_and_skip<S: DumpSink>(
        &mut self,
        sink: &mut S,
        stop: BadAt,
        table: Option<String>,
    ) -> Result<(), ReadError<S::Error>> {
        let line = self.line_at(self.pos + stop.at);
        self.pos += stop.resume_at;
        let resumed_at_line = if self.skip_statement(false)? {
            Some(self.line_at(self.pos))
        } else {
            None
        };
        let malformed = Malformed {
            line,
            table,
            problem: stop.problem,
            resumed_at_line,
        };
        self.report(sink, &malformed)
    }

    fn report<S: DumpSink>(
        &mut self,
        sink: &mut S,
        malformed: &Malformed,
    ) -> Result<(), ReadError<S::Error>> {
        self.stats.malformed += 1;
        sink.malformed(malformed).map_err(ReadError::Sink)
    }

    /// Runs `step` on the unconsumed window until it no longer needs more input, reading more
    /// between tries; gives up once `limit` bytes are pending. Positions in the outcome are
    /// relative to `pos`.
    fn attempt<T>(
        &mut self,
        limit: usize,
        step: impl Fn(Scan<'_>, &mut Values) -> Step<T>,
    ) -> io::Result<Attempt<T>> {
        loop {
            let scan = Scan {
                s: &self.window[self.pos..self.end],
                eof: self.eof,
                delimiter: &self.delimiter,
            };
            match step(scan, &mut self.values) {
                Ok(done) => return Ok(Attempt::Done(done)),
                Err(Stop::Bad(stop)) => return Ok(Attempt::Bad(stop)),
                Err(Stop::More) => {
                    let pending = self.end - self.pos;
                    if self.eof {
                        // A scan never asks for more at the end of the input; be safe anyway.
                        return Ok(Attempt::Bad(BadAt::new(Problem::Truncated, pending)));
                    }
                    if pending >= limit {
                        return Ok(Attempt::TooLarge);
                    }
                    // At least double what is pending, so a long unit is rescanned O(1) times.
                    self.fill(pending.min(limit - pending).max(1))?;
                }
            }
        }
    }

    /// Skips to just after the statement's delimiter (outside quotes and comments), keeping
    /// the statement's first bytes in `statement_text` when `collect`. False at end of input.
    fn skip_statement(&mut self, collect: bool) -> io::Result<bool> {
        let mut state = SkipState::Code;
        loop {
            let rest = &self.window[self.pos..self.end];
            let (consumed, found) = skip_scan(rest, self.eof, &self.delimiter, &mut state);
            if collect {
                let room = MAX_STATEMENT_TEXT_BYTES.saturating_sub(self.statement_text.len());
                let kept = consumed.min(room);
                self.statement_text.extend_from_slice(&rest[..kept]);
                self.statement_text_overflowed |= kept < consumed;
            }
            self.pos += consumed;
            if found {
                self.pos += self.delimiter.len();
                return Ok(true);
            }
            if self.eof {
                return Ok(false);
            }
            self.fill(1)?;
        }
    }

    /// Skips blanks, comments and empty statements up to the next statement.
    fn skip_between_statements(&mut self) -> io::Result<Between> {
        loop {
            self.ensure(STATEMENT_START_LOOKAHEAD.max(self.delimiter.len()))?;
            let rest = &self.window[self.pos..self.end];
            let Some(&first) = rest.first() else {
                return Ok(Between::End);
            };
            if rest.starts_with(&self.delimiter) {
                self.pos += self.delimiter.len();
                continue;
            }
            match first {
                b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                    let blank = rest.iter().take_while(|&&b| is_space(b)).count();
                    self.pos += blank;
                }
                b'#' => self.skip_line()?,
                b'-' if rest.starts_with(b"--") && rest.get(2).map_or(true, |&b| b <= b' ') => {
                    self.skip_line()?
                }
                b'/' if rest.starts_with(b"/*") && !is_executable_comment(rest) => {
                    let line = self.line_at(self.pos);
                    if !self.skip_block_comment()? {
                        return Ok(Between::UnterminatedComment { line });
                    }
                }
                _ => return Ok(Between::Statement),
            }
        }
    }

    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            let rest = &self.window[self.pos..self.end];
            if let Some(n) = rest.iter().position(|&b| b == b'\n') {
                self.pos += n + 1;
                return Ok(());
            }
            self.pos = self.end;
            if !self.fill(1)? {
                return Ok(());
            }
        }
    }

    /// Skips a `/* ... */` comment starting at `pos`; false when the input ends inside it.
    fn skip_block_comment(&mut self) -> io::Result<bool> {
        self.pos += 2;
        loop {
            let rest = &self.window[self.pos..self.end];
            if let Some(n) = rest.windows(2).position(|pair| pair == b"*/") {
                self.pos += n + 2;
                return Ok(true);
            }
            // Keep a last '*' that a '/' may follow.
            self.pos = self.end.saturating_sub(1).max(self.pos);
            if !self.fill(1)? {
                self.pos = self.end;
                return Ok(false);
            }
        }
    }

    fn skip_byte_order_mark(&mut self) -> io::Result<()> {
        self.ensure(3)?;
        if self.window[self.pos..self.end].starts_with(b"\xef\xbb\xbf") {
            self.pos += 3;
        }
        Ok(())
    }

    fn at_keyword(&mut self, keyword: &[u8]) -> io::Result<bool> {
        self.ensure(keyword.len() + 1)?;
        let scan = Scan {
            s: &self.window[self.pos..self.end],
            eof: true,
            delimiter: &self.delimiter,
        };
        Ok(matches!(scan.keyword_at(0, keyword), Ok(true)))
    }

    /// Reads until `n` bytes are unconsumed or the input ends.
    fn ensure(&mut self, n: usize) -> io::Result<()> {
        while self.end - self.pos < n {
            if !self.fill(n - (self.end - self.pos))? {
                break;
            }
        }
        Ok(())
    }

    /// Reads at least `min_new` more bytes (fewer at end of input), keeping `window[pos..]`;
    /// false when the input had nothing more.
    fn fill(&mut self, min_new: usize) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let min_new = min_new.max(1);
        let free = self.window.len() - self.end;
        if self.pos > 0 && free < min_new.max(READ_CHUNK_BYTES / 4) {
            self.line_at(self.pos);
            self.window.copy_within(self.pos..self.end, 0);
            self.discarded += self.pos as u64;
            self.end -= self.pos;
            self.line_counted_to = 0;
            self.pos = 0;
        }
        if self.window.len() - self.end < min_new {
            let grown = (self.end + min_new)
                .max(self.window.len() * 2)
                .max(READ_CHUNK_BYTES);
            self.window.resize(grown, 0);
        }
        let mut added = 0;
        while added < min_new {
            match self.input.read(&mut self.window[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    added += n;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(added > 0)
    }

    /// The 1-based line of `window[at]`, counting newlines from the last position asked.
    fn line_at(&mut self, at: usize) -> u64 {
        if at >= self.line_counted_to {
            self.line += count_newlines(&self.window[self.line_counted_to..at]);
        } else {
            self.line -= count_newlines(&self.window[at..self.line_counted_to]);
        }
        self.line_counted_to = at;
        self.line
    }
}

#[cfg(test)]
impl<R: Read> DumpReader<R> {
    fn with_max_tuple_bytes(mut self, max_tuple_bytes: usize) -> Self {
        self.max_tuple_bytes = max_tuple_bytes;
        self
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

enum Between {
    Statement,
    End,
    UnterminatedComment { line: u64 },
}

enum Attempt<T> {
    Done(T),
    Bad(BadAt),
    TooLarge,
}

/// Where a value's bytes are: in the window (no escapes) or in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Window,
    Arena,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Number,
    Text,
    Binary,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    kind: Kind,
    store: Store,
    start: usize,
    end: usize,
}

impl Slot {
    const NULL: Slot = Slot {
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
struct Values {
    slots: Vec<Slot>,
    arena: Vec<u8>,
}

impl Values {
    fn clear(&mut self) {
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

/// Why a scan step stopped.
enum Stop {
    /// The window ends before the step could finish: read more and run it again.
    More,
    Bad(BadAt),
}

/// A malformed spot: `at` is reported, skipping to the end of the statement starts at
/// `resume_at` (the start of a bad literal, so that its quotes are seen by the skipper).
#[derive(Debug)]
struct BadAt {
    problem: Problem,
    at: usize,
    resume_at: usize,
}

impl BadAt {
    fn new(problem: Problem, at: usize) -> BadAt {
        BadAt {
            problem,
            at,
            resume_at: at,
        }
    }

    fn here(problem: Problem) -> BadAt {
        BadAt::new(problem, 0)
    }
}

type Step<T> = Result<T, Stop>;

fn bad(problem: Problem, at: usize) -> Stop {
    Stop::Bad(BadAt::new(problem, at))
}

/// What follows in an `INSERT` after its header or a tuple.
enum TupleStep {
    Row { open: usize, close: usize },
    End { after: usize },
    Trailer { at: usize },
}

struct InsertHeader {
    table: String,
    columns: Option<Vec<String>>,
    after: usize,
}

/// A pure parser over the unconsumed window `s`: every position is an index into `s`, and a
/// step that reaches the end of `s` before it can decide asks for more ([`Stop::More`])
/// unless `eof`.
#[derive(Clone, Copy)]
struct Scan<'a> {
    s: &'a [u8],
    eof: bool,
    delimiter: &'a [u8],
}

impl<'a> Scan<'a> {
    fn peek(&self, i: usize) -> Step<Option<u8>> {
        match self.s.get(i) {
            Some(&b) => Ok(Some(b)),
            None if self.eof => Ok(None),
            None => Err(Stop::More),
        }
    }

    fn byte(&self, i: usize) -> Step<u8> {
        self.peek(i)?
            .ok_or_else(|| bad(Problem::Truncated, self.s.len()))
    }

    /// The end of the window inside something: more input, or `problem` at the end.
    fn ended(&self, problem: Problem) -> Stop {
        if self.eof {
            bad(problem, self.s.len())
        } else {
            Stop::More
        }
    }

    /// Skips blanks and comments (`-- `, `#`, `/* */`; executable comments included).
    fn skip_blank(&self, mut i: usize) -> Step<usize> {
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
    fn keyword_at(&self, i: usize, keyword: &[u8]) -> Step<bool> {
        let available = &self.s[i.min(self.s.len())..self.s.len().min(i + keyword.len())];
        if !available.eq_ignore_ascii_case(&keyword[..available.len()]) {
            return Ok(false);
        }
        if available.len() < keyword.len() {
            return if self.eof { Ok(false) } else { Err(Stop::More) };
        }
        Ok(!self.peek(i + keyword.len())?.is_some_and(is_word_byte))
    }

    fn word(&self, i: usize) -> Step<(&'a [u8], usize)> {
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
    fn identifier(&self, i: usize) -> Step<(String, usize)> {
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
    fn table_name(&self, i: usize) -> Step<(String, usize)> {
        let (mut name, mut j) = self.identifier(i)?;
        while self.peek(j)? == Some(b'.') {
            (name, j) = self.identifier(j + 1)?;
        }
        Ok((name, j))
    }

    /// `INSERT|REPLACE [modifiers] [INTO] table [PARTITION (...)] [(columns)] VALUES|VALUE`.
    fn insert_header(&self) -> Step<InsertHeader> {
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
    fn next_tuple(&self, first: bool, values: &mut Values) -> Step<TupleStep> {
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

    fn value(&self, i: usize, values: &mut Values) -> Step<usize> {
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

    /// From inside a parenthesised list: the index after the element's end (a `,` or `)` at
    /// depth 0, skipping quotes, comments and nested parentheses), and whether it was `)`.
    fn element_end(&self, mut i: usize) -> Step<(usize, bool)> {
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

/// What a statement other than `INSERT` means to the reader.
#[derive(Debug, PartialEq, Eq)]
enum Statement {
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
fn classify_statement(text: &[u8]) -> Statement {
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
fn parse_utc_offset(text: &[u8]) -> Option<i32> {
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
fn is_executable_comment(rest: &[u8]) -> bool {
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
fn unquote(bytes: &[u8]) -> Option<&[u8]> {
    match bytes {
        [open @ (b'\'' | b'"'), inner @ .., close] if open == close => Some(inner),
        _ => None,
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
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
fn find_quote_or_backslash(haystack: &[u8], quote: u8) -> Option<usize> {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SkipState {
    Code,
    Quoted(u8),
    Escaped(u8),
    LineComment,
    BlockComment,
}

/// Scans `s` for the delimiter outside quotes and comments, from `state`. Returns how many
/// bytes are consumed and whether the delimiter starts right after them; it stops early only
/// where it needs bytes beyond `s` to decide (never when `eof`).
fn skip_scan(s: &[u8], eof: bool, delimiter: &[u8], state: &mut SkipState) -> (usize, bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::io::BufReader;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Null,
        Number(String),
        Text(Vec<u8>),
        Binary(Vec<u8>),
    }

    fn text(s: &str) -> Owned {
        Owned::Text(s.as_bytes().to_vec())
    }

    fn number(s: &str) -> Owned {
        Owned::Number(s.to_string())
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct OwnedRow {
        table: String,
        columns: Vec<String>,
        line: u64,
        zone: Option<i32>,
        values: Vec<Owned>,
    }

    #[derive(Debug, Default, PartialEq, Eq)]
    struct Collected {
        inserts: Vec<(String, u64)>,
        rows: Vec<OwnedRow>,
        malformed: Vec<Malformed>,
    }

    impl Collected {
        fn values(&self) -> Vec<Vec<Owned>> {
            self.rows.iter().map(|row| row.values.clone()).collect()
        }

        fn lines(&self) -> Vec<u64> {
            self.rows.iter().map(|row| row.line).collect()
        }
    }

    impl DumpSink for Collected {
        type Error = Infallible;

        fn insert_start(&mut self, insert: &InsertStatement<'_>) -> Result<(), Infallible> {
            self.inserts
                .push((insert.table().to_string(), insert.line()));
            Ok(())
        }

        fn row(&mut self, row: &Row<'_>) -> Result<(), Infallible> {
            let values = row
                .values()
                .map(|value| match value {
                    Value::Null => Owned::Null,
                    Value::Number(n) => Owned::Number(n.to_string()),
                    Value::Text(t) => Owned::Text(t.to_vec()),
                    Value::Binary(b) => Owned::Binary(b.to_vec()),
                })
                .collect();
            self.rows.push(OwnedRow {
                table: row.table().to_string(),
                columns: row.columns().to_vec(),
                line: row.line(),
                zone: row.time_zone_minutes(),
                values,
            });
            Ok(())
        }

        fn malformed(&mut self, malformed: &Malformed) -> Result<(), Infallible> {
            self.malformed.push(malformed.clone());
            Ok(())
        }
    }

    /// Hands out at most `chunk` bytes per read, to split the input everywhere.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_from(input: impl Read, max_tuple_bytes: usize) -> (Collected, DumpStats) {
        let mut collected = Collected::default();
        let stats = DumpReader::new(input)
            .with_max_tuple_bytes(max_tuple_bytes)
            .read(&mut collected)
            .expect("in-memory reads do not fail");
        (collected, stats)
    }

    /// Reads `dump` in one piece, then through 1-, 2-, 3- and 7-byte reads behind a 7-byte
    /// `BufReader`, and checks that every split gives the same rows, lines and problems.
    fn read_limited(dump: &[u8], max_tuple_bytes: usize) -> (Collected, DumpStats) {
        let whole = read_from(dump, max_tuple_bytes);
        for chunk in [1, 2, 3, 7] {
            let trickle = Trickle { data: dump, chunk };
            let split = read_from(BufReader::with_capacity(7, trickle), max_tuple_bytes);
            assert_eq!(split, whole, "reading {chunk} bytes at a time");
        }
        whole
    }

    fn read(dump: &str) -> (Collected, DumpStats) {
        read_limited(dump.as_bytes(), MAX_TUPLE_BYTES)
    }

    /// mysqldump's escaping (mysql_real_escape_string).
    fn escape(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                0 => out.extend_from_slice(b"\\0"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\'' => out.extend_from_slice(b"\\'"),
                b'"' => out.extend_from_slice(b"\\\""),
                0x1a => out.extend_from_slice(b"\\Z"),
                _ => out.push(b),
            }
        }
        out
    }

    const MYSQLDUMP: &str = "\
-- MySQL dump 10.13  Distrib 5.7.40, for Linux (x86_64)
--
-- Host: localhost    Database: gofly
-- ------------------------------------------------------
-- Server version\t5.7.40

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;

--
-- Table structure for table `message`
--

DROP TABLE IF EXISTS `message`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8 */;
CREATE TABLE `message` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `kefu_id` varchar(100) NOT NULL DEFAULT '',
  `content` varchar(2048) NOT NULL DEFAULT '' COMMENT 'text, with (parens)',
  `mes_type` enum('kefu','visitor') NOT NULL DEFAULT 'visitor',
  PRIMARY KEY (`id`),
  KEY `kefu_id` (`kefu_id`),
  UNIQUE KEY `u` (`kefu_id`,`id`),
  CONSTRAINT `fk` FOREIGN KEY (`kefu_id`) REFERENCES `user` (`name`),
  FULLTEXT KEY `ft` (`content`),
  INDEX `i` (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=4 DEFAULT CHARSET=utf8mb4;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `message`
--

LOCK TABLES `message` WRITE;
/*!40000 ALTER TABLE `message` DISABLE KEYS */;
INSERT INTO `message` VALUES (1,'agent','hello','visitor'),(2,'agent','你好 😀','kefu'),(3,'agent','','visitor');
/*!40000 ALTER TABLE `message` ENABLE KEYS */;
UNLOCK TABLES;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;

-- Dump completed on 2024-01-01 12:00:00
";

    #[test]
    fn reads_a_mysqldump_with_its_create_table_columns() {
        let (got, stats) = read(MYSQLDUMP);
        assert_eq!(got.malformed, []);
        assert_eq!(got.inserts, [("message".to_string(), 40)]);
        let columns = ["id", "kefu_id", "content", "mes_type"];
        assert!(got.rows.iter().all(|row| row.columns == columns));
        assert!(got.rows.iter().all(|row| row.table == "message"));
        assert!(got.rows.iter().all(|row| row.zone == Some(0)));
        assert_eq!(got.lines(), [40, 40, 40]);
        assert_eq!(
            got.values(),
            [
                vec![number("1"), text("agent"), text("hello"), text("visitor")],
                vec![number("2"), text("agent"), text("你好 😀"), text("kefu")],
                vec![number("3"), text("agent"), text(""), text("visitor")],
            ]
        );
        let expected = DumpStats {
            bytes: MYSQLDUMP.len() as u64,
            insert_statements: 1,
            rows: 3,
            malformed: 0,
            time_zone_minutes: Some(0),
        };
        assert_eq!(stats, expected);
    }

    #[test]
    fn reads_every_form_of_insert() {
        let dump = "\
CREATE TABLE t (a int, `b` text, \"c\" int, KEY k (a));
insert into t values (1,'x',2);
INSERT INTO `t` (`c`,`a`) VALUES (5,6);
INSERT INTO t (b) VALUE ('only b');
INSERT IGNORE INTO `t` VALUES (1,'ignored?',3);
INSERT LOW_PRIORITY IGNORE t VALUES(7,'no into',8);
REPLACE INTO `gofly`.`t` VALUES (9,'replaced',10);
replace gofly.t values ( 11 , 'spaces' , 12 ) , /* between */ ( 13 , 'b' , 14 ) -- done
;
INSERT INTO t VALUES (15,'upsert',16) ON DUPLICATE KEY UPDATE b = 'x;y', c = 1;
INSERT INTO t (`a`, `b`, `c`) VALUES (17, 'aliased', 18) AS new ON DUPLICATE KEY UPDATE a = new.a;
";
        let (got, stats) = read(dump);
        assert_eq!(got.malformed, []);
        let abc = ["a", "b", "c"].map(String::from).to_vec();
        let summary: Vec<(Vec<String>, Vec<Owned>)> = got
            .rows
            .iter()
            .map(|row| (row.columns.clone(), row.values.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (abc.clone(), vec![number("1"), text("x"), number("2")]),
                (vec!["c".into(), "a".into()], vec![number("5"), number("6")]),
                (vec!["b".into()], vec![text("only b")]),
                (
                    abc.clone(),
                    vec![number("1"), text("ignored?"), number("3")]
                ),
                (abc.clone(), vec![number("7"), text("no into"), number("8")]),
                (
                    abc.clone(),
                    vec![number("9"), text("replaced"), number("10")]
                ),
                (
                    abc.clone(),
                    vec![number("11"), text("spaces"), number("12")]
                ),
                (abc.clone(), vec![number("13"), text("b"), number("14")]),
                (
                    abc.clone(),
                    vec![number("15"), text("upsert"), number("16")]
                ),
                (abc, vec![number("17"), text("aliased"), number("18")]),
            ]
        );
        assert!(got.rows.iter().all(|row| row.table == "t"));
        assert_eq!(stats.insert_statements, 9);
        assert_eq!(got.lines(), [2, 3, 4, 5, 6, 7, 8, 8, 10, 11]);
    }

    #[test]
    fn escapes_round_trip_every_byte() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut dump = b"INSERT INTO t VALUES ('".to_vec();
        dump.extend(escape(&all));
        dump.extend_from_slice(b"',\"");
        dump.extend(escape(&all));
        dump.extend_from_slice(b"\");\n");
        let (got, _) = read_limited(&dump, MAX_TUPLE_BYTES);
        assert_eq!(got.malformed, []);
        assert_eq!(
            got.values(),
            [vec![Owned::Text(all.clone()), Owned::Text(all)]]
        );
    }

    #[test]
    fn resolves_each_escape_as_mysql_does() {
        let dump = r#"INSERT INTO t VALUES ('\0\'\"\b\n\r\t\Z\\\%\_\q\é', 'it''s', "say ""hi""", 'a\'''b', '\\');"#;
        let (got, _) = read(dump);
        assert_eq!(got.malformed, []);
        let mut first = b"\0'\"\x08\n\r\t\x1a\\\\%\\_q".to_vec();
        first.extend_from_slice("é".as_bytes());
        assert_eq!(
            got.values(),
            [vec![
                Owned::Text(first),
                text("it's"),
                text("say \"hi\""),
                text("a''b"),
                text("\\"),
            ]]
        );
    }

    #[test]
    fn strings_and_statements_span_lines() {
        let dump = "INSERT INTO t VALUES\n(1,'first\nline\r\nthird'),\n\n  (2,\n'x'\n)\n,(3,'y');\nINSERT INTO t VALUES (4,'z');\n";
        let (got, _) = read(dump);
        assert_eq!(got.malformed, []);
        assert_eq!(got.lines(), [2, 6, 9, 10]);
        assert_eq!(got.rows[0].values[1], text("first\nline\r\nthird"));
    }

    #[test]
    fn null_is_not_the_string_null() {
        let (got, _) = read("INSERT INTO t VALUES (NULL,'NULL',null,\"NULL\",'',Null);");
        assert_eq!(
            got.values(),
            [vec![
                Owned::Null,
                text("NULL"),
                Owned::Null,
                text("NULL"),
                text(""),
                Owned::Null
            ]]
        );
    }

    #[test]
    fn numbers_keep_their_text() {
        let (got, _) = read(
            "INSERT INTO t VALUES (0,-12,+7,3.50,.5,1e10,-2.5E-3,18446744073709551615,TRUE,false);",
        );
        let expected = [
            "0",
            "-12",
            "+7",
            "3.50",
            ".5",
            "1e10",
            "-2.5E-3",
            "18446744073709551615",
            "1",
            "0",
        ];
        assert_eq!(got.values(), [expected.map(number).to_vec()]);
    }

    #[test]
    fn hex_bit_and_introduced_literals() {
        let dump = "INSERT INTO t VALUES (0xABcd,X'0102',x'',0x1,b'0101',B'111111111',0b11,\
                    _binary 'a\\0b',_utf8mb4'caf\\'e',_binary 0xff,_latin1 X'41',N'national',_binary'');";
        let (got, _) = read(dump);
        assert_eq!(got.malformed, []);
        let binary = |b: &[u8]| Owned::Binary(b.to_vec());
        assert_eq!(
            got.values(),
            [vec![
                binary(&[0xab, 0xcd]),
                binary(&[1, 2]),
                binary(&[]),
                binary(&[1]),
                binary(&[5]),
                binary(&[1, 0xff]),
                binary(&[3]),
                binary(b"a\0b"),
                text("caf'e"),
                binary(&[0xff]),
                binary(b"A"),
                text("national"),
                binary(b""),
            ]]
        );
    }

    #[test]
    fn skips_everything_that_is_not_an_insert() {
        let dump = "\
/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19
# a hash comment; INSERT INTO t VALUES (0);
/* a block comment
   INSERT INTO t VALUES (0); */
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `gofly` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `gofly`;
SET NAMES utf8mb4;
DROP TABLE IF EXISTS `t`;
/*!50001 CREATE VIEW `v` AS SELECT 1 AS `x` */;
LOCK TABLES `t` WRITE;
ALTER TABLE `t` DISABLE KEYS;
INSERT INTO t VALUES (1,'kept');
UNLOCK TABLES;
;;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER `tr` AFTER INSERT ON `t` FOR EACH ROW BEGIN
  INSERT INTO log VALUES (NEW.id, 'trigger');
END */;;
CREATE PROCEDURE p()
BEGIN
  INSERT INTO log VALUES (2, 'procedure; with semicolons');
  SELECT ';;' AS `;;`;
END ;;
INSERT INTO t VALUES (2,'inside delimiter block');;
DELIMITER ;
delimiter $$
CREATE FUNCTION f() RETURNS INT BEGIN INSERT INTO log VALUES (3); RETURN 1; END$$
DELIMITER ;
INSERT INTO t VALUES (3,'after');
";
        let (got, stats) = read(dump);
        assert_eq!(got.malformed, []);
        assert_eq!(
            got.values(),
            [
                vec![number("1"), text("kept")],
                vec![number("2"), text("inside delimiter block")],
                vec![number("3"), text("after")],
            ]
        );
        assert!(got.rows.iter().all(|row| row.table == "t"));
        assert_eq!(stats.insert_statements, 3);
        assert_eq!(stats.time_zone_minutes, None);
    }

    #[test]
    fn time_zone_comes_from_set_time_zone() {
        let dump = "\
INSERT INTO t VALUES (1);
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
INSERT INTO t VALUES (2);
SET TIME_ZONE='+08:00';
INSERT INTO t VALUES (3);
SET @@session.time_zone = \"-05:30\", @x = 'TIME_ZONE=+01:00';
INSERT INTO t VALUES (4);
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
SET @@GLOBAL.time_zone = '+03:00';
INSERT INTO t VALUES (5);
";
        let (got, stats) = read(dump);
        let zones: Vec<Option<i32>> = got.rows.iter().map(|row| row.zone).collect();
        assert_eq!(zones, [None, Some(0), Some(480), Some(-330), Some(-330)]);
        assert_eq!(stats.time_zone_minutes, Some(-330));
        let (_, stats) = read("SET time_zone = 'SYSTEM';");
        assert_eq!(stats.time_zone_minutes, None);
    }

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset(b"+00:00"), Some(0));
        assert_eq!(parse_utc_offset(b"+8:00"), Some(480));
        assert_eq!(parse_utc_offset(b"-05:30"), Some(-330));
        assert_eq!(parse_utc_offset(b"+14:00"), Some(840));
        assert_eq!(parse_utc_offset(b"utc"), Some(0));
        assert_eq!(parse_utc_offset(b"+15:00"), None);
        assert_eq!(parse_utc_offset(b"+08:0"), None);
        assert_eq!(parse_utc_offset(b"Asia/Shanghai"), None);
        assert_eq!(parse_utc_offset(b""), None);
    }

    #[test]
    fn parses_datetimes_in_the_dump_zone() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00", 0), Some(0));
        assert_eq!(
            parse_datetime("2020-06-27 19:32:41", 0),
            Some(1_593_286_361_000)
        );
        assert_eq!(
            parse_datetime("2020-06-28 03:32:41", 480),
            Some(1_593_286_361_000)
        );
        assert_eq!(
            parse_datetime("2020-06-27 19:32:41.5", 0),
            Some(1_593_286_361_500)
        );
        assert_eq!(
            parse_datetime("2020-06-27 19:32:41.123456", 0),
            Some(1_593_286_361_123)
        );
        assert_eq!(parse_datetime("2020-02-29", 0), Some(1_582_934_400_000));
        assert_eq!(
            parse_datetime("2020-02-29T00:00:00", 0),
            Some(1_582_934_400_000)
        );
        assert_eq!(parse_datetime("1969-12-31 23:59:59", 0), Some(-1000));
        assert_eq!(
            parse_datetime("2038-01-19 03:14:07", 0),
            Some(2_147_483_647_000)
        );
        assert_eq!(parse_datetime("0000-00-00 00:00:00", 0), None);
        assert_eq!(parse_datetime("0000-00-00", 0), None);
        for bad in [
            "2021-02-29 00:00:00",
            "2020-13-01 00:00:00",
            "2020-04-31 00:00:00",
            "2020-01-01 24:00:00",
            "2020-01-01 00:60:00",
            "2020-01-01 00:00:60",
            "2020-01-01 00:00:00.",
            "2020-01-01 00:00:00.1234567",
            "2020-01-01 00:00",
            "2020/01/01 00:00:00",
            "2020-1-01",
            "",
            "今天",
        ] {
            assert_eq!(parse_datetime(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn garbage_between_tuples_is_reported_and_the_statement_skipped() {
        let dump = "\
INSERT INTO t VALUES (1,'a'),(2,'b') junk (3,'c;'),
(4,'d');
INSERT INTO t VALUES (5,'e');
";
        let (got, stats) = read(dump);
        assert_eq!(
            got.values(),
            [
                vec![number("1"), text("a")],
                vec![number("2"), text("b")],
                vec![number("5"), text("e")]
            ]
        );
        let expected = Malformed {
            line: 1,
            table: Some("t".into()),
            problem: Problem::Unexpected {
                found: b'j',
                expected: "',' or the end of the statement",
            },
            resumed_at_line: Some(2),
        };
        assert_eq!(got.malformed, [expected]);
        assert_eq!(stats.malformed, 1);
        assert_eq!(
            got.malformed[0].to_string(),
            "line 1: table `t`: expected ',' or the end of the statement, found 'j' \
             (rest of the statement skipped up to line 2)"
        );
    }

    #[test]
    fn a_bad_value_is_reported_at_its_tuple() {
        let dump = "INSERT INTO t VALUES (1,'a'),\n(2,NOW()),(3,'x');\nINSERT INTO t VALUES (4,X'zz;'),(5,'y');\nINSERT INTO t VALUES (6,1e),(7,'z');\nINSERT INTO t VALUES (8,'ok');";
        let (got, _) = read(dump);
        assert_eq!(
            got.values(),
            [vec![number("1"), text("a")], vec![number("8"), text("ok")]]
        );
        let problems: Vec<(u64, Problem, Option<u64>)> = got
            .malformed
            .iter()
            .map(|m| (m.line, m.problem.clone(), m.resumed_at_line))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    2,
                    Problem::BadLiteral("an unquoted word or expression"),
                    Some(2)
                ),
                (3, Problem::BadLiteral("a non-hex digit in X'...'"), Some(3)),
                (
                    4,
                    Problem::BadLiteral("a number with an empty exponent"),
                    Some(4)
                ),
            ]
        );
    }

    #[test]
    fn an_unterminated_string_at_the_end_is_reported() {
        let (got, stats) = read("INSERT INTO t VALUES (1,'a'),\n(2,'never closed);\n");
        assert_eq!(got.values(), [vec![number("1"), text("a")]]);
        let expected = Malformed {
            line: 2,
            table: Some("t".into()),
            problem: Problem::UnterminatedString,
            resumed_at_line: None,
        };
        assert_eq!(got.malformed, [expected]);
        assert_eq!(stats.rows, 1);
        let (got, _) = read("INSERT INTO t VALUES (1,'ends with an escape\\");
        assert_eq!(got.malformed[0].problem, Problem::UnterminatedString);
    }

    #[test]
    fn a_truncated_dump_keeps_the_rows_before_the_cut() {
        for (dump, rows) in [
            ("INSERT INTO t VALUES (1,'a'),(2,'b')", 2),
            ("INSERT INTO t VALUES (1,'a'),(2,'b'),", 2),
            ("INSERT INTO t VALUES (1,'a'),(2,'b'", 1),
            ("INSERT INTO t VALUES (1,'a'),(2,", 1),
            ("INSERT INTO t VALUES", 0),
            ("INSERT INTO `t", 0),
        ] {
            let (got, _) = read(dump);
            assert_eq!(got.rows.len(), rows, "{dump}");
            assert_eq!(got.malformed.len(), 1, "{dump}");
            assert_eq!(got.malformed[0].problem, Problem::Truncated, "{dump}");
        }
        for dump in [
            "CREATE TABLE t (a int",
            "UNLOCK TABLES",
            "SET x = 'unterminated",
            "/* unterminated comment",
        ] {
            let (got, _) = read(dump);
            assert_eq!(got.malformed.len(), 1, "{dump}");
            assert_eq!(got.malformed[0].problem, Problem::Truncated, "{dump}");
        }
    }

    #[test]
    fn arity_errors_report_the_tuple_and_read_on() {
        let dump = "CREATE TABLE `t` (`a` int, `b` int);\nINSERT INTO t VALUES (1,2),\n(3),\n(4,5,6),(7,8);\nINSERT INTO t (a) VALUES (9),(10,11);";
        let (got, stats) = read(dump);
        assert_eq!(
            got.values(),
            [
                vec![number("1"), number("2")],
                vec![number("7"), number("8")],
                vec![number("9")]
            ]
        );
        let problems: Vec<(u64, Problem)> = got
            .malformed
            .iter()
            .map(|m| (m.line, m.problem.clone()))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    3,
                    Problem::Arity {
                        expected: 2,
                        found: 1
                    }
                ),
                (
                    4,
                    Problem::Arity {
                        expected: 2,
                        found: 3
                    }
                ),
                (
                    5,
                    Problem::Arity {
                        expected: 1,
                        found: 2
                    }
                ),
            ]
        );
        assert_eq!((stats.rows, stats.malformed), (3, 3));
    }

    #[test]
    fn insert_select_and_set_are_reported() {
        let dump = "INSERT INTO t SELECT * FROM u;\nINSERT INTO t SET a = 1;\nINSERT INTO t (a) (SELECT 1);\nINSERT INTO t VALUES (1);";
        let (got, _) = read(dump);
        assert_eq!(got.values(), [vec![number("1")]]);
        let lines: Vec<(u64, Problem)> = got
            .malformed
            .iter()
            .map(|m| (m.line, m.problem.clone()))
            .collect();
        assert_eq!(
            lines,
            [
                (1, Problem::UnsupportedInsert),
                (2, Problem::UnsupportedInsert),
                (3, Problem::UnsupportedInsert),
            ]
        );
    }

    #[test]
    fn an_oversized_tuple_is_reported_and_skipped() {
        let long = "x".repeat(200);
        let dump = format!(
            "INSERT INTO t VALUES (1,'short'),(2,'{long}'),(3,'skipped');\nINSERT INTO t VALUES (4,'after');"
        );
        let (got, _) = read_limited(dump.as_bytes(), 64);
        assert_eq!(
            got.values(),
            [
                vec![number("1"), text("short")],
                vec![number("4"), text("after")]
            ]
        );
        assert_eq!(got.malformed.len(), 1);
        assert_eq!(
            got.malformed[0].problem,
            Problem::TupleTooLarge { limit: 64 }
        );
        assert_eq!(got.malformed[0].resumed_at_line, Some(1));
    }

    #[test]
    fn a_sink_error_stops_the_read() {
        struct StopAtTwo(Vec<i64>);
        impl DumpSink for StopAtTwo {
            type Error = String;
            fn row(&mut self, row: &Row<'_>) -> Result<(), String> {
                let id = row
                    .get(0)
                    .ok_or("no id")?
                    .as_i64()
                    .map_err(|e| e.to_string())?;
                self.0.push(id);
                if id == 2 {
                    return Err(format!("line {}: stop", row.line()));
                }
                Ok(())
            }
            fn malformed(&mut self, malformed: &Malformed) -> Result<(), String> {
                Err(malformed.to_string())
            }
        }
        let mut sink = StopAtTwo(Vec::new());
        let result = DumpReader::new(&b"INSERT INTO t VALUES (1),\n(2),(3);"[..]).read(&mut sink);
        assert!(matches!(result, Err(ReadError::Sink(ref e)) if e == "line 2: stop"));
        assert_eq!(sink.0, [1, 2]);
        let mut sink = StopAtTwo(Vec::new());
        let result = DumpReader::new(&b"INSERT INTO t VALUES (1) x;"[..]).read(&mut sink);
        assert!(matches!(result, Err(ReadError::Sink(_))));
    }

    #[test]
    fn an_io_error_is_returned() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let result = DumpReader::new(Failing).read(&mut Collected::default());
        assert!(matches!(result, Err(ReadError::Io(ref e)) if e.to_string() == "disk on fire"));
    }

    #[test]
    fn empty_input_byte_order_mark_and_crlf() {
        let (got, stats) = read("");
        assert_eq!((got, stats), (Collected::default(), DumpStats::default()));
        let (got, _) = read(
            "\u{feff}INSERT INTO t VALUES (1,'a');\r\nINSERT INTO t VALUES\r\n(2,'b'),\r\n();\r\n",
        );
        assert_eq!(got.malformed, []);
        assert_eq!(
            got.values(),
            [
                vec![number("1"), text("a")],
                vec![number("2"), text("b")],
                vec![]
            ]
        );
        assert_eq!(got.lines(), [1, 3, 4]);
    }

    #[test]
    fn columns_are_unknown_without_create_table() {
        let (got, _) = read("CREATE TABLE other (x int);\nINSERT INTO t VALUES (1,2,3);");
        assert_eq!(got.rows[0].columns, Vec::<String>::new());
        assert_eq!(got.rows[0].values.len(), 3);
        let (got, _) = read("CREATE TABLE IF NOT EXISTS `Users` (id int, name text);\nINSERT INTO users VALUES (1,'a');\nCREATE TABLE copy LIKE users;\nINSERT INTO copy VALUES (2);");
        assert_eq!(got.rows[0].columns, ["id", "name"]);
        assert_eq!(got.rows[1].columns, Vec::<String>::new());
        assert_eq!(got.malformed, []);
    }

    #[test]
    fn a_create_table_without_readable_columns_is_reported() {
        let (got, _) = read("CREATE TABLE t (`a` int, ???);\nINSERT INTO t VALUES (1);");
        assert_eq!(got.malformed.len(), 1);
        assert_eq!(got.malformed[0].problem, Problem::BadCreateTable);
        assert_eq!(got.rows.len(), 1);
    }

    #[test]
    fn columns_are_looked_up_once_per_statement() {
        #[derive(Default)]
        struct Contents {
            content_at: Option<usize>,
            contents: Vec<String>,
        }
        impl DumpSink for Contents {
            type Error = ValueError;
            fn insert_start(&mut self, insert: &InsertStatement<'_>) -> Result<(), ValueError> {
                self.content_at = insert.column_index("CONTENT");
                Ok(())
            }
            fn row(&mut self, row: &Row<'_>) -> Result<(), ValueError> {
                let index = self.content_at.unwrap_or(usize::MAX);
                let content = row.get(index).map(|v| v.as_str()).transpose()?;
                assert_eq!(
                    content.map(str::to_string),
                    row.get_named("content")
                        .map(|v| v.as_str().unwrap().to_string())
                );
                self.contents.extend(content.map(String::from));
                Ok(())
            }
            fn malformed(&mut self, _: &Malformed) -> Result<(), ValueError> {
                Ok(())
            }
        }
        let mut sink = Contents::default();
        DumpReader::new(MYSQLDUMP.as_bytes())
            .read(&mut sink)
            .unwrap();
        assert_eq!(sink.contents, ["hello", "你好 😀", ""]);
    }

    #[test]
    fn value_accessors() {
        assert_eq!(Value::Null.as_str(), Err(ValueError::Null));
        assert_eq!(Value::Null.as_opt_str(), Ok(None));
        assert_eq!(Value::Null.as_bytes(), None);
        assert!(Value::Null.is_null());
        assert_eq!(Value::Text(b"ok").as_str(), Ok("ok"));
        assert_eq!(
            Value::Text(b"ok\xff").as_str(),
            Err(ValueError::NotUtf8 { valid_up_to: 2 })
        );
        assert_eq!(Value::Binary(b"\xff").as_bytes(), Some(&b"\xff"[..]));
        assert_eq!(Value::Number("-42").as_i64(), Ok(-42));
        assert_eq!(Value::Text(b"42").as_i64(), Ok(42));
        assert_eq!(Value::Number("4.2").as_i64(), Err(ValueError::NotInteger));
        assert_eq!(Value::Number("7").as_bytes(), Some(&b"7"[..]));
        assert!(!Value::Text(b"NULL").is_null());
    }

    #[test]
    fn finds_quotes_and_backslashes_like_a_plain_loop() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    let pick = (state >> (i % 56)) as u8 ^ (i as u8).wrapping_mul(31);
                    [b'a', b'\'', b'\\', b'"', 0x80, 0x27 ^ 0x80, 0, 0xff][usize::from(pick % 8)]
                })
                .collect();
            for quote in [b'\'', b'"', b'`'] {
                let expected = bytes.iter().position(|&b| b == quote || b == b'\\');
                assert_eq!(
                    find_quote_or_backslash(&bytes, quote),
                    expected,
                    "round {round}: {bytes:?}"
                );
            }
        }
    }

    /// A 100 MB extended-insert dump of chat messages; run with
    /// `cargo test --release -- --ignored --nocapture throughput`.
    #[test]
    #[ignore = "measures throughput; run in release"]
    fn throughput() {
        let mut dump = Vec::with_capacity(101 << 20);
        dump.extend_from_slice(b"/*!40103 SET TIME_ZONE='+00:00' */;\nCREATE TABLE `message` (`id` int, `kefu_id` varchar(100), `visitor_id` varchar(100), `content` varchar(2048), `created_at` timestamp, `updated_at` timestamp, `deleted_at` timestamp, `mes_type` enum('kefu','visitor'), `status` enum('read','unread'));\n");
        let contents: [&[u8]; 6] = [
            b"Hello, is anyone there? I would like to ask about my order",
            "你好，请问这个产品有现货吗？我想买两件".as_bytes(),
            b"He said \\\"it\\'s broken\\\"\\nsecond line\\nC:\\\\Users\\\\kefu",
            b"img[/static/upload/2020September/5f4dcc3b5aa765d61d8327deb882cf99.png]",
            "face[微笑]好的，谢谢 😀".as_bytes(),
            b"ok",
        ];
        let mut id = 0u64;
        while dump.len() < 100 << 20 {
            dump.extend_from_slice(b"INSERT INTO `message` VALUES ");
            let line_start = dump.len();
            while dump.len() - line_start < 1 << 20 {
                id += 1;
                if dump.len() > line_start {
                    dump.push(b',');
                }
                let content = contents[(id % 6) as usize];
                let kind = if id % 3 == 0 { "kefu" } else { "visitor" };
                dump.extend_from_slice(
                    format!(
                        "({id},'agent{}','8a7c3f52-1b2d-4e5f-9a8b-{:012x}','",
                        id % 7,
                        id % 997
                    )
                    .as_bytes(),
                );
                dump.extend_from_slice(content);
                dump.extend_from_slice(
                    format!(
                        "','2021-03-04 05:{:02}:{:02}',NULL,NULL,'{kind}','read')",
                        id / 60 % 60,
                        id % 60
                    )
                    .as_bytes(),
                );
            }
            dump.extend_from_slice(b";\n");
        }
        struct Touch(u64, u64);
        impl DumpSink for Touch {
            type Error = Infallible;
            fn row(&mut self, row: &Row<'_>) -> Result<(), Infallible> {
                self.0 += 1;
                self.1 += row
                    .values()
                    .filter_map(|v| v.as_bytes())
                    .map(|b| b.len() as u64)
                    .sum::<u64>();
                Ok(())
            }
            fn malformed(&mut self, malformed: &Malformed) -> Result<(), Infallible> {
                panic!("{malformed}");
            }
        }
        let mut touch = Touch(0, 0);
        let started = std::time::Instant::now();
        let stats = DumpReader::new(&dump[..]).read(&mut touch).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!((stats.rows, touch.0), (id, id));
        println!(
            "parsed {} MB, {} rows in {:.3} s: {:.0} MB/s",
            dump.len() >> 20,
            id,
            seconds,
            dump.len() as f64 / 1e6 / seconds
        );
    }
}
