//! What does not become rows: each problem reported once, with its line, and reading resumed
//! after it.

use super::*;

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

/// Reads `dump` whole and, when `split`, 3 bytes at a time too, checking both agree.
fn read_both_ways(dump: &[u8], split: bool) -> Collected {
    let whole = read_from(dump, 96);
    if split {
        let trickle = Trickle {
            data: dump,
            chunk: 3,
        };
        assert_eq!(
            read_from(trickle, 96),
            whole,
            "{:?}",
            String::from_utf8_lossy(dump)
        );
    }
    whole.0
}

#[test]
fn every_truncation_and_corruption_reads_consistently() {
    let mut dump = MYSQLDUMP.as_bytes().to_vec();
    dump.extend_from_slice(
        "DELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT ';'; END;;\nDELIMITER ;\n\
         INSERT INTO t (`a`,`b`) VALUES (0x0A,_binary 'x\\'y'),(b'1',\"q\"\"\"),(-1.5e3,NULL);\n"
            .as_bytes(),
    );
    for cut in 0..dump.len() {
        let got = read_both_ways(&dump[..cut], cut % 5 == 0);
        assert!(got.rows.len() <= 6);
    }
    let noise = [
        b'\'', b'"', b'\\', b';', b'(', b')', b',', b'\n', b'/', b'*', b'-', b'#', 0xff, b'`',
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut corrupt = dump.clone();
        for flip in 0..1 + state % 3 {
            let at = (state >> (8 + flip * 16)) as usize % corrupt.len();
            corrupt[at] = noise[(state >> (40 + flip)) as usize % noise.len()];
        }
        read_both_ways(&corrupt, true);
    }
    let whole = read_both_ways(&dump, true);
    assert_eq!((whole.rows.len(), whole.malformed.len()), (6, 0));
}
