// Results and templates as the server sends them, shaped exactly like serde's output of
// worker-wasm/src/analysis.rs and template.rs (optional sections and fields omitted when absent).

const bucketTimes = (count, step) => Array.from({ length: count }, (_, i) => i * step);

/** A bucketed trend around `base` with a little structure, 60 s buckets over 2 h. */
function trend(base, swing) {
  const time_s = bucketTimes(120, 60);
  const mean = time_s.map((t, i) => Number((base + swing * Math.sin(i / 9)).toFixed(2)));
  return { time_s, min: mean.map((m) => m - swing / 2), mean, max: mean.map((m) => m + swing / 2) };
}

/** NEWS2 worst score per 60 s bucket: unscored at the start, a peak of 8 at 12 min, a red score, a hole. */
function news2Series() {
  const time_s = [];
  const score = [];
  const band = [];
  for (let i = 0; i < 120; i += 1) {
    if (i >= 50 && i < 54) continue; // no data at all: no bucket
    time_s.push(i * 60);
    let s = i < 4 ? null : i >= 10 && i < 15 ? (i === 12 ? 8 : 6) : i >= 30 && i < 40 ? 3 : 1;
    score.push(s);
    band.push(s === null ? null : s >= 7 ? 'high' : s >= 5 ? 'medium' : i >= 30 && i < 40 ? 'low_medium' : 'low');
  }
  return { time_s, score, band };
}

export const vitalsReport = {
  job_id: 21, file_id: 6, patient_ref: 'PT-003', file_name: 'ward.csv', kind: 'vitals',
  analysis: {
    algorithm: 'vitals-report', segments: 4, rows: 7203, duplicates_removed: 3, out_of_order: 2, duration_s: 7200,
    signals: [
      {
        name: 'hr', unit: 'bpm', n: 7100, mean: 72.3456, sd: 8.5, min: 51, max: 129, out_of_range: 12, missing: 88, trend: trend(72, 6),
        percentiles: { p5: 61, median: 72, p95: 92 },
        time_in_range: { normal_low: 51, normal_high: 90, below_s: 360, in_s: 5940, above_s: 900 },
      },
      {
        name: 'spo2', unit: '%', n: 7200, mean: 96.8, sd: 1.6, min: 88, max: 100, out_of_range: 0, missing: 0, trend: trend(97, 1.5),
        percentiles: { p5: 93, median: 97, p95: 99 },
        time_in_range: { normal_low: 96, normal_high: 100, below_s: 1800, in_s: 5400, above_s: 0 },
      },
      {
        name: 'map', unit: 'mmHg', n: 7200, mean: 84.2, sd: 7.1, min: 61, max: 104, out_of_range: 0, missing: 0, trend: trend(84, 5), derived: 30,
        percentiles: { p5: 72, median: 84, p95: 96 },
        time_in_range: { normal_low: 65, normal_high: 110, below_s: 30, in_s: 7170, above_s: 0 },
      },
    ],
    quality: {
      rows: 7203, duplicates_removed: 3, out_of_order: 2, derived_map: 30,
      violations: [{
        signal: 'hr', rule: 'out_of_range', description: 'hr out of range [20, 300]', rows: 12,
        examples: [{ time_s: 65, value: 0 }, { time_s: 3725, value: 350 }, { time_s: 3726, value: null }],
      }],
      max_gap_s: 60,
      gaps: [{ start_s: 1800, length_s: 240 }],
      gap_count: 1,
      gap_total_s: 240,
    },
    alerts: {
      alerts: [
        { kind: 'tachycardia', signal: 'hr', condition: 'above', threshold: 120, start_s: 600, end_s: 780, duration_s: 180, worst_value: 129, worst_time_s: 700 },
        { kind: 'hypoxaemia', signal: 'spo2', condition: 'below', threshold: 90, start_s: 2400, end_s: 2460, duration_s: 60, worst_value: 88, worst_time_s: 2430 },
      ],
    },
    news2: {
      window_s: 300,
      min_parameters: 3,
      time_in_band: { unscored_s: 240, low_s: 5400, low_medium_s: 600, medium_s: 660, high_s: 300 },
      max_score: 8,
      max_score_time_s: 720,
      series: news2Series(),
    },
  },
};

