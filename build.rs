//! Embeds the web console and widget (every file under `web/`) into the binary, each stored
//! as is and gzip-compressed, so kefud serves them with no files on disk and no Node.js at
//! build or run time. Generates `$OUT_DIR/web_assets.rs`: a sorted table of
//! `(path relative to web/, raw bytes, gzip bytes)`. The console's PNG app icons are drawn
//! here too (build/icons.rs) and take their place in the table as if they were files.

use std::io::Write;
use std::path::{Path, PathBuf};

#[path = "build/icons.rs"]
mod icons;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Dependencies of tooling and hidden files are never part of the pages.
        if name == "node_modules" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    // Read at run time, not baked in with env!(): a target directory copied from another
    // checkout keeps its compiled build script, which must embed this checkout's web/.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let web = Path::new(&manifest_dir).join("web");
    println!("cargo:rerun-if-changed=web");
    println!("cargo:rerun-if-changed=build/icons.rs");
    let mut paths = Vec::new();
    files(&web, &mut paths);
    // Sorted by the URL path, which the server binary-searches.
    let mut assets: Vec<(String, PathBuf)> = paths
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&web)
                .expect("under web/")
                .to_str()
                .expect("asset paths are UTF-8")
                .replace('\\', "/");
            (relative, path)
        })
        .collect();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut generated = Vec::new();
    for (relative, png) in icons::all() {
        let path = out_dir.join(format!("gen__{}", relative.replace('/', "__")));
        std::fs::write(&path, png).expect("writable OUT_DIR");
        generated.push(path.clone());
        assets.push((relative, path));
    }
    assets.sort();
    let mut table = String::from("&[\n");
    for (relative, path) in &assets {
        if !generated.contains(path) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        let raw = std::fs::read(path).expect("readable asset");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("compressing to memory");
        let gz = gz.finish().expect("compressing to memory");
        let gz_name = format!("{}.gz", relative.replace('/', "__"));
        std::fs::write(out_dir.join(&gz_name), gz).expect("writable OUT_DIR");
        table.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?}), include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{gz_name}\"))),\n",
            path.display().to_string()
        ));
    }
    table.push(']');
    std::fs::write(out_dir.join("web_assets.rs"), table).expect("writable OUT_DIR");
}
