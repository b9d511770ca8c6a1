//! The storm guard: at most `storm_limit` records a second from one call site, after a
//! burst of as many; past it, a site's records are counted instead of queued, and one
//! summary per window goes out in their place, from the same call site.
//!
//! A call site is the logger, level, file, line and message template (`record.msg`
//! before formatting), known by a hash of those. The clock is the records' own
//! `created`: no clock is read per call, and a window ends when a record logged after
//! its end comes, from any site, or at a flush or a close. The sites are bounded (`MAX_SITES`): past that,
//! idle ones are forgotten, and if none is idle a new site goes unguarded.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::record_view::RecordView;

/// Call sites remembered at once: a storm has few, a program a few thousand at most.
const MAX_SITES: usize = 4096;
/// Seconds a summary covers, from the first record it counts.
pub const WINDOW_SECONDS: f64 = 10.0;

/// The last record a site kept back, as it would have been encoded: a summary goes out
/// as it, so that it reads (and groups) as the records it stands for.
pub enum Kept {
    /// A `LogRecord`, with what the handler passed with it: the formatter's output (or
    /// structlog's event) and the `log_context` fields.
    Record {
        record: Py<PyAny>,
        formatted: Option<Py<PyString>>,
        context: Option<Py<PyDict>>,
    },
    /// A client call's arguments: level, message, metadata, service, timestamp,
    /// source file, line number.
    Call(Box<[Option<Py<PyAny>>; 7]>),
}

/// What a summary says of a site's suppressed records, and the last of them, whose
/// call site and fields it goes out with.
pub struct Summary {
    pub kept: Kept,
    pub suppressed: u64,
    pub first: f64,
    pub last: f64,
}

struct Site {
    tokens: f64,
    /// `created` of the latest record seen.
    seen: f64,
    suppressed: u64,
    first: f64,
    last: f64,
    kept: Option<Kept>,
}

/// The key is a hash already: hashing it again would be waste.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Sites = HashMap<u64, Site, BuildHasherDefault<KeyHasher>>;

pub struct StormGuard {
    per_second: f64,
    burst: f64,
    sites: Mutex<Sites>,
    /// When the full table was last swept for idle sites: at most once a window.
    swept: Mutex<f64>,
    /// The earliest time a window with suppressed records ends (`f64` bits);
    /// `f64::INFINITY`: none. Read for every record, so no lock.
    next_due: AtomicU64,
    /// The latest `created` seen (`f64` bits: positive, so they order as the numbers do).
    latest: AtomicU64,
}

/// Whether a record goes out. A record held back may hand back the one it replaces as
/// its site's last: the caller drops it once the guard's lock is released (dropping a
/// Python object may run Python code, which may log).
pub enum Verdict {
    Admit,
    Suppress(Option<Kept>),
}

pub fn hash_of(value: Option<&Bound<'_, PyAny>>) -> u64 {
    // A str caches its hash: after the first record of a site this is a field read.
    // Anything unhashable is known by its identity.
    value.map_or(0, |v| {
        v.hash().map_or(v.as_ptr() as usize, isize::cast_unsigned) as u64
    })
}

fn int_of(value: Option<&Bound<'_, PyAny>>) -> u64 {
    value
        .and_then(|v| v.extract::<i64>().ok())
        .map_or(0, i64::cast_unsigned)
}

/// One key of several hashes.
pub fn combine(parts: &[u64]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    parts.iter().fold(0, |key: u64, part| {
        (key.rotate_left(5) ^ part).wrapping_mul(K)
    })
}

/// The call site of a record: its logger, level, file, line and message template (a
/// str `msg`; else, as for structlog's event dicts, the message the handler made).
pub fn record_site(view: &RecordView<'_>, formatted: Option<&Bound<'_, PyString>>) -> u64 {
    let template = match &view.msg {
        Some(msg) if msg.is_instance_of::<PyString>() => Some(msg),
        _ => formatted.map(Bound::as_any),
    };
    combine(&[
        hash_of(template),
        hash_of(view.pathname.as_ref()),
        int_of(view.lineno.as_ref()),
        int_of(view.levelno.as_ref()),
        hash_of(view.name.as_ref()),
    ])
}

