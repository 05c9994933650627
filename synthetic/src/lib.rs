//! Synthetic bedside vitals: a deterministic, dependency-free generator of ~1 Hz monitor logs with
//! clinical episodes, sensor artifacts, duplicated rows and gaps, for tests, benchmarks and demos.
//!
//! Outside episodes every signal stays inside a normal band (so a threshold breach always means an
//! episode or an artifact); inside an episode its signal sits past the clinical threshold for the
//! whole recorded interval, so tests can check episodes against the values.

use std::fmt::Write as _;

/// What to generate. The same config always gives the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct VitalsConfig {
    pub seed: u64,
    pub duration_s: u64,
    /// ISO 8601 UTC start (`2026-01-05T08:00:00Z`) for a `timestamp` column; `None` gives a
    /// `time_s` column with ±0.05 s jitter. A start that does not parse also gives `time_s`.
    pub start: Option<String>,
    /// Probability that a row is sent twice.
    pub duplicate_rate: f64,
    /// Probability that a row carries a sensor artifact (HR 0 or ≥ 300, SpO2 empty or 0).
    pub artifact_rate: f64,
    pub gaps: bool,
    pub episodes: bool,
}

impl Default for VitalsConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            duration_s: 3600,
            start: None,
            duplicate_rate: 0.005,
            artifact_rate: 0.003,
            gaps: true,
            episodes: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeKind {
    Tachycardia,
    Bradycardia,
    Hypoxaemia,
    Hypotension,
    Tachypnoea,
    Fever,
}

impl EpisodeKind {
    pub const ALL: [Self; 6] = [
        Self::Tachycardia,
        Self::Bradycardia,
        Self::Hypoxaemia,
        Self::Hypotension,
        Self::Tachypnoea,
        Self::Fever,
    ];

    /// The CSV column the episode shows in.
    pub fn signal(self) -> &'static str {
        match self {
            Self::Tachycardia | Self::Bradycardia => "hr",
            Self::Hypoxaemia => "spo2",
            Self::Hypotension => "map",
            Self::Tachypnoea => "rr",
            Self::Fever => "temp",
        }
    }

    /// True when `value` of [`Self::signal`] is past this episode's clinical threshold.
    pub fn breached_by(self, value: f64) -> bool {
        match self {
            Self::Tachycardia => value > 120.0,
            Self::Bradycardia => value < 45.0,
            Self::Hypoxaemia => value < 90.0,
            Self::Hypotension => value < 65.0,
            Self::Tachypnoea => value > 25.0,
            Self::Fever => value > 38.5,
        }
    }
}

/// An interval `[start_s, end_s)` of recording time during which the episode's threshold is breached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    pub kind: EpisodeKind,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub csv: String,
    pub episodes: Vec<Episode>,
    /// Intervals `[start, end)` of recording time without rows.
    pub gaps: Vec<(f64, f64)>,
    /// Data rows written (header excluded, duplicates included).
    pub rows: usize,
    pub duplicates: usize,
    pub artifacts: usize,
}

