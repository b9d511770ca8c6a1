//! The flush thread: takes batches from the buffer and delivers them, and the `Shipper`
//! handle through which callers push, flush, close and read counters.
//!
//! Callers never wait on the thread except in `flush` and `close`, which take a deadline.
//! The thread wakes when a batch is full, at each `flush_interval`, on `flush` and on
//! `close`; between those it sleeps in `park_timeout`, so an idle shipper costs nothing.
//! With a spool it also writes down and sends again what memory cannot keep (`spill`).
//!
//! Where things are: `shipper` (the owner's handle), `cycle` (the thread's loop and its
//! drain at close), `delivery` (posting a batch: pacing, retries, counting), `spill`
//! (the spool), and two decisions made without I/O or a clock of their own, so they are
//! tested in simulated time: `schedule` (when to send) and `triage` (which entries of a
//! failing batch the server cannot store). The state they share is defined here.

mod attempts;
mod cycle;
mod delivery;
mod io;
mod pending;
mod schedule;
mod shipper;
#[cfg(any(test, fuzzing))]
pub(crate) mod sim;
mod spill;
#[cfg(test)]
mod tests;
pub(crate) mod triage;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::buffer::Buffer;
use crate::config::Config;
use crate::errors::Error;
use crate::lifecycle::{Lifecycle, State};
use crate::pacer::Pacer;
use crate::protocol::logwell::Level;
use crate::protocol::Reply;
use crate::stats::Stats;
use crate::transport::Jitter;
use io::Io;
use schedule::Schedule;

/// A batch stops growing once its body passes this size, and entries this large in all
/// are a full batch, whatever their count. With entries capped near 130 KiB
/// (`max_message_bytes` + `max_metadata_bytes`), a request stays under the 512 KiB body
/// limit of Logwell's server (`SvelteKit`'s default) and of common proxies.
const SOFT_MAX_REQUEST_BYTES: usize = 256 * 1024;
/// How long `close` waits past its deadline for the thread to notice it.
const CLOSE_GRACE: Duration = Duration::from_millis(200);
/// How long a fork waits for the thread to stop between two cycles (`pause`). Idle, it
/// stops in microseconds; in a request or a back-off it is left running instead.
pub const PAUSE_WAIT: Duration = Duration::from_millis(200);
/// `Shared::pause`: asked by `pause`, then taken by the thread or withdrawn by `pause`
/// when it waited long enough, whichever comes first (one compare-and-swap decides).
const RUNNING: u8 = 0;
const PAUSE_ASKED: u8 = 1;
const PAUSING: u8 = 2;

/// What the flush thread tells its owner. Called on the flush thread.
pub trait Events: Send + Sync + 'static {
    fn error(&self, error: &Error);
    fn delivered(&self, count: u64);
}

/// Reasons the server gave for rejected entries kept for `flush`'s answer.
const MAX_SERVER_ERRORS: usize = 100;

/// What the server's replies said, summed since the start: a flush answers with the
/// difference its requests made, in the server's own words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Said {
    pub replies: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Replies that carried a "rejected" count.
    pub rejected_given: u64,
    /// Reasons given for rejected entries (`errors`).
    pub reasons_given: u64,
}

#[derive(Default)]
struct ServerReplies {
    said: Said,
    recent_errors: VecDeque<String>,
}

impl ServerReplies {
    fn add(&mut self, reply: &Reply) {
        let said = &mut self.said;
        said.replies += 1;
        said.accepted += reply.accepted;
        if let Some(rejected) = reply.said_rejected {
            said.rejected += rejected;
            said.rejected_given += 1;
        }
        for error in &reply.errors {
            if self.recent_errors.len() == MAX_SERVER_ERRORS {
                self.recent_errors.pop_front();
            }
            self.recent_errors.push_back(error.clone());
            said.reasons_given += 1;
        }
    }
}

