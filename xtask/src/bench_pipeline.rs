//! `cargo xtask bench pipeline`: the worker pipeline's throughput natively (`server/benches/
//! pipeline.rs`) and as WebAssembly in headless Chromium (`web/bench/pipeline.bench.mjs`, on the
//! very frames the native bench wrote), beside neurokit2 on the same ECG file
//! (`server/benches/neurokit2_bench.py`), all in one run and printed side by side. The
//! machine may be shared, so only figures measured together are compared, and the load average is
//! printed with them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{build_wasm_into, cargo, npm, output, status, target_dir};

const USAGE: &str =
    "usage: cargo xtask bench pipeline [--runs N] [--nk-runs N] [--no-wasm] [--no-neurokit2]
  --runs N        timed runs per workload, native and wasm (median reported; default 7)
  --nk-runs N     timed runs of each neurokit2 path (default 5)
  VITALGRID_BENCH_ECG=path overrides ../shared/data/real/bsnb_ecg_5min.csv";

/// neurokit2 as in shared/data/real/REFERENCE.md, so its figures there and here are comparable.
const NEUROKIT2: &str = "neurokit2==0.2.13";

struct Options {
    runs: usize,
    nk_runs: usize,
    wasm: bool,
    neurokit2: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 7,
        nk_runs: 5,
        wasm: true,
        neurokit2: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number =
            || -> Result<usize> { args.next().context(USAGE)?.parse().context("not a number") };
        match arg.as_str() {
            "--runs" => options.runs = number()?.max(1),
            "--nk-runs" => options.nk_runs = number()?.max(1),
            "--no-wasm" => options.wasm = false,
            "--no-neurokit2" => options.neurokit2 = false,
            _ => bail!("unknown flag `{arg}`\n{USAGE}"),
        }
    }
    Ok(options)
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = options(args)?;
    let ecg = std::env::var_os("VITALGRID_BENCH_ECG").map_or_else(
        || root.join("../shared/data/real/bsnb_ecg_5min.csv"),
        PathBuf::from,
    );
    if !ecg.is_file() {
        bail!(
            "the benchmark's ECG recording {} is missing (set VITALGRID_BENCH_ECG)",
            ecg.display()
        );
    }
    let out = target_dir(root).join("bench-pipeline");
    let frames = out.join("frames");
    if frames.exists() {
        std::fs::remove_dir_all(&frames)
            .with_context(|| format!("clearing {}", frames.display()))?;
    }
    let mut load = vec![("start", load_average())];

    // Build everything first, so no compiler competes with a measurement.
    let pkg = out.join("pkg");
    if options.wasm {
        build_wasm_into(root, &pkg)?;
        if !root.join("web/node_modules/playwright-core").exists() {
            status(
                npm()
                    .current_dir(root.join("web"))
                    .args(["ci", "--no-audit", "--no-fund"]),
            )?;
        }
    }
    let python = if options.neurokit2 {
        Some(ensure_venv(&out)?)
    } else {
        None
    };
    status(cargo().current_dir(root).args([
        "bench",
        "--package",
        "vitalgrid-server",
        "--bench",
        "pipeline",
        "--no-run",
    ]))?;

    load.push(("native", load_average()));
    let native = json_line(
        cargo()
            .current_dir(root)
            .args([
                "bench",
                "--package",
                "vitalgrid-server",
                "--bench",
                "pipeline",
                "--",
            ])
            .arg("--frames-dir")
            .arg(&frames)
            .arg("--ecg")
            .arg(&ecg)
            .args(["--runs", &options.runs.to_string()]),
    )?;

    let wasm = if options.wasm {
        load.push(("wasm", load_average()));
        Some(json_line(
            Command::new("node")
                .current_dir(root)
                .arg("web/bench/pipeline.bench.mjs")
                .arg("--frames")
                .arg(&frames)
                .arg("--pkg")
                .arg(&pkg)
                .args(["--runs", &options.runs.to_string()]),
        )?)
    } else {
        None
    };

    let neurokit2 = match python {
        Some(python) => {
            load.push(("neurokit2", load_average()));
            if std::env::var_os("OPENBLAS_CORETYPE").is_some() {
                eprintln!(
                    "xtask: note: OPENBLAS_CORETYPE is set, which can slow numpy (and so neurokit2) down"
                );
            }
            Some(json_line(
                Command::new(python)
                    .arg(root.join("server/benches/neurokit2_bench.py"))
                    .arg(&ecg)
                    .args(["--runs", &options.nk_runs.to_string()]),
            )?)
        }
        None => None,
    };
    load.push(("end", load_average()));

    let report = json!({
        "command": format!("cargo xtask bench pipeline {}", args.join(" ")).trim_end(),
        "cpus": std::thread::available_parallelism().map(usize::from).ok(),
        "load_average": load.iter().map(|(when, avg)| json!({"when": when, "loadavg": avg})).collect::<Vec<_>>(),
        "native": native,
        "wasm": wasm,
        "neurokit2": neurokit2,
    });
    let path = out.join("pipeline.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    print_tables(&report);
    eprintln!("xtask: every figure is in {}", path.display());
    Ok(())
}