/// SplitMix64: tiny, fast and good enough for test data; no dependency needed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller); `1 - unit()` keeps the logarithm's argument in (0, 1].
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (1.0 - self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A mean-reverting random walk (discrete Ornstein–Uhlenbeck) kept inside a normal band.
struct Baseline {
    value: f64,
    target: f64,
    low: f64,
    high: f64,
    step_sd: f64,
}

impl Baseline {
    fn new(rng: &mut Rng, low: f64, high: f64, step_sd: f64) -> Self {
        let target = rng.range(low + (high - low) * 0.3, high - (high - low) * 0.3);
        Self {
            value: target,
            target,
            low,
            high,
            step_sd,
        }
    }

    fn advance(&mut self, rng: &mut Rng, drift: f64) -> f64 {
        self.value += 0.01 * (self.target + drift - self.value) + self.step_sd * rng.normal();
        self.value = self.value.clamp(self.low, self.high);
        self.value
    }
}

/// Generates one recording.
pub fn generate_vitals(config: &VitalsConfig) -> Recording {
    let mut rng = Rng(config.seed);
    let start_epoch = config.start.as_deref().and_then(parse_iso_utc);
    let (gaps, episodes) = plan_events(&mut rng, config);

    let mut hr = Baseline::new(&mut rng, 60.0, 100.0, 0.3);
    let mut sbp = Baseline::new(&mut rng, 105.0, 140.0, 0.4);
    let mut dbp = Baseline::new(&mut rng, 60.0, 85.0, 0.3);
    let mut rr = Baseline::new(&mut rng, 13.0, 20.0, 0.08);
    let mut spo2 = Baseline::new(&mut rng, 94.5, 99.0, 0.05);
    let mut temp = Baseline::new(&mut rng, 36.4, 37.5, 0.003);
    // Hour of day at t = 0 for the circadian terms; time_s logs are assumed to start at 08:00.
    let start_hour = start_epoch.map_or(8.0, |s| (s.rem_euclid(86_400)) as f64 / 3600.0);

    let mut csv = String::from(if start_epoch.is_some() {
        "timestamp"
    } else {
        "time_s"
    });
    csv.push_str(",hr,sbp,dbp,map,rr,spo2,temp\n");
    let (mut rows, mut duplicates, mut artifacts) = (0, 0, 0);
    for second in 0..config.duration_s {
        let t = second as f64;
        // Circadian phase: lowest in the early morning (~04:00), highest in the late afternoon.
        let phase = (std::f64::consts::TAU * ((start_hour + t / 3600.0 - 10.0) / 24.0)).sin();
        let values = [
            hr.advance(&mut rng, 4.0 * phase) + 1.5 * rng.normal(),
            sbp.advance(&mut rng, 5.0 * phase) + 3.0 * rng.normal(),
            dbp.advance(&mut rng, 3.0 * phase) + 2.0 * rng.normal(),
            rr.advance(&mut rng, 0.5 * phase) + 0.8 * rng.normal(),
            spo2.advance(&mut rng, 0.0) + 0.6 * rng.normal(),
            temp.advance(&mut rng, 0.25 * phase) + 0.02 * rng.normal(),
        ];
        if gaps.iter().any(|&(from, to)| t >= from && t < to) {
            continue;
        }
        let episode = episodes
            .iter()
            .find(|e| t >= e.start_s && t < e.end_s)
            .map(|e| e.kind);
        let mut vitals = Vitals::normal(values);
        if let Some(kind) = episode {
            vitals.apply(kind, &mut rng);
        }
        if rng.chance(config.artifact_rate) {
            artifacts += 1;
            match rng.next_u64() % 4 {
                0 => vitals.hr = 0.0,
                1 => vitals.hr = rng.range(300.0, 350.0).round(),
                2 => vitals.spo2 = None,
                _ => vitals.spo2 = Some(0.0),
            }
        }
        let time = match start_epoch {
            Some(epoch) => format_iso_utc(epoch + second as i64),
            // Jitter never reaches ±0.5 s, so times stay strictly increasing; the first row is 0.
            None if second == 0 => "0.000".to_owned(),
            None => format!("{:.3}", t + rng.range(-0.05, 0.05)),
        };
        let line = vitals.csv_line(&time);
        csv.push_str(&line);
        rows += 1;
        if rng.chance(config.duplicate_rate) {
            csv.push_str(&line);
            rows += 1;
            duplicates += 1;
        }
    }
    Recording {
        csv,
        episodes,
        gaps,
        rows,
        duplicates,
        artifacts,
    }
}

/// One row's values, already rounded as a monitor would log them.
struct Vitals {
    hr: f64,
    sbp: f64,
    dbp: f64,
    rr: f64,
    spo2: Option<f64>,
    temp: f64,
}

impl Vitals {
    /// Rounds and clamps to the normal bands, so no threshold is breached outside an episode.
    fn normal([hr, sbp, dbp, rr, spo2, temp]: [f64; 6]) -> Self {
        Self {
            hr: hr.round().clamp(52.0, 112.0),
            sbp: sbp.round().clamp(98.0, 150.0),
            dbp: dbp.round().clamp(55.0, 92.0),
            rr: rr.round().clamp(10.0, 22.0),
            spo2: Some(spo2.round().clamp(93.0, 100.0)),
            temp: (temp * 10.0).round().clamp(360.0, 378.0) / 10.0,
        }
    }

    /// Pushes the episode's signal past its threshold, with the physiological knock-on effects.
    fn apply(&mut self, kind: EpisodeKind, rng: &mut Rng) {
        match kind {
            EpisodeKind::Tachycardia => {
                self.hr = (135.0 + 5.0 * rng.normal()).round().clamp(122.0, 175.0)
            }
            EpisodeKind::Bradycardia => {
                self.hr = (40.0 + 1.5 * rng.normal()).round().clamp(32.0, 44.0)
            }
            EpisodeKind::Hypoxaemia => {
                self.spo2 = Some((85.0 + 1.5 * rng.normal()).round().clamp(78.0, 88.0));
                // Breathing and heart rate rise in response, staying within their normal bands.
                self.rr = (self.rr + 3.0).min(22.0);
                self.hr = (self.hr + 8.0).min(112.0);
            }
            EpisodeKind::Hypotension => {
                self.sbp = (82.0 + 3.0 * rng.normal()).round().clamp(72.0, 90.0);
                self.dbp = (45.0 + 2.0 * rng.normal()).round().clamp(38.0, 50.0);
                // Compensatory tachycardia, kept below the tachycardia threshold.
                self.hr = (self.hr + 10.0).min(112.0);
            }
            EpisodeKind::Tachypnoea => {
                self.rr = (30.0 + 1.5 * rng.normal()).round().clamp(27.0, 40.0)
            }
            EpisodeKind::Fever => {
                self.temp = ((39.0 + 0.15 * rng.normal()) * 10.0)
                    .round()
                    .clamp(387.0, 400.0)
                    / 10.0;
                self.hr = (self.hr + 8.0).min(112.0);
            }
        }
    }

    fn csv_line(&self, time: &str) -> String {
        // Monitors compute MAP from the displayed pressures: MAP ≈ (SBP + 2·DBP) / 3.
        let map = ((self.sbp + 2.0 * self.dbp) / 3.0).round();
        let spo2 = self.spo2.map(|v| format!("{v:.0}")).unwrap_or_default();
        let mut line = String::new();
        let _ = writeln!(
            line,
            "{time},{:.0},{:.0},{:.0},{map:.0},{:.0},{spo2},{:.1}",
            self.hr, self.sbp, self.dbp, self.rr, self.temp
        );
        line
    }
}

/// Places gaps and episodes in disjoint slots of the recording, one event per slot, so they never
/// overlap and every episode's values are visible.
fn plan_events(rng: &mut Rng, config: &VitalsConfig) -> (Vec<(f64, f64)>, Vec<Episode>) {
    let duration = config.duration_s;
    let episode_count = if config.episodes && duration >= 600 {
        (duration / 1500).max(1)
    } else {
        0
    };
    let gap_count = if config.gaps && duration >= 600 {
        (duration / 2400).max(1)
    } else {
        0
    };
    let events = episode_count + gap_count;
    let (mut gaps, mut episodes) = (Vec::new(), Vec::new());
    if events == 0 {
        return (gaps, episodes);
    }
    let slot = (duration / events) as f64;
    let mut is_gap: Vec<bool> = (0..events).map(|i| i < gap_count).collect();
    // Fisher–Yates, so gaps and episodes interleave differently per seed.
    for i in (1..is_gap.len()).rev() {
        is_gap.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    for (i, gap) in is_gap.into_iter().enumerate() {
        let kind = (!gap).then(|| EpisodeKind::ALL[(rng.next_u64() % 6) as usize]);
        // Whole seconds keep the row count exact: a row at second s is dropped when from <= s < to.
        // Fevers last at least 6 minutes, longer than the 5-minute minimum of a fever alert.
        let (low, high): (f64, f64) = match kind {
            None => (120.0, 300.0),
            Some(EpisodeKind::Fever) => (360.0, 600.0),
            Some(_) => (120.0, 600.0),
        };
        let length = rng.range(low, high.min(slot - 60.0)).round();
        let start = (i as f64 * slot + rng.range(30.0, (slot - length - 30.0).max(30.0))).round();
        if let Some(kind) = kind {
            episodes.push(Episode {
                kind,
                start_s: start,
                end_s: start + length,
            });
        } else {
            gaps.push((start, start + length));
        }
    }
    (gaps, episodes)
}

/// Seconds since 1970-01-01T00:00:00Z of `YYYY-MM-DDTHH:MM:SSZ`; `None` for anything else.
fn parse_iso_utc(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| text.get(from..to)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

fn format_iso_utc(epoch_s: i64) -> String {
    let (days, secs) = (epoch_s.div_euclid(86_400), epoch_s.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [&str; 8] = ["time_s", "hr", "sbp", "dbp", "map", "rr", "spo2", "temp"];

    /// Data rows as (time, column → value); empty cells are `None`.
    fn parse(csv: &str) -> Vec<(String, Vec<Option<f64>>)> {
        csv.lines()
            .skip(1)
            .map(|line| {
                let mut cells = line.split(',');
                let time = cells.next().unwrap_or_default().to_owned();
                (time, cells.map(|c| c.parse().ok()).collect())
            })
            .collect()
    }

    fn is_artifact(values: &[Option<f64>]) -> bool {
        let hr = values[0].unwrap_or(f64::NAN);
        hr == 0.0 || hr >= 300.0 || matches!(values[5], None | Some(0.0))
    }

    #[test]
    fn same_seed_gives_identical_recordings_and_other_seeds_differ() {
        let config = VitalsConfig::default();
        assert_eq!(generate_vitals(&config), generate_vitals(&config));
        let other = VitalsConfig {
            seed: 2,
            ..config.clone()
        };
        assert_ne!(generate_vitals(&config).csv, generate_vitals(&other).csv);
    }

    #[test]
    fn header_names_the_time_column_and_the_seven_vitals() {
        let recording = generate_vitals(&VitalsConfig::default());
        assert_eq!(
            recording.csv.lines().next(),
            Some(HEADER.join(",").as_str())
        );
        let timed = generate_vitals(&VitalsConfig {
            start: Some("2026-01-05T08:00:00Z".into()),
            ..VitalsConfig::default()
        });
        assert!(
            timed
                .csv
                .starts_with("timestamp,hr,sbp,dbp,map,rr,spo2,temp\n2026-01-05T08:00:00Z,")
        );
    }

    #[test]
    fn timestamps_cross_midnight_and_leap_days_correctly() {
        let start = parse_iso_utc("2028-02-28T23:59:59Z").expect("parses");
        assert_eq!(format_iso_utc(start + 1), "2028-02-29T00:00:00Z");
        assert_eq!(format_iso_utc(start + 86_401), "2028-03-01T00:00:00Z");
        assert_eq!(format_iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_iso_utc("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn rows_are_duration_minus_gaps_plus_duplicates() {
        for seed in 1..6 {
            let recording = generate_vitals(&VitalsConfig {
                seed,
                duration_s: 7200,
                ..VitalsConfig::default()
            });
            let gap_seconds: f64 = recording.gaps.iter().map(|(from, to)| to - from).sum();
            assert!(
                !recording.gaps.is_empty() && recording.duplicates > 0 && recording.artifacts > 0
            );
            assert_eq!(
                recording.rows as f64,
                7200.0 - gap_seconds + recording.duplicates as f64
            );
            assert_eq!(parse(&recording.csv).len(), recording.rows);
        }
    }

    #[test]
    fn episodes_are_where_the_values_say() {
        for seed in 1..20 {
            let recording = generate_vitals(&VitalsConfig {
                seed,
                duration_s: 7200,
                ..VitalsConfig::default()
            });
            assert!(!recording.episodes.is_empty());
            for (time, values) in parse(&recording.csv) {
                if is_artifact(&values) {
                    continue;
                }
                let t: f64 = time.parse().expect("time_s is a number");
                let episode = recording
                    .episodes
                    .iter()
                    .find(|e| t.round() >= e.start_s && t.round() < e.end_s);
                for kind in EpisodeKind::ALL {
                    let column = HEADER
                        .iter()
                        .position(|h| *h == kind.signal())
                        .expect("known column")
                        - 1;
                    let breached = values[column].is_some_and(|v| kind.breached_by(v));
                    let expected = episode.is_some_and(|e| e.kind == kind);
                    assert_eq!(
                        breached, expected,
                        "seed {seed}, t {t}, {kind:?}: {values:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn episodes_last_two_to_ten_minutes_and_gaps_a_few_minutes() {
        let recording = generate_vitals(&VitalsConfig {
            duration_s: 24 * 3600,
            ..VitalsConfig::default()
        });
        assert!(
            recording
                .episodes
                .iter()
                .all(|e| (120.0..=600.0).contains(&(e.end_s - e.start_s)))
        );
        assert!(
            recording
                .gaps
                .iter()
                .all(|(from, to)| (120.0..=300.0).contains(&(to - from)))
        );
    }

    #[test]
    fn map_follows_systolic_and_diastolic_pressure() {
        let recording = generate_vitals(&VitalsConfig::default());
        for (_, values) in parse(&recording.csv) {
            let (sbp, dbp, map) = (
                values[1].unwrap_or(0.0),
                values[2].unwrap_or(0.0),
                values[3].unwrap_or(0.0),
            );
            assert!((map - (sbp + 2.0 * dbp) / 3.0).abs() <= 0.5);
        }
    }

    #[test]
    fn short_clean_recording_has_one_row_per_second() {
        let recording = generate_vitals(&VitalsConfig {
            duration_s: 300,
            duplicate_rate: 0.0,
            artifact_rate: 0.0,
            ..VitalsConfig::default()
        });
        assert_eq!(
            (recording.rows, recording.duplicates, recording.artifacts),
            (300, 0, 0)
        );
        assert!(recording.episodes.is_empty() && recording.gaps.is_empty());
    }
}