struct Shared {
    config: Config,
    buffer: Buffer,
    stats: Stats,
    events: Box<dyn Events>,
    /// Entries dropped because the buffer was full; reported in one error per cycle.
    overflowed: AtomicU64,
    flush_requests: AtomicU64,
    /// The latest flush request the thread could do no more for before its next try
    /// (retries spent, or a wait the server asked for), and when that wait ends: such
    /// a flush returns at once, unless the wait ends before its deadline.
    flushes_stalled: AtomicU64,
    stalled_until: Mutex<Option<Instant>>,
    /// What the server's replies said, for `flush` to hand back.
    replies: Mutex<ServerReplies>,
    lifecycle: Arc<Lifecycle>,
    close_deadline: Mutex<Option<Instant>>,
    /// Set while a wake-up is already on its way (or not wanted), so that pushes
    /// do not unpark the thread once per entry.
    wake_pending: AtomicBool,
    /// The same for entries the full buffer set aside for the spool.
    spill_pending: AtomicBool,
    /// The running thread, woken by pushes; a new one after each `resume`.
    thread: Mutex<Option<Thread>>,
    /// Wake-ups asked for so far: the simulator's thread is woken by these alone.
    #[cfg(any(test, fuzzing))]
    wakes: AtomicU64,
    /// Whether the thread is asked to stop between two cycles and hand its state back
    /// (`pause`): `RUNNING`, `PAUSE_ASKED` or `PAUSING`.
    pause: AtomicU8,
    /// The system's id of the thread that last stopped for `pause` (0: none known).
    exiting_tid: AtomicI64,
    /// Oldest `seq` the thread holds outside the buffer (`u64::MAX`: none).
    inflight_min_seq: AtomicU64,
    stopped: AtomicBool,
    /// The thread stopped on a panic (`crashed`): what it held is counted at close.
    crashed: AtomicBool,
    progress: Mutex<()>,
    progress_cv: Condvar,
}

/// Where a flush stands: what had been logged when it was asked.
#[derive(Clone, Copy)]
struct FlushMark {
    logged: u64,
    next_seq: u64,
}

impl Shared {
    fn deadline(&self) -> Option<Instant> {
        *self.close_deadline.lock()
    }

    /// Queues one encoded entry, counts what the full buffer dropped, and wakes the
    /// thread when there is something for it to do.
    fn enqueue(&self, json: Vec<u8>, level: Level) {
        let pushed = self.buffer.push(json, level);
        self.stats.enqueued.fetch_add(1, Ordering::Release);
        let dropped = pushed.dropped_total();
        if dropped > 0 {
            for (counter, n) in self.stats.dropped_by_level.iter().zip(pushed.dropped) {
                Stats::add(counter, n);
            }
            Stats::add(&self.stats.dropped_overflow, dropped);
            Stats::add(&self.overflowed, dropped);
        }
        if pushed.evicted && !self.spill_pending.swap(true, Ordering::AcqRel) {
            self.wake();
        }
        if self.batch_waiting(0, 0) && !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake();
        }
    }

    fn flush_mark(&self) -> FlushMark {
        FlushMark {
            logged: self.stats.enqueued.load(Ordering::Acquire),
            next_seq: self.buffer.next_seq(),
        }
    }

    /// Asks the thread for a flush: returns its ticket among flushes.
    fn ask_flush(&self) -> u64 {
        let ticket = self.flush_requests.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake();
        ticket
    }

    /// Whether the thread can do no more for flush `ticket` before `deadline`: its
    /// retries are spent, or the server asked for a wait that ends past it.
    fn flush_stalled(&self, ticket: u64, deadline: Instant) -> bool {
        self.flushes_stalled.load(Ordering::Acquire) >= ticket
            && self
                .stalled_until
                .lock()
                .is_none_or(|until| until > deadline)
    }

    /// Whether every entry logged before `mark` is counted, and none of them still held:
    /// shedding by level resolves entries out of order, so the count alone could be
    /// reached with an older one still queued.
    fn flushed(&self, mark: FlushMark) -> bool {
        self.stats.resolved() >= mark.logged
            && self.inflight_min_seq.load(Ordering::Acquire) >= mark.logged
            && self.buffer.oldest_seq() >= mark.next_seq
    }

    /// Asks the thread to deliver what it can before `deadline` and stop. A second close
    /// may shorten the deadline, never lengthen it.
    fn close_by(&self, deadline: Instant) {
        {
            let mut d = self.close_deadline.lock();
            *d = Some(d.map_or(deadline, |old| old.min(deadline)));
        }
        self.lifecycle.advance(State::Closing);
        self.wake();
    }

    fn wake(&self) {
        #[cfg(any(test, fuzzing))]
        self.wakes.fetch_add(1, Ordering::AcqRel);
        if let Some(t) = self.thread.lock().as_ref() {
            t.unpark();
        }
    }

    /// Whether the buffer, with `held` entries of `held_bytes` the thread holds, makes a
    /// full batch: `batch_size` entries, or a request's worth of bytes.
    fn batch_waiting(&self, held: usize, held_bytes: usize) -> bool {
        self.buffer.len() + held >= self.config.batch_size
            || self.buffer.bytes() + held_bytes >= SOFT_MAX_REQUEST_BYTES
    }

    fn notify_progress(&self) {
        drop(self.progress.lock());
        self.progress_cv.notify_all();
    }

    fn report(&self, error: &Error) {
        self.stats.set_last_error(error);
        self.events.error(error);
    }

    /// The thread panicked (a bug of ours, or in a callback): what it held is lost. The
    /// shipper takes no more entries, says so once, and marks the thread stopped, so
    /// that `flush` and `close` answer at once instead of waiting for a thread that is
    /// gone; `close` counts what is left as dropped.
    fn crashed(&self, detail: &str) {
        self.lifecycle.advance(State::Closing);
        self.crashed.store(true, Ordering::Release);
        self.inflight_min_seq.store(u64::MAX, Ordering::Release);
        let lost = self.stats.snapshot().queued();
        self.report(&Error::Internal {
            what: "the flush thread",
            detail: format!("{detail}; it stopped, with {lost} entries undelivered"),
        });
        self.stopped.store(true, Ordering::Release);
        self.notify_progress();
    }

    /// Counts entries still undelivered at a close deadline.
    fn give_up_at_close(&self, count: u64) {
        if count > 0 {
            Stats::add(&self.stats.dropped_at_close, count);
            self.report(&Error::Undelivered { count });
        }
    }
}

