//! Throughput of the whole worker pipeline (frame decode → integrity check → validation →
//! algorithms → result encode) on a real ECG and a synthetic 24 h vitals log, natively, on the
//! very frames the server would send: the files are read by the server's extractor and cut by
//! `jobs::task_payloads` (which is why this bench lives in the server crate). It also
//! writes the exact frames it timed, so the browser bench (web/bench/pipeline.bench.mjs) times the
//! same bytes in WebAssembly. A benchmark, not a test: it prints figures and asserts no timings.
//!
//! Run through `cargo xtask bench pipeline`, or alone:
//!   cargo bench -p vitalgrid-server --bench pipeline -- [--frames-dir DIR] [--runs N] [--ecg CSV]
//! The last line of its output is one JSON object with every figure.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vitalgrid_server::config::SchedulerConfig;
use vitalgrid_server::extract::{
    Recording, SegmentPlan, extract, split_into_tasks, trend_bucket_for,
};
use vitalgrid_server::jobs::task_payloads;
use vitalgrid_synthetic::{VitalsConfig, generate_vitals};
use vitalgrid_worker::algorithm::AlgorithmRun;
use vitalgrid_worker::pipeline::Pipeline;
use vitalgrid_worker::processor::DataProcessor;
use vitalgrid_worker::protocol::{
    CheckedPayload, ServerMessage, SignedPayload, TaskData, TaskPacket, WorkerMessage,
    decode_server_frame, encode_task_frame,
};
use vitalgrid_worker::sender;
use vitalgrid_worker::template::{HRV_TIME, Template, builtin_templates};

type Error = Box<dyn std::error::Error>;

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

/// A file as the server reads an upload, with the built-in template it matched.
struct Upload {
    recording: Recording,
    template: Template,
}

fn upload(bytes: &[u8]) -> Result<Upload, Error> {
    let templates = builtin_templates();
    let recording = extract(bytes, &templates)?;
    let template = templates
        .into_iter()
        .find(|t| t.id == recording.template_id)
        .ok_or("the recording names no built-in template")?;
    Ok(Upload {
        recording,
        template,
    })
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
/// `whole`: the recording as one task; otherwise cut as a job with the default configuration
/// cuts it (`jobs::task_payloads`).
fn workload(
    name: &str,
    upload: &Upload,
    whole: bool,
    algorithm: Option<&str>,
) -> Result<Workload, Error> {
    let (recording, template) = (&upload.recording, &upload.template);
    let scheduler = SchedulerConfig::default();
    let payloads = if whole {
        let everything = SegmentPlan {
            max_rows: usize::MAX,
            overlap_rows: 0,
        };
        let trend_bucket_s = trend_bucket_for(recording.duration_s(), scheduler.trend_points);
        split_into_tasks(recording, everything, trend_bucket_s)
    } else {
        task_payloads(recording, template.kind, &scheduler, None)
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
            Ok(String::from_utf8(encode_task_frame(&packet))?)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let template_frame = serde_json::to_string(&ServerMessage::Template(SignedPayload::seal(
        serde_json::to_string(template)?,
    )))?;
    Ok(Workload {
        name: name.to_owned(),
        samples: recording.rows(),
        signals: recording.signals.len(),
        template_frame,
        task_frames,
    })
}

/// The template frame, then every task frame, then run to idle: what a volunteer's worker does
/// with a job's tasks. Returns (ms in `receive`, ms in `run_until_idle`, result frames).
fn run_once(workload: &Workload) -> Result<(f64, f64, Vec<Vec<u8>>), Error> {
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
        .collect::<Result<Vec<Vec<u8>>, Error>>()?;
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
/// `receiver::accept_task` and the pipeline use them: frame JSON → payload Adler-32 → payload JSON
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
        let ServerMessage::Task(packet) = decode_server_frame(frame)? else {
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

fn write_frames(dir: &Path, workloads: &[Workload], results: &[Vec<Vec<u8>>]) -> Result<(), Error> {
    let mut manifest = Vec::new();
    for (workload, results) in workloads.iter().zip(results) {
        let sub = dir.join(&workload.name);
        std::fs::create_dir_all(&sub)?;
        std::fs::write(sub.join("template.json"), &workload.template_frame)?;
        let mut tasks = Vec::new();
        for (seq, (task, result)) in workload.task_frames.iter().zip(results).enumerate() {
            let (task_name, result_name) = (
                format!("task-{seq:03}.frame"),
                format!("result-{seq:03}.frame"),
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
    let ecg_bytes = std::fs::read(&options.ecg_csv).map_err(|error| {
        format!(
            "cannot read the ECG recording {}: {error}",
            options.ecg_csv.display()
        )
    })?;
    let ecg = upload(&ecg_bytes)?;
    let vitals_csv = generate_vitals(&VitalsConfig {
        seed: VITALS_SEED,
        duration_s: 86_400,
        ..VitalsConfig::default()
    })
    .csv;
    let vitals = upload(vitals_csv.as_bytes())?;
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