/// A venv of its own (the scheduler bench keeps Ray and friends in another) with neurokit2.
fn ensure_venv(out: &Path) -> Result<PathBuf> {
    let venv = out.join("venv");
    let python = venv.join("bin/python");
    let wanted = NEUROKIT2.trim_start_matches("neurokit2==");
    let found = output(Command::new(&python).args([
        "-c",
        "import neurokit2, pandas; print(neurokit2.__version__)",
    ]));
    if found.as_deref().map(str::trim) != Some(wanted) {
        status(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        status(Command::new(venv.join("bin/pip")).args(["install", "-q", NEUROKIT2, "pandas"]))?;
    }
    Ok(python)
}

/// Runs `command` (its stderr goes to ours) and parses the last stdout line that is a JSON object.
fn json_line(command: &mut Command) -> Result<Value> {
    eprintln!("xtask: {command:?}");
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed with {}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .context("no JSON line in the output")?;
    serde_json::from_str(line).context("the bench's JSON line does not parse")
}

/// The 1, 5 and 15 minute load averages (Linux), to say how busy the machine was.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn get(value: &Value, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_f64)
}

/// (label, median 1 task, best 1 task, median server tasks), samples/s.
type EcgRow<'a> = (&'a str, Option<f64>, Option<f64>, Option<f64>);

