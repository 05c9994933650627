//! The vitals report end to end through the public API: segments processed as a worker does,
//! merged as the server does, compared with one pass and with the generator's known episodes.

use proptest::prelude::*;
use vitalgrid_synthetic::{EpisodeKind, VitalsConfig, generate_vitals};
use vitalgrid_worker::algorithm::{AlgorithmRun, SegmentResult, merge};
use vitalgrid_worker::analysis::{Analysis, RuleKind};
use vitalgrid_worker::processor::DataProcessor;
use vitalgrid_worker::protocol::{SignalColumn, TaskData};
use vitalgrid_worker::template::{ALERTS, Template, VITALS_REPORT, builtin_templates};

const BUCKET_S: f64 = 60.0;

fn vitals() -> Template {
    builtin_templates().remove(0)
}

/// A recording column-wise: times and named columns.
#[derive(Debug, Clone)]
struct Series {
    time_s: Vec<f64>,
    columns: Vec<(String, Vec<Option<f64>>)>,
}

impl Series {
    fn new(time_s: Vec<f64>) -> Self {
        Self {
            time_s,
            columns: Vec::new(),
        }
    }

    fn with(mut self, name: &str, values: Vec<Option<f64>>) -> Self {
        self.columns.push((name.to_owned(), values));
        self
    }

    fn task(&self, core: std::ops::Range<usize>) -> TaskData {
        TaskData {
            time_s: self.time_s[core.clone()].to_vec(),
            signals: self
                .columns
                .iter()
                .map(|(name, values)| SignalColumn {
                    name: name.clone(),
                    values: values[core.clone()].to_vec(),
                })
                .collect(),
            core_start: 0,
            core_end: core.len(),
            trend_bucket_s: BUCKET_S,
            reordered_rows: 0,
        }
    }

    /// Cut points as the server makes them: never between equal timestamps.
    fn cuts(&self, wanted: &[usize]) -> Vec<usize> {
        let rows = self.time_s.len();
        let mut cuts: Vec<usize> = wanted
            .iter()
            .map(|&cut| {
                let mut cut = cut.min(rows);
                while cut > 0 && cut < rows && self.time_s[cut] == self.time_s[cut - 1] {
                    cut += 1;
                }
                cut
            })
            .collect();
        cuts.extend([0, rows]);
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }
}

fn run_segment(template: &Template, algorithm: &str, task: TaskData) -> SegmentResult {
    let mut processor = DataProcessor::new(task, template).expect("valid task");
    let mut run = AlgorithmRun::start(algorithm, &processor).expect("known algorithm");
    processor.process(usize::MAX, &mut run);
    run.finish(&processor)
}

fn analyse(series: &Series, algorithm: &str, cuts: &[usize]) -> Analysis {
    let template = vitals();
    let cuts = series.cuts(cuts);
    let segments: Vec<SegmentResult> = cuts
        .windows(2)
        .map(|w| run_segment(&template, algorithm, series.task(w[0]..w[1])))
        .collect();
    merge(&template, &segments, BUCKET_S).expect("merges")
}

