//! Literals: escapes, `NULL`, numbers, hex and bit literals, introducers, and the accessors
//! of [`Value`].

use super::super::values::find_quote_or_backslash;
use super::*;

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
