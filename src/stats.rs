//! Counters every caller can read without stopping the flush thread.
//!
//! Every entry pushed ends in exactly one of `sent`, `dropped_overflow`,
//! `dropped_at_close`, `failed`, `rejected_by_server` or `spooled`; until then it is
//! `queued`. An entry of the spool, whoever wrote it, ends in `replayed`,
//! `replay_failed`, `dropped_spool_full` or `spool_corrupt`, or waits on disk.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::buffer::LEVELS;
use crate::errors::{Error, ErrorCode};

#[derive(Default)]
pub struct Stats {
    /// Entries pushed into the buffer, ever.
    pub enqueued: AtomicU64,
    /// Entries the server accepted.
    pub sent: AtomicU64,
    /// Entries discarded because the buffer was full (count or bytes): the least
    /// important first, the oldest within a level.
    pub dropped_overflow: AtomicU64,
    /// The same, by level: debug, info, warn, error, fatal.
    pub dropped_by_level: [AtomicU64; LEVELS],
    /// Entries still undelivered when a close deadline passed.
    pub dropped_at_close: AtomicU64,
    /// Entries refused for good by an error status (401, 403, a 400 for one entry alone).
    pub failed: AtomicU64,
    /// Entries the server refused one by one in a 2xx reply (`rejected`).
    pub rejected_by_server: AtomicU64,
    /// Requests sent again after a transient failure (network, 408, 5xx).
    pub retries: AtomicU64,
    /// Times the server answered 429 and the worker waited before sending again.
    pub rate_limited_waits: AtomicU64,
    /// Milliseconds those replies asked for (`Retry-After`).
    pub rate_limited_wait_ms: AtomicU64,
    /// Times a request waited for the server's request budget (`max_requests_per_minute`,
    /// or the share of it a 429 showed).
    pub paced_waits: AtomicU64,
    /// Milliseconds spent in those waits.
    pub paced_wait_ms: AtomicU64,
    /// Requests the server answered with 2xx.
    pub batches: AtomicU64,
    /// Request body bytes of those requests.
    pub bytes_sent: AtomicU64,
    /// Entries logged after close, ignored.
    pub after_close: AtomicU64,
    /// Records the storm guard counted instead of queuing (`storm_limit`).
    pub storm_suppressed: AtomicU64,
    /// Summaries it queued in their place, one per call site and window.
    pub storm_summaries: AtomicU64,
    /// Entries written to the spool instead of dropped or held in memory.
    pub spooled: AtomicU64,
    /// Entries of the spool the server took.
    pub replayed: AtomicU64,
    /// Entries of the spool the server refused for good.
    pub replay_failed: AtomicU64,
    /// Bytes in the spool directory, as last seen (a gauge).
    pub spool_bytes: AtomicU64,
    /// Spooled entries dropped, oldest first, to stay within `max_spool_bytes`.
    pub dropped_spool_full: AtomicU64,
    /// Damaged stretches of spool files skipped (a torn write, a flipped byte), and files
    /// lost with a directory removed under the process.
    pub spool_corrupt: AtomicU64,
    /// Disk faults (full, read-only, missing, no permission; memory took over), and the
    /// directory found removed or replaced (made again).
    pub spool_errors: AtomicU64,
    pub last_error: Mutex<Option<LastError>>,
}

/// The latest problem, for `stats()`: never holds the API key (no error text does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub code: ErrorCode,
    pub message: String,
}

/// A consistent-enough copy of the counters for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub enqueued: u64,
    pub sent: u64,
    pub dropped_overflow: u64,
    pub dropped_by_level: [u64; LEVELS],
    pub dropped_at_close: u64,
    pub failed: u64,
    pub rejected_by_server: u64,
    pub retries: u64,
    pub rate_limited_waits: u64,
    pub rate_limited_wait_ms: u64,
    pub paced_waits: u64,
    pub paced_wait_ms: u64,
    pub batches: u64,
    pub bytes_sent: u64,
    pub after_close: u64,
    pub storm_suppressed: u64,
    pub storm_summaries: u64,
    pub spooled: u64,
    pub replayed: u64,
    pub replay_failed: u64,
    pub spool_bytes: u64,
    pub dropped_spool_full: u64,
    pub spool_corrupt: u64,
    pub spool_errors: u64,
    pub last_error: Option<LastError>,
}

impl Snapshot {
    /// Entries neither delivered nor given up on.
    pub fn queued(&self) -> u64 {
        self.enqueued.saturating_sub(
            self.sent
                + self.dropped_overflow
                + self.dropped_at_close
                + self.failed
                + self.rejected_by_server
                + self.spooled,
        )
    }
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Entries that have left the pipeline one way or another.
    pub fn resolved(&self) -> u64 {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        get(&self.sent)
            + get(&self.dropped_overflow)
            + get(&self.dropped_at_close)
            + get(&self.failed)
            + get(&self.rejected_by_server)
            + get(&self.spooled)
    }

    pub fn set_last_error(&self, error: &Error) {
        *self.last_error.lock() = Some(LastError {
            code: error.code(),
            message: error.to_string(),
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        Snapshot {
            enqueued: get(&self.enqueued),
            sent: get(&self.sent),
            dropped_overflow: get(&self.dropped_overflow),
            dropped_by_level: std::array::from_fn(|i| get(&self.dropped_by_level[i])),
            dropped_at_close: get(&self.dropped_at_close),
            failed: get(&self.failed),
            rejected_by_server: get(&self.rejected_by_server),
            retries: get(&self.retries),
            rate_limited_waits: get(&self.rate_limited_waits),
            rate_limited_wait_ms: get(&self.rate_limited_wait_ms),
            paced_waits: get(&self.paced_waits),
            paced_wait_ms: get(&self.paced_wait_ms),
            batches: get(&self.batches),
            bytes_sent: get(&self.bytes_sent),
            after_close: get(&self.after_close),
            storm_suppressed: get(&self.storm_suppressed),
            storm_summaries: get(&self.storm_summaries),
            spooled: get(&self.spooled),
            replayed: get(&self.replayed),
            replay_failed: get(&self.replay_failed),
            spool_bytes: get(&self.spool_bytes),
            dropped_spool_full: get(&self.dropped_spool_full),
            spool_corrupt: get(&self.spool_corrupt),
            spool_errors: get(&self.spool_errors),
            last_error: self.last_error.lock().clone(),
        }
    }
}
