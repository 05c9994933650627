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
    /// Longer stretches without rows are listed as gaps, and a sample's time-in-range interval is
    /// capped at this length. `None`: no gaps are listed and intervals are not capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_gap_s: Option<f64>,
    /// Thresholds and windows of the clinical algorithms.
    #[serde(default)]
    pub params: AnalysisParams,
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
    /// Normal range, for time in / out of range (either end may be open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_high: Option<f64>,
    /// An empty cell in a required column is a rule violation (it is counted with examples).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Histogram bin width for exact percentiles; values are quantised to it (default 0.1).
    #[serde(default = "default_resolution")]
    pub resolution: f64,
}

fn default_resolution() -> f64 {
    0.1
}

/// Thresholds and windows of the clinical algorithms. Every field has a documented default, so a
/// template may leave `params` out or give only the parts it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisParams {
    /// Alert rules; see [`default_alert_rules`].
    pub alerts: Vec<AlertRule>,
    /// Breaching samples no further apart than this belong to one episode, so a few seconds of
    /// normal (or missing) values inside an episode do not split it. Default 10 s.
    pub alert_bridge_s: f64,
    pub news2: News2Params,
    pub ecg: EcgParams,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        Self {
            alerts: default_alert_rules(),
            alert_bridge_s: 10.0,
            news2: News2Params::default(),
            ecg: EcgParams::default(),
        }
    }
}

/// A sustained breach: `signal` strictly above/below `threshold` for at least `min_duration_s`
/// (time from the first to the last breaching sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub kind: String,
    pub signal: String,
    pub condition: Condition,
    pub threshold: f64,
    pub min_duration_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Above,
    Below,
}

impl AlertRule {
    pub fn is_breached_by(&self, value: f64) -> bool {
        match self.condition {
            Condition::Above => value > self.threshold,
            Condition::Below => value < self.threshold,
        }
    }

    /// True when `candidate` is worse than `current` (further past the threshold).
    pub fn is_worse(&self, candidate: f64, current: f64) -> bool {
        match self.condition {
            Condition::Above => candidate > current,
            Condition::Below => candidate < current,
        }
    }
}

/// Default alert rules. Thresholds follow common adult ward alarm limits; the minimum durations
/// make a one-second artifact raise nothing:
///
/// | kind         | signal | condition    | min duration |
/// |--------------|--------|--------------|--------------|
/// | tachycardia  | hr     | > 120 bpm    | 60 s         |
/// | bradycardia  | hr     | < 45 bpm     | 60 s         |
/// | hypoxaemia   | spo2   | < 90 %       | 30 s         |
/// | hypotension  | map    | < 65 mmHg    | 60 s         |
/// | tachypnoea   | rr     | > 25 /min    | 60 s         |
/// | fever        | temp   | > 38.5 °C    | 300 s        |
/// | hypothermia  | temp   | < 35.0 °C    | 300 s        |
pub fn default_alert_rules() -> Vec<AlertRule> {
    let rule = |kind: &str, signal: &str, condition, threshold, min_duration_s| AlertRule {
        kind: kind.to_owned(),
        signal: signal.to_owned(),
        condition,
        threshold,
        min_duration_s,
    };
    vec![
        rule("tachycardia", "hr", Condition::Above, 120.0, 60.0),
        rule("bradycardia", "hr", Condition::Below, 45.0, 60.0),
        rule("hypoxaemia", "spo2", Condition::Below, 90.0, 30.0),
        rule("hypotension", "map", Condition::Below, 65.0, 60.0),
        rule("tachypnoea", "rr", Condition::Above, 25.0, 60.0),
        rule("fever", "temp", Condition::Above, 38.5, 300.0),
        rule("hypothermia", "temp", Condition::Below, 35.0, 300.0),
    ]
}

/// NEWS2 settings (RCP 2017). Consciousness is assumed Alert and the patient on air.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct News2Params {
    /// A parameter's latest value stays current this long. Default 300 s.
    pub window_s: f64,
    /// A moment is scored when at least this many of the five parameters are current. Default 3.
    pub min_parameters: u32,
}

impl Default for News2Params {
    fn default() -> Self {
        Self {
            window_s: 300.0,
            min_parameters: 3,
        }
    }
}

/// ECG report settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EcgParams {
    /// Length of the chart strip from the start of the recording. Default 10 s.
    pub strip_s: f64,
    /// Most points in the strip. Default 2 500.
    pub strip_max_points: u32,
}

impl Default for EcgParams {
    fn default() -> Self {
        Self {
            strip_s: 10.0,
            strip_max_points: 2500,
        }
    }
}

