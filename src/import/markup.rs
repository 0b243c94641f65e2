//! go-fly's inline message markup made into text a person can read. Pure.
//!
//! go-fly stores a message as one string and lets its widget render markup inside it:
//! `face[微笑]` (one of its 72 emoticons), `img[/static/upload/….png]` (an uploaded image, a
//! path on the go-fly server) and `attachment[{"name":…,"ext":…,"path":…}]` (a file). The
//! files themselves are not in the database dump, so an image or a file becomes a line naming
//! it (`[image: /static/upload/a.png]`, `[file: price list.pdf]`); an emoticon becomes the
//! emoji that means the same where there is one, else its name in brackets, as WeChat shows
//! it (`[给力]`).
//!
//! Invariant: text that is not markup is kept byte for byte; markup that does not parse
//! (no closing bracket) is kept as it was.

/// go-fly's emoticons that have an emoji meaning the same.
const EMOJI: &[(&str, &str)] = &[
    ("微笑", "🙂"),
    ("嘻嘻", "😁"),
    ("哈哈", "😄"),
    ("可爱", "😊"),
    ("可怜", "🥺"),
    ("吃惊", "😲"),
    ("害羞", "😳"),
    ("挤眼", "😉"),
    ("闭嘴", "🤐"),
    ("爱你", "😍"),
    ("泪", "😢"),
    ("偷笑", "🤭"),
    ("亲亲", "😘"),
    ("生病", "😷"),
    ("太开心", "😆"),
    ("白眼", "🙄"),
    ("嘘", "🤫"),
    ("委屈", "😞"),
    ("吐", "🤮"),
    ("哈欠", "🥱"),
    ("抱抱", "🤗"),
    ("怒", "😠"),
    ("疑问", "❓"),
    ("馋嘴", "😋"),
    ("拜拜", "👋"),
    ("思考", "🤔"),
    ("汗", "😓"),
    ("困", "😪"),
    ("睡", "😴"),
    ("钱", "🤑"),
    ("失望", "😞"),
    ("酷", "😎"),
    ("色", "😍"),
    ("鼓掌", "👏"),
    ("晕", "😵"),
    ("悲伤", "😢"),
    ("抓狂", "😫"),
    ("怒骂", "🤬"),
    ("心", "❤️"),
    ("伤心", "💔"),
    ("猪头", "🐷"),
    ("熊猫", "🐼"),
    ("兔子", "🐰"),
    ("ok", "👌"),
    ("耶", "✌️"),
    ("good", "👍"),
    ("NO", "🙅"),
    ("赞", "👍"),
    ("弱", "👎"),
    ("礼物", "🎁"),
    ("钟", "⏰"),
    ("话筒", "🎤"),
    ("蜡烛", "🕯️"),
    ("蛋糕", "🎂"),
];

/// `content` with go-fly's markup made readable.
pub fn readable(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some((start, kind)) = next_markup(rest) {
        let open = start + kind.len();
        // The argument ends at the first ']' (go-fly's own widget reads it so, non-greedily);
        // an attachment's JSON may hold ']' inside strings, so it ends at "}]".
        let close = if kind == "attachment[" {
            rest[open..].find("}]").map(|i| i + 1)
        } else {
            rest[open..].find(']')
        };
        let Some(len) = close else {
            break;
        };
        let argument = &rest[open..open + len];
        out.push_str(&rest[..start]);
        match kind {
            "face[" => push_face(&mut out, argument),
            "img[" => {
                out.push_str("[image: ");
                out.push_str(argument.trim());
                out.push(']');
            }
            _ => push_attachment(&mut out, argument),
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    out
}

/// The first markup in `s`: where it starts and which kind (its opening, with the bracket).
fn next_markup(s: &str) -> Option<(usize, &'static str)> {
    ["face[", "img[", "attachment["]
        .into_iter()
        .filter_map(|kind| s.find(kind).map(|at| (at, kind)))
        .min_by_key(|(at, _)| *at)
}

fn push_face(out: &mut String, name: &str) {
    // go-fly writes "face[微笑]" from its title "[微笑]"; some versions kept the inner
    // brackets ("face[[微笑]]" reads as "face[" "[微笑" "]").
    let name = name.trim_start_matches('[');
    match EMOJI.iter().find(|(n, _)| *n == name) {
        Some((_, emoji)) => out.push_str(emoji),
        None => {
            out.push('[');
            out.push_str(name);
            out.push(']');
        }
    }
}

fn push_attachment(out: &mut String, json: &str) {
    let name = serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| {
            ["name", "path"]
                .iter()
                .find_map(|k| v.get(k).and_then(|n| n.as_str()).map(str::to_owned))
        })
        .filter(|n| !n.trim().is_empty());
    match name {
        Some(name) => {
            out.push_str("[file: ");
            out.push_str(name.trim());
            out.push(']');
        }
        None => out.push_str("[file]"),
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn plain_text_is_kept_byte_for_byte() {
        for s in [
            "",
            "hello",
            "价格多少？😀",
            "a]b[c",
            "tab\tnew\nline \\ 'q' \"d\"",
        ] {
            assert_eq!(readable(s), s);
        }
    }

    #[test]
    fn emoticons_become_emoji_or_their_name() {
        assert_eq!(readable("好的face[微笑]谢谢"), "好的🙂谢谢");
        assert_eq!(readable("face[给力]face[good]"), "[给力]👍");
        assert_eq!(readable("face[[微笑]]"), "🙂]");
    }

    #[test]
    fn images_and_files_become_lines_naming_them() {
        assert_eq!(
            readable("look img[/static/upload/2020/a b.png] here"),
            "look [image: /static/upload/2020/a b.png] here"
        );
        assert_eq!(
            readable(
                r#"attachment[{"name":"price [2020].pdf","ext":".pdf","path":"/static/upload/x.pdf"}]"#
            ),
            "[file: price [2020].pdf]"
        );
        assert_eq!(readable("attachment[{not json}]"), "[file]");
    }

    #[test]
    fn markup_without_its_closing_bracket_is_kept() {
        assert_eq!(
            readable("img[/static/upload/a.png"),
            "img[/static/upload/a.png"
        );
        assert_eq!(readable("ok face[微笑"), "ok face[微笑");
    }
}
