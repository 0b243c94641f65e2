//! QR codes as SVG, made on the box: the printable code of the `/chat` address that a shop
//! puts on its counter.
//!
//! Invariants of what [`svg`] returns: a standalone SVG document, black modules on a white
//! background with the 4-module quiet zone scanners need, error correction level M (15 % of
//! the code may be damaged: a printed sheet gets scuffed), at least `size_px` wide and high,
//! and a `<title>` naming the text (XML-escaped), so screen readers and the printed page say
//! what the code holds. Text is at most [`MAX_TEXT_BYTES`] bytes: past that a code gets too
//! dense to scan from a printed page.

use qrcode::render::svg as qrsvg;
use qrcode::{EcLevel, QrCode};

/// The longest text made into a code.
pub const MAX_TEXT_BYTES: usize = 1024;
/// The size range, in pixels, a code is drawn at.
pub const MIN_SIZE_PX: u32 = 64;
pub const MAX_SIZE_PX: u32 = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("the text is empty")]
    Empty,
    #[error("the text is {len} bytes; at most {MAX_TEXT_BYTES} make a code that scans")]
    TooLong { len: usize },
    #[error("the size must be {MIN_SIZE_PX} to {MAX_SIZE_PX} pixels")]
    BadSize,
    #[error("the text does not fit in a QR code: {0}")]
    Encode(String),
}

/// `text` as a QR code in an SVG document at least `size_px` square (see the module's
/// invariants).
///
/// # Errors
/// [`QrError::Empty`] or [`QrError::TooLong`] for the text, [`QrError::BadSize`] for a size
/// outside [`MIN_SIZE_PX`]..=[`MAX_SIZE_PX`].
pub fn svg(text: &str, size_px: u32) -> Result<String, QrError> {
    if !(MIN_SIZE_PX..=MAX_SIZE_PX).contains(&size_px) {
        return Err(QrError::BadSize);
    }
    let code = code(text)?;
    let drawn = code
        .render::<qrsvg::Color>()
        .min_dimensions(size_px, size_px)
        .quiet_zone(true)
        .dark_color(qrsvg::Color("#000000"))
        .light_color(qrsvg::Color("#ffffff"))
        .build();
    // The renderer writes the <svg> start tag, then the drawing: the title goes between.
    let open = drawn
        .find("<svg")
        .and_then(|at| drawn[at..].find('>').map(|end| at + end + 1))
        .expect("invariant: the renderer writes an <svg> start tag");
    let mut out = String::with_capacity(drawn.len() + text.len() + 32);
    out.push_str(&drawn[..open]);
    out.push_str("<title>");
    out.push_str(&xml_escape(text));
    out.push_str("</title>");
    out.push_str(&drawn[open..]);
    Ok(out)
}

/// The code for `text` (level M), before it is drawn.
fn code(text: &str) -> Result<QrCode, QrError> {
    if text.trim().is_empty() {
        return Err(QrError::Empty);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(QrError::TooLong { len: text.len() });
    }
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SVG's pixels, as a scanner would see them printed: the drawing's rectangles
    /// (`M{x} {y}h{w}v{h}H{x}V{y}`) filled into a grid of the SVG's width and height.
    fn rasterise(svg: &str) -> (usize, usize, Vec<bool>) {
        let attr = |name: &str| -> usize {
            let at = svg.find(&format!(" {name}=\"")).expect("attribute") + name.len() + 3;
            svg[at..].split('"').next().unwrap().parse().unwrap()
        };
        let (w, h) = (attr("width"), attr("height"));
        let d_at = svg.find(" d=\"").expect("a path") + 4;
        let d = svg[d_at..].split('"').next().unwrap();
        let mut dark = vec![false; w * h];
        for rect in d.split('M').filter(|r| !r.is_empty()) {
            // "x y" "h" "w" "v" "h" "H" ...
            let nums: Vec<usize> = rect
                .split(|c: char| c.is_ascii_alphabetic() || c == ' ')
                .filter(|n| !n.is_empty())
                .map(|n| n.parse().unwrap())
                .collect();
            let (x, y, rw, rh) = (nums[0], nums[1], nums[2], nums[3]);
            for yy in y..y + rh {
                for xx in x..x + rw {
                    dark[yy * w + xx] = true;
                }
            }
        }
        (w, h, dark)
    }

    fn decode(svg: &str) -> String {
        let (w, h, dark) = rasterise(svg);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
            if dark[y * w + x] {
                0
            } else {
                255
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one code in the picture");
        let (meta, content) = grids[0].decode().expect("the code decodes");
        assert_eq!(meta.ecc_level, 0, "level M (format bits 00)");
        content
    }

    #[test]
    fn the_code_decodes_back_to_the_text() {
        for text in [
            "http://192.168.1.20:8080/chat",
            "https://kefu.local:8443/chat",
            "茶 & Co. <chat> \"shop\"",
        ] {
            let svg = svg(text, 256).unwrap();
            assert_eq!(decode(&svg), text);
        }
    }

    #[test]
    fn the_svg_is_well_formed_black_on_white_and_titled() {
        let svg = svg("http://kefu.local:8080/chat?a=1&b=<2>", 300).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("<title>http://kefu.local:8080/chat?a=1&amp;b=&lt;2&gt;</title>"));
        assert!(svg.contains(r##"fill="#ffffff""##) && svg.contains(r##"fill="#000000""##));
        // Every element that opens closes, in order.
        let mut stack = Vec::new();
        let mut rest = &svg[svg.find("<svg").unwrap()..];
        while let Some(at) = rest.find('<') {
            let end = rest[at..].find('>').unwrap() + at;
            let tag = &rest[at + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.to_string()), "{svg}");
            } else if !tag.ends_with('/') {
                stack.push(tag.split(' ').next().unwrap().to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        let (w, h, dark) = rasterise(&svg);
        assert!(w >= 300 && w == h);
        // The quiet zone: the outer border is white.
        assert!((0..w).all(|x| !dark[x] && !dark[(h - 1) * w + x]));
        assert!((0..h).all(|y| !dark[y * w] && !dark[y * w + w - 1]));
    }

    #[test]
    fn bad_text_and_sizes_are_refused() {
        assert_eq!(svg("", 256), Err(QrError::Empty));
        assert_eq!(svg("   ", 256), Err(QrError::Empty));
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(
            svg(&long, 256),
            Err(QrError::TooLong {
                len: MAX_TEXT_BYTES + 1
            })
        );
        assert!(
            svg(&"x".repeat(MAX_TEXT_BYTES), 256).is_ok(),
            "the limit itself fits"
        );
        assert_eq!(svg("a", MIN_SIZE_PX - 1), Err(QrError::BadSize));
        assert_eq!(svg("a", MAX_SIZE_PX + 1), Err(QrError::BadSize));
    }
}
