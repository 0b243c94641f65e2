//! mysqldump's text: MD5 passwords, UTC time stamps and string escaping.

use super::super::sql::push_string;
use super::*;

#[test]
fn md5_matches_rfc_1321() {
    for (input, digest) in [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ] {
        assert_eq!(md5_hex(input.as_bytes()), digest, "{input}");
    }
}

#[test]
fn datetimes_are_utc_and_sort_as_their_times() {
    for (at, text) in [
        (-1, "1969-12-31 23:59:59"),
        (0, "1970-01-01 00:00:00"),
        (951_782_400, "2000-02-29 00:00:00"),
        (1_582_934_400, "2020-02-29 00:00:00"),
        (HISTORY_START, "2020-07-01 00:00:00"),
        (1_593_286_361, "2020-06-27 19:32:41"),
        (LAST_TIMESTAMP, "2037-12-31 00:00:00"),
        (2_147_483_647, "2038-01-19 03:14:07"),
    ] {
        let mut quoted = Vec::new();
        push_datetime(&mut quoted, at);
        assert_eq!(quoted, format!("'{text}'").into_bytes(), "{at}");
    }
    let mut at = -86_400 * 365;
    let mut previous = Vec::new();
    while at < LAST_TIMESTAMP {
        let mut quoted = Vec::new();
        push_datetime(&mut quoted, at);
        let text = std::str::from_utf8(&quoted[1..quoted.len() - 1]).expect("ASCII");
        assert!(quoted > previous, "{text}");
        if at >= 0 {
            assert_eq!(seconds_of(text), at, "{text}");
        }
        previous = quoted;
        at += 86_400 * 13 + 3_599;
    }
}

#[test]
fn escaping_is_mysqldumps() {
    let mut out = Vec::new();
    push_string(&mut out, b"a'b\"c\\d\ne\rf\0g\x1ah\ti%_");
    assert_eq!(out, b"'a\\'b\\\"c\\\\d\\ne\\rf\\0g\\Zh\ti%_'".to_vec());
}