fn seconds(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

#[test]
fn a_one_second_artifact_raises_no_alert_but_a_sustained_breach_does() {
    let mut hr = vec![Some(80.0); 400];
    hr[50] = Some(250.0);
    for value in &mut hr[200..290] {
        *value = Some(140.0);
    }
    hr[250] = Some(170.0);
    let series = Series::new(seconds(400)).with("hr", hr);
    let alerts = analyse(&series, ALERTS, &[])
        .alerts
        .expect("alerts section");
    assert_eq!(alerts.alerts.len(), 1, "{alerts:?}");
    let alert = &alerts.alerts[0];
    assert_eq!(alert.kind, "tachycardia");
    assert_eq!(
        (alert.start_s, alert.end_s, alert.duration_s),
        (200.0, 289.0, 89.0)
    );
    assert_eq!((alert.worst_value, alert.worst_time_s), (170.0, 250.0));
}

#[test]
fn a_brief_interruption_inside_an_episode_does_not_split_it() {
    let mut spo2 = vec![Some(97.0); 300];
    for value in &mut spo2[100..200] {
        *value = Some(85.0);
    }
    for value in &mut spo2[140..146] {
        *value = Some(93.0);
    }
    spo2[160] = None;
    let series = Series::new(seconds(300)).with("spo2", spo2);
    let alerts = analyse(&series, ALERTS, &[])
        .alerts
        .expect("alerts section");
    let found: Vec<(f64, f64)> = alerts.alerts.iter().map(|a| (a.start_s, a.end_s)).collect();
    assert_eq!(found, vec![(100.0, 199.0)]);
}

#[test]
fn an_alert_spanning_a_cut_is_joined_in_the_merge() {
    let mut hr = vec![Some(70.0); 300];
    for value in &mut hr[100..140] {
        *value = Some(40.0);
    }
    let series = Series::new(seconds(300)).with("hr", hr);
    // 40 s of bradycardia split 20/20: neither half reaches 60 s, and the whole does not either.
    assert!(
        analyse(&series, ALERTS, &[120])
            .alerts
            .expect("section")
            .alerts
            .is_empty()
    );
    let mut hr = vec![Some(70.0); 300];
    for value in &mut hr[100..200] {
        *value = Some(40.0);
    }
    let series = Series::new(seconds(300)).with("hr", hr);
    for cuts in [vec![], vec![150], vec![101, 110, 150, 199]] {
        let alerts = analyse(&series, ALERTS, &cuts)
            .alerts
            .expect("section")
            .alerts;
        let found: Vec<(f64, f64)> = alerts.iter().map(|a| (a.start_s, a.end_s)).collect();
        assert_eq!(found, vec![(100.0, 199.0)], "cuts {cuts:?}");
    }
}

#[test]
fn data_quality_counts_each_rule_with_its_first_examples() {
    let hr = vec![
        Some(0.0),
        Some(80.0),
        Some(350.0),
        Some(81.0),
        Some(0.0),
        Some(0.0),
        Some(0.0),
        Some(0.0),
        Some(82.0),
    ];
    let series =
        Series::new(vec![10.0, 11.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]).with("hr", hr);
    let quality = analyse(&series, VITALS_REPORT, &[])
        .quality
        .expect("quality section");
    assert_eq!((quality.rows, quality.duplicates_removed), (9, 1));
    assert_eq!(quality.violations.len(), 1);
    let hr = &quality.violations[0];
    assert_eq!(
        (
            hr.signal.as_str(),
            hr.rule,
            hr.description.as_str(),
            hr.rows
        ),
        ("hr", RuleKind::OutOfRange, "hr out of range [20, 300]", 5)
    );
    // The 350 at 11.0 repeats a timestamp: the row is a duplicate, not a violation.
    let examples: Vec<(f64, Option<f64>)> =
        hr.examples.iter().map(|e| (e.time_s, e.value)).collect();
    assert_eq!(
        examples,
        vec![
            (10.0, Some(0.0)),
            (13.0, Some(0.0)),
            (14.0, Some(0.0)),
            (15.0, Some(0.0)),
            (16.0, Some(0.0)),
        ]
    );
}

#[test]
fn out_of_order_rows_are_put_in_order_and_counted() {
    let series = Series::new(vec![0.0, 2.0, 1.0, 3.0]).with("hr", vec![Some(70.0); 4]);
    let analysis = analyse(&series, VITALS_REPORT, &[]);
    assert_eq!(analysis.quality.expect("quality").out_of_order, 1);
    assert_eq!(analysis.signals[0].n, 4);
}

#[test]
fn gaps_are_listed_inside_segments_and_across_a_segment_boundary_once() {
    let time_s = vec![0.0, 1.0, 100.0, 101.0, 102.0, 300.0, 301.0];
    let series = Series::new(time_s).with("hr", vec![Some(70.0); 7]);
    for cuts in [vec![], vec![2], vec![5], vec![2, 5], vec![1, 2, 3, 4, 5, 6]] {
        let quality = analyse(&series, VITALS_REPORT, &cuts)
            .quality
            .expect("quality");
        let gaps: Vec<(f64, f64)> = quality
            .gaps
            .iter()
            .map(|g| (g.start_s, g.length_s))
            .collect();
        assert_eq!(gaps, vec![(1.0, 99.0), (102.0, 198.0)], "cuts {cuts:?}");
        assert_eq!((quality.gap_count, quality.gap_total_s), (2, 297.0));
    }
}

#[test]
fn map_is_derived_from_systolic_and_diastolic_pressure_when_absent_or_empty() {
    let sbp = vec![Some(120.0), Some(90.0), Some(120.0), None];
    let dbp = vec![Some(60.0), Some(45.0), Some(60.0), Some(70.0)];
    let without_map = Series::new(seconds(4))
        .with("sbp", sbp.clone())
        .with("dbp", dbp.clone());
    let analysis = analyse(&without_map, VITALS_REPORT, &[]);
    let map = analysis
        .signals
        .iter()
        .find(|s| s.name == "map")
        .expect("map is derived");
    assert_eq!(
        (map.n, map.derived, map.min, map.max),
        (3, 3, Some(60.0), Some(80.0))
    );
    assert_eq!(analysis.quality.expect("quality").derived_map, 3);

    let with_gaps_in_map = without_map.with("map", vec![Some(85.0), None, None, None]);
    let analysis = analyse(&with_gaps_in_map, VITALS_REPORT, &[]);
    let map = analysis
        .signals
        .iter()
        .find(|s| s.name == "map")
        .expect("map");
    // Row 0 is read (85), rows 1 and 2 derived (60, 80), row 3 has no SBP.
    assert_eq!((map.n, map.derived, map.missing), (3, 2, 1));
    assert_eq!((map.min, map.max), (Some(60.0), Some(85.0)));
}

#[test]
fn news2_counts_time_in_each_band() {
    // 600 s at rr 22 (2), spo2 97 (0), hr 95 (1) → aggregate 3, low; then spo2 91 (3) → 6, medium.
    let n = 600;
    let spo2: Vec<Option<f64>> = (0..n)
        .map(|i| Some(if i < 300 { 97.0 } else { 91.0 }))
        .collect();
    let series = Series::new(seconds(n))
        .with("rr", vec![Some(22.0); n])
        .with("spo2", spo2)
        .with("hr", vec![Some(95.0); n]);
    let news2 = analyse(&series, VITALS_REPORT, &[250])
        .news2
        .expect("news2");
    // Each value holds 300 s after the last sample: the final 300 s stay scored as medium.
    assert_eq!(news2.time_in_band.low_s, 300.0);
    assert_eq!(news2.time_in_band.medium_s, 599.0);
    assert_eq!(news2.time_in_band.unscored_s, 0.0);
    assert_eq!(
        (news2.max_score, news2.max_score_time_s),
        (Some(6), Some(300.0))
    );
    assert_eq!(news2.series.score.first(), Some(&Some(3)));
}

#[test]
fn summary_reports_percentiles_and_time_in_range() {
    let hr: Vec<Option<f64>> = (0..100).map(|i| Some(41.0 + f64::from(i))).collect();
    let series = Series::new(seconds(100)).with("hr", hr);
    let hr = analyse(&series, VITALS_REPORT, &[33]).signals.remove(0);
    let p = hr.percentiles.expect("percentiles");
    assert_eq!((p.p5, p.median, p.p95), (45.0, 90.0, 135.0));
    let tir = hr.time_in_range.expect("time in range");
    // 41–50 below (10 s), 51–90 in (40 s), 91–140 above (50 s, the last sample counts 0).
    assert_eq!((tir.below_s, tir.in_s, tir.above_s), (10.0, 40.0, 49.0));
}

fn parse_csv(csv: &str) -> Series {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let mut time_s = Vec::new();
    let mut columns: Vec<Vec<Option<f64>>> = vec![Vec::new(); header.len() - 1];
    for line in lines {
        let mut cells = line.split(',');
        time_s.push(cells.next().and_then(|c| c.parse().ok()).expect("time"));
        for column in &mut columns {
            column.push(cells.next().and_then(|c| c.parse().ok()));
        }
    }
    let mut series = Series::new(time_s);
    for (name, values) in header[1..].iter().zip(columns) {
        series = series.with(name, values);
    }
    series
}

#[test]
fn every_generated_episode_is_found_within_ten_seconds_and_nothing_else_is() {
    for seed in 1..=4 {
        let recording = generate_vitals(&VitalsConfig {
            seed,
            duration_s: 24 * 3600,
            ..VitalsConfig::default()
        });
        let series = parse_csv(&recording.csv);
        let cuts: Vec<usize> = (1..24).map(|h| h * 3600).collect();
        let alerts = analyse(&series, VITALS_REPORT, &cuts)
            .alerts
            .expect("alerts")
            .alerts;
        let kind_name = |kind: EpisodeKind| match kind {
            EpisodeKind::Tachycardia => "tachycardia",
            EpisodeKind::Bradycardia => "bradycardia",
            EpisodeKind::Hypoxaemia => "hypoxaemia",
            EpisodeKind::Hypotension => "hypotension",
            EpisodeKind::Tachypnoea => "tachypnoea",
            EpisodeKind::Fever => "fever",
        };
        for episode in &recording.episodes {
            let found = alerts.iter().any(|a| {
                a.kind == kind_name(episode.kind)
                    && (a.start_s - episode.start_s).abs() <= 10.0
                    && (a.end_s - episode.end_s).abs() <= 10.0
            });
            assert!(found, "seed {seed}: {episode:?} not found in {alerts:?}");
        }
        for alert in &alerts {
            let explained = recording.episodes.iter().any(|e| {
                kind_name(e.kind) == alert.kind
                    && (alert.start_s - e.start_s).abs() <= 10.0
                    && (alert.end_s - e.end_s).abs() <= 10.0
            });
            assert!(
                explained,
                "seed {seed}: alert outside any episode: {alert:?}"
            );
        }
        assert_eq!(alerts.len(), recording.episodes.len(), "seed {seed}");
    }
}

/// Time step, then hr, spo2, rr and a pressure (SBP is twice it, DBP it, temp derived from it).
type Row = (f64, Option<f64>, Option<f64>, Option<f64>, Option<f64>);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12
}

