//! The dashboard build: `frontend/` to wasm32, bound, optimised, hashed,
//! precompressed into `target/dashboard/`, which the server build embeds
//! (`CELERIAC_DASHBOARD_DIR`, see `server/build.rs`).
//!
//! rustup here cannot add the wasm32 target, so unless it is already
//! installed this takes the Debian route (README.md, "The dashboard"):
//! Debian's rustc-web builds std for wasm32 from rust-web-src, lld-22 links,
//! wasm-bindgen-cli at the lockfile's version binds, binaryen's wasm-opt
//! (npm) shrinks. Each prerequisite is checked first and installed only when
//! missing; every step prints one line. The wasm build's target directory
//! and the tools live under the user's cache directory, outside the clone,
//! so fresh clones (CI) reuse them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cmd::{cargo, step, Cmd};
use crate::root;

const DEBIAN_PACKAGES: [&str; 4] = ["rustc-web", "cargo-web", "rust-web-src", "lld-22"];
const WASM_LD: &str = "/usr/lib/llvm-22/bin/wasm-ld";
const BINARYEN: &str = "binaryen@132.0.0";
const PLAYWRIGHT: &str = "playwright-core@1.65.1";
/// The OpenID provider `server/tests/oidc.rs` signs in against.
const OIDC_PROVIDER: &str = "oidc-provider@9.13.3";
/// Marks the template's spot for the server's `<base>` and prefix.
const TEMPLATE: &str = "frontend/index.html";

pub fn cache_dir() -> Result<PathBuf> {
    Ok(crate::venv::dir()?
        .parent()
        .context("cache dir")?
        .to_path_buf())
}

/// npm tools (wasm-opt, playwright-core) live here.
pub fn tools_dir() -> Result<PathBuf> {
    Ok(cache_dir()?.join("tools"))
}

/// Where the built dashboard goes.
pub fn dist_dir() -> PathBuf {
    root().join("target").join("dashboard")
}

/// Builds the dashboard if anything changed, then points the server build
/// at it (the variable is inherited by every cargo this xtask runs).
pub fn build() -> Result<()> {
    let started = Instant::now();
    let wasm = compile()?;
    package(&wasm)?;
    // Safe: xtask is single-threaded here, and edition 2021.
    std::env::set_var("CELERIAC_DASHBOARD_DIR", dist_dir());
    step(&format!(
        "dashboard ready in {} ({:.0} s)",
        dist_dir().display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn rustup_has_wasm32() -> bool {
    Cmd::new("rustup")
        .args(["target", "list", "--installed"])
        .read()
        .is_ok_and(|s| s.lines().any(|l| l.trim() == "wasm32-unknown-unknown"))
}

fn ensure_debian_packages() -> Result<()> {
    crate::apt::ensure(
        &DEBIAN_PACKAGES,
        "rustc-web, rust-web-src, lld-22",
        "~1 min",
    )
}

/// Debian's Chromium, which the browser tests and the dashboard benchmark
/// drive with playwright-core (`/usr/bin/chromium`).
pub fn ensure_chromium() -> Result<()> {
    crate::apt::ensure(&["chromium"], "chromium", "~2 min")
}

/// The `wasm-bindgen` version `Cargo.lock` pins.
fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    bail!("Cargo.lock pins no wasm-bindgen: is leptos in frontend/Cargo.toml?")
}

fn wasm_bindgen_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join("wasm-bindgen")
}

fn ensure_wasm_bindgen() -> Result<PathBuf> {
    let want = locked_wasm_bindgen()?;
    let bin = wasm_bindgen_bin();
    let have = Cmd::new(&bin)
        .args(["--version"])
        .read()
        .unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) {
        step(&format!("dashboard: wasm-bindgen {want} present"));
        return Ok(bin);
    }
    step(&format!(
        "dashboard: installing wasm-bindgen-cli {want} (the lockfile's; ~9 min on 2 cores)"
    ));
    // No --locked: its lockfile pins a crate this registry does not serve.
    cargo(&["install", "wasm-bindgen-cli", "--version", &want]).run()?;
    Ok(bin)
}

/// Installs the npm tools (binaryen's wasm-opt; playwright-core for the
/// browser tests) unless present.
pub fn ensure_npm_tools() -> Result<PathBuf> {
    let dir = tools_dir()?;
    let have = |pkg: &str| {
        dir.join("node_modules")
            .join(pkg)
            .join("package.json")
            .is_file()
    };
    if have("binaryen") && have("playwright-core") && have("oidc-provider") {
        step("dashboard: wasm-opt (binaryen 132), playwright-core and oidc-provider present");
        return Ok(dir);
    }
    step("dashboard: installing binaryen 132, playwright-core and oidc-provider with npm");
    std::fs::create_dir_all(&dir)?;
    Cmd::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .args([&dir])
        .args([BINARYEN, PLAYWRIGHT, OIDC_PROVIDER])
        .run()?;
    Ok(dir)
}

