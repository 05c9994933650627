//! DataExtractor: turns an uploaded CSV into a recording the pipeline understands, and a recording
//! into tasks. Pure functions, no I/O, so every rule is unit-tested here.
//!
//! Accepted files have a header row, a time column (`timestamp`, ISO 8601, or `time_s`, seconds) and
//! at least one column some template knows. Unknown columns are reported and ignored; anything else
//! wrong is refused with the line and column at fault, before anything is stored.

mod csv;
mod segment;

pub use segment::{SegmentPlan, split_into_tasks, trend_bucket_for};

use chrono::{DateTime, NaiveDateTime};
use vitalgrid_worker::protocol::SignalColumn;
use vitalgrid_worker::template::Template;

/// Why an upload was refused. The message is shown to the clinician as is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExtractError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not text (UTF-8 CSV expected): {0}")]
    NotText(String),
    #[error("the file is not CSV: {0}")]
    NotCsv(String),
    #[error(
        "no time column: the header must contain `timestamp` (ISO 8601) or `time_s` (seconds); found {found}"
    )]
    NoTimeColumn { found: String },
    #[error("no known signal column; found {found}; expected any of {expected}")]
    NoSignalColumn { found: String, expected: String },
    #[error("line {line}: {message}")]
    BadRow { line: usize, message: String },
    #[error("the file has a header but no data rows")]
    NoRows,
}

/// Which column holds time and how to read it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeFormat {
    Iso8601,
    Seconds,
}

/// A parsed upload: times relative to the first row and the recognised signals, column-wise.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub template_id: String,
    pub template_version: u32,
    pub time_s: Vec<f64>,
    pub signals: Vec<SignalColumn>,
    /// Headers no template knows, reported to the clinician and not analysed.
    pub ignored_columns: Vec<String>,
    /// Rows that the file listed after a later time, put in order here: their positions in
    /// `time_s`, ascending. Cutting a recording into tasks is only sound on sorted rows, and the
    /// count still reaches the analysis's data-quality section (see `split_into_tasks`).
    pub reordered_rows: Vec<usize>,
}

impl Recording {
    pub fn rows(&self) -> usize {
        self.time_s.len()
    }

    pub fn duration_s(&self) -> f64 {
        match (self.time_s.first(), self.time_s.last()) {
            (Some(first), Some(last)) => (last - first).max(0.0),
            _ => 0.0,
        }
    }

    /// Mean sampling rate from the time column (rows per second).
    pub fn sample_rate_hz(&self) -> f64 {
        let duration = self.duration_s();
        if duration > 0.0 {
            (self.rows() - 1) as f64 / duration
        } else {
            0.0
        }
    }

    pub fn signal_names(&self) -> Vec<String> {
        self.signals
            .iter()
            .map(|signal| signal.name.clone())
            .collect()
    }
}

/// Parses `bytes` as a CSV recording, choosing among `templates` the one that recognises most
/// columns (ties go to the first template listed).
pub fn extract(bytes: &[u8], templates: &[Template]) -> Result<Recording, ExtractError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ExtractError::Empty);
    }
    let text = std::str::from_utf8(bytes).map_err(|error| {
        ExtractError::NotText(format!("invalid UTF-8 at byte {}", error.valid_up_to()))
    })?;
    if text.contains('\0') {
        return Err(ExtractError::NotText("it contains NUL bytes".to_owned()));
    }
    let mut lines = csv::records(text);
    let (_, header) = lines.next().ok_or(ExtractError::Empty)?;
    let header = header.map_err(ExtractError::NotCsv)?;
    let found = quoted_list(&header);

    let (time_index, time_format) = header
        .iter()
        .enumerate()
        .find_map(
            |(index, name)| match name.trim().to_ascii_lowercase().as_str() {
                "timestamp" => Some((index, TimeFormat::Iso8601)),
                "time_s" => Some((index, TimeFormat::Seconds)),
                _ => None,
            },
        )
        .ok_or_else(|| ExtractError::NoTimeColumn {
            found: found.clone(),
        })?;

    let (template, columns) = best_template(&header, time_index, templates).ok_or_else(|| {
        ExtractError::NoSignalColumn {
            found: found.clone(),
            expected: expected_columns(templates),
        }
    })?;
    let ignored_columns = header
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != time_index && !columns.iter().any(|(i, _)| i == index))
        .map(|(_, name)| name.trim().to_owned())
        .collect();

    let mut time_s = Vec::new();
    let mut values: Vec<Vec<Option<f64>>> = vec![Vec::new(); columns.len()];
    for (line, record) in lines {
        let record = record.map_err(|message| ExtractError::BadRow { line, message })?;
        if record.len() == 1 && record[0].trim().is_empty() {
            continue; // blank line
        }
        if record.len() != header.len() {
            return Err(ExtractError::BadRow {
                line,
                message: format!(
                    "{} fields, but the header has {}",
                    record.len(),
                    header.len()
                ),
            });
        }
        let raw_time = record[time_index].trim();
        let absolute = parse_time(raw_time, time_format).ok_or_else(|| ExtractError::BadRow {
            line,
            message: match time_format {
                TimeFormat::Iso8601 => {
                    format!("timestamp `{raw_time}` is not an ISO 8601 date-time")
                }
                TimeFormat::Seconds => format!("time_s `{raw_time}` is not a number of seconds"),
            },
        })?;
        time_s.push(absolute);
        for (slot, (column, rule_name)) in values.iter_mut().zip(&columns) {
            let cell = record[*column].trim();
            let value = parse_value(cell).map_err(|()| ExtractError::BadRow {
                line,
                message: format!("{rule_name} value `{cell}` is not a number"),
            })?;
            slot.push(value);
        }
    }
    if time_s.is_empty() {
        return Err(ExtractError::NoRows);
    }
    let reordered_rows = put_in_time_order(&mut time_s, &mut values);
    // Seconds from the first sample: no wall-clock date leaves the server with a task.
    let origin = time_s[0];
    for time in &mut time_s {
        *time -= origin;
    }
    Ok(Recording {
        template_id: template.id.clone(),
        template_version: template.version,
        time_s,
        signals: columns
            .into_iter()
            .zip(values)
            .map(|((_, name), values)| SignalColumn { name, values })
            .collect(),
        ignored_columns,
        reordered_rows,
    })
}

