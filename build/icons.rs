//! The console's app icons as PNG, drawn at build time so no binary image is kept in the
//! repository: a white speech bubble with three dots on the console's blue, the same
//! geometry as `web/console/icons/icon.svg` (a 100 × 100 design grid).
//!
//! Two variants: `any` (a rounded square on a transparent ground) and `maskable` (the
//! ground fills the square; the bubble stays inside the central safe circle of radius 40
//! that launchers keep when they cut their own shape). Edges are anti-aliased by 4 × 4
//! supersampling. The PNG writer is the minimum the format needs: signature, IHDR (8-bit
//! RGBA), one zlib IDAT with filter 0 on every row, IEND, each chunk with its CRC-32.

use std::io::Write;

const BLUE: [f32; 3] = [0x25 as f32, 0x63 as f32, 0xeb as f32];
const WHITE: [f32; 3] = [255.0, 255.0, 255.0];

#[derive(Clone, Copy, PartialEq)]
pub enum Variant {
    Any,
    Maskable,
}

/// Whether the point (design units, 0..100) is inside a rectangle with rounded corners.
fn in_round_rect(x: f32, y: f32, (x0, y0, x1, y1): (f32, f32, f32, f32), r: f32) -> bool {
    if x < x0 || x > x1 || y < y0 || y > y1 {
        return false;
    }
    let cx = x.clamp(x0 + r, x1 - r);
    let cy = y.clamp(y0 + r, y1 - r);
    (x - cx).powi(2) + (y - cy).powi(2) <= r * r
}

fn in_triangle(x: f32, y: f32, [a, b, c]: [(f32, f32); 3]) -> bool {
    let side = |p: (f32, f32), q: (f32, f32)| (q.0 - p.0) * (y - p.1) - (q.1 - p.1) * (x - p.0);
    let (d1, d2, d3) = (side(a, b), side(b, c), side(c, a));
    let neg = d1 < 0.0 || d2 < 0.0 || d3 < 0.0;
    let pos = d1 > 0.0 || d2 > 0.0 || d3 > 0.0;
    !(neg && pos)
}

/// The colour at a design point, `None` where the icon is transparent.
fn sample(variant: Variant, x: f32, y: f32) -> Option<[f32; 3]> {
    if variant == Variant::Any && !in_round_rect(x, y, (0.0, 0.0, 100.0, 100.0), 22.0) {
        return None;
    }
    for cx in [38.0, 50.0, 62.0] {
        if (x - cx).powi(2) + (y - 47.0).powi(2) <= 16.0 {
            return Some(BLUE);
        }
    }
    let bubble = in_round_rect(x, y, (24.0, 28.0, 76.0, 66.0), 8.0)
        || in_triangle(x, y, [(33.0, 64.0), (30.0, 76.0), (46.0, 64.0)]);
    Some(if bubble { WHITE } else { BLUE })
}

/// RGBA pixels, row by row, `size` × `size`.
pub fn render(variant: Variant, size: u32) -> Vec<u8> {
    const N: u32 = 4;
    let scale = 100.0 / size as f32;
    let mut out = Vec::with_capacity((size * size * 4) as usize);
    for py in 0..size {
        for px in 0..size {
            let (mut rgb, mut alpha) = ([0.0f32; 3], 0.0f32);
            for sy in 0..N {
                for sx in 0..N {
                    let x = (px as f32 + (sx as f32 + 0.5) / N as f32) * scale;
                    let y = (py as f32 + (sy as f32 + 0.5) / N as f32) * scale;
                    if let Some(c) = sample(variant, x, y) {
                        for (acc, v) in rgb.iter_mut().zip(c) {
                            *acc += v;
                        }
                        alpha += 1.0;
                    }
                }
            }
            if alpha == 0.0 {
                out.extend_from_slice(&[0, 0, 0, 0]);
            } else {
                out.extend(rgb.iter().map(|v| (v / alpha).round() as u8));
                out.push((alpha * 255.0 / (N * N) as f32).round() as u8);
            }
        }
    }
    out
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A PNG file of `size` × `size` RGBA pixels.
pub fn png(rgba: &[u8], size: u32) -> Vec<u8> {
    let mut raw = Vec::with_capacity(rgba.len() + size as usize);
    for row in rgba.chunks(size as usize * 4) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&raw).expect("compressing to memory");
    let idat = z.finish().expect("compressing to memory");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8 bits, RGBA, deflate, filter set 0, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// `(path under web/, PNG bytes)` for every icon the manifest names.
pub fn all() -> Vec<(String, Vec<u8>)> {
    [
        (Variant::Any, 192, "console/icons/icon-192.png"),
        (Variant::Any, 512, "console/icons/icon-512.png"),
        (Variant::Maskable, 512, "console/icons/maskable-512.png"),
    ]
    .into_iter()
    .map(|(variant, size, path)| (path.to_string(), png(&render(variant, size), size)))
    .collect()
}