impl Template {
    /// `max_gap_s` when it is a usable length (positive and finite); otherwise no interval is a gap.
    pub fn gap_limit_s(&self) -> Option<f64> {
        self.max_gap_s.filter(|g| g.is_finite() && *g > 0.0)
    }

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

/// Per-signal statistics and a bucketed trend (the original algorithm; = `vitals-summary` + `trend`).
pub const SIGNAL_SUMMARY: &str = "signal-summary";
/// Statistics, exact percentiles and time in normal range per signal.
pub const VITALS_SUMMARY: &str = "vitals-summary";
/// Per-bucket min/mean/max for charts.
pub const TREND: &str = "trend";
/// Sustained threshold breaches.
pub const ALERTS: &str = "alerts";
/// NEWS2 over time.
pub const NEWS2: &str = "news2";
/// Default for vitals: quality + summary + trend + alerts + NEWS2.
pub const VITALS_REPORT: &str = "vitals-report";
/// R-peak detection.
pub const ECG_BEATS: &str = "ecg-beats";
/// HRV time domain (needs beats).
pub const HRV_TIME: &str = "hrv-time";
/// Default for ECG: quality + summary + trend + beats + HRV.
pub const ECG_REPORT: &str = "ecg-report";

/// The templates every deployment starts with. Vitals normal ranges are NEWS2's zero-score bands
/// where NEWS2 scores the signal (HR 51–90, SBP 111–219, RR 12–20, SpO2 ≥ 96, temp 36.1–38.0) and
/// common adult ranges otherwise (DBP 50–90, MAP 65–110).
pub fn builtin_templates() -> Vec<Template> {
    fn rule(name: &str, aliases: &[&str], unit: &str, min: f64, max: f64) -> SignalRule {
        SignalRule {
            name: name.to_owned(),
            aliases: aliases.iter().map(|alias| (*alias).to_owned()).collect(),
            unit: unit.to_owned(),
            min,
            max,
            normal_low: None,
            normal_high: None,
            required: false,
            resolution: default_resolution(),
        }
    }
    fn normal(mut rule: SignalRule, low: f64, high: f64) -> SignalRule {
        rule.normal_low = Some(low);
        rule.normal_high = Some(high);
        rule
    }
    let names = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    vec![
        Template {
            id: "bedside-vitals".to_owned(),
            version: 1,
            kind: RecordingKind::Vitals,
            signals: vec![
                normal(
                    rule("hr", &["heart_rate", "pulse", "hr_bpm"], "bpm", 20.0, 300.0),
                    51.0,
                    90.0,
                ),
                normal(
                    rule("sbp", &["systolic", "sbp_mmhg"], "mmHg", 40.0, 300.0),
                    111.0,
                    219.0,
                ),
                normal(
                    rule("dbp", &["diastolic", "dbp_mmhg"], "mmHg", 15.0, 200.0),
                    50.0,
                    90.0,
                ),
                normal(
                    rule("map", &["mean_bp", "map_mmhg"], "mmHg", 25.0, 250.0),
                    65.0,
                    110.0,
                ),
                normal(
                    rule(
                        "rr",
                        &["resp", "resp_rate", "rr_bpm"],
                        "breaths/min",
                        2.0,
                        80.0,
                    ),
                    12.0,
                    20.0,
                ),
                normal(
                    rule("spo2", &["sao2", "spo2_pct"], "%", 50.0, 100.0),
                    96.0,
                    100.0,
                ),
                normal(
                    rule("temp", &["temperature", "temp_c"], "°C", 30.0, 44.0),
                    36.1,
                    38.0,
                ),
            ],
            algorithms: names(&[
                VITALS_REPORT,
                VITALS_SUMMARY,
                TREND,
                ALERTS,
                NEWS2,
                SIGNAL_SUMMARY,
            ]),
            max_gap_s: Some(60.0),
            params: AnalysisParams::default(),
        },
        Template {
            id: "ecg-single-lead".to_owned(),
            version: 1,
            kind: RecordingKind::Ecg,
            signals: vec![SignalRule {
                resolution: 0.001,
                ..rule(
                    "ecg",
                    &["ecg_mv", "ecg_mV", "lead_ii", "mlii", "ecg_lead"],
                    "mV",
                    -20.0,
                    20.0,
                )
            }],
            algorithms: names(&[
                ECG_REPORT,
                VITALS_SUMMARY,
                TREND,
                ECG_BEATS,
                HRV_TIME,
                SIGNAL_SUMMARY,
            ]),
            max_gap_s: Some(0.5),
            params: AnalysisParams {
                alerts: Vec::new(),
                ..AnalysisParams::default()
            },
        },
    ]
}