/// Sorts rows by time (stably, so rows with equal times keep their file order and "keep the
/// first duplicate" means what it says) and returns the new positions of the rows that came
/// after a later time in the file — the worker's definition of an out-of-order row.
fn put_in_time_order(time_s: &mut Vec<f64>, columns: &mut [Vec<Option<f64>>]) -> Vec<usize> {
    let mut latest = f64::NEG_INFINITY;
    let late: Vec<bool> = time_s
        .iter()
        .map(|&t| {
            let is_late = t < latest;
            latest = latest.max(t);
            is_late
        })
        .collect();
    if !late.contains(&true) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..time_s.len()).collect();
    order.sort_by(|&a, &b| time_s[a].total_cmp(&time_s[b]));
    *time_s = order.iter().map(|&row| time_s[row]).collect();
    for column in columns.iter_mut() {
        *column = order.iter().map(|&row| column[row]).collect();
    }
    order
        .iter()
        .enumerate()
        .filter(|&(_, &row)| late[row])
        .map(|(position, _)| position)
        .collect()
}

/// The template matching most header columns, with (column index, canonical name) pairs in
/// template order. A signal named twice in the header is taken from its first column.
fn best_template<'t>(
    header: &[String],
    time_index: usize,
    templates: &'t [Template],
) -> Option<(&'t Template, Vec<(usize, String)>)> {
    let mut best: Option<(&Template, Vec<(usize, String)>)> = None;
    for template in templates {
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
        if !columns.is_empty() && best.as_ref().is_none_or(|(_, b)| columns.len() > b.len()) {
            best = Some((template, columns));
        }
    }
    best
}

fn parse_time(raw: &str, format: TimeFormat) -> Option<f64> {
    match format {
        TimeFormat::Seconds => raw.parse::<f64>().ok().filter(|t| t.is_finite()),
        TimeFormat::Iso8601 => {
            let millis = DateTime::parse_from_rfc3339(raw)
                .map(|t| t.timestamp_millis())
                .or_else(|_| {
                    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                        .iter()
                        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
                        .map(|t| t.and_utc().timestamp_millis())
                        .ok_or(())
                })
                .ok()?;
            Some(millis as f64 / 1000.0)
        }
    }
}