/// The wasm32 build; returns the unbound `.wasm`.
fn compile() -> Result<PathBuf> {
    let target = cache_dir()?.join("wasm-target");
    let wasm = target.join("wasm32-unknown-unknown/release/frontend.wasm");
    let common = [
        // The workspace's release profile keeps debug info for the server.
        ("CARGO_PROFILE_RELEASE_DEBUG", "0"),
        ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z"),
    ];
    if rustup_has_wasm32() {
        step("dashboard: compiling frontend to wasm32 (rustup target)");
        cargo(&[
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "frontend",
        ])
        .args(["--target-dir".as_ref(), target.as_os_str()])
        .envs(&common)
        .run()?;
        return Ok(wasm);
    }
    ensure_debian_packages()?;
    let cold = !target.join("wasm32-unknown-unknown/release/deps").is_dir();
    step(&format!(
        "dashboard: compiling frontend to wasm32 with Debian's rustc-web and std from source{}",
        if cold { " (first time: ~10 min)" } else { "" }
    ));
    Cmd::new("/usr/bin/cargo")
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .args([
            "-Zbuild-std=std,panic_abort",
            "-p",
            "frontend",
            "--target-dir",
        ])
        .args([&target])
        .args(["--manifest-path".into(), root().join("Cargo.toml")])
        .envs(&common)
        .envs(&[
            ("RUSTC", "/usr/bin/rustc"),
            ("RUSTDOC", "/usr/bin/rustdoc"),
            ("RUSTC_BOOTSTRAP", "1"),
            ("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", WASM_LD),
        ])
        .run()?;
    Ok(wasm)
}

/// 64-bit FNV-1a, for content hashes in file names.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// wasm-bindgen, wasm-opt, hashed names, index.html, .gz/.br; skipped when
/// the inputs are the ones the current dist was made from.
fn package(wasm: &Path) -> Result<()> {
    let raw = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let template = std::fs::read_to_string(root().join(TEMPLATE))
        .with_context(|| format!("reading {TEMPLATE}"))?;
    let inputs = format!(
        "{:016x}",
        fnv(&raw) ^ fnv(template.as_bytes()).rotate_left(1)
    );
    let dist = dist_dir();
    let stamp = dist.join(".inputs");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(inputs.as_str())
        && dist.join("index.html").is_file()
    {
        step("dashboard: assets up to date");
        return Ok(());
    }
    let bindgen = ensure_wasm_bindgen()?;
    let tools = ensure_npm_tools()?;
    let work = root().join("target").join("dashboard-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    step("dashboard: wasm-bindgen");
    Cmd::new(&bindgen)
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            "app",
            "--out-dir",
        ])
        .args([work.as_os_str(), wasm.as_os_str()])
        .run()?;
    step("dashboard: wasm-opt -Oz");
    let bg = work.join("app_bg.wasm");
    Cmd::new("node")
        .args([tools.join("node_modules/binaryen/bin/wasm-opt")])
        .args([
            "-Oz",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-reference-types",
            "--enable-mutable-globals",
            "--enable-multivalue",
        ])
        .args([bg.as_os_str(), "-o".as_ref(), bg.as_os_str()])
        .run()?;

    let js = std::fs::read_to_string(work.join("app.js"))?;
    let wasm_bytes = std::fs::read(&bg)?;
    let wasm_name = format!("app_bg-{:016x}.wasm", fnv(&wasm_bytes));
    let js_name = format!("app-{:016x}.js", fnv(js.as_bytes()));
    let index = template
        .replace("{{js}}", &js_name)
        .replace("{{wasm}}", &wasm_name);

    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist)?;
    std::fs::write(dist.join(&js_name), &js)?;
    std::fs::write(dist.join(&wasm_name), &wasm_bytes)?;
    std::fs::write(dist.join("index.html"), index)?;
    step("dashboard: precompressing (gzip, brotli)");
    let script = r#"
const fs = require('fs'), zlib = require('zlib'), path = require('path');
const dir = process.argv[1];
for (const f of fs.readdirSync(dir)) {
  if (!/\.(js|wasm|css|svg)$/.test(f)) continue;
  const raw = fs.readFileSync(path.join(dir, f));
  fs.writeFileSync(path.join(dir, f + '.gz'), zlib.gzipSync(raw, { level: 9 }));
  fs.writeFileSync(path.join(dir, f + '.br'), zlib.brotliCompressSync(raw, {
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }));
}
"#;
    Cmd::new("node").args(["-e", script]).args([&dist]).run()?;
    std::fs::write(&stamp, inputs)?;
    let size = |ext: &str| -> u64 {
        std::fs::read_dir(&dist)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    step(&format!(
        "dashboard: app is {} B raw, {} B gzip, {} B brotli (js + wasm)",
        size(".js") + size(".wasm"),
        size(".gz"),
        size(".br")
    ));
    Ok(())
}
