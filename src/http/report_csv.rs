//! CSV downloads of the reports (`?format=csv`): one function turns a header and rows into an
//! attachment, so every report's download is written the same way.
//!
//! RFC 4180: CRLF line ends, a header row, fields quoted only when they hold a comma, quote or
//! line break (quotes doubled), UTF-8. The answer is `text/csv; charset=utf-8` with
//! `Content-Disposition: attachment; filename="kefud-REPORT-YYYY-MM-DD.csv"`. A text field
//! that a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`, tab or CR,
//! e.g. an agent named "=HYPERLINK(...)") gets a leading `'`, so opening a download never runs
//! anything; numbers are written as numbers.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// One cell: a number (written as is) or a text (neutralised against formulas).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Number(String),
    Text(String),
}

impl Cell {
    /// A number, or an empty cell when there is none (a day with no resolved conversation).
    pub fn num(n: Option<impl ToString>) -> Cell {
        Cell::Number(n.map(|n| n.to_string()).unwrap_or_default())
    }

    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    fn as_field(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Cell::Number(s) => s.into(),
            Cell::Text(s) if s.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
                format!("'{s}").into()
            }
            Cell::Text(s) => s.into(),
        }
    }
}

/// The CSV bytes for a header and rows. Pure.
///
/// # Errors
/// Only what writing to memory can fail with (a row of another width than the header).
pub fn to_csv(header: &[&str], rows: &[Vec<Cell>]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(header)?;
    for row in rows {
        w.write_record(row.iter().map(Cell::as_field).map(|f| f.into_owned()))?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// The download: `kefud-{report}-{date}.csv`, `date` being the report's local today.
///
/// # Errors
/// [`ApiError::Internal`] if the rows do not fit the header (a bug).
pub fn download(
    report: &str,
    date: &str,
    header: &[&str],
    rows: &[Vec<Cell>],
) -> Result<Response, ApiError> {
    let body = to_csv(header, rows).map_err(|e| ApiError::Internal(format!("report CSV: {e}")))?;
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let disposition = format!("attachment; filename=\"kefud-{report}-{date}.csv\"");
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition)
            .map_err(|_| ApiError::Internal("report name is not a header value".into()))?,
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4180_quoting_and_line_ends() {
        let rows = vec![
            vec![
                Cell::text("Ann, \"the boss\""),
                Cell::num(Some(3)),
                Cell::num(None::<u32>),
            ],
            vec![
                Cell::text("two\nlines"),
                Cell::num(Some(4.5)),
                Cell::text("plain"),
            ],
        ];
        let out = String::from_utf8(to_csv(&["name", "count", "note"], &rows).unwrap()).unwrap();
        assert_eq!(
            out,
            "name,count,note\r\n\"Ann, \"\"the boss\"\"\",3,\r\n\"two\nlines\",4.5,plain\r\n"
        );
    }

    #[test]
    fn text_that_looks_like_a_formula_is_neutralised() {
        let rows = vec![vec![
            Cell::text("=HYPERLINK(\"x\")"),
            Cell::text("+1"),
            Cell::text("@a"),
            Cell::text("-x"),
            Cell::text("李"),
        ]];
        let out = String::from_utf8(to_csv(&["a", "b", "c", "d", "e"], &rows).unwrap()).unwrap();
        assert_eq!(
            out.lines().nth(1).unwrap(),
            "\"'=HYPERLINK(\"\"x\"\")\",'+1,'@a,'-x,李"
        );
    }

    #[test]
    fn rows_must_fit_the_header() {
        assert!(to_csv(&["a", "b"], &[vec![Cell::text("only one")]]).is_err());
    }
}
