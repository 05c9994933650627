//! Throughput of the whole worker pipeline (frame decode → integrity check → validation →
//! algorithms → result encode) on a real ECG and a synthetic 24 h vitals log, natively. It also
//! writes the exact frames it timed, so the browser bench (web/bench/pipeline.bench.mjs) times the
//! same bytes in WebAssembly. A benchmark, not a test: it prints figures and asserts no timings.
//!
//! Run through `cargo xtask bench pipeline`, or alone:
//!   cargo bench -p vitalgrid-worker --bench pipeline -- [--frames-dir DIR] [--runs N] [--ecg CSV]
//! The last line of its output is one JSON object with every figure.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vitalgrid_synthetic::{VitalsConfig, generate_vitals};
use vitalgrid_worker::algorithm::AlgorithmRun;
use vitalgrid_worker::pipeline::Pipeline;
use vitalgrid_worker::processor::DataProcessor;
use vitalgrid_worker::protocol::{
    CheckedPayload, ServerMessage, SignalColumn, SignedPayload, TaskData, TaskPacket, WorkerMessage,
};
use vitalgrid_worker::sender;
use vitalgrid_worker::template::{HRV_TIME, RecordingKind, Template, builtin_templates};

type Error = Box<dyn std::error::Error>;

// The server's defaults (server/src/config.rs, server/src/jobs.rs), copied rather than imported:
// depending on the server would compile its whole database and HTTP stack for a bench.
const ECG_ROWS_PER_TASK: usize = 60_000;
const VITALS_ROWS_PER_TASK: usize = 3_600;
const ECG_OVERLAP_S: f64 = 3.0;
const TREND_POINTS: usize = 1_000;
const VITALS_SEED: u64 = 20_260_105;

struct Options {
    frames_dir: Option<PathBuf>,
    runs: usize,
    ecg_csv: PathBuf,
}

fn options() -> Result<Options, Error> {
    let mut options = Options {
        frames_dir: None,
        runs: 7,
        ecg_csv: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/real/bsnb_ecg_5min.csv"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--frames-dir" => options.frames_dir = args.next().map(PathBuf::from),
            "--runs" => options.runs = args.next().ok_or("--runs needs a number")?.parse()?,
            "--ecg" => {
                options.ecg_csv = args.next().map(PathBuf::from).ok_or("--ecg needs a path")?
            }
            // `cargo bench` passes `--bench` (and test filters) to every bench binary.
            _ => {}
        }
    }
    options.runs = options.runs.max(1);
    Ok(options)
}

/// A recording as the server's DataExtractor makes it: times relative to the first row, the
/// template's signals column-wise, `None` for empty cells.
struct Recording {
    template: Template,
    time_s: Vec<f64>,
    signals: Vec<SignalColumn>,
}

impl Recording {
    fn duration_s(&self) -> f64 {
        match (self.time_s.first(), self.time_s.last()) {
            (Some(first), Some(last)) => (last - first).max(0.0),
            _ => 0.0,
        }
    }

    fn sample_rate_hz(&self) -> f64 {
        let duration = self.duration_s();
        if duration > 0.0 {
            (self.time_s.len() - 1) as f64 / duration
        } else {
            0.0
        }
    }
}

