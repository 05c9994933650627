//! Misbehaviours a worker can be told to show, for the server's fault suite. Every variant but
//! `None` exists only with the `faults` cargo feature, so a deployed worker cannot be configured to
//! misbehave: the option is absent from its build, not merely switched off.

use std::str::FromStr;
#[cfg(feature = "faults")]
use std::time::Duration;

use vitalgrid_worker::protocol::ResultPacket;
#[cfg(feature = "faults")]
use vitalgrid_worker::{analysis::SegmentResult, protocol::CheckedPayload};

/// How the worker misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// A well-behaved worker.
    #[default]
    None,
    /// Never ACKs a task; results are still sent.
    #[cfg(feature = "faults")]
    DropAcks,
    /// ACKs the first task on a connection, then drops the connection without a word.
    #[cfg(feature = "faults")]
    DisconnectMidTask,
    /// Sleeps this long before answering each task.
    #[cfg(feature = "faults")]
    Slow(Duration),
    /// Flips a byte of every result payload but keeps the original checksum, as a bad link would.
    #[cfg(feature = "faults")]
    CorruptResults,
    /// Returns a plausible but wrong result sealed with a matching checksum: a byzantine volunteer that
    /// only replication can catch.
    #[cfg(feature = "faults")]
    Forge,
}

impl Fault {
    pub(crate) fn acks(self) -> bool {
        #[cfg(feature = "faults")]
        if self == Self::DropAcks {
            return false;
        }
        true
    }

    pub(crate) fn vanishes_after_first_ack(self) -> bool {
        #[cfg(feature = "faults")]
        if self == Self::DisconnectMidTask {
            return true;
        }
        false
    }

    pub(crate) fn delay(self) -> Option<std::time::Duration> {
        #[cfg(feature = "faults")]
        if let Self::Slow(delay) = self {
            return Some(delay);
        }
        None
    }

    /// The result as this worker sends it.
    pub(crate) fn tamper(self, packet: ResultPacket) -> ResultPacket {
        match self {
            #[cfg(feature = "faults")]
            Self::CorruptResults => corrupt(packet),
            #[cfg(feature = "faults")]
            Self::Forge => forge(packet),
            _ => packet,
        }
    }
}

/// Why a `--fault` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFault(pub String);

impl std::fmt::Display for UnknownFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if cfg!(feature = "faults") {
            write!(
                f,
                "unknown fault `{}`: use none, drop-acks, disconnect-mid-task, slow:MS, corrupt-results or forge",
                self.0
            )
        } else {
            write!(
                f,
                "unknown fault `{}`: this build only knows `none` (faults need the `faults` feature)",
                self.0
            )
        }
    }
}

impl std::error::Error for UnknownFault {}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" => Ok(Self::None),
            #[cfg(feature = "faults")]
            "drop-acks" => Ok(Self::DropAcks),
            #[cfg(feature = "faults")]
            "disconnect-mid-task" => Ok(Self::DisconnectMidTask),
            #[cfg(feature = "faults")]
            "corrupt-results" => Ok(Self::CorruptResults),
            #[cfg(feature = "faults")]
            "forge" => Ok(Self::Forge),
            #[cfg(feature = "faults")]
            other if other.starts_with("slow:") => other["slow:".len()..]
                .parse()
                .map(|ms| Self::Slow(Duration::from_millis(ms)))
                .map_err(|_| UnknownFault(text.to_owned())),
            _ => Err(UnknownFault(text.to_owned())),
        }
    }
}

/// Changes one digit of the payload (so it stays valid UTF-8) and keeps the old checksum.
#[cfg(feature = "faults")]
fn corrupt(mut packet: ResultPacket) -> ResultPacket {
    let mut bytes = std::mem::take(&mut packet.data.payload).into_bytes();
    match bytes.iter().position(u8::is_ascii_digit) {
        Some(at) => bytes[at] = b'0' + (bytes[at] - b'0' + 1) % 10,
        None => bytes.push(b' '),
    }
    // Digits stay ASCII, so the bytes are still UTF-8; the fallback only guards the type.
    packet.data.payload = String::from_utf8(bytes).unwrap_or_default();
    packet
}

/// Shifts the mean of the first signal with values by a believable amount and seals the forged
/// payload with its own correct checksum, so integrity checks pass. The amount is random: independent
/// forgers do not agree with each other by accident (colluding ones would, and two replicas cannot
/// catch two colluders on the same task).
#[cfg(feature = "faults")]
fn forge(packet: ResultPacket) -> ResultPacket {
    use rand::Rng;
    let Ok(mut segment) = serde_json::from_str::<SegmentResult>(&packet.data.payload) else {
        return packet;
    };
    let mut rng = rand::thread_rng();
    match segment.signals.iter_mut().find(|s| s.stats.n > 0) {
        Some(signal) => {
            signal.stats.mean += rng.gen_range(0.5..2.5);
            signal.stats.max = signal.stats.max.max(signal.stats.mean);
        }
        None => segment.rows += rng.gen_range(1..5),
    }
    let Ok(payload) = serde_json::to_string(&segment) else {
        return packet;
    };
    ResultPacket {
        data: CheckedPayload::seal(payload),
        ..packet
    }
}

#[cfg(all(test, feature = "faults"))]
mod tests {
    use super::*;

    fn packet() -> ResultPacket {
        let segment = SegmentResult {
            algorithm: "signal-summary".into(),
            rows: 3,
            duplicates_removed: 0,
            out_of_order: 0,
            first_time_s: 0.0,
            last_time_s: 2.0,
            signals: vec![],
            quality: None,
            alerts: None,
            news2: None,
            ecg: None,
        };
        ResultPacket {
            task_id: "t".into(),
            lease: 1,
            data: CheckedPayload::seal(serde_json::to_string(&segment).expect("serialises")),
        }
    }

    #[test]
    fn corrupt_result_no_longer_matches_its_checksum() {
        let original = packet();
        let corrupted = corrupt(original.clone());
        assert!(!corrupted.data.is_intact());
        assert_eq!(corrupted.data.adler32, original.data.adler32);
    }

    #[test]
    fn forged_result_differs_but_its_checksum_matches() {
        let original = packet();
        let forged = forge(original.clone());
        assert!(forged.data.is_intact(), "a forger seals what it sends");
        assert_ne!(forged.data.payload, original.data.payload);
        let segment: SegmentResult =
            serde_json::from_str(&forged.data.payload).expect("still a segment result");
        assert!(segment.rows > 3);
    }

    #[test]
    fn faults_parse_from_their_command_line_names() {
        assert_eq!(
            "slow:250".parse(),
            Ok(Fault::Slow(Duration::from_millis(250)))
        );
        assert_eq!("forge".parse(), Ok(Fault::Forge));
        assert!("slow:soon".parse::<Fault>().is_err());
    }
}
