//! Builds the single-page app in `ui/` with npm + Vite into `OUT_DIR` and
//! generates `assets.rs`, which embeds every output file with its content
//! type (see `src/assets.rs` for how they are served).
//!
//! - `npm ci` runs when `ui/node_modules` is missing or older than
//!   `ui/package-lock.json` (npm's own `node_modules/.package-lock.json`
//!   marks an install); `npm run build` runs whenever a UI source changes.
//! - Without npm (or the program `NPM` names) the build fails with a
//!   message naming the fix.
//! - `MERIDIAN_WEB_SKIP_BUILD=1` embeds a placeholder page instead (for
//!   Rust-only work on machines without Node.js); the default builds the
//!   real UI.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

const SKIP_ENV: &str = "MERIDIAN_WEB_SKIP_BUILD";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let ui = manifest.join("ui");
    println!("cargo:rerun-if-env-changed={SKIP_ENV}");
    println!("cargo:rerun-if-env-changed=NPM");
    for p in [
        "src",
        "public",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        // A missing path would make cargo rerun this script every time.
        if ui.join(p).exists() {
            println!("cargo:rerun-if-changed={}", ui.join(p).display());
        }
    }

    let dist = out.join("ui-dist");
    if env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        placeholder(&dist);
    } else {
        npm_build(&ui, &dist);
    }
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    fs::write(out.join("assets.rs"), generate(&files)).expect("write assets.rs");
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    panic!("{msg}");
}

fn npm_build(ui: &Path, dist: &Path) {
    let npm = env::var("NPM").unwrap_or_else(|_| "npm".into());
    match Command::new(&npm).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => fail(&format!(
            "building the web UI needs Node.js (>= 20.19) and npm, and `{npm}` was not found. \
             Install Node.js and npm (e.g. `apt-get install nodejs npm` or from nodejs.org), \
             or set {SKIP_ENV}=1 to embed a placeholder page instead of the UI"
        )),
    }
    if needs_install(ui) {
        run(
            Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(ui),
            "npm ci",
        );
    }
    let out_dir = dist.to_str().expect("OUT_DIR is UTF-8");
    run(
        Command::new(&npm)
            .args(["run", "build", "--", "--outDir", out_dir, "--emptyOutDir"])
            .current_dir(ui),
        "npm run build",
    );
}

/// `node_modules` is missing, or older than the lockfile.
fn needs_install(ui: &Path) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        mtime(&ui.join("node_modules/.package-lock.json")),
        mtime(&ui.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!(
            "`{what}` in web/ui failed ({s}); its output is above (run it there by hand to see it)"
        )),
        Err(e) => fail(&format!("could not run `{what}`: {e}")),
    }
}

fn placeholder(dist: &Path) {
    let _ = fs::remove_dir_all(dist);
    fs::create_dir_all(dist).expect("create placeholder dir");
    fs::write(
        dist.join("index.html"),
        "<!doctype html><meta charset=utf-8><title>Meridian</title>\
         <p>This gateway was built with MERIDIAN_WEB_SKIP_BUILD=1: the web UI is not included. \
         The APIs are under <a href=/api/services>/api/</a>.",
    )
    .expect("write placeholder");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    for entry in entries {
        let path = entry.expect("read_dir entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            let url: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
            files.push((format!("/{}", url.join("/")), path));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn generate(files: &[(String, PathBuf)]) -> String {
    let mut s = String::from("// Generated by web/build.rs: the built UI.\n");
    s.push_str("pub static FILES: &[Asset] = &[\n");
    for (url, path) in files {
        s.push_str(&format!(
            "    Asset {{ path: {url:?}, content_type: {:?}, body: include_bytes!({:?}) }},\n",
            content_type(url),
            path.display().to_string()
        ));
    }
    s.push_str("];\n");
    s
}
