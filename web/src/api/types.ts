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

export interface Job {
  id: Id;
  file_id: Id;
  algorithm: string;
  status: JobStatus;
  tasks_total: number;
  tasks_done: number;
  created_at: string;
  finished_at: string | null;
  error: string | null;
  has_result: boolean;
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

export interface SignalSummary {
  name: string;
  unit: string;
  n: number;
  mean: number | null;
  sd: number | null;
  min: number | null;
  max: number | null;
  out_of_range: number;
  missing: number;
  trend: Trend;
}

export interface Analysis {
  algorithm: string;
  segments: number;
  rows: number;
  duplicates_removed: number;
  out_of_order: number;
  duration_s: number;
  signals: SignalSummary[];
}

export interface JobResult {
  job_id: Id;
  file_id: Id;
  patient_ref: string;
  file_name: string;
  kind: RecordingKind;
  analysis: Analysis;
}

export interface WorkerInfo {
  id: string;
  agent: string;
  slots: number;
  in_flight: number;
  tasks_done: number;
  connected_at: string;
}

export interface AdminJob extends Job {
  owner_email: string;
  file_name: string;
}

export interface Health {
  status: string;
  database: string;
  workers: number;
  queued_tasks: number;
}