/// The subset of `server::extract::extract` these files need: a `time_s` column and unquoted
/// numeric cells (both inputs are written that way). Columns are taken in template order, as there.
fn parse_csv(text: &str, template: &Template) -> Result<Recording, Error> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let time_index = header
        .iter()
        .position(|name| name.trim().eq_ignore_ascii_case("time_s"))
        .ok_or("no time_s column")?;
    let columns: Vec<(usize, String)> = template
        .signals
        .iter()
        .filter_map(|rule| {
            header
                .iter()
                .enumerate()
                .filter(|(index, _)| *index != time_index)
                .find(|(_, name)| {
                    template
                        .match_column(name)
                        .is_some_and(|r| r.name == rule.name)
                })
                .map(|(index, _)| (index, rule.name.clone()))
        })
        .collect();
    if columns.is_empty() {
        return Err(format!("no column of template {} in {header:?}", template.id).into());
    }
    let mut time_s = Vec::new();
    let mut values = vec![Vec::new(); columns.len()];
    let mut origin = None;
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != header.len() {
            return Err(format!("ragged row: {line}").into());
        }
        let absolute: f64 = cells[time_index].trim().parse()?;
        time_s.push(absolute - *origin.get_or_insert(absolute));
        for (slot, (column, _)) in values.iter_mut().zip(&columns) {
            slot.push(parse_value(cells[*column].trim())?);
        }
    }
    Ok(Recording {
        template: template.clone(),
        time_s,
        signals: columns
            .into_iter()
            .zip(values)
            .map(|((_, name), values)| SignalColumn { name, values })
            .collect(),
    })
}

fn parse_value(cell: &str) -> Result<Option<f64>, Error> {
    if cell.is_empty() || ["na", "nan", "--", "null"].contains(&cell.to_ascii_lowercase().as_str())
    {
        return Ok(None);
    }
    Ok(Some(cell.parse::<f64>()?).filter(|v| v.is_finite()))
}

/// `server::extract::trend_bucket_for`.
fn trend_bucket_for(duration_s: f64, max_points: usize) -> f64 {
    const NICE: [f64; 20] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0,
    ];
    let wanted = duration_s / max_points.max(1) as f64;
    NICE.iter()
        .copied()
        .find(|nice| *nice >= wanted)
        .unwrap_or_else(|| (wanted / 3600.0).ceil() * 3600.0)
}

/// `server::extract::split_into_tasks`: cores of at most `max_rows` rows, never cutting between
/// equal timestamps, with `overlap_rows` of context on each side.
fn split_into_tasks(
    recording: &Recording,
    max_rows: usize,
    overlap_rows: usize,
    trend_bucket_s: f64,
) -> Vec<TaskData> {
    let rows = recording.time_s.len();
    let max_rows = max_rows.max(1);
    let mut cuts = vec![0usize];
    let mut cut = 0usize;
    while cut < rows {
        let mut next = (cut + max_rows).min(rows);
        while next < rows && recording.time_s[next] == recording.time_s[next - 1] {
            next += 1;
        }
        cuts.push(next);
        cut = next;
    }
    cuts.windows(2)
        .map(|core| {
            let (core_start, core_end) = (core[0], core[1]);
            let from = core_start.saturating_sub(overlap_rows);
            let to = (core_end + overlap_rows).min(rows);
            TaskData {
                time_s: recording.time_s[from..to].to_vec(),
                signals: recording
                    .signals
                    .iter()
                    .map(|signal| SignalColumn {
                        name: signal.name.clone(),
                        values: signal.values[from..to].to_vec(),
                    })
                    .collect(),
                core_start: core_start - from,
                core_end: core_end - from,
                trend_bucket_s,
            }
        })
        .collect()
}

/// One timed unit of work: a template frame and the task frames of one recording.
struct Workload {
    name: String,
    /// Rows of the recording (each counted once, overlap excluded).
    samples: usize,
    /// Signal values per row.
    signals: usize,
    template_frame: String,
    task_frames: Vec<String>,
}

