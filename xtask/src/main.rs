//! `cargo xtask <build|run|test|bench>`: the steps cargo alone cannot express — installing the wasm
//! toolchain pieces, building the wasm module and the web app, running the whole test suite, and
//! benchmarking the scheduler beside other engines.
//!
//! Every step installs what it needs, so a fresh machine with Rust and Node.js needs nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
/// `bench pipeline`: the worker pipeline natively, in Chromium and beside neurokit2.
mod bench_pipeline;

const USAGE: &str = "usage: cargo xtask <build|run|test|bench scheduler [--mysql URL] [--tasks N] [--no-anchors]>
  build   build the wasm worker, the web app and the server
  run     build, then serve VitalGrid on http://127.0.0.1:8080 (SQLite under ./data)
  test    build, then run every Rust test and the browser end-to-end test
  bench   scheduler load benchmark (release build) on SQLite and MySQL/MariaDB (--mysql URL or
          TEST_DATABASE_URL), then Ray, Dask and Celery on the same machine; prints both side by side";

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root()?;
    match task.as_str() {
        "build" => build(&root, Profile::Debug).map(drop),
        "run" => run(&root),
        "test" => test(&root),
        "bench" if std::env::args().nth(2).as_deref() == Some("pipeline") => {
            bench_pipeline::run(&root, &std::env::args().skip(3).collect::<Vec<_>>())
        }
        "bench" => bench::run(&root, std::env::args().skip(2).collect()),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown task `{task}`")
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    // `cargo run` sets the variable for the process it starts, which is the checkout being worked
    // on; the value compiled in can name another checkout when two share one target directory
    // (cargo then reuses this binary as built from the other one).
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask lives inside the workspace")
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn npm() -> Command {
    Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" })
}

fn status(command: &mut Command) -> Result<()> {
    eprintln!("xtask: {command:?}");
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn output(command: &mut Command) -> Option<String> {
    command
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Builds everything; returns the path of the `vitalgrid` binary.
fn build(root: &Path, profile: Profile) -> Result<PathBuf> {
    build_wasm(root)?;
    build_web(root)?;
    let mut server = cargo();
    server.current_dir(root).args([
        "build",
        "--package",
        "vitalgrid-server",
        "--bin",
        "vitalgrid",
    ]);
    if profile == Profile::Release {
        server.arg("--release");
    }
    status(&mut server)?;
    Ok(target_dir(root).join(profile.dir()).join("vitalgrid"))
}

/// The worker pipeline for browsers: wasm32 build, then wasm-bindgen's JS glue into the web app.
fn build_wasm(root: &Path) -> Result<()> {
    build_wasm_into(root, &root.join("web/src/wasm/pkg"))
}

/// The wasm32 build and wasm-bindgen's JS glue into `out_dir` (the pipeline bench keeps its own,
/// so a bench never rewrites the web app's `src/wasm/pkg` under a dev server or a test beside it).
fn build_wasm_into(root: &Path, out_dir: &Path) -> Result<()> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed
        .lines()
        .any(|line| line.trim() == "wasm32-unknown-unknown")
    {
        status(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let wasm_bindgen = ensure_wasm_bindgen(root)?;
    status(cargo().current_dir(root).args([
        "build",
        "--package",
        "vitalgrid-worker",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--release",
    ]))?;
    let wasm = target_dir(root).join("wasm32-unknown-unknown/release/vitalgrid_worker.wasm");
    status(
        Command::new(wasm_bindgen)
            .arg("--target")
            .arg("web")
            .arg("--out-dir")
            .arg(out_dir)
            .arg(&wasm),
    )
}

/// wasm-bindgen's CLI must match the `wasm-bindgen` crate in Cargo.lock exactly. Installed
/// without `--locked`: the CLI's own lock file can name crate versions the registry index a
/// machine sees does not list yet.
fn ensure_wasm_bindgen(root: &Path) -> Result<PathBuf> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let version =
        locked_version(&lock, "wasm-bindgen").context("Cargo.lock has no wasm-bindgen")?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let binary = cargo_home.join("bin/wasm-bindgen");
    let current = output(Command::new(&binary).arg("--version")).unwrap_or_default();
    if current.split_whitespace().nth(1) != Some(version.as_str()) {
        status(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))?;
    }
    Ok(binary)
}

fn locked_version(lock: &str, package: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            let version = lines
                .next()?
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

fn build_web(root: &Path) -> Result<()> {
    let web = root.join("web");
    let install = if web.join("package-lock.json").exists() {
        "ci"
    } else {
        "install"
    };
    if !web.join("node_modules/.package-lock.json").exists() || install == "install" {
        status(
            npm()
                .current_dir(&web)
                .args([install, "--no-audit", "--no-fund"]),
        )?;
    }
    status(npm().current_dir(&web).args(["run", "build"]))
}

fn run(root: &Path) -> Result<()> {
    let binary = build(root, Profile::Release)?;
    let mut serve = Command::new(binary);
    serve.current_dir(root).arg("serve");
    if std::env::var_os("VITALGRID_REPLICAS").is_none() {
        // On one machine there is usually one volunteer tab, and a result needs two distinct
        // workers to agree by default: a local demo would wait forever for the second.
        eprintln!(
            "xtask: local run with VITALGRID_REPLICAS=1 (one volunteer suffices); deployments keep 2"
        );
        serve.env("VITALGRID_REPLICAS", "1");
    }
    status(&mut serve)
}

fn test(root: &Path) -> Result<()> {
    build_wasm(root)?;
    build_web(root)?;
    // `cargo test` builds the `vitalgrid` binary too (the server's integration tests need it), with
    // the same dependency features as the tests; a separate `cargo build` would compile them twice.
    let binary = target_dir(root)
        .join(Profile::Debug.dir())
        .join("vitalgrid");
    // The Rust tests write a task and its native result here; the Node test then runs the same task
    // through the WebAssembly build and compares the bytes.
    let frames = target_dir(root).join("xtask/byte-identity-frames");
    status(
        cargo()
            .current_dir(root)
            .args(["test", "--workspace", "--no-fail-fast"])
            .env("VITALGRID_FRAMES_DIR", &frames),
    )?;
    // The vendored WebSocket library is outside the workspace; its own tests include the ones for
    // our patch (vendor/README.md). Built into our target folder and with its lock file as shipped.
    status(
        cargo()
            .current_dir(root)
            .args([
                "test",
                "--lib",
                "--locked",
                "--manifest-path",
                "vendor/tungstenite-0.29.0/Cargo.toml",
                "--target-dir",
            ])
            .arg(target_dir(root)),
    )?;
    status(
        Command::new("node")
            .current_dir(root)
            .args(["--test", "worker-wasm/tests/node/"])
            .env("VITALGRID_FRAMES_DIR", &frames)
            .env("VITALGRID_WASM_PKG", root.join("web/src/wasm/pkg")),
    )?;
    let web = root.join("web");
    status(npm().current_dir(&web).args(["run", "test"]))?;
    // The end-to-end test has a single volunteer tab; replication is covered by the Rust suites.
    status(
        npm()
            .current_dir(&web)
            .args(["run", "test:e2e"])
            .env("VITALGRID_BIN", &binary)
            .env("VITALGRID_REPLICAS", "1"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_version_reads_the_named_package() {
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n\n[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "serde"), None);
    }
}
