// How numbers, sizes and durations are shown to people.

/** A measured value: "—" when absent, otherwise four significant digits without trailing zeros. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 1000) return value.toFixed(0);
  return String(Number(value.toPrecision(4)));
}

/** A count with thousands separators: 12 345. */
export function formatCount(value: number): string {
  return value.toLocaleString('en-GB');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Offset from the start of a recording as h:mm:ss (or m:ss under an hour). */
export function formatClock(seconds: number): string {
  const total = Math.round(seconds);
  const sign = total < 0 ? '-' : '';
  const abs = Math.abs(total);
  const h = Math.floor(abs / 3600);
  const m = Math.floor((abs % 3600) / 60);
  const s = abs % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${sign}${h > 0 ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}`;
}

/** A length of time in words: "2 h 05 min", "5 min 00 s", "42.5 s". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${Number(seconds.toFixed(1))} s`;
  if (Math.round(seconds) < 3600) {
    const total = Math.round(seconds);
    return `${Math.floor(total / 60)} min ${String(total % 60).padStart(2, '0')} s`;
  }
  const minutes = Math.round(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A server timestamp (RFC 3339, or Unix milliseconds) in the viewer's local time, to the minute. */
export function formatTimestamp(when: string | number | null | undefined): string {
  if (when === null || when === undefined || when === '') return '—';
  const date = new Date(when);
  if (Number.isNaN(date.getTime())) return String(when);
  return date.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

/** Unix milliseconds as a local time of day to the second ("14:03:27"), for event logs. */
export function formatTimeOfDay(ms: number): string {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return '—';
  return date.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** A long opaque id cut to its first characters ("b-3f9a1c…"); ids that are short already stay whole. */
export function shortId(id: string | null | undefined, keep = 10): string {
  if (!id) return '—';
  return id.length > keep + 1 ? `${id.slice(0, keep)}…` : id;
}

/**
 * A task id, shortened to its last 8 digits: a job's task ids share their first 16 (the job's
 * random part) and then count its parts, so only the end tells two tasks apart at a glance.
 */
export function shortTaskId(id: string | null | undefined): string {
  if (!id) return '—';
  return id.length > 9 ? `…${id.slice(-8)}` : id;
}

/**
 * Offset from the start of a recording, always as h:mm:ss ("0:05:03"); `decimals` keeps fractions
 * of a second for waveform times ("0:00:12.35").
 */
export function formatOffset(seconds: number, decimals = 0): string {
  if (!Number.isFinite(seconds)) return '—';
  const scale = 10 ** decimals;
  const scaled = Math.round(Math.abs(seconds) * scale);
  const whole = Math.floor(scaled / scale);
  const fraction = decimals > 0 ? '.' + String(scaled % scale).padStart(decimals, '0') : '';
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  return `${seconds < 0 && scaled > 0 ? '-' : ''}${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}${fraction}`;
}

/** A length of time as h:mm, rounded to the minute ("1:05"); under a minute but not zero, "0:00" would hide it, so "<0:01". */
export function formatHoursMinutes(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  const minutes = Math.round(seconds / 60);
  if (minutes === 0 && seconds > 0) return '<0:01';
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, '0')}`;
}

/** A share as a percentage with one decimal ("12.5 %"); "—" when the whole is zero. */
export function formatPercent(part: number, whole: number): string {
  if (!(whole > 0) || !Number.isFinite(part)) return '—';
  return `${Number(((part / whole) * 100).toFixed(1))} %`;
}
