// Shapes of the REST API's JSON, as the server sends them. Analysis mirrors
// worker-wasm/src/analysis.rs (serde output); keep the two in step.

/** Ids are opaque to the browser: only ever put back into URLs. */
export type Id = number | string;

export type Role = 'admin' | 'clinician';

export interface User {
  id: Id;
  email: string;
  role: Role;
}

export interface Account extends User {
  created_at: string;
}

export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

/** Urgent tasks are handed out before normal ones, normal before batch. */
export type Priority = 'urgent' | 'normal' | 'batch';

export interface Job {
  id: Id;
  file_id: Id;
  algorithm: string;
  status: JobStatus;
  tasks_total: number;
  tasks_done: number;
  /** Unix milliseconds (older servers: RFC 3339). */
  created_at: number | string;
  finished_at: number | string | null;
  error: string | null;
  has_result: boolean;
  /** Absent from servers older than job priorities (then normal). */
  priority?: Priority;
  /** The template version the job runs with (absent from servers older than versioned templates). */
  template_id?: string;
  template_version?: number;
}

export type RecordingKind = 'vitals' | 'ecg';

export interface DataFile {
  id: Id;
  patient_ref: string;
  file_name: string;
  kind: RecordingKind;
  size_bytes: number;
  rows: number;
  signals: string[];
  ignored_columns: string[];
  duration_s: number;
  created_at: string;
  latest_job: Job | null;
}

export interface Trend {
  time_s: number[];
  min: number[];
  mean: number[];
  max: number[];
}

/** Nearest-rank percentiles of the values quantised to the signal's resolution. */
export interface Percentiles {
  p5: number;
  median: number;
  p95: number;
}

/** Seconds below, inside and above a signal's normal range (either end may be open). */
export interface TimeInRange {
  normal_low: number | null;
  normal_high: number | null;
  below_s: number;
  in_s: number;
  above_s: number;
}

export interface SignalSummary {
  name: string;
  unit: string;
  n: number;
  mean: number | null;
  sd: number | null;
  min: number | null;
  max: number | null;
  /** Cells outside the template's plausible range, excluded from the statistics. */
  out_of_range: number;
  missing: number;
  trend: Trend;
  /** Cells computed from other signals (MAP from SBP/DBP); omitted when 0. */
  derived?: number;
  percentiles?: Percentiles;
  time_in_range?: TimeInRange;
}

export type RuleKind = 'out_of_range' | 'missing_required';

export interface ViolationExample {
  time_s: number;
  /** null for an empty or non-finite cell. */
  value: number | null;
}

export interface RuleViolation {
  signal: string;
  rule: RuleKind;
  /** Human-readable rule, e.g. `hr out of range [20, 300]`. */
  description: string;
  /** Rows that broke the rule (their cell was excluded). */
  rows: number;
  /** The first few (at most 5) offending cells, in time order. */
  examples: ViolationExample[];
}

/** A stretch without rows: the rows on either side are at start_s and start_s + length_s. */
export interface Gap {
  start_s: number;
  length_s: number;
}

export interface QualityReport {
  /** Rows received, duplicates included. */
  rows: number;
  duplicates_removed: number;
  out_of_order: number;
  /** MAP cells computed from SBP and DBP. */
  derived_map: number;
  violations: RuleViolation[];
  /** null when the template sets no maximum gap (then no gaps are listed). */
  max_gap_s: number | null;
  /** In time order, at most 200. */
  gaps: Gap[];
  /** All gaps found, including those beyond the list's cap. */
  gap_count: number;
  gap_total_s: number;
}

export type Condition = 'above' | 'below';

export interface Alert {
  /** tachycardia, bradycardia, hypoxaemia, hypotension, tachypnoea, fever, hypothermia… */
  kind: string;
  signal: string;
  condition: Condition;
  threshold: number;
  /** Times of the first and last breaching sample. */
  start_s: number;
  end_s: number;
  duration_s: number;
  /** Highest value for an `above` rule, lowest for a `below` rule, and when it was seen. */
  worst_value: number;
  worst_time_s: number;
}

export interface AlertsReport {
  /** In start-time order. */
  alerts: Alert[];
}

/** NEWS2 risk bands; low_medium is an aggregate 0–4 with a single parameter scoring 3. */
export type News2Band = 'low' | 'low_medium' | 'medium' | 'high';

export interface News2BandTimes {
  unscored_s: number;
  low_s: number;
  low_medium_s: number;
  medium_s: number;
  high_s: number;
}

/** Column-wise: bucket start times and the worst score and its band in each bucket. */
export interface News2Series {
  time_s: number[];
  score: (number | null)[];
  band: (News2Band | null)[];
}

