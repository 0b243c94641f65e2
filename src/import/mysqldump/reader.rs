//! [`DumpReader`]: the window over the input and the loop over its statements.
//!
//! What it owns: the input, the window (`window[pos..end]` read but not consumed), line
//! counting, the delimiter, the tables' columns, the time zone and the counts. An `INSERT` is
//! parsed by pure steps over the window ([`Scan`]) that ask for more input rather than block;
//! [`DumpReader::attempt`] reads and retries until a step decides.
//!
//! Invariants: `pos <= end <= window.len()`; bytes before `pos` are never read again, so the
//! window is compacted before it grows; a step sees at most its limit of bytes, so whether a
//! tuple is too large does not depend on how reads happened to split the input; line numbers
//! are counted incrementally from the last position asked ([`DumpReader::line_at`]).

use std::collections::HashMap;
use std::io::{self, Read};

use super::insert::TupleStep;
use super::scan::{is_space, BadAt, Scan, Step, Stop};
use super::statements::{
    classify_statement, is_executable_comment, skip_scan, unquote, SkipState, Statement,
};
use super::values::Values;
use super::{
    DumpSink, DumpStats, InsertStatement, Malformed, Problem, ReadError, Row,
    MAX_DELIMITER_LINE_BYTES, MAX_INSERT_HEADER_BYTES, MAX_STATEMENT_TEXT_BYTES, MAX_TUPLE_BYTES,
    READ_CHUNK_BYTES, STATEMENT_START_LOOKAHEAD,
};

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

    /// Declares a table's columns in order, for dumps without `CREATE TABLE`
    /// (`mysqldump --no-create-info`); a `CREATE TABLE` in the dump replaces them.
    pub fn with_table_columns(mut self, table: &str, columns: &[&str]) -> Self {
        let columns = columns.iter().map(|c| c.to_string()).collect();
        self.tables.insert(table.to_string(), columns);
        self
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
                Statement::CreateTable { .. } | Statement::BadCreateTable
                    if self.statement_text_overflowed =>
                {
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
    /// between tries. The step sees at most `limit` bytes, so whether a unit is too large
    /// does not depend on how the input happened to be buffered. Positions in the outcome are
    /// relative to `pos`.
    fn attempt<T>(
        &mut self,
        limit: usize,
        step: impl Fn(Scan<'_>, &mut Values) -> Step<T>,
    ) -> io::Result<Attempt<T>> {
        loop {
            let pending = self.end - self.pos;
            let visible = pending.min(limit);
            let scan = Scan {
                s: &self.window[self.pos..self.pos + visible],
                eof: self.eof && visible == pending,
                delimiter: &self.delimiter,
            };
            match step(scan, &mut self.values) {
                Ok(done) => return Ok(Attempt::Done(done)),
                Err(Stop::Bad(stop)) => return Ok(Attempt::Bad(stop)),
                Err(Stop::More) if pending >= limit => return Ok(Attempt::TooLarge),
                Err(Stop::More) if self.eof => {
                    // A scan never asks for more at the end of the input; be safe anyway.
                    return Ok(Attempt::Bad(BadAt::new(Problem::Truncated, pending)));
                }
                Err(Stop::More) => {
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
    pub(super) fn with_max_tuple_bytes(mut self, max_tuple_bytes: usize) -> Self {
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
