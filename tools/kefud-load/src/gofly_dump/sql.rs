//! mysqldump's text: the header and footer, a table's rows collected into INSERT
//! statements, and values as mysqldump writes them (escaped strings, numbers, UTC time
//! stamps).
//!
//! Invariants: an extended INSERT ends before its line would reach [`NET_BUFFER_LENGTH`] or
//! the spec's rows per INSERT; strings are escaped as `mysql_real_escape_string` does; every
//! byte written goes through [`Counted`], which counts it.

use std::io::{self, Write};

use super::{DAY, NET_BUFFER_LENGTH};

/// Collects a table's tuples into INSERT statements as mysqldump does.
pub(super) struct TableWriter {
    pub(super) name: &'static str,
    pub(super) extended: bool,
    pub(super) rows_per_insert: usize,
    pub(super) statement: Vec<u8>,
    pub(super) rows_in_statement: usize,
    pub(super) statements: u64,
}

impl TableWriter {
    /// Adds the tuple (its values, without parentheses).
    pub(super) fn row<W: Write>(
        &mut self,
        out: &mut Counted<'_, W>,
        values: &[u8],
    ) -> io::Result<()> {
        let full_by_rows =
            self.rows_per_insert > 0 && self.rows_in_statement >= self.rows_per_insert;
        let full_by_length = self.statement.len() + values.len() + 3 >= NET_BUFFER_LENGTH;
        if !self.extended || (self.rows_in_statement > 0 && (full_by_rows || full_by_length)) {
            self.flush(out)?;
        }
        if self.rows_in_statement == 0 {
            self.statement.clear();
            self.statement.extend_from_slice(b"INSERT INTO `");
            self.statement.extend_from_slice(self.name.as_bytes());
            self.statement.extend_from_slice(b"` VALUES (");
        } else {
            self.statement.extend_from_slice(b",(");
        }
        self.statement.extend_from_slice(values);
        self.statement.push(b')');
        self.rows_in_statement += 1;
        if !self.extended {
            self.flush(out)?;
        }
        Ok(())
    }

    pub(super) fn flush<W: Write>(&mut self, out: &mut Counted<'_, W>) -> io::Result<()> {
        if self.rows_in_statement == 0 {
            return Ok(());
        }
        self.statement.extend_from_slice(b";\n");
        out.write_all(&self.statement)?;
        self.statement.clear();
        self.rows_in_statement = 0;
        self.statements += 1;
        Ok(())
    }
}

pub(super) struct Counted<'a, W: Write> {
    pub(super) inner: &'a mut W,
    pub(super) bytes: u64,
}

impl<W: Write> Counted<'_, W> {
    pub(super) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

pub(super) fn header() -> String {
    "-- MySQL dump 10.13  Distrib 5.7.42, for Linux (x86_64)\n\
     --\n\
     -- Host: 127.0.0.1    Database: goflychat\n\
     -- ------------------------------------------------------\n\
     -- Server version\t5.7.42-log\n\n\
     /*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n\
     /*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;\n\
     /*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;\n\
     /*!40101 SET NAMES utf8mb4 */;\n\
     /*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n\
     /*!40103 SET TIME_ZONE='+00:00' */;\n\
     /*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n\
     /*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n\
     /*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n\
     /*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;\n"
        .to_string()
}

pub(super) fn footer(completed_at: i64) -> String {
    let mut when = Vec::new();
    push_datetime(&mut when, completed_at);
    let when = String::from_utf8_lossy(&when[1..when.len() - 1]).into_owned();
    format!(
        "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n\
         /*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n\
         /*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n\
         /*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n\
         /*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n\
         /*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;\n\
         /*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;\n\
         /*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n\
         -- Dump completed on {when}\n"
    )
}

/// A quoted string escaped as mysqldump does (mysql_real_escape_string).
pub(super) fn push_string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'\'');
    let mut plain_from = 0;
    for (i, &b) in text.iter().enumerate() {
        let escaped: &[u8] = match b {
            0 => b"\\0",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\\' => b"\\\\",
            b'\'' => b"\\'",
            b'"' => b"\\\"",
            0x1a => b"\\Z",
            _ => continue,
        };
        out.extend_from_slice(&text[plain_from..i]);
        out.extend_from_slice(escaped);
        plain_from = i + 1;
    }
    out.extend_from_slice(&text[plain_from..]);
    out.push(b'\'');
}

pub(super) fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// `'YYYY-MM-DD HH:MM:SS'` (UTC) for Unix seconds.
pub(super) fn push_datetime(out: &mut Vec<u8>, unix_seconds: i64) {
    let (year, month, day) = civil_from_days(unix_seconds.div_euclid(DAY));
    let second_of_day = unix_seconds.rem_euclid(DAY) as u32;
    let two = |out: &mut Vec<u8>, n: u32| {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8])
    };
    out.push(b'\'');
    let year = year as u32;
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, month);
    out.push(b'-');
    two(out, day);
    out.push(b' ');
    two(out, second_of_day / 3600);
    out.push(b':');
    two(out, second_of_day / 60 % 60);
    out.push(b':');
    two(out, second_of_day % 60);
    out.push(b'\'');
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (eras of 400 years from
/// March 1st).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