/// `algorithm`: the one the tasks name; `None` for the template's default (the full report).
fn workload(
    name: &str,
    recording: &Recording,
    whole: bool,
    algorithm: Option<&str>,
) -> Result<Workload, Error> {
    let template = &recording.template;
    let trend_bucket_s = trend_bucket_for(recording.duration_s(), TREND_POINTS);
    let payloads = if whole {
        split_into_tasks(recording, usize::MAX, 0, trend_bucket_s)
    } else {
        match template.kind {
            RecordingKind::Vitals => {
                split_into_tasks(recording, VITALS_ROWS_PER_TASK, 0, trend_bucket_s)
            }
            RecordingKind::Ecg => {
                // Rounded up to whole rows, as the server does.
                let overlap = (ECG_OVERLAP_S * recording.sample_rate_hz()).ceil() as usize;
                split_into_tasks(recording, ECG_ROWS_PER_TASK, overlap, trend_bucket_s)
            }
        }
    };
    let algorithm = algorithm
        .or(template.default_algorithm())
        .ok_or("template without algorithm")?;
    let task_frames = payloads
        .iter()
        .enumerate()
        .map(|(seq, data)| {
            let packet = TaskPacket {
                task_id: format!("{name}-{seq:03}"),
                lease: 1,
                template_id: template.id.clone(),
                template_version: template.version,
                algorithm: algorithm.to_owned(),
                data: CheckedPayload::seal(serde_json::to_string(data)?),
            };
            serde_json::to_string(&ServerMessage::Task(packet))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let template_frame = serde_json::to_string(&ServerMessage::Template(SignedPayload::seal(
        serde_json::to_string(template)?,
    )))?;
    Ok(Workload {
        name: name.to_owned(),
        samples: recording.time_s.len(),
        signals: recording.signals.len(),
        template_frame,
        task_frames,
    })
}

/// The template frame, then every task frame, then run to idle: what a volunteer's worker does
/// with a job's tasks. Returns (ms in `receive`, ms in `run_until_idle`, result frames).
fn run_once(workload: &Workload) -> Result<(f64, f64, Vec<String>), Error> {
    let start = Instant::now();
    let mut pipeline = Pipeline::new();
    let mut replies = pipeline.receive(&workload.template_frame);
    for frame in &workload.task_frames {
        replies.extend(pipeline.receive(frame));
    }
    let received = start.elapsed();
    let outgoing = pipeline.run_until_idle();
    let total = start.elapsed();
    if let Some(refusal) = replies
        .iter()
        .find(|r| !matches!(r, WorkerMessage::Ack { .. }))
    {
        return Err(format!("{}: refused: {refusal:?}", workload.name).into());
    }
    let frames = outgoing
        .iter()
        .map(|message| match message {
            WorkerMessage::Result(_) => Ok(sender::encode(message)?),
            other => Err(format!("{}: not a result: {other:?}", workload.name).into()),
        })
        .collect::<Result<Vec<String>, Error>>()?;
    if frames.len() != workload.task_frames.len() {
        return Err(format!(
            "{}: {} results for {} tasks",
            workload.name,
            frames.len(),
            workload.task_frames.len()
        )
        .into());
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    Ok((ms(received), ms(total - received), frames))
}

/// Where the time goes, stage by stage, with the crate's public pieces in the order
/// `receiver::accept_task` and the pipeline use them: frame JSON → payload CRC-32 → payload JSON
/// → validation (`DataProcessor::new`) → algorithms (process + finish) → result encode (JSON,
/// SHA-256, frame). Then each algorithm the template offers, run alone on the same rows, to show
/// which part of a report costs what. Each figure is the least of `repeats` tries: single stages
/// are short, and the least is the figure least disturbed by other processes.
fn stages(workload: &Workload, repeats: usize) -> Result<serde_json::Value, Error> {
    let mut best: Option<StageTimes> = None;
    for _ in 0..repeats.max(1) {
        let (sums, each) = stages_once(workload)?;
        best = Some(match best {
            None => (sums, each),
            Some((old_sums, old_each)) => (
                std::array::from_fn(|i| old_sums[i].min(sums[i])),
                old_each
                    .into_iter()
                    .zip(each)
                    .map(|((name, a), (_, b))| (name, a.min(b)))
                    .collect(),
            ),
        });
    }
    let (sums, each) = best.ok_or("no stages")?;
    Ok(serde_json::json!({
        "frame_json_ms": sums[0],
        "payload_checksum_ms": sums[1],
        "payload_json_ms": sums[2],
        "validate_ms": sums[3],
        "algorithms_ms": sums[4],
        "result_encode_ms": sums[5],
        "each_algorithm_alone_ms": each.into_iter().map(|(name, ms)| (name, serde_json::json!(ms))).collect::<serde_json::Map<_, _>>(),
    }))
}

/// (frame JSON, payload checksum, payload JSON, validation, algorithms, result encode) ms summed
/// over the workload's tasks, and each algorithm's ms alone.
type StageTimes = ([f64; 6], Vec<(String, f64)>);

fn stages_once(workload: &Workload) -> Result<StageTimes, Error> {
    let template: Template = match serde_json::from_str(&workload.template_frame)? {
        ServerMessage::Template(signed) => serde_json::from_str(&signed.payload)?,
        _ => return Err("not a template frame".into()),
    };
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    // frame JSON, payload checksum, payload JSON, validation, algorithms, result encode
    let mut sums = [0.0f64; 6];
    let mut each: Vec<(String, f64)> = template
        .algorithms
        .iter()
        .map(|name| (name.clone(), 0.0))
        .collect();
    for frame in &workload.task_frames {
        let t0 = Instant::now();
        let ServerMessage::Task(packet) = serde_json::from_str::<ServerMessage>(frame)? else {
            return Err("not a task frame".into());
        };
        let t1 = Instant::now();
        if !packet.data.is_intact() {
            return Err("corrupt payload".into());
        }
        let t2 = Instant::now();
        let data: TaskData = serde_json::from_str(&packet.data.payload)?;
        let t3 = Instant::now();
        let mut processor = DataProcessor::new(data, &template)?;
        let t4 = Instant::now();
        let pristine = processor.clone(); // untimed: the starting point of the runs below
        let t4_end_of_clone = Instant::now();
        let mut run =
            AlgorithmRun::start(&packet.algorithm, &processor).ok_or("unknown algorithm")?;
        processor.process(usize::MAX, &mut run);
        let result = run.finish(&processor);
        let t5 = Instant::now();
        let packet = sender::result_packet(&packet.task_id, packet.lease, &result)?;
        std::hint::black_box(sender::encode(&WorkerMessage::Result(packet))?);
        let t6 = Instant::now();
        let stage = [
            ms(t0, t1),
            ms(t1, t2),
            ms(t2, t3),
            ms(t3, t4),
            ms(t4_end_of_clone, t5),
            ms(t5, t6),
        ];
        for (sum, value) in sums.iter_mut().zip(stage) {
            *sum += value;
        }
        for (name, total) in &mut each {
            let mut processor = pristine.clone();
            let start = Instant::now();
            let mut run = AlgorithmRun::start(name, &processor).ok_or("unknown algorithm")?;
            processor.process(usize::MAX, &mut run);
            std::hint::black_box(run.finish(&processor));
            *total += ms(start, Instant::now());
        }
    }
    Ok((sums, each))
}

/// CPU time this thread has run, in ms, from Linux's scheduler statistics; `None` elsewhere. On a
/// shared machine wall time counts the time other processes held the CPU, this does not.
fn thread_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e6)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn write_frames(dir: &Path, workloads: &[Workload], results: &[Vec<String>]) -> Result<(), Error> {
    let mut manifest = Vec::new();
    for (workload, results) in workloads.iter().zip(results) {
        let sub = dir.join(&workload.name);
        std::fs::create_dir_all(&sub)?;
        std::fs::write(sub.join("template.json"), &workload.template_frame)?;
        let mut tasks = Vec::new();
        for (seq, (task, result)) in workload.task_frames.iter().zip(results).enumerate() {
            let (task_name, result_name) = (
                format!("task-{seq:03}.json"),
                format!("result-{seq:03}.json"),
            );
            std::fs::write(sub.join(&task_name), task)?;
            std::fs::write(sub.join(&result_name), result)?;
            tasks.push(serde_json::json!({"task": task_name, "result": result_name}));
        }
        manifest.push(serde_json::json!({
            "name": workload.name,
            "samples": workload.samples,
            "signals": workload.signals,
            "template": "template.json",
            "tasks": tasks,
        }));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(())
}

fn main() -> Result<(), Error> {
    let options = options()?;
    let templates = builtin_templates();
    let find = |kind| {
        templates
            .iter()
            .find(|t| t.kind == kind)
            .ok_or("no builtin template")
    };
    let ecg_text = std::fs::read_to_string(&options.ecg_csv).map_err(|error| {
        format!(
            "cannot read the ECG recording {}: {error}",
            options.ecg_csv.display()
        )
    })?;
    let ecg = parse_csv(&ecg_text, find(RecordingKind::Ecg)?)?;
    let vitals_csv = generate_vitals(&VitalsConfig {
        seed: VITALS_SEED,
        duration_s: 86_400,
        ..VitalsConfig::default()
    })
    .csv;
    let vitals = parse_csv(&vitals_csv, find(RecordingKind::Vitals)?)?;
    let workloads = [
        workload("ecg-whole", &ecg, true, None)?,
        workload("ecg-segments", &ecg, false, None)?,
        // What neurokit2's peaks-only path computes (R peaks, then time-domain HRV): the
        // like-for-like comparison.
        workload("ecg-hrv-whole", &ecg, true, Some(HRV_TIME))?,
        workload("vitals-whole", &vitals, true, None)?,
        workload("vitals-segments", &vitals, false, None)?,
    ];

    let mut figures = serde_json::Map::new();
    let mut all_results = Vec::new();
    for workload in &workloads {
        let (_, _, results) = run_once(workload)?; // warm-up; its frames are the reference
        let (mut receive, mut run, mut total, mut cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..options.runs {
            let cpu_before = thread_cpu_ms();
            let (r, a, frames) = run_once(workload)?;
            if let (Some(before), Some(after)) = (cpu_before, thread_cpu_ms()) {
                cpu.push(after - before);
            }
            if frames != results {
                return Err(format!("{}: results differ between runs", workload.name).into());
            }
            receive.push(r);
            run.push(a);
            total.push(r + a);
        }
        let total_ms = median(&mut total);
        let cpu_ms = (!cpu.is_empty()).then(|| median(&mut cpu));
        let bytes: usize = workload.task_frames.iter().map(String::len).sum();
        eprintln!(
            "native {:<16} {:>2} task(s) {:>7} samples  {:>8.1} ms (cpu {:>6.1} ms)  {:>6.2} M samples/s  (receive {:.1} ms, run {:.1} ms)",
            workload.name,
            workload.task_frames.len(),
            workload.samples,
            total_ms,
            cpu_ms.unwrap_or(f64::NAN),
            workload.samples as f64 / total_ms / 1e3,
            median(&mut receive),
            median(&mut run)
        );
        figures.insert(
            workload.name.clone(),
            serde_json::json!({
                "tasks": workload.task_frames.len(),
                "samples": workload.samples,
                "signals": workload.signals,
                "frame_bytes": bytes,
                "runs": options.runs,
                "median_ms": total_ms,
                "min_ms": total.first().copied().unwrap_or(f64::NAN),
                "receive_median_ms": median(&mut receive),
                "run_median_ms": median(&mut run),
                "samples_per_s": workload.samples as f64 / total_ms * 1e3,
                "cpu_median_ms": cpu_ms,
                "cpu_samples_per_s": cpu_ms.map(|ms| workload.samples as f64 / ms * 1e3),
                "stages": stages(workload, 3)?,
            }),
        );
        all_results.push(results);
    }
    if let Some(dir) = &options.frames_dir {
        write_frames(dir, &workloads, &all_results)?;
        eprintln!("frames written to {}", dir.display());
    }
    println!(
        "{}",
        serde_json::json!({"bench": "pipeline", "target": "native", "workloads": figures})
    );
    Ok(())
}
