//! `cargo xtask bench scheduler`: the scheduler's load benchmark (release build, `server/benches/
//! scheduler.rs`), then the anchor engines (Ray, Dask, Celery) timed on the same machine in the same
//! run, printed side by side. Machines are noisy, so only ratios measured together mean anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{cargo, output, status, target_dir};

/// What one anchor script reported: medians of (a) no-op tasks/s, (b) round trip ms, (c) 64 KB tasks/s.
#[derive(Debug, Default, Clone)]
struct Anchor {
    engine: &'static str,
    noop_per_s: Option<f64>,
    round_trip_ms: Option<f64>,
    payload_per_s: Option<f64>,
}

pub fn run(root: &Path, args: Vec<String>) -> Result<()> {
    let Some((what, rest)) = args.split_first() else {
        bail!("usage: cargo xtask bench scheduler [flags]")
    };
    if what != "scheduler" {
        bail!("unknown benchmark `{what}`; there is `scheduler`");
    }
    let with_anchors = !rest.iter().any(|a| a == "--no-anchors");
    let passed: Vec<&String> = rest.iter().filter(|a| *a != "--no-anchors").collect();

    let report_path = target_dir(root).join("bench/scheduler.json");
    let mut bench = cargo();
    bench
        .current_dir(root)
        .args([
            "bench",
            "--package",
            "vitalgrid-server",
            "--bench",
            "scheduler",
            "--",
        ])
        .arg("--json")
        .arg(&report_path)
        .args(passed);
    status(&mut bench)?;
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&report_path).context("reading the bench report")?,
    )
    .context("the bench report is not JSON")?;

    let anchors = if with_anchors {
        run_anchors(root)?
    } else {
        Vec::new()
    };
    print_table(&report, &anchors);
    Ok(())
}

/// Sets up the Python venv and Redis the anchors need, then runs each script.
fn run_anchors(root: &Path) -> Result<Vec<Anchor>> {
    let dir = std::env::var_os("VITALGRID_ANCHORS_DIR")
        .map_or_else(|| root.join("../shared/bench/anchors"), PathBuf::from);
    if !dir.join("ray_bench.py").exists() {
        eprintln!(
            "xtask: no anchor scripts in {} (set VITALGRID_ANCHORS_DIR); skipping them",
            dir.display()
        );
        return Ok(Vec::new());
    }
    let python = ensure_venv(root)?;
    ensure_redis()?;
    let mut anchors = Vec::new();
    for (engine, script) in [
        ("Ray", "ray_bench.py"),
        ("Celery + Redis", "celery_bench.py"),
        ("Dask distributed", "dask_bench.py"),
    ] {
        eprintln!("xtask: running the {engine} anchor");
        let out = Command::new(&python)
            .current_dir(&dir)
            .arg(script)
            .output()
            .with_context(|| format!("starting {script}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprint!("{text}");
        if !out.status.success() {
            eprintln!(
                "xtask: {script} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        anchors.push(Anchor {
            engine,
            noop_per_s: median_of(&text, "a)"),
            round_trip_ms: median_of(&text, "b)"),
            payload_per_s: median_of(&text, "c)"),
        });
    }
    Ok(anchors)
}

/// `target/bench-venv` with ray, dask[distributed] and celery[redis], made once.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/bench-venv");
    let python = venv.join("bin/python");
    let ready =
        output(Command::new(&python).args(["-c", "import ray, distributed, celery, redis"]))
            .is_some();
    if !ready {
        status(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        status(Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "ray",
            "dask[distributed]",
            "celery[redis]",
        ]))?;
    }
    Ok(python)
}

/// The Celery anchor needs a Redis on 127.0.0.1:6379; start a throwaway one if none answers.
fn ensure_redis() -> Result<()> {
    let ping = || {
        output(Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", "6379", "ping"]))
            .is_some_and(|o| o.trim() == "PONG")
    };
    if ping() {
        return Ok(());
    }
    status(Command::new("redis-server").args([
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "--port",
        "6379",
        "--save",
        "",
    ]))?;
    for _ in 0..50 {
        if ping() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("redis-server did not answer on 127.0.0.1:6379")
}

/// The `median=` figure of the line starting with `label` in an anchor script's output.
fn median_of(text: &str, label: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
    let rest = &line[line.find("median=")? + "median=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// One line of the table: engine, no-op tasks/s, round trip ms, 64 KB tasks/s, notes.
type Row = (String, Option<f64>, Option<f64>, Option<f64>, String);

/// "×" columns: how many times better VitalGrid (first SQLite scenario) is than the engine — higher
/// throughput, or lower round trip.
fn print_table(report: &Value, anchors: &[Anchor]) {
    let mut rows: Vec<Row> = Vec::new();
    for backend in report.as_array().into_iter().flatten() {
        let name = backend["backend"].as_str().unwrap_or("?");
        let p50 = backend["round_trip_p50_ms"].as_f64();
        let p99 = backend["round_trip_p99_ms"].as_f64();
        for scenario in backend["scenarios"].as_array().into_iter().flatten() {
            rows.push((
                format!("VitalGrid {name}, {} workers", scenario["workers"]),
                scenario["noop_tasks_per_s"].as_f64(),
                p50,
                scenario["payload_64k_tasks_per_s"].as_f64(),
                format!(
                    "p99 {} ms; server {} MB resident ({} MB peak)",
                    fmt(p99, 2),
                    fmt(scenario["server_rss_mb"].as_f64(), 0),
                    fmt(scenario["server_peak_rss_mb"].as_f64(), 0)
                ),
            ));
        }
    }
    let ours = rows.first().map(|r| (r.1, r.2, r.3));
    for anchor in anchors {
        rows.push((
            anchor.engine.to_owned(),
            anchor.noop_per_s,
            anchor.round_trip_ms,
            anchor.payload_per_s,
            String::new(),
        ));
    }
    let ratio =
        |ours: Option<f64>, theirs: Option<f64>, higher_is_better: bool| match (ours, theirs) {
            (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
                format!("{:.2}×", if higher_is_better { a / b } else { b / a })
            }
            _ => "–".to_owned(),
        };
    println!();
    println!("| engine | no-op tasks/s | × | round trip p50 ms | × | 64 KB tasks/s | × | notes |");
    println!("|---|---|---|---|---|---|---|---|");
    for (engine, noop, rt, large, notes) in rows {
        let (o_noop, o_rt, o_large) = ours.unwrap_or((None, None, None));
        println!(
            "| {engine} | {} | {} | {} | {} | {} | {} | {notes} |",
            fmt(noop, 0),
            ratio(o_noop, noop, true),
            fmt(rt, 3),
            ratio(o_rt, rt, false),
            fmt(large, 0),
            ratio(o_large, large, true),
        );
    }
    println!(
        "\n× = how many times better the first VitalGrid row is (throughput higher, round trip lower)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_read_from_the_labelled_line() {
        let text = "ray 2.6\na) no-op throughput: reps=[1.0, 2.0] median=2695.00 tasks/s\nb) round-trip latency: reps=[1] median=1.16 ms\n";
        assert_eq!(median_of(text, "a)"), Some(2695.0));
        assert_eq!(median_of(text, "b)"), Some(1.16));
        assert_eq!(median_of(text, "c)"), None);
    }
}
