//! Embeds the dashboard (built by `cargo xtask build` into the directory
//! named by `CELERIAC_DASHBOARD_DIR`) into the binary. Without that variable,
//! or when the directory holds no `index.html`, the binary embeds nothing
//! and `/` serves a plain status page instead: `cargo build`, `clippy` and
//! `test` work on a machine that never built the WASM app.

use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=CELERIAC_DASHBOARD_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = std::env::var_os("CELERIAC_DASHBOARD_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("index.html").is_file());
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    if let Some(dir) = dir {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("reading CELERIAC_DASHBOARD_DIR")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.ends_with(".gz") && !n.ends_with(".br"))
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let variant = |ext: &str| {
                let p = dir.join(format!("{name}.{ext}"));
                if p.is_file() {
                    format!("Some(include_bytes!({:?}))", p.display().to_string())
                } else {
                    "None".to_string()
                }
            };
            writeln!(
                code,
                "    Asset {{ path: {name:?}, body: include_bytes!({:?}), gzip: {}, brotli: {} }},",
                path.display().to_string(),
                variant("gz"),
                variant("br"),
            )
            .unwrap();
        }
    }
    code.push_str("];\n");
    std::fs::write(out.join("dashboard_assets.rs"), code).expect("writing dashboard_assets.rs");
}