/// A vitals row: values at 0.1 resolution around the alert thresholds, sometimes empty or absurd.
fn cell(low: u32, high: u32) -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        12 => (low..high).prop_map(|tenths| Some(f64::from(tenths) / 10.0)),
        1 => Just(None),
        1 => Just(Some(0.0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merging_segments_cut_anywhere_equals_one_pass(
        rows in prop::collection::vec(
            (
                prop_oneof![6 => Just(1.0), 1 => Just(0.0), 1 => Just(0.5), 1 => Just(90.0), 1 => Just(400.0)],
                cell(300, 1600),
                cell(800, 1000),
                cell(50, 400),
                cell(600, 1200),
            ),
            1..400,
        ),
        wanted_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut time = 0.0;
        let time_s: Vec<f64> = rows.iter().map(|r| { time += r.0; time }).collect();
        let column = |pick: fn(&Row) -> Option<f64>| {
            rows.iter().map(pick).collect::<Vec<_>>()
        };
        let series = Series::new(time_s.clone())
            .with("hr", column(|r| r.1))
            .with("spo2", column(|r| r.2))
            .with("rr", column(|r| r.3))
            .with("sbp", column(|r| r.4.map(|v| v * 2.0)))
            .with("dbp", column(|r| r.4))
            .with("temp", column(|r| r.4.map(|v| v / 2.0 - 5.0 + 0.3)));
        let whole = analyse(&series, VITALS_REPORT, &[]);
        let cuts: Vec<usize> = wanted_cuts.iter().map(|i| i.index(time_s.len())).collect();
        let merged = analyse(&series, VITALS_REPORT, &cuts);

        prop_assert_eq!(merged.rows, whole.rows);
        prop_assert_eq!(&merged.quality, &whole.quality);
        prop_assert_eq!(&merged.alerts, &whole.alerts);
        prop_assert_eq!(&merged.news2, &whole.news2);
        prop_assert_eq!(merged.signals.len(), whole.signals.len());
        for (m, w) in merged.signals.iter().zip(&whole.signals) {
            prop_assert_eq!((&m.name, m.n, m.min, m.max, m.out_of_range, m.missing, m.derived),
                (&w.name, w.n, w.min, w.max, w.out_of_range, w.missing, w.derived));
            prop_assert_eq!(m.percentiles, w.percentiles);
            prop_assert_eq!(m.time_in_range, w.time_in_range);
            prop_assert_eq!(&m.trend.min, &w.trend.min);
            prop_assert_eq!(&m.trend.max, &w.trend.max);
            if let (Some(a), Some(b)) = (m.mean, w.mean) { prop_assert!(close(a, b)); }
            if let (Some(a), Some(b)) = (m.sd, w.sd) { prop_assert!(close(a, b)); }
            for (a, b) in m.trend.mean.iter().zip(&w.trend.mean) { prop_assert!(close(*a, *b)); }
        }
    }
}