/// Empty cells and the usual monitor placeholders are missing values, not errors.
fn parse_value(cell: &str) -> Result<Option<f64>, ()> {
    if cell.is_empty() || ["na", "nan", "--", "null"].contains(&cell.to_ascii_lowercase().as_str())
    {
        return Ok(None);
    }
    cell.parse::<f64>()
        .map(|v| Some(v).filter(|v| v.is_finite()))
        .map_err(|_| ())
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{}`", name.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn expected_columns(templates: &[Template]) -> String {
    let names: Vec<String> = templates
        .iter()
        .flat_map(|t| t.signals.iter().map(|s| s.name.clone()))
        .collect();
    quoted_list(&names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgrid_worker::template::builtin_templates;

    fn extract_str(text: &str) -> Result<Recording, ExtractError> {
        extract(text.as_bytes(), &builtin_templates())
    }

    #[test]
    fn vitals_with_iso_timestamps_become_relative_seconds() {
        let recording = extract_str(
            "timestamp,hr,spo2\n2026-01-05T08:00:00Z,72,98\n2026-01-05T08:00:01Z,73,\n2026-01-05T08:00:02.5Z,74,97\n",
        )
        .expect("valid file");
        assert_eq!(recording.template_id, "bedside-vitals");
        assert_eq!(recording.time_s, vec![0.0, 1.0, 2.5]);
        assert_eq!(recording.signal_names(), vec!["hr", "spo2"]);
        assert_eq!(
            recording.signals[1].values,
            vec![Some(98.0), None, Some(97.0)]
        );
    }

    #[test]
    fn out_of_order_rows_are_put_in_order_and_remembered() {
        let recording = extract_str("time_s,hr\n10,70\n12,72\n11,71\n13,73\n12,99\n9,69\n")
            .expect("valid file");
        assert_eq!(recording.time_s, vec![0.0, 1.0, 2.0, 3.0, 3.0, 4.0]);
        let hr: Vec<Option<f64>> = recording.signals[0].values.clone();
        // Equal times keep their file order: 72 (line 3) before 99 (line 6).
        assert_eq!(hr, [69.0, 70.0, 71.0, 72.0, 99.0, 73.0].map(Some).to_vec());
        // 11 came after 12, 12 after 13, 9 after everything.
        assert_eq!(recording.reordered_rows, vec![0, 2, 4]);
    }

    #[test]
    fn ecg_file_is_recognised_and_unknown_columns_are_reported() {
        let recording =
            extract_str("time_s,ecg_mV,ecg_adc\n0.000,0.1,100\n0.001,0.2,101\n0.002,0.3,102\n")
                .expect("valid file");
        assert_eq!(recording.template_id, "ecg-single-lead");
        assert_eq!(recording.signal_names(), vec!["ecg"]);
        assert_eq!(recording.ignored_columns, vec!["ecg_adc"]);
        assert!((recording.sample_rate_hz() - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn file_without_time_column_is_refused_naming_the_columns_found() {
        let error = extract_str("when,hr\n1,70\n").expect_err("must be refused");
        assert_eq!(
            error,
            ExtractError::NoTimeColumn {
                found: "`when`, `hr`".to_owned()
            }
        );
        assert!(error.to_string().contains("`timestamp`"));
    }

    #[test]
    fn file_without_known_signal_is_refused() {
        let error = extract_str("time_s,foo,bar\n0,1,2\n").expect_err("must be refused");
        assert!(
            matches!(error, ExtractError::NoSignalColumn { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("`hr`"));
    }

    #[test]
    fn binary_file_is_refused_as_not_text() {
        let error = extract(&[0x89, b'P', b'N', b'G', 0xff, 0x00], &builtin_templates())
            .expect_err("must be refused");
        assert!(matches!(error, ExtractError::NotText(_)), "{error}");
    }

    #[test]
    fn bad_number_is_refused_with_its_line() {
        let error = extract_str("time_s,hr\n0,70\n1,seventy\n").expect_err("must be refused");
        assert_eq!(
            error,
            ExtractError::BadRow {
                line: 3,
                message: "hr value `seventy` is not a number".to_owned()
            }
        );
    }

    #[test]
    fn bad_timestamp_and_ragged_row_are_refused_with_their_lines() {
        let error = extract_str("timestamp,hr\nyesterday,70\n").expect_err("refused");
        assert!(
            matches!(error, ExtractError::BadRow { line: 2, .. }),
            "{error}"
        );
        let error = extract_str("time_s,hr\n0,70\n1,71,5\n").expect_err("refused");
        assert!(
            matches!(error, ExtractError::BadRow { line: 3, .. }),
            "{error}"
        );
    }

    #[test]
    fn header_only_and_empty_files_are_refused() {
        assert_eq!(extract_str("time_s,hr\n"), Err(ExtractError::NoRows));
        assert_eq!(extract_str(""), Err(ExtractError::Empty));
    }

    #[test]
    fn placeholders_are_missing_values_and_quoted_headers_are_read() {
        let recording =
            extract_str("\"time_s\",\"hr\"\r\n0,NaN\r\n1,--\r\n2,71\r\n").expect("valid file");
        assert_eq!(recording.signals[0].values, vec![None, None, Some(71.0)]);
    }
}
