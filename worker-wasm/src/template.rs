//! Templates: what a kind of recording looks like and the rules its data must obey.
//!
//! The server uses a template to recognise the columns of an uploaded file; workers use the same
//! template (sent as a Template packet and cached by id and version) to validate the data they get.

use serde::{Deserialize, Serialize};

/// Which family of recording a template describes; decides the default analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingKind {
    /// Bedside vital signs at about 1 Hz.
    Vitals,
    /// A single-lead ECG waveform at hundreds of Hz.
    Ecg,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub id: String,
    pub version: u32,
    pub kind: RecordingKind,
    pub signals: Vec<SignalRule>,
    /// Algorithms a job on this template may run; the first is the default.
    pub algorithms: Vec<String>,
}

/// One expected column and the plausible range of its values. A value outside the range is
/// excluded from the analysis and counted (a sensor-off heart rate of 0 is not a heart rate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRule {
    /// Canonical name used in packets and results.
    pub name: String,
    /// Column headers that mean this signal (compared case-insensitively).
    pub aliases: Vec<String>,
    pub unit: String,
    pub min: f64,
    pub max: f64,
}

impl Template {
    pub fn default_algorithm(&self) -> Option<&str> {
        self.algorithms.first().map(String::as_str)
    }

    pub fn signal(&self, name: &str) -> Option<&SignalRule> {
        self.signals.iter().find(|rule| rule.name == name)
    }

    /// The rule whose name or alias matches a CSV header, ignoring case and surrounding spaces.
    pub fn match_column(&self, header: &str) -> Option<&SignalRule> {
        let header = header.trim();
        self.signals.iter().find(|rule| {
            rule.name.eq_ignore_ascii_case(header)
                || rule
                    .aliases
                    .iter()
                    .any(|alias| alias.eq_ignore_ascii_case(header))
        })
    }
}

/// Algorithm that computes per-signal summary statistics and a bucketed trend for charts.
pub const SIGNAL_SUMMARY: &str = "signal-summary";

/// The templates every deployment starts with.
pub fn builtin_templates() -> Vec<Template> {
    fn rule(name: &str, aliases: &[&str], unit: &str, min: f64, max: f64) -> SignalRule {
        SignalRule {
            name: name.to_owned(),
            aliases: aliases.iter().map(|alias| (*alias).to_owned()).collect(),
            unit: unit.to_owned(),
            min,
            max,
        }
    }
    vec![
        Template {
            id: "bedside-vitals".to_owned(),
            version: 1,
            kind: RecordingKind::Vitals,
            signals: vec![
                rule("hr", &["heart_rate", "pulse", "hr_bpm"], "bpm", 20.0, 300.0),
                rule("sbp", &["systolic", "sbp_mmhg"], "mmHg", 40.0, 300.0),
                rule("dbp", &["diastolic", "dbp_mmhg"], "mmHg", 15.0, 200.0),
                rule("map", &["mean_bp", "map_mmhg"], "mmHg", 25.0, 250.0),
                rule(
                    "rr",
                    &["resp", "resp_rate", "rr_bpm"],
                    "breaths/min",
                    2.0,
                    80.0,
                ),
                rule("spo2", &["sao2", "spo2_pct"], "%", 50.0, 100.0),
                rule("temp", &["temperature", "temp_c"], "°C", 30.0, 44.0),
            ],
            algorithms: vec![SIGNAL_SUMMARY.to_owned()],
        },
        Template {
            id: "ecg-single-lead".to_owned(),
            version: 1,
            kind: RecordingKind::Ecg,
            signals: vec![rule(
                "ecg",
                &["ecg_mv", "ecg_mV", "lead_ii", "mlii", "ecg_lead"],
                "mV",
                -20.0,
                20.0,
            )],
            algorithms: vec![SIGNAL_SUMMARY.to_owned()],
        },
    ]
}