export interface News2Report {
  window_s: number;
  min_parameters: number;
  time_in_band: News2BandTimes;
  max_score: number | null;
  max_score_time_s: number | null;
  series: News2Series;
}

export type RejectedReason = 'ectopic' | 'artifact';

export interface RejectedBeatView {
  time_s: number;
  reason: RejectedReason;
}

export interface HrvTable {
  nn_count: number;
  mean_nn_ms: number;
  mean_hr_bpm: number;
  sdnn_ms: number;
  rmssd_ms: number;
  pnn50_pct: number;
}

/** The first seconds of the ECG with the beats inside them. */
export interface EcgStrip {
  time_s: number[];
  values: number[];
  beat_times_s: number[];
  rejected_times_s: number[];
}

export interface EcgReport {
  fs_hz: number;
  beats: number;
  /** Beats excluded from NN intervals (ectopic or artifact). */
  rejected_beats: number;
  /** The first (at most 200) rejected beats. */
  rejected: RejectedBeatView[];
  /** null when there are too few NN intervals. */
  hrv: HrvTable | null;
  /** 0 (unusable) to 1 (clean). */
  signal_quality: number;
  strip: EcgStrip;
}

export interface Analysis {
  algorithm: string;
  segments: number;
  rows: number;
  duplicates_removed: number;
  out_of_order: number;
  duration_s: number;
  signals: SignalSummary[];
  quality?: QualityReport;
  alerts?: AlertsReport;
  news2?: News2Report;
  ecg?: EcgReport;
}

export interface JobResult {
  job_id: Id;
  file_id: Id;
  patient_ref: string;
  file_name: string;
  kind: RecordingKind;
  analysis: Analysis;
}

/** A connected worker and its track record (GET /api/admin/workers). Times are Unix milliseconds. */
export interface WorkerInfo {
  id: string;
  /** The key the worker sent in hello (or one made for the connection). */
  worker_key: string;
  agent: string;
  slots: number;
  in_flight: number;
  /** Tasks leased to it but held by the server, sent as its slots free. */
  reserved: number;
  current_tasks: string[];
  tasks_done: number;
  connected_at: number;
  /** Rows per second over its recent results; null before the first. */
  rows_per_s: number | null;
  /** Milliseconds from sending a task to its ACK, smoothed; null before the first. */
  ack_latency_ms: number | null;
  /** Leases that went wrong on it (no ACK, a refused packet, a broken result). */
  failures: number;
  agreed: number;
  disagreed: number;
  banned: boolean;
  /** 0–1. */
  credibility: number;
}

/** Every worker key ever seen (GET /api/admin/worker-records), most recently seen first. */
export interface WorkerRecord {
  worker_key: string;
  agreed: number;
  disagreed: number;
  /** Results sent after the task had moved on (reassigned or answered twice); never applied. */
  late_results: number;
  banned: boolean;
  credibility: number;
  /** Unix milliseconds. */
  last_seen_at: number;
}

export type TaskStatus = 'queued' | 'leased' | 'done' | 'failed';

/** Tasks of one priority in one state (GET /api/admin/queues); absent combinations have none. */
export interface QueueCount {
  priority: Priority;
  status: TaskStatus;
  tasks: number;
}

/** submitted, leased, requeued, awaiting_replica, result_accepted, redo, failed, done. */
export type JobEventKind = string;

/** One step of a job's history (GET /api/admin/jobs/{id}/events), oldest first. */
export interface JobEvent {
  /** Unix milliseconds. */
  at: number;
  kind: JobEventKind;
  task_id: string | null;
  /** The worker's key or connection id. */
  worker: string | null;
  detail: string;
}

export interface AdminJob extends Job {
  owner_email: string;
  file_name: string;
}

export interface SignalRule {
  name: string;
  aliases: string[];
  unit: string;
  /** Plausible range: values outside it are excluded. */
  min: number;
  max: number;
  normal_low?: number;
  normal_high?: number;
  /** Omitted when false. */
  required?: boolean;
  resolution: number;
}

export interface AlertRule {
  kind: string;
  signal: string;
  condition: Condition;
  threshold: number;
  min_duration_s: number;
}

export interface AnalysisParams {
  alerts: AlertRule[];
  alert_bridge_s: number;
  news2: { window_s: number; min_parameters: number };
  ecg: { strip_s: number; strip_max_points: number };
}

/** worker-wasm/src/template.rs; every stored version is listed. */
export interface Template {
  id: string;
  version: number;
  kind: RecordingKind;
  signals: SignalRule[];
  /** The first is the default. */
  algorithms: string[];
  max_gap_s?: number;
  params: AnalysisParams;
}

export interface Health {
  status: string;
  database: string;
  workers: number;
  queued_tasks: number;
  leased_tasks?: number;
  payload_held_bytes?: number;
  payload_budget_bytes?: number;
}
