//! Deciding a task's result from the answers of several untrusted workers. The pipeline is
//! deterministic, so honest workers return byte-identical results: comparing SHA-256 hashes is
//! comparing results. Pure logic, no I/O.

/// What the answers received so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `needed` distinct workers agree on `sha256`; the others disagreed with them.
    Agreed {
        sha256: String,
        agreeing: Vec<String>,
        dissenting: Vec<String>,
    },
    /// Not enough agreement yet: the task goes to a further worker.
    NeedMore,
    /// Too many answers without agreement; the task fails rather than loop.
    Undecidable,
}

/// `answers` are (worker key, result hash) in arrival order; a worker's repeated answers count once
/// (its first). `needed` distinct workers must agree; at most `max_answers` distinct workers are asked.
pub fn decide(answers: &[(String, String)], needed: usize, max_answers: usize) -> Verdict {
    let mut first_answers: Vec<(&str, &str)> = Vec::new();
    for (worker, sha) in answers {
        if !first_answers.iter().any(|(w, _)| w == worker) {
            first_answers.push((worker, sha));
        }
    }
    // Hashes in order of first appearance, so ties resolve the same way everywhere.
    let mut hashes: Vec<&str> = Vec::new();
    for (_, sha) in &first_answers {
        if !hashes.contains(sha) {
            hashes.push(sha);
        }
    }
    for sha in hashes {
        let agreeing: Vec<String> = first_answers
            .iter()
            .filter(|(_, s)| *s == sha)
            .map(|(w, _)| (*w).to_owned())
            .collect();
        if agreeing.len() >= needed.max(1) {
            let dissenting = first_answers
                .iter()
                .filter(|(_, s)| *s != sha)
                .map(|(w, _)| (*w).to_owned())
                .collect();
            return Verdict::Agreed {
                sha256: sha.to_owned(),
                agreeing,
                dissenting,
            };
        }
    }
    if first_answers.len() >= max_answers {
        Verdict::Undecidable
    } else {
        Verdict::NeedMore
    }
}

/// Agreed results a worker needs, with no disagreement, before its results may stand alone.
pub const TRUSTED_AFTER_AGREEMENTS: i64 = 20;
/// Share of a trusted worker's results that are still replicated, at random, as a spot check.
pub const SPOT_CHECK_RATE: f64 = 0.1;

/// A worker's credibility in 0..=1: zero once banned, growing with agreed results.
pub fn credibility(agreed: i64, disagreed: i64, banned: bool) -> f64 {
    if banned || disagreed > 0 {
        return 0.0;
    }
    agreed as f64 / (agreed as f64 + TRUSTED_AFTER_AGREEMENTS as f64 / 4.0)
}

/// How many distinct agreeing workers a task needs, decided when its first result arrives
/// (adaptive replication: a credible worker's result stands alone unless spot-checked).
pub fn replicas_needed(
    configured: u32,
    agreed: i64,
    disagreed: i64,
    banned: bool,
    spot_check_draw: f64,
) -> u32 {
    let trusted = !banned && disagreed == 0 && agreed >= TRUSTED_AFTER_AGREEMENTS;
    if configured <= 1 || (trusted && spot_check_draw >= SPOT_CHECK_RATE) {
        1
    } else {
        configured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(w, s)| ((*w).to_owned(), (*s).to_owned()))
            .collect()
    }

    #[test]
    fn two_matching_answers_from_distinct_workers_agree() {
        let verdict = decide(&answers(&[("a", "x"), ("b", "x")]), 2, 5);
        assert_eq!(
            verdict,
            Verdict::Agreed {
                sha256: "x".into(),
                agreeing: vec!["a".into(), "b".into()],
                dissenting: vec![]
            }
        );
    }

    #[test]
    fn the_same_worker_twice_is_not_two_replicas() {
        assert_eq!(
            decide(&answers(&[("a", "x"), ("a", "x")]), 2, 5),
            Verdict::NeedMore
        );
    }

    #[test]
    fn a_mismatch_needs_a_further_replica_and_the_majority_decides() {
        assert_eq!(
            decide(&answers(&[("a", "x"), ("forger", "y")]), 2, 5),
            Verdict::NeedMore
        );
        let verdict = decide(&answers(&[("a", "x"), ("forger", "y"), ("c", "x")]), 2, 5);
        assert_eq!(
            verdict,
            Verdict::Agreed {
                sha256: "x".into(),
                agreeing: vec!["a".into(), "c".into()],
                dissenting: vec!["forger".into()]
            }
        );
    }

    #[test]
    fn endless_disagreement_is_undecidable() {
        assert_eq!(
            decide(&answers(&[("a", "1"), ("b", "2"), ("c", "3")]), 2, 3),
            Verdict::Undecidable
        );
    }

    #[test]
    fn only_credible_workers_skip_replication_and_not_when_spot_checked() {
        assert_eq!(replicas_needed(2, 0, 0, false, 0.9), 2);
        assert_eq!(
            replicas_needed(2, TRUSTED_AFTER_AGREEMENTS, 0, false, 0.9),
            1
        );
        assert_eq!(
            replicas_needed(2, TRUSTED_AFTER_AGREEMENTS, 0, false, 0.05),
            2,
            "spot check"
        );
        assert_eq!(
            replicas_needed(2, 1_000, 1, false, 0.9),
            2,
            "one disagreement ends the trust"
        );
        assert_eq!(replicas_needed(1, 0, 0, false, 0.0), 1, "a trusted pool");
        assert_eq!(credibility(100, 0, true), 0.0);
        assert!(credibility(100, 0, false) > credibility(10, 0, false));
    }
}