fn print_tables(report: &Value) {
    let native = &report["native"]["workloads"];
    let wasm = &report["wasm"]["contexts"];
    let nk = &report["neurokit2"]["figures"];
    let rate = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{:.2} M", v / 1e6));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    };
    let nk_peaks = get(nk, &["peaks_only", "samples_per_s"]);

    // Samples per second of the fastest run: on a shared machine, the least disturbed one.
    let best = |v: &Value, path: &[&str]| {
        let samples =
            get(v, &[path, &["samples"]].concat()).or(report["neurokit2"]["samples"].as_f64());
        match (samples, get(v, &[path, &["min_ms"]].concat())) {
            (Some(samples), Some(ms)) if ms > 0.0 => Some(samples / ms * 1e3),
            _ => None,
        }
    };

    println!();
    println!(
        "ECG, bsnb_ecg_5min (300 000 samples at 1000 Hz); samples/s, wall clock; median and best run"
    );
    println!(
        "{:<30} {:>8} {:>8} {:>9} | {:>8} {:>8} {:>9} | {:>12} {:>8}",
        "",
        "median",
        "÷native",
        "÷nk-peaks",
        "best",
        "÷native",
        "÷nk-peaks",
        "server tasks",
        "÷native"
    );
    let mut rows: Vec<EcgRow> = vec![(
        "native",
        get(native, &["ecg-whole", "samples_per_s"]),
        best(native, &["ecg-whole"]),
        get(native, &["ecg-segments", "samples_per_s"]),
    )];
    for (context, label) in [
        ("worker", "wasm, Chromium Web Worker"),
        ("main", "wasm, Chromium main thread"),
    ] {
        rows.push((
            label,
            get(wasm, &[context, "ecg-whole", "full", "samples_per_s"]),
            best(wasm, &[context, "ecg-whole", "full"]),
            get(wasm, &[context, "ecg-segments", "full", "samples_per_s"]),
        ));
    }
    let nk_peaks_best = best(nk, &["peaks_only"]);
    rows.push(("neurokit2 peaks-only + hrv", nk_peaks, nk_peaks_best, None));
    rows.push((
        "neurokit2 ecg_process + hrv",
        get(nk, &["ecg_process", "samples_per_s"]),
        best(nk, &["ecg_process"]),
        None,
    ));
    let (native_median, native_best, native_segments) = (rows[0].1, rows[0].2, rows[0].3);
    for (label, median, fastest, segments) in &rows {
        println!(
            "{label:<30} {:>8} {:>8} {:>9} | {:>8} {:>8} {:>9} | {:>12} {:>8}",
            rate(*median),
            ratio(*median, native_median),
            ratio(*median, nk_peaks),
            rate(*fastest),
            ratio(*fastest, native_best),
            ratio(*fastest, nk_peaks_best),
            rate(*segments),
            ratio(*segments, native_segments),
        );
    }
    let native_cpu = get(native, &["ecg-whole", "cpu_samples_per_s"]);
    let nk_cpu = get(nk, &["peaks_only", "cpu_samples_per_s"]);
    println!(
        "CPU time instead of wall clock (load-independent): native {}/s, nk peaks-only {}/s, native ÷ nk-peaks {}",
        rate(native_cpu),
        rate(nk_cpu),
        ratio(native_cpu, nk_cpu)
    );

    println!();
    println!(
        "Like for like: the pipeline running `hrv-time` (R peaks, NN intervals, time-domain HRV), \
         what neurokit2's peaks-only path computes; 1 task"
    );
    println!(
        "{:<30} {:>8} {:>9} | {:>8} {:>9}",
        "", "median", "÷nk-peaks", "best", "÷nk-peaks"
    );
    for (label, path) in [
        ("native", vec!["ecg-hrv-whole"]),
        (
            "wasm, Chromium Web Worker",
            vec!["worker", "ecg-hrv-whole", "full"],
        ),
        (
            "wasm, Chromium main thread",
            vec!["main", "ecg-hrv-whole", "full"],
        ),
    ] {
        let (figures, path) = if label == "native" {
            (native, &path[..])
        } else {
            (wasm, &path[..])
        };
        let median = get(figures, &[path, &["samples_per_s"]].concat());
        let fastest = best(figures, path);
        println!(
            "{label:<30} {:>8} {:>9} | {:>8} {:>9}",
            rate(median),
            ratio(median, nk_peaks),
            rate(fastest),
            ratio(fastest, nk_peaks_best)
        );
    }

    println!();
    println!("Vitals, synthetic 24 h at 1 Hz, 7 signals; rows/s, wall clock, median");
    println!(
        "{:<30} {:>13} {:>9} {:>14} {:>9}",
        "", "1 task", "÷native", "server tasks", "÷native"
    );
    let vitals = [
        (
            "native",
            get(native, &["vitals-whole", "samples_per_s"]),
            get(native, &["vitals-segments", "samples_per_s"]),
        ),
        (
            "wasm, Chromium Web Worker",
            get(wasm, &["worker", "vitals-whole", "full", "samples_per_s"]),
            get(
                wasm,
                &["worker", "vitals-segments", "full", "samples_per_s"],
            ),
        ),
        (
            "wasm, Chromium main thread",
            get(wasm, &["main", "vitals-whole", "full", "samples_per_s"]),
            get(wasm, &["main", "vitals-segments", "full", "samples_per_s"]),
        ),
    ];
    for (label, whole, segments) in vitals {
        println!(
            "{label:<30} {:>13} {:>9} {:>14} {:>9}",
            rate(whole),
            ratio(whole, vitals[0].1),
            rate(segments),
            ratio(segments, vitals[0].2)
        );
    }

    println!();
    println!(
        "Where native time goes (ms, summed over tasks): frame JSON / payload Adler-32 / payload JSON / validate / algorithms / result encode"
    );
    for name in [
        "ecg-whole",
        "ecg-segments",
        "ecg-hrv-whole",
        "vitals-whole",
        "vitals-segments",
    ] {
        let stage = |key: &str| {
            get(native, &[name, "stages", key])
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
        };
        println!(
            "  {name:<16} {} / {} / {} / {} / {} / {}",
            stage("frame_json_ms"),
            stage("payload_checksum_ms"),
            stage("payload_json_ms"),
            stage("validate_ms"),
            stage("algorithms_ms"),
            stage("result_encode_ms")
        );
    }
    let identical = ["worker", "main"].iter().all(|context| {
        wasm.get(context)
            .and_then(Value::as_object)
            .is_none_or(|workloads| {
                workloads.values().all(|variants| {
                    variants.as_object().is_some_and(|v| {
                        v.values()
                            .all(|f| f["identical_to_native"] == Value::Bool(true))
                    })
                })
            })
    });
    println!();
    println!(
        "wasm result frames byte-identical to native: {}",
        if identical { "yes" } else { "NO" }
    );
    let loads: Vec<String> = report["load_average"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|l| {
                    format!(
                        "{} {}",
                        l["when"].as_str().unwrap_or("?"),
                        l["loadavg"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!("load average (1/5/15 min) at: {}", loads.join("; "));
    let worker = get(wasm, &["worker", "ecg-whole", "full", "samples_per_s"]);
    let worker_best = best(wasm, &["worker", "ecg-whole", "full"]);
    let hrv = get(wasm, &["worker", "ecg-hrv-whole", "full", "samples_per_s"]);
    let hrv_best = best(wasm, &["worker", "ecg-hrv-whole", "full"]);
    println!(
        "targets (ECG, 1 task, Web Worker; median / best run): wasm ≥ 3× nk peaks-only: \
         like for like (hrv-time) {} / {}, full ecg-report {} / {}; \
         wasm within 1.5× of native (≥ 0.67× its speed): {} / {}",
        ratio(hrv, nk_peaks),
        ratio(hrv_best, nk_peaks_best),
        ratio(worker, nk_peaks),
        ratio(worker_best, nk_peaks_best),
        ratio(worker, native_median),
        ratio(worker_best, native_best)
    );
}