impl StormGuard {
    pub fn new(per_second: u32) -> StormGuard {
        let per_second = f64::from(per_second);
        StormGuard {
            per_second,
            burst: per_second.max(1.0),
            sites: Mutex::new(Sites::default()),
            swept: Mutex::new(f64::NEG_INFINITY),
            next_due: AtomicU64::new(f64::INFINITY.to_bits()),
            latest: AtomicU64::new(0),
        }
    }

    /// Whether a record of call site `key`, logged at `created`, goes out or is counted
    /// in its site's summary; `keep` gives what the summary is made from, when needed.
    pub fn check(&self, key: u64, created: f64, keep: impl FnOnce() -> Kept) -> Verdict {
        let latest = f64::from_bits(self.latest.load(Ordering::Acquire));
        // A time that is no time, or a day ahead of the others (a skewed clock, a record
        // from elsewhere), would end every window at once: such a record goes unguarded.
        if !(created.is_finite() && created > 0.0) || (latest > 0.0 && created > latest + 86_400.0)
        {
            return Verdict::Admit;
        }
        // Positive floats order as their bits do.
        self.latest.fetch_max(created.to_bits(), Ordering::AcqRel);
        let mut sites = self.sites.lock();
        if !sites.contains_key(&key) && sites.len() >= MAX_SITES {
            let mut swept = self.swept.lock();
            if created - *swept < WINDOW_SECONDS {
                return Verdict::Admit; // swept lately: a program with many sites
            }
            *swept = created;
            sites.retain(|_, site| site.suppressed > 0 || created - site.seen < WINDOW_SECONDS);
            if sites.len() >= MAX_SITES {
                return Verdict::Admit;
            }
        }
        let site = sites.entry(key).or_insert(Site {
            tokens: self.burst,
            seen: created,
            suppressed: 0,
            first: 0.0,
            last: 0.0,
            kept: None,
        });
        let elapsed = (created - site.seen).max(0.0);
        site.seen = site.seen.max(created);
        site.tokens = (site.tokens + elapsed * self.per_second).min(self.burst);
        if site.tokens >= 1.0 {
            site.tokens -= 1.0;
            return Verdict::Admit;
        }
        if site.suppressed == 0 {
            site.first = created;
            site.last = created;
            // Under the sites' lock, as every write of it is.
            let due = f64::from_bits(self.next_due.load(Ordering::Acquire));
            let due = due.min(created + WINDOW_SECONDS);
            self.next_due.store(due.to_bits(), Ordering::Release);
        }
        site.suppressed += 1;
        site.last = site.last.max(created);
        Verdict::Suppress(site.kept.replace(keep()))
    }

    /// Whether a window with suppressed records has ended by the latest record: a cheap
    /// test for every record, before `take_due`.
    pub fn due(&self) -> bool {
        let next_due = f64::from_bits(self.next_due.load(Ordering::Acquire));
        next_due <= f64::from_bits(self.latest.load(Ordering::Acquire))
    }

    /// The summaries of the windows the latest record ended, or of every window with
    /// `all`.
    pub fn take_due(&self, all: bool) -> Vec<Summary> {
        let now = f64::from_bits(self.latest.load(Ordering::Acquire));
        let mut sites = self.sites.lock();
        let mut taken = Vec::new();
        let mut next_due = f64::INFINITY;
        for site in sites.values_mut() {
            if site.suppressed == 0 {
                continue;
            }
            if all || site.first + WINDOW_SECONDS <= now {
                if let Some(kept) = site.kept.take() {
                    taken.push(Summary {
                        kept,
                        suppressed: site.suppressed,
                        first: site.first,
                        last: site.last,
                    });
                }
                site.suppressed = 0;
            } else {
                next_due = next_due.min(site.first + WINDOW_SECONDS);
            }
        }
        self.next_due.store(next_due.to_bits(), Ordering::Release);
        taken
    }
}
