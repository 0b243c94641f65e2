//! Whole dumps and every form of `INSERT`: rows, their columns, lines and counts.

use super::*;

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
fn strings_and_statements_span_lines() {
    let dump = "INSERT INTO t VALUES\n(1,'first\nline\r\nthird'),\n\n  (2,\n'x'\n)\n,(3,'y');\nINSERT INTO t VALUES (4,'z');\n";
    let (got, _) = read(dump);
    assert_eq!(got.malformed, []);
    assert_eq!(got.lines(), [2, 6, 9, 10]);
    assert_eq!(got.rows[0].values[1], text("first\nline\r\nthird"));
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