/** 10 s of a synthetic single-lead ECG at 250 Hz with an R peak every 0.78 s from 0.3 s. */
function ecgStrip() {
  const beat_times_s = [];
  for (let t = 0.3; t < 10; t += 0.78) beat_times_s.push(Number(t.toFixed(3)));
  const time_s = [];
  const values = [];
  for (let i = 0; i < 2500; i += 1) {
    const t = i / 250;
    const peaks = beat_times_s.reduce((sum, b) => sum + 1.2 * Math.exp(-(((t - b) / 0.012) ** 2)) + 0.15 * Math.exp(-(((t - b - 0.25) / 0.05) ** 2)), 0);
    time_s.push(t);
    values.push(Number((peaks - 0.05).toFixed(4)));
  }
  return { time_s, values, beat_times_s, rejected_times_s: [] };
}

export const ecgResult = {
  job_id: 22, file_id: 7, patient_ref: 'PT-004', file_name: 'ecg.csv', kind: 'ecg',
  analysis: {
    algorithm: 'ecg-report', segments: 3, rows: 300000, duplicates_removed: 0, out_of_order: 0, duration_s: 299.999,
    signals: [{
      name: 'ecg', unit: 'mV', n: 300000, mean: 0.01, sd: 0.21, min: -0.8, max: 1.6, out_of_range: 0, missing: 0,
      trend: { time_s: [0, 60, 120, 180, 240], min: [-0.8, -0.7, -0.8, -0.6, -0.7], mean: [0.01, 0.01, 0.0, 0.02, 0.01], max: [1.5, 1.6, 1.5, 1.4, 1.5] },
      percentiles: { p5: -0.2, median: -0.01, p95: 0.4 },
      time_in_range: { normal_low: null, normal_high: null, below_s: 0, in_s: 299.999, above_s: 0 },
    }],
    quality: { rows: 300000, duplicates_removed: 0, out_of_order: 0, derived_map: 0, violations: [], max_gap_s: 0.5, gaps: [], gap_count: 0, gap_total_s: 0 },
    ecg: {
      fs_hz: 1000,
      beats: 386,
      rejected_beats: 2,
      rejected: [{ time_s: 12.5, reason: 'ectopic' }, { time_s: 100.5, reason: 'artifact' }],
      hrv: { nn_count: 383, mean_nn_ms: 778.2, mean_hr_bpm: 77.1, sdnn_ms: 45.6, rmssd_ms: 32.1, pnn50_pct: 10.5 },
      signal_quality: 0.97,
      strip: ecgStrip(),
    },
  },
};

const alertRules = [
  { kind: 'tachycardia', signal: 'hr', condition: 'above', threshold: 120, min_duration_s: 60 },
  { kind: 'hypoxaemia', signal: 'spo2', condition: 'below', threshold: 90, min_duration_s: 30 },
];
const vitalsSignals = (hrLow) => [
  { name: 'hr', aliases: ['heart_rate', 'pulse'], unit: 'bpm', min: 20, max: 300, normal_low: hrLow, normal_high: 90, resolution: 0.1 },
  { name: 'spo2', aliases: ['sao2'], unit: '%', min: 50, max: 100, normal_low: 96, resolution: 0.1 },
];

export const templates = [
  {
    id: 'bedside-vitals', version: 1, kind: 'vitals', signals: vitalsSignals(51),
    algorithms: ['vitals-report', 'vitals-summary', 'trend', 'alerts', 'news2', 'signal-summary'], max_gap_s: 60,
    params: { alerts: alertRules, alert_bridge_s: 10, news2: { window_s: 300, min_parameters: 3 }, ecg: { strip_s: 10, strip_max_points: 2500 } },
  },
  {
    id: 'bedside-vitals', version: 2, kind: 'vitals', signals: vitalsSignals(55),
    algorithms: ['vitals-report', 'vitals-summary', 'trend', 'alerts', 'news2', 'signal-summary'], max_gap_s: 60,
    params: { alerts: alertRules, alert_bridge_s: 10, news2: { window_s: 300, min_parameters: 3 }, ecg: { strip_s: 10, strip_max_points: 2500 } },
  },
  {
    id: 'ecg-single-lead', version: 1, kind: 'ecg',
    signals: [{ name: 'ecg', aliases: ['ecg_mv', 'lead_ii'], unit: 'mV', min: -20, max: 20, resolution: 0.001 }],
    algorithms: ['ecg-report', 'vitals-summary', 'trend', 'ecg-beats', 'hrv-time', 'signal-summary'], max_gap_s: 0.5,
    params: { alerts: [], alert_bridge_s: 10, news2: { window_s: 300, min_parameters: 3 }, ecg: { strip_s: 10, strip_max_points: 2500 } },
  },
];
