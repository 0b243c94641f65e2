//! Whole dumps of various specs read back as their summaries say: counts, columns, order,
//! conversations, statement sizes, determinism, escaping and markup.

use super::*;

#[test]
fn the_dump_reads_back_as_its_summary_says() {
    let (dump, summary) = generate(&spec(20_000, 400, 5));
    let got = assert_reads_back_as_summarised(&dump, &summary);
    assert_eq!(summary.messages, 20_000);
    assert_eq!(summary.visitor_messages + summary.kefu_messages, 20_000);
    let columns = |names: &str| names.split(' ').map(String::from).collect::<Vec<_>>();
    let expected = [
        ("config", "id conf_name conf_key conf_value user_id"),
        ("ipblack", "id ip create_at kefu_id"),
        ("message", "id kefu_id visitor_id content created_at updated_at deleted_at mes_type status"),
        ("reply_group", "id group_name user_id"),
        ("reply_item", "id content group_id user_id item_name"),
        ("user", "id name password nickname created_at updated_at deleted_at avator"),
        ("visitor", "id name avator source_ip to_id created_at updated_at deleted_at visitor_id status refer city client_ip extra"),
    ];
    for (table, names) in expected {
        assert_eq!(got.columns.get(table), Some(&columns(names)), "{table}");
    }
    // Tables come in mysqldump's (alphabetical) order.
    let order: Vec<&str> = got
        .rows_per_statement
        .iter()
        .map(|(t, _)| t.as_str())
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn visitors_have_several_conversations_mostly_opened_by_them() {
    let (dump, summary) = generate(&spec(30_000, 300, 3));
    let got = assert_reads_back_as_summarised(&dump, &summary);
    assert_eq!(summary.visitors_with_messages, 300);
    assert!(
        summary.conversations_24h > 3 * summary.visitors_with_messages,
        "{summary:?}"
    );
    let opened_by_visitor = got.conversations_opened_by_visitor as f64 / got.conversations as f64;
    assert!(opened_by_visitor > 0.8, "{opened_by_visitor}");
    // Traffic interleaves: sessions overlap, so a visitor's messages are often
    // interrupted by another visitor's (A, B, A).
    let visitors = &got.message_visitors;
    let interrupted = visitors
        .windows(3)
        .filter(|w| w[0] == w[2] && w[0] != w[1])
        .count();
    assert!(interrupted > 1000, "{interrupted}");
}

#[test]
fn skip_extended_insert_writes_a_statement_per_row() {
    let spec = Spec {
        extended_insert: false,
        ..spec(500, 50, 2)
    };
    let (dump, summary) = generate(&spec);
    let got = assert_reads_back_as_summarised(&dump, &summary);
    let rows: u64 = got.rows.values().sum();
    assert_eq!(summary.insert_statements, rows);
    assert!(got.rows_per_statement.iter().all(|(_, rows)| *rows == 1));
    let inserts = dump
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"INSERT INTO `"))
        .count();
    assert_eq!(inserts as u64, rows);
}

#[test]
fn rows_per_insert_caps_each_statement() {
    let spec = Spec {
        rows_per_insert: 7,
        ..spec(1000, 60, 3)
    };
    let (dump, summary) = generate(&spec);
    let got = assert_reads_back_as_summarised(&dump, &summary);
    assert!(got
        .rows_per_statement
        .iter()
        .all(|(_, rows)| (1..=7).contains(rows)));
    let expected: u64 = got.rows.values().map(|rows| rows.div_ceil(7)).sum();
    assert_eq!(summary.insert_statements, expected);
}

#[test]
fn extended_inserts_stay_under_net_buffer_length() {
    let (dump, summary) = generate(&spec(30_000, 1000, 4));
    assert_reads_back_as_summarised(&dump, &summary);
    let lines: Vec<&[u8]> = dump.split(|&b| b == b'\n').collect();
    let message_lines = lines
        .iter()
        .filter(|l| l.starts_with(b"INSERT INTO `message`"))
        .count();
    assert!(message_lines > 3, "{message_lines}");
    assert!(lines.iter().all(|line| line.len() < NET_BUFFER_LENGTH));
    let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    assert!(longest > NET_BUFFER_LENGTH - 4096, "{longest}");
}

#[test]
fn the_same_spec_gives_the_same_bytes() {
    let spec = spec(3000, 100, 3);
    let (first, first_summary) = generate(&spec);
    let (second, second_summary) = generate(&spec);
    assert!(first == second);
    assert_eq!(first_summary, second_summary);
    let (other, _) = generate(&Spec { seed: 8, ..spec });
    assert!(first != other);
}

#[test]
fn small_and_lopsided_specs() {
    for (messages, visitors, agents) in [(0, 0, 1), (0, 5, 1), (5, 100, 2), (2000, 1, 1), (1, 1, 9)]
    {
        let (dump, summary) = generate(&spec(messages, visitors, agents));
        assert_reads_back_as_summarised(&dump, &summary);
        assert_eq!((summary.messages, summary.visitors), (messages, visitors));
        assert!(summary
            .last_message_at
            .map_or(true, |t| t < LAST_TIMESTAMP + 1));
    }
    for bad in [spec(10, 0, 1), spec(10, 10, 0)] {
        let error = write_dump(&bad, &mut Vec::new()).expect_err("invalid spec");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn contents_need_escaping_and_hold_go_fly_markup() {
    let (dump, summary) = generate(&spec(5000, 100, 2));
    let got = assert_reads_back_as_summarised(&dump, &summary);
    for escaped in [&b"\\n"[..], b"\\'", b"\\\"", b"\\\\", b"\t", b"\\r"] {
        assert!(
            dump.windows(escaped.len()).any(|w| w == escaped),
            "{:?}",
            String::from_utf8_lossy(escaped)
        );
    }
    assert!(
        summary.image_messages > 0 && summary.attachment_messages > 0 && summary.face_messages > 0
    );
    assert!(got.four_byte_utf8 > 0);
}

/// `cargo test --release -- --ignored --nocapture five_million`
#[test]
#[ignore = "measures generation time; run in release"]
fn five_million_messages() {
    let spec = spec(5_000_000, 200_000, 20);
    let started = std::time::Instant::now();
    let summary = write_dump(&spec, &mut io::sink()).expect("sink");
    println!(
        "generated {} messages, {} MB in {:.2} s",
        summary.messages,
        summary.bytes >> 20,
        started.elapsed().as_secs_f64()
    );
}