/// The owner's handle on a buffer and its flush thread.
pub struct Shipper {
    shared: Arc<Shared>,
    /// The thread hands its state back when it stops for a fork (`pause`).
    handle: Mutex<Option<JoinHandle<Option<Worker>>>>,
    /// The state of a thread stopped by `pause`, which the next thread starts from.
    paused: Arc<Mutex<Option<Worker>>>,
    started: AtomicBool,
    /// The process generation (`fork::generation`) the shipper was made in.
    generation: u64,
}

struct Worker {
    shared: Arc<Shared>,
    /// The clock, sleeping and the server: the system's, or the simulator's.
    io: Box<dyn Io>,
    jitter: Jitter,
    /// The batch being delivered; kept across cycles while it fails.
    pending: pending::Pending,
    /// When to send: ticks, flushes, full batches, bursts, the server's waits.
    schedule: Schedule,
    pacer: Pacer,
    /// Whether the pacer keeps a model of the server's limit, so a 429 is its to wait out.
    paced: bool,
    overflow_reported: u64,
    /// Where what memory cannot keep goes (`spool_dir`).
    spool: spill::SpoolSlot,
}

/// The calling thread's id in the system (0 where there is none to check).
fn thread_id() -> i64 {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions and cannot fail.
    return i64::from(unsafe { libc::gettid() });
    #[cfg(not(target_os = "linux"))]
    0
}

/// Waits, until `deadline` at most, for the thread `tid` to be gone from the process as
/// the system counts threads: `join` returns when the thread has finished, a moment
/// before the kernel stops counting it, and Python's fork warning reads that count.
fn wait_for_exit(tid: i64, deadline: Instant) {
    #[cfg(target_os = "linux")]
    if tid > 0 {
        let task = format!("/proc/self/task/{tid}");
        while std::path::Path::new(&task).exists() && Instant::now() < deadline {
            thread::sleep(Duration::from_micros(200));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (tid, deadline);
}

/// `wait` from now; as far as the clock goes when that is past its end (a caller's
/// timeout of 1e19 s).
fn after(wait: Duration) -> Instant {
    later(Instant::now(), wait)
}

fn later(t: Instant, wait: Duration) -> Instant {
    t.checked_add(wait)
        .or_else(|| t.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(t)
}
