//! What a message says, and the free-text fields of a visitor: go-fly's markup (`face[...]`,
//! `img[...]`, `attachment[{json}]`), English and Chinese texts, emoji, and texts that need
//! escaping; a visitor's name, referrer and JSON `extra`.
//!
//! Invariants: contents are raw UTF-8 (escaping is `sql.rs`'s job); a message draws from the
//! message stream in id order and a visitor's fields from the visitor's hash, so the same
//! spec gives the same texts.

use super::data::{
    City, ATTACHMENTS, AWKWARD, EMOJI, FACES, KEFU_CHINESE, KEFU_ENGLISH, LONG_PARTS, MONTHS,
    SHORT, VISITOR_CHINESE, VISITOR_ENGLISH,
};
use super::random::{pick, Rng};
use super::sql::{civil_from_days, push_u64};
use super::{DAY, HEX};

/// The markup a message's content holds, for the summary's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Content {
    Text,
    Face,
    Image,
    Attachment,
}

/// Writes a message's content (raw UTF-8) to `out`; what markup it holds.
pub(super) fn write_content(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    from_kefu: bool,
    chinese: bool,
    at: i64,
) -> Content {
    let texts = match (from_kefu, chinese) {
        (false, false) => VISITOR_ENGLISH,
        (false, true) => VISITOR_CHINESE,
        (true, false) => KEFU_ENGLISH,
        (true, true) => KEFU_CHINESE,
    };
    let roll = rng.below(100);
    match roll {
        0..=27 => push_template(out, pick(texts, rng.next()), rng.below(100_000)),
        28..=39 => {
            push_template(out, pick(texts, rng.next()), rng.below(1000));
            out.push(b' ');
            out.extend_from_slice(pick(EMOJI, rng.next()).as_bytes());
        }
        40..=47 => {
            if rng.below(2) == 0 {
                out.extend_from_slice(pick(SHORT, rng.next()).as_bytes());
            }
            for _ in 0..rng.range(1, 3) {
                out.extend_from_slice(b"face[");
                out.extend_from_slice(pick(FACES, rng.next()).as_bytes());
                out.push(b']');
            }
            return Content::Face;
        }
        48..=53 => {
            out.extend_from_slice(b"img[/");
            let ext = if rng.below(4) == 0 { ".jpg" } else { ".png" };
            push_upload_path(out, rng, at, ext);
            out.push(b']');
            return Content::Image;
        }
        54..=56 => {
            let (name, ext) = pick(ATTACHMENTS, rng.next());
            out.extend_from_slice(b"attachment[{\"name\":\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(ext.as_bytes());
            out.extend_from_slice(b"\",\"ext\":\"");
            out.extend_from_slice(ext.as_bytes());
            out.extend_from_slice(b"\",\"size\":");
            push_u64(out, rng.range(100, 9_000_000));
            out.extend_from_slice(b",\"path\":\"/");
            push_upload_path(out, rng, at, ext);
            out.extend_from_slice(b"\"}]");
            return Content::Attachment;
        }
        57..=66 => {
            push_template(out, pick(AWKWARD, rng.next()), rng.below(10_000));
            if rng.below(2000) == 0 {
                out.extend_from_slice(b" \x1a(ctrl-z)");
            }
        }
        67..=74 => {
            for part in 0..rng.range(2, 8) {
                if part > 0 {
                    out.extend_from_slice(if rng.below(3) == 0 { b"\n" } else { b" " });
                }
                out.extend_from_slice(pick(LONG_PARTS, rng.next()).as_bytes());
            }
        }
        75..=79 => {
            out.extend_from_slice(b"https://item.example.com/item.htm?id=6");
            push_u64(out, rng.below(1_000_000_000));
            out.extend_from_slice(b"&spm=a1z10.1-c&sku=");
            push_u64(out, rng.below(100));
        }
        _ => out.extend_from_slice(pick(SHORT, rng.next()).as_bytes()),
    }
    Content::Text
}

/// go-fly's upload path: `static/upload/<year><Month>/<md5 hex><ext>`.
fn push_upload_path(out: &mut Vec<u8>, rng: &mut Rng, at: i64, ext: &str) {
    let (year, month, _) = civil_from_days(at.div_euclid(DAY));
    out.extend_from_slice(b"static/upload/");
    push_u64(out, year as u64);
    out.extend_from_slice(MONTHS[month as usize - 1].as_bytes());
    out.push(b'/');
    for _ in 0..2 {
        let value = rng.next();
        for shift in (0..16).rev() {
            out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
        }
    }
    out.extend_from_slice(ext.as_bytes());
}

pub(super) fn write_visitor_name(out: &mut Vec<u8>, h: u64, city: &City, visitor: u64) {
    match (h >> 48) % 20 {
        0..=6 if !city.chinese.is_empty() => {
            out.extend_from_slice(city.chinese.as_bytes());
            out.extend_from_slice("网友".as_bytes());
        }
        7..=11 if !city.english.is_empty() => {
            out.extend_from_slice(city.english.as_bytes());
            out.extend_from_slice(b" Guest");
        }
        12..=14 => {
            out.extend_from_slice(b"visitor ");
            push_u64(out, visitor + 1);
        }
        15 => out.extend_from_slice("张先生".as_bytes()),
        16 => out.extend_from_slice(b"Tom O'Brien"),
        17 => out.extend_from_slice("匿名网友".as_bytes()),
        _ => out.extend_from_slice(b"Guest"),
    }
}

pub(super) fn write_refer(out: &mut Vec<u8>, h: u64) {
    let refer = match (h >> 52) % 8 {
        0 | 1 => "https://www.baidu.com/link?url=Xy7aBc_dEf&wd=&eqid=9f8e7d6c0001",
        2 => "https://www.google.com/",
        3 => "https://shop.example.cn/goods.php?id=123&utm_source=wechat&utm_medium=menu",
        4 => "https://mp.weixin.qq.com/s/AbCdEfGhIjKl",
        5 => "http://localhost:8081/",
        6 => "https://www.example.com/搜索?q=客服系统",
        _ => "无",
    };
    out.extend_from_slice(refer.as_bytes());
}

/// The `extra` column: JSON text (or empty), with escapes of its own for mysqldump to escape.
pub(super) fn write_extra(out: &mut Vec<u8>, h: u64, city: &City) {
    let name = match (h >> 56) % 6 {
        0 => "张先生",
        1 => "Tom \\\"TJ\\\" O'Brien",
        2 => "Li\\\\Ming",
        _ => "",
    };
    if (h >> 58) % 5 == 0 {
        return;
    }
    out.extend_from_slice(b"{\"visitorName\":\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\",\"visitorAvatar\":\"\",\"city\":\"");
    out.extend_from_slice(city.english.as_bytes());
    out.extend_from_slice(b"\",\"lang\":\"");
    out.extend_from_slice(if (h >> 60) % 2 == 0 {
        b"zh-CN"
    } else {
        b"en-US"
    });
    out.extend_from_slice(
        b"\",\"referrer\":\"https:\\/\\/www.example.com\\/?a=1\\u0026b=2\",\"ua\":\"",
    );
    out.extend_from_slice(match (h >> 61) % 3 {
        0 => b"Mozilla/5.0 (iPhone; CPU iPhone OS 14_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/7.0.18",
        1 => b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.198 Safari/537.36",
        _ => b"Mozilla/5.0 (Linux; Android 10; SM-G9750) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/83.0.4103.106 Mobile Safari/537.36",
    });
    out.extend_from_slice(b"\"}");
}

fn push_template(out: &mut Vec<u8>, template: &str, number: u64) {
    let mut parts = template.split("{n}");
    if let Some(first) = parts.next() {
        out.extend_from_slice(first.as_bytes());
    }
    for part in parts {
        push_u64(out, number);
        out.extend_from_slice(part.as_bytes());
    }
}
