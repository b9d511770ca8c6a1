//! Counters every caller can read without stopping the flush thread.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Default)]
pub struct Stats {
    /// Entries pushed into the buffer, ever.
    pub enqueued: AtomicU64,
    /// Entries the server accepted.
    pub sent: AtomicU64,
    /// Entries discarded here: buffer full, or still undelivered at the shutdown deadline.
    pub dropped: AtomicU64,
    /// Entries the server refused for good (4xx, or `rejected` in a 200 reply).
    pub failed: AtomicU64,
    /// Requests sent again after a retryable failure.
    pub retries: AtomicU64,
    /// Requests the server answered with 2xx.
    pub batches: AtomicU64,
    /// Entries logged after close, ignored.
    pub after_close: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// A consistent-enough copy of the counters for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub enqueued: u64,
    pub sent: u64,
    pub dropped: u64,
    pub failed: u64,
    pub retries: u64,
    pub batches: u64,
    pub after_close: u64,
    pub last_error: Option<String>,
}

impl Snapshot {
    /// Entries neither delivered nor given up on.
    pub fn queued(&self) -> u64 {
        self.enqueued
            .saturating_sub(self.sent + self.dropped + self.failed)
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
        self.sent.load(Ordering::Acquire)
            + self.failed.load(Ordering::Acquire)
            + self.dropped.load(Ordering::Acquire)
    }

    pub fn set_last_error(&self, message: String) {
        *self.last_error.lock() = Some(message);
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        Snapshot {
            enqueued: get(&self.enqueued),
            sent: get(&self.sent),
            dropped: get(&self.dropped),
            failed: get(&self.failed),
            retries: get(&self.retries),
            batches: get(&self.batches),
            after_close: get(&self.after_close),
            last_error: self.last_error.lock().clone(),
        }
    }
}
