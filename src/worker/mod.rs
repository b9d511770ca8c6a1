//! The flush thread: takes batches from the buffer and delivers them, and the `Shipper`
//! handle through which callers push, flush, close and read counters.
//!
//! Callers never wait on the thread except in `flush` and `close`, which take a deadline.
//! The thread wakes when a batch is full, at each `flush_interval`, on `flush` and on
//! `close`; between those it sleeps in `park_timeout`, so an idle shipper costs nothing.
//! With a spool it also writes down and sends again what memory cannot keep (`spill`).

mod schedule;
mod spill;
mod triage;

use schedule::{Plan, Schedule, Seen};
use triage::{Answer, Step, Triage};

use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::buffer::{Buffer, Entry};
use crate::config::Config;
use crate::errors::{panic_text, Error};
use crate::fork;
use crate::lifecycle::{Lifecycle, State};
use crate::pacer::Pacer;
use crate::protocol::logwell::Level;
use crate::protocol::Reply;
use crate::stats::{Snapshot, Stats};
use crate::transport::{retry_delay, Jitter, Transport};

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

impl Shared {
    fn deadline(&self) -> Option<Instant> {
        *self.close_deadline.lock()
    }

    fn wake(&self) {
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

impl Shipper {
    /// The thread starts on the first push, so a handler built before `fork()`
    /// and never used there starts its own thread in the child; with a spool, at once.
    /// `lifecycle`: the shipper's state, which `events` may read too.
    pub fn new(config: Config, events: Box<dyn Events>, lifecycle: Arc<Lifecycle>) -> Shipper {
        let buffer = Buffer::new(
            config.max_queue_size,
            config.max_queue_bytes,
            config.spool.is_some(),
        );
        let shipper = Shipper {
            shared: Arc::new(Shared {
                config,
                buffer,
                stats: Stats::default(),
                events,
                overflowed: AtomicU64::new(0),
                flush_requests: AtomicU64::new(0),
                flushes_stalled: AtomicU64::new(0),
                stalled_until: Mutex::new(None),
                replies: Mutex::new(ServerReplies::default()),
                lifecycle,
                close_deadline: Mutex::new(None),
                wake_pending: AtomicBool::new(false),
                spill_pending: AtomicBool::new(false),
                thread: Mutex::new(None),
                pause: AtomicU8::new(RUNNING),
                exiting_tid: AtomicI64::new(0),
                inflight_min_seq: AtomicU64::new(u64::MAX),
                stopped: AtomicBool::new(false),
                crashed: AtomicBool::new(false),
                progress: Mutex::new(()),
                progress_cv: Condvar::new(),
            }),
            handle: Mutex::new(None),
            paused: Arc::new(Mutex::new(None)),
            started: AtomicBool::new(false),
            generation: fork::generation(),
        };
        // A spool may hold what an earlier process left: send it without waiting for a
        // first record.
        if shipper.shared.config.spool.is_some() {
            shipper.start();
        }
        shipper
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Queues one encoded entry. Never blocks on the network; never fails.
    pub fn push(&self, json: Vec<u8>, level: Level) {
        let s = &self.shared;
        if !s.lifecycle.is_open() {
            Stats::add(&s.stats.after_close, 1);
            return;
        }
        if !self.started.load(Ordering::Acquire) {
            self.start();
        }
        let pushed = s.buffer.push(json, level);
        s.stats.enqueued.fetch_add(1, Ordering::Release);
        let dropped = pushed.dropped_total();
        if dropped > 0 {
            for (counter, n) in s.stats.dropped_by_level.iter().zip(pushed.dropped) {
                Stats::add(counter, n);
            }
            Stats::add(&s.stats.dropped_overflow, dropped);
            Stats::add(&s.overflowed, dropped);
        }
        if pushed.evicted && !s.spill_pending.swap(true, Ordering::AcqRel) {
            s.wake();
        }
        if s.batch_waiting(0, 0) && !s.wake_pending.swap(true, Ordering::AcqRel) {
            s.wake();
        }
    }

    fn start(&self) {
        let mut handle = self.handle.lock();
        if self.started.load(Ordering::Acquire) {
            return;
        }
        *handle = self.spawn();
        self.started.store(handle.is_some(), Ordering::Release);
    }

    /// Starts the thread, from where `pause` stopped the last one if it did; `None` when
    /// it could not start (entries stay queued, and a paused worker stays in its slot:
    /// the next push tries again).
    fn spawn(&self) -> Option<JoinHandle<Option<Worker>>> {
        let shared = Arc::clone(&self.shared);
        let paused = Arc::clone(&self.paused);
        let run = move || {
            let worker = paused.lock().take();
            let ran = catch_unwind(AssertUnwindSafe(|| {
                worker
                    .unwrap_or_else(|| Worker::new(Arc::clone(&shared)))
                    .run()
            }));
            ran.unwrap_or_else(|payload| {
                shared.crashed(&panic_text(payload.as_ref()));
                None
            })
        };
        match thread::Builder::new()
            .name("logwell-flush".into())
            .spawn(run)
        {
            Ok(h) => {
                *self.shared.thread.lock() = Some(h.thread().clone());
                Some(h)
            }
            Err(e) => {
                self.shared.stats.set_last_error(&Error::Network(format!(
                    "could not start the flush thread: {e}"
                )));
                None
            }
        }
    }

    /// Stops the thread between two cycles, keeping all it holds, so that a `fork()`
    /// finds no thread of ours running: Python 3.12+ warns at every fork of a process
    /// with threads (an error under `-W error`). Waits up to `within`; a thread in a
    /// request or a back-off then is left running, and the fork goes on as before.
    /// Returns whether the thread is stopped (or was never started). `resume` undoes it.
    /// A fork waits `PAUSE_WAIT`.
    pub fn pause(&self, within: Duration) -> bool {
        let s = &self.shared;
        let mut handle = self.handle.lock();
        let Some(running) = handle.as_ref() else {
            return true;
        };
        if self.on_worker() {
            return false;
        }
        s.pause.store(PAUSE_ASKED, Ordering::Release);
        s.wake();
        let deadline = Instant::now() + within;
        self.wait_until(deadline, || {
            s.pause.load(Ordering::Acquire) == PAUSING || running.is_finished()
        });
        let withdrawn = s
            .pause
            .compare_exchange(PAUSE_ASKED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if withdrawn {
            return false;
        }
        // The thread took the request: it is returning, or returned, its state.
        if let Some(h) = handle.take() {
            // A thread that stopped to close has no state to hand back.
            *self.paused.lock() = h.join().ok().flatten();
        }
        wait_for_exit(s.exiting_tid.load(Ordering::Acquire), deadline);
        true
    }

    /// Starts the thread `pause` stopped again, where it left off.
    pub fn resume(&self) {
        let mut handle = self.handle.lock();
        self.shared.pause.store(RUNNING, Ordering::Release);
        if handle.is_none() && self.paused.lock().is_some() {
            *handle = self.spawn();
            // Not started: the next push tries again, and flush and close wait for no
            // thread meanwhile.
            self.started.store(handle.is_some(), Ordering::Release);
        }
    }

    /// Waits until every entry queued before the call is delivered, given up on
    /// (refused by the server, or dropped) or written to the spool, or until `timeout`
    /// passes.
    /// Returns whether it got there. Called from the flush thread itself (inside an
    /// error callback) it returns false at once instead of waiting on itself.
    pub fn flush(&self, timeout: Duration) -> bool {
        let s = &self.shared;
        let target = s.stats.enqueued.load(Ordering::Acquire);
        let seq_target = s.buffer.next_seq();
        // Counted, and none of them still held: shedding by level resolves entries out
        // of order, so the count alone could be reached with an older one still queued.
        let done = || {
            s.stats.resolved() >= target
                && s.inflight_min_seq.load(Ordering::Acquire) >= target
                && s.buffer.oldest_seq() >= seq_target
        };
        if done() {
            return true;
        }
        if self.on_worker() || !self.started() || s.lifecycle.state() == State::Closed {
            return false;
        }
        let ticket = s.flush_requests.fetch_add(1, Ordering::AcqRel) + 1;
        s.wake();
        let deadline = after(timeout);
        let stalled = || {
            s.flushes_stalled.load(Ordering::Acquire) >= ticket
                && s.stalled_until.lock().is_none_or(|until| until > deadline)
        };
        self.wait_until(deadline, || done() || stalled());
        done()
    }

    /// What the server's replies have said so far, and the reasons it gave for rejected
    /// entries from the `since`th on (the latest `MAX_SERVER_ERRORS` at most), read
    /// together so that they agree.
    pub fn said_since(&self, since: u64) -> (Said, Vec<String>) {
        let replies = self.shared.replies.lock();
        let said = replies.said;
        let first_kept = said.reasons_given - replies.recent_errors.len() as u64;
        let skip = usize::try_from(since.saturating_sub(first_kept)).unwrap_or(usize::MAX);
        (
            said,
            replies.recent_errors.iter().skip(skip).cloned().collect(),
        )
    }

    fn wait_until(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        let s = &self.shared;
        let mut guard = s.progress.lock();
        loop {
            if done() {
                return true;
            }
            if s.stopped.load(Ordering::Acquire) || Instant::now() >= deadline {
                return done();
            }
            // The slice bounds the cost of any wake-up we might miss.
            let slice = deadline.min(Instant::now() + Duration::from_millis(50));
            s.progress_cv.wait_until(&mut guard, slice);
        }
    }

    /// Stops taking entries and tells the thread to deliver what it can within `timeout`,
    /// without waiting: several shippers closing at once each get the whole time, where
    /// closing them one after another would leave the last none.
    pub fn begin_close(&self, timeout: Duration) {
        let deadline = after(timeout);
        let s = &self.shared;
        {
            let mut d = s.close_deadline.lock();
            // A second close may shorten the deadline, never lengthen it.
            *d = Some(d.map_or(deadline, |old| old.min(deadline)));
        }
        s.lifecycle.advance(State::Closing);
        s.wake();
    }

    /// Stops taking entries, delivers what it can before `timeout` passes, and stops
    /// the thread. What is still undelivered at the deadline is counted as dropped,
    /// reported, and returned as a count. A shipper already closed, or a close from the
    /// flush thread itself (inside an error callback), returns at once.
    pub fn close(&self, timeout: Duration) -> u64 {
        let s = &self.shared;
        let lost_before = s.stats.dropped_at_close.load(Ordering::Acquire);
        if s.lifecycle.state() == State::Closed {
            return s.stats.snapshot().queued();
        }
        // A thread stopped for a fork that did not resume it (a close racing the fork
        // from another thread) drains like any other.
        self.resume();
        self.begin_close(timeout);
        if self.on_worker() {
            return s.stats.snapshot().queued();
        }
        let deadline = s.deadline().unwrap_or_else(Instant::now);
        if self.started() {
            let stopped = self.wait_until(later(deadline, CLOSE_GRACE), || {
                s.stopped.load(Ordering::Acquire)
            });
            if stopped {
                if let Some(h) = self.handle.lock().take() {
                    let _ = h.join();
                }
            } else {
                // The thread is in a request that outlived the deadline; it exits on its
                // own when that returns, and never calls the owner after close. What the
                // request holds is not lost yet, but the owner must hear of it now: at
                // interpreter exit, now is the last chance.
                let count = s.stats.snapshot().queued();
                if count > 0 {
                    s.report(&Error::Unanswered { count });
                }
            }
        }
        // Entries pushed in the instant between the last drain and `closing`.
        let mut late = 0;
        if s.stopped.load(Ordering::Acquire) || !self.started() {
            while s.buffer.pop().is_some() {
                late += 1;
            }
            late += s.buffer.take_evicted(usize::MAX).len() as u64;
        }
        if late > 0 {
            Stats::add(&s.stats.dropped_at_close, late);
            s.stats.set_last_error(&Error::Undelivered { count: late });
        }
        if s.crashed.load(Ordering::Acquire) {
            // What the thread held when it stopped: all that is unresolved now.
            Stats::add(&s.stats.dropped_at_close, s.stats.snapshot().queued());
        }
        s.lifecycle.advance(State::Closed);
        let lost = s.stats.dropped_at_close.load(Ordering::Acquire) - lost_before;
        // A thread still in a request past the deadline holds entries we cannot count yet.
        lost.max(s.stats.snapshot().queued())
    }

    /// Whether the caller is the flush thread (inside an error or delivery callback).
    fn on_worker(&self) -> bool {
        let current = thread::current().id();
        self.shared.thread.lock().as_ref().map(Thread::id) == Some(current)
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    pub fn state(&self) -> State {
        self.shared.lifecycle.state()
    }

    pub fn stats(&self) -> Snapshot {
        self.shared.stats.snapshot()
    }

    /// Entries waiting to be delivered.
    pub fn queue_size(&self) -> u64 {
        self.stats().queued()
    }

    /// Counts one record that could not be encoded as failed, and reports it.
    pub fn fail_record(&self, error: &Error) {
        let s = &self.shared;
        s.stats.enqueued.fetch_add(1, Ordering::Release);
        Stats::add(&s.stats.failed, 1);
        s.report(error);
    }

    /// Counts one entry that was given up on before it reached the buffer.
    pub fn count_ignored(&self) {
        Stats::add(&self.shared.stats.after_close, 1);
    }

    /// Counts one record the storm guard kept back.
    pub fn count_suppressed(&self) {
        Stats::add(&self.shared.stats.storm_suppressed, 1);
    }

    /// Queues a storm summary: counted as an entry, and as a summary.
    pub fn push_summary(&self, json: Vec<u8>, level: Level) {
        Stats::add(&self.shared.stats.storm_summaries, 1);
        self.push(json, level);
    }
}

impl Drop for Shipper {
    /// Asks the thread to finish with no time left; does not wait. In a forked child it
    /// touches nothing: the thread is the parent's, a lock may have been copied held,
    /// and a worker `pause` kept holds the parent's descriptors (the spool's locks, which
    /// the child closed already: closing them again could close another file).
    fn drop(&mut self) {
        if fork::generation() != self.generation {
            std::mem::forget(Arc::clone(&self.paused));
            return;
        }
        self.shared.lifecycle.advance(State::Closing);
        self.shared.wake();
    }
}

enum Outcome {
    Done,
    /// Not delivered for now; the batch stays at the front.
    Retained,
}

/// What became of one request's worth of entries.
enum Sent {
    Done,
    /// Refused as a whole with 400 or 413: worth sending again in halves.
    Split,
    /// Failed with a 500 on every try: an entry the server cannot store, or an outage.
    ServerFault(Error),
    Retained,
}

struct Worker {
    shared: Arc<Shared>,
    transport: Transport,
    jitter: Jitter,
    /// The batch being delivered, oldest first; kept across cycles while it fails.
    pending: Vec<Entry>,
    pending_bytes: usize,
    /// When to send: ticks, flushes, full batches, bursts, the server's waits.
    schedule: Schedule,
    pacer: Pacer,
    /// Whether the pacer keeps a model of the server's limit, so a 429 is its to wait out.
    paced: bool,
    overflow_reported: u64,
    /// Where what memory cannot keep goes (`spool_dir`).
    spool: spill::SpoolSlot,
    /// `pending` holds entries read back from the spool: counted as replayed, not sent.
    replaying: bool,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Worker {
        let config = &shared.config;
        let transport = Transport::for_config(config);
        let capacity = config.max_request_entries;
        let per_minute = config.max_requests_per_minute;
        let schedule = Schedule::new(config.flush_interval, Instant::now());
        Worker {
            shared,
            transport,
            jitter: Jitter::new(),
            pending: Vec::with_capacity(capacity),
            pending_bytes: 0,
            schedule,
            pacer: Pacer::new(per_minute, Instant::now()),
            paced: per_minute > 0,
            overflow_reported: 0,
            spool: spill::SpoolSlot::default(),
            replaying: false,
        }
    }

    /// The thread's loop, until the shipper closes (returns `None`) or `pause` asks it to
    /// stop (returns itself, to be run again on a new thread).
    fn run(mut self) -> Option<Worker> {
        self.open_spool();
        while self.shared.lifecycle.is_open() {
            let pause = self.shared.pause.compare_exchange(
                PAUSE_ASKED,
                PAUSING,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if pause.is_ok() {
                self.shared
                    .exiting_tid
                    .store(thread_id(), Ordering::Release);
                self.shared.notify_progress();
                return Some(self);
            }
            let now = Instant::now();
            self.tend_spool(now);
            let seen = self.seen();
            let (send, replay, full) = match self.schedule.plan(now, &seen) {
                Plan::Cycle { send, replay, full } => (send, replay, full),
                Plan::Sleep {
                    until,
                    quiet,
                    stalled,
                } => {
                    if stalled.is_some() {
                        self.stall_flushes(seen.flushes, stalled);
                    }
                    self.idle_until(now, until, quiet);
                    continue;
                }
            };
            let probed = send && self.send_cycle();
            let held = self.schedule.held_until();
            if self.schedule.failing() || held.is_some() {
                // Retries spent, or the server asked for a wait: what a flush waits for
                // can only go at the next tick or after the wait.
                self.stall_flushes(seen.flushes, held);
            }
            self.report_overflow();
            if replay && self.pending.is_empty() && !(self.schedule.failing() && probed) {
                self.replay_one();
            }
            self.schedule.cycle_done(Instant::now(), full, &self.seen());
            self.shared.notify_progress();
        }
        self.drain_for_close();
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.notify_progress();
        None
    }

    /// What the schedule is told of the buffer, the flushes and the spool.
    fn seen(&self) -> Seen {
        let s = &self.shared;
        Seen {
            flushes: s.flush_requests.load(Ordering::Acquire),
            batch_waiting: s.batch_waiting(self.pending.len(), self.pending_bytes),
            waiting: self.waiting(),
            logged: s.stats.enqueued.load(Ordering::Acquire),
            replayable: self.pending.is_empty() && self.spool_backlog(),
        }
    }

    /// Sleeps until `until`, a push that fills a batch (unless `quiet`), a flush or a
    /// close; while the server fails, wakes every second to write to the spool.
    fn idle_until(&mut self, now: Instant, until: Instant, quiet: bool) {
        // While held or failing, a full buffer is no reason to wake: leave the flag set
        // so pushes do not unpark us for nothing.
        self.shared.wake_pending.store(quiet, Ordering::Release);
        // A batch filled between the look and the flag: go round again at once.
        if !quiet
            && self
                .shared
                .batch_waiting(self.pending.len(), self.pending_bytes)
        {
            return;
        }
        let until = self.next_spill(now).map_or(until, |at| until.min(at));
        thread::park_timeout(until.saturating_duration_since(now));
    }

    /// Tells the flushes up to `upto` that what they wait for cannot go before `until`
    /// (None: before the next tick, which a flush does not wait for).
    fn stall_flushes(&self, upto: u64, until: Option<Instant>) {
        let s = &self.shared;
        *s.stalled_until.lock() = until;
        if s.flushes_stalled.fetch_max(upto, Ordering::AcqRel) < upto {
            s.notify_progress();
        }
    }

    /// Whether entries wait to be sent.
    fn waiting(&self) -> bool {
        !self.pending.is_empty() || !self.shared.buffer.is_empty()
    }

    /// Sends what the buffer held when the cycle began, in requests as large as the
    /// server takes, until that is done or a delivery fails. A burst goes out whole,
    /// its last partial request too, while a steady stream of new entries cannot keep a
    /// cycle going forever. Returns whether it made a request.
    fn send_cycle(&mut self) -> bool {
        let mut budget = self.shared.buffer.len() + self.pending.len();
        let mut sent = false;
        while budget > 0 {
            self.fill_pending();
            if self.pending.is_empty() {
                break;
            }
            let n = self.pending.len();
            sent = true;
            let outcome = self.deliver(None);
            // What the full buffer set aside meanwhile goes to disk between requests.
            self.spill_evicted();
            match outcome {
                Outcome::Done => budget = budget.saturating_sub(n),
                Outcome::Retained => break,
            }
        }
        sent
    }

    /// Tops `pending` up from the buffer to a request's worth.
    fn fill_pending(&mut self) {
        let entries = self.shared.config.max_request_entries;
        self.take_from_buffer(
            entries.saturating_sub(self.pending.len()),
            SOFT_MAX_REQUEST_BYTES.saturating_sub(self.pending_bytes),
        );
    }

    /// Moves entries from the buffer to the end of `pending`, up to `entries` of them and
    /// until they pass `bytes`; returns how many.
    fn take_from_buffer(&mut self, entries: usize, bytes: usize) -> usize {
        let (mut taken, mut size) = (0, 0);
        while taken < entries && size < bytes {
            let Some(e) = self.shared.buffer.pop() else {
                break;
            };
            size += e.json.len() + 1;
            taken += 1;
            self.pending.push(e);
        }
        self.pending_bytes += size;
        self.note_inflight();
        taken
    }

    /// Publishes the oldest entry the thread holds, for `flush`.
    fn note_inflight(&self) {
        let min = match self.pending.first() {
            Some(e) if !self.replaying => e.seq,
            _ => u64::MAX,
        };
        self.shared.inflight_min_seq.store(min, Ordering::Release);
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_bytes = 0;
        self.note_inflight();
    }

    /// Delivers `pending`, in order but for entries the server cannot store, which
    /// `Triage` finds by sending parts of the batch again. A server that fails
    /// everything is an outage, not poison: all is kept for later.
    fn deliver(&mut self, deadline: Option<Instant>) -> Outcome {
        let mut triage = Triage::new(self.pending.len());
        let mut last_fault = None;
        loop {
            let request = match triage.next() {
                Step::Send(request) => request,
                Step::WantMore => {
                    // A request's worth from behind the batch; spooled entries are not
                    // mixed with fresh ones.
                    let lent = if self.replaying {
                        0
                    } else {
                        let entries = self.shared.config.max_request_entries;
                        self.take_from_buffer(entries, SOFT_MAX_REQUEST_BYTES)
                    };
                    triage.grow(lent);
                    continue;
                }
                Step::Done => {
                    self.clear_pending();
                    return Outcome::Done;
                }
                Step::Outage => return self.retain_unresolved(triage.resolved(), last_fault),
            };
            let answer = match self.send(request.range.clone(), deadline, request.retries) {
                Sent::Done => Answer::Taken,
                Sent::Split => Answer::Split,
                Sent::ServerFault(error) => {
                    if request.confirm {
                        Stats::add(self.refused(), 1);
                        self.shared.report(&error);
                    }
                    last_fault = Some(error);
                    Answer::ServerFault
                }
                Sent::Retained => return self.retain_unresolved(triage.resolved(), None),
            };
            triage.answer(&request, answer);
        }
    }

    /// Keeps the entries of `pending` not yet resolved for a later cycle. `outage`: the
    /// server failed everything lately, with this error.
    fn retain_unresolved(&mut self, resolved: &[bool], outage: Option<Error>) -> Outcome {
        let mut done = resolved.iter();
        self.pending
            .retain(|_| !done.next().copied().unwrap_or(false));
        self.pending_bytes = self.pending.iter().map(|e| e.json.len() + 1).sum();
        self.note_inflight();
        if let Some(error) = outage {
            self.fail_for_now(&error);
        }
        Outcome::Retained
    }

    /// Sends `pending[range]` in one request, paced to the server's limit, retrying
    /// transient failures with backoff when `retries` is set.
    fn send(&mut self, range: Range<usize>, deadline: Option<Instant>, retries: bool) -> Sent {
        // More entries waiting behind this request: the cycle's own, or new ones.
        let backlogged = self.pending.len() > range.len() || !self.shared.buffer.is_empty();
        let n = range.len() as u64;
        let body = self.batch_body(range);
        let max_retries = if retries {
            self.shared.config.max_retries
        } else {
            0
        };
        let mut attempt = 0;
        loop {
            if !self.wait_for_pacer() {
                return Sent::Retained;
            }
            let Some(timeout) = self.request_timeout(deadline) else {
                return Sent::Retained;
            };
            let error = match self.post(&body, n, timeout, backlogged) {
                Ok(reply) => {
                    self.record_reply(&reply, n, body.len());
                    return Sent::Done;
                }
                Err(error) => error,
            };
            match error {
                // Not a failure and no retry used up: the batch waits, whole. With a model
                // of the server's limit the pacer does the waiting, here, and probes again
                // long before Logwell's blanket `Retry-After: 60`; without one, the run
                // loop (or the close deadline) waits as long as the server asks.
                Error::Http {
                    status: 429,
                    retry_after,
                    ..
                } => {
                    if self.record_rate_limit(retry_after) {
                        return Sent::Retained;
                    }
                }
                Error::Http {
                    status: 400 | 413, ..
                } if n > 1 => return Sent::Split,
                e if e.retryable() => {
                    if attempt >= max_retries && e.may_be_poison() {
                        return Sent::ServerFault(e);
                    }
                    if !self.back_off(&e, attempt, max_retries) {
                        self.fail_for_now(&e);
                        return Sent::Retained;
                    }
                    attempt += 1;
                    Stats::add(&self.shared.stats.retries, 1);
                }
                e @ Error::BadReply(_) => {
                    // The server took the batch with 2xx; resending could duplicate it.
                    let s = &self.shared;
                    Stats::add(self.taken(), n);
                    Stats::add(&s.stats.batches, 1);
                    Stats::add(&s.stats.bytes_sent, body.len() as u64);
                    s.report(&e);
                    return Sent::Done;
                }
                e => {
                    Stats::add(self.refused(), n);
                    self.shared.report(&e);
                    return Sent::Done;
                }
            }
        }
    }

    /// The request body for `pending[range]`.
    fn batch_body(&self, range: Range<usize>) -> Vec<u8> {
        let entries = &self.pending[range];
        let size = entries.iter().map(|e| e.json.len() + 1).sum();
        let jsons = entries.iter().map(|e| &e.json[..]);
        let config = &self.shared.config;
        config
            .protocol
            .batch_body(jsons, size, &config.resource_attributes)
    }

    /// Waits, and counts the wait, until the pacer lets the next request go. Returns
    /// false when a close deadline cut the wait short.
    fn wait_for_pacer(&mut self) -> bool {
        let now = Instant::now();
        let Some(at) = self.pacer.ready_at(now).filter(|&at| at > now) else {
            return true;
        };
        Stats::add(&self.shared.stats.paced_waits, 1);
        let slept = self.sleep(at - now, false);
        let waited = now.elapsed().as_millis() as u64;
        Stats::add(&self.shared.stats.paced_wait_ms, waited);
        slept
    }

    /// The next request's timeout: the configured one, cut to what is left before
    /// `deadline`, or before the close deadline when there is none. `None`: no time left.
    fn request_timeout(&self, deadline: Option<Instant>) -> Option<Duration> {
        let s = &self.shared;
        let deadline = deadline.or_else(|| s.deadline());
        let timeout = deadline.map_or(s.config.timeout, |d| {
            s.config
                .timeout
                .min(d.saturating_duration_since(Instant::now()))
        });
        (!timeout.is_zero()).then_some(timeout)
    }

    /// Posts `body` once, and tells the pacer of the request and of whether the server's
    /// limiter counted it.
    fn post(
        &mut self,
        body: &[u8],
        n: u64,
        timeout: Duration,
        backlogged: bool,
    ) -> Result<Reply, Error> {
        let start = Instant::now();
        self.pacer.on_send(start);
        let result = self.transport.post(body, n, timeout);
        match &result {
            // Not counted by the server's limiter: refused by it, or never reached it
            // (a gateway's 502-504, a network error).
            Err(
                Error::Http {
                    status: 429 | 502..=504,
                    ..
                }
                | Error::Network(_),
            ) => {}
            other => self.pacer.on_charged(start, other.is_ok(), backlogged),
        }
        result
    }

    /// Counts a request of `n` entries and `bytes` bytes the server answered, reports
    /// what it rejected, and tells the owner what it took.
    fn record_reply(&mut self, reply: &Reply, n: u64, bytes: usize) {
        if self.schedule.answered() {
            self.spool_server_back();
        }
        let s = &self.shared;
        Stats::add(self.taken(), reply.accepted);
        let rejected = if self.replaying {
            &s.stats.replay_failed
        } else {
            &s.stats.rejected_by_server
        };
        Stats::add(rejected, reply.rejected);
        Stats::add(&s.stats.batches, 1);
        Stats::add(&s.stats.bytes_sent, bytes as u64);
        s.replies.lock().add(reply);
        if reply.rejected > 0 {
            s.report(&Error::Rejected {
                rejected: reply.rejected,
                total: n,
                reasons: reply.errors.join("; "),
            });
        }
        if reply.accepted > 0 {
            s.events.delivered(reply.accepted);
        }
    }

    /// The counter of entries the server took: `sent`, or `replayed` for the spool's.
    fn taken(&self) -> &AtomicU64 {
        let stats = &self.shared.stats;
        if self.replaying {
            &stats.replayed
        } else {
            &stats.sent
        }
    }

    /// The counter of entries the server refused for good: `failed`, or `replay_failed`.
    fn refused(&self) -> &AtomicU64 {
        let stats = &self.shared.stats;
        if self.replaying {
            &stats.replay_failed
        } else {
            &stats.failed
        }
    }

    /// Counts a 429 and tells the pacer. Without a model of the server's limit, holds
    /// the batch as long as the server asks, and returns true.
    fn record_rate_limit(&mut self, retry_after: Option<Duration>) -> bool {
        let wait = self.pacer.on_limited(Instant::now(), retry_after);
        let stats = &self.shared.stats;
        Stats::add(&stats.rate_limited_waits, 1);
        Stats::add(
            &stats.rate_limited_wait_ms,
            retry_after.unwrap_or(wait).as_millis() as u64,
        );
        if self.paced {
            return false;
        }
        self.schedule.hold(Instant::now() + wait);
        true
    }

    /// Waits out the backoff before retry `attempt + 1` of a transient failure. False,
    /// without waiting, once the retries are used up or when the wait would end past the
    /// close deadline; false too when a close cut the wait short.
    fn back_off(&mut self, error: &Error, attempt: u32, max_retries: u32) -> bool {
        // Drawn even when no retry is left: the jitter moves on with every failure.
        let delay = retry_delay(error, attempt, self.jitter.sample());
        let past_deadline = self
            .shared
            .deadline()
            .is_some_and(|d| Instant::now() + delay > d);
        attempt < max_retries && !past_deadline && self.sleep(delay, true)
    }

    /// A delivery failed and is given up on for this cycle: the next waits for a tick or
    /// a flush, and past any `Retry-After` the server sent. Reports the error.
    fn fail_for_now(&mut self, error: &Error) {
        if let Some(ra) = error.retry_after() {
            self.schedule.hold(Instant::now() + ra);
        }
        self.schedule.failed();
        self.shared.report(error);
    }

    /// Sleeps `d` unless a close deadline falls before its end; returns whether it slept.
    /// While waiting, what memory cannot keep is written to the spool every second; with
    /// `retrying` (a failed request waits for its retry), what is queued behind it too.
    fn sleep(&mut self, d: Duration, retrying: bool) -> bool {
        let end = Instant::now() + d;
        // Pushes need not wake us while we wait.
        self.shared.wake_pending.store(true, Ordering::Release);
        loop {
            let deadline = self.shared.deadline();
            // Past the close deadline, or dropped without a close: no more waiting.
            if deadline.is_some_and(|dl| end > dl)
                || (deadline.is_none() && !self.shared.lifecycle.is_open())
            {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::park_timeout((end - now).min(self.wait_slice()));
            self.spill_while_waiting(retrying);
        }
    }

    fn report_overflow(&mut self) {
        let total = self.shared.overflowed.load(Ordering::Acquire);
        if total > self.overflow_reported {
            let dropped = total - self.overflow_reported;
            self.overflow_reported = total;
            self.shared.report(&Error::QueueOverflow { dropped });
        }
    }

    /// Delivers what it can before the close deadline, waiting out a 429 if the wait ends
    /// in time, then writes the rest to the spool, or counts it as dropped.
    fn drain_for_close(&mut self) {
        let deadline = self.shared.deadline().unwrap_or_else(Instant::now);
        let deadline = self.sending_deadline(deadline);
        self.schedule.closing();
        loop {
            if let Some(hold) = self.schedule.take_hold() {
                let now = Instant::now();
                if hold > now && (hold >= deadline || !self.sleep(hold - now, false)) {
                    break;
                }
            }
            self.fill_pending();
            if self.pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            if let Outcome::Retained = self.deliver(Some(deadline)) {
                if self.schedule.held_until().is_none() {
                    break;
                }
            }
        }
        self.spill_evicted();
        self.spill_backlog();
        self.close_spool();
        self.report_overflow();
        let mut lost = self.pending.len() as u64;
        self.clear_pending();
        while self.shared.buffer.pop().is_some() {
            lost += 1;
        }
        self.shared.give_up_at_close(lost);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::errors::ErrorCode;
    use httpmock::prelude::*;

    #[derive(Default)]
    struct Recorder {
        errors: Mutex<Vec<ErrorCode>>,
        delivered: AtomicU64,
    }

    impl Events for Arc<Recorder> {
        fn error(&self, error: &Error) {
            self.errors.lock().push(error.code());
        }
        fn delivered(&self, count: u64) {
            self.delivered.fetch_add(count, Ordering::Relaxed);
        }
    }

    fn shipper(endpoint: &str, tweak: impl FnOnce(&mut Settings)) -> (Shipper, Arc<Recorder>) {
        let mut s = Settings {
            api_key: format!("lw_{}", "k".repeat(32)),
            endpoint: endpoint.to_owned(),
            ..Settings::default()
        };
        tweak(&mut s);
        let rec = Arc::new(Recorder::default());
        let config = Config::new(&s).expect("valid config");
        (
            Shipper::new(config, Box::new(Arc::clone(&rec)), Arc::default()),
            rec,
        )
    }

    fn entry(i: usize) -> Vec<u8> {
        format!(r#"{{"level":"info","message":"m{i}"}}"#).into_bytes()
    }

    #[test]
    fn a_paused_thread_is_gone_and_resumes_with_what_it_held() {
        let server = MockServer::start();
        let m = server.mock(|when, then| {
            when.method(POST).path("/v1/ingest");
            then.status(200).body(r#"{"accepted":2}"#);
        });
        let (sh, _) = shipper(&server.base_url(), |s| s.flush_interval = 60.0);
        assert!(
            sh.pause(Duration::from_secs(10)),
            "a shipper with no thread yet has nothing to stop"
        );
        sh.push(entry(0), Level::Info);
        assert!(sh.pause(Duration::from_secs(10)));
        assert!(
            sh.handle.lock().is_none(),
            "no thread of ours across a fork"
        );
        assert!(
            sh.pause(Duration::from_secs(10)),
            "pausing twice is harmless"
        );
        sh.push(entry(1), Level::Info);
        // Nothing can be sent while paused: the flush waits its whole timeout.
        assert!(!sh.flush(Duration::from_millis(100)));
        assert_eq!(m.calls(), 0);
        sh.resume();
        sh.resume();
        assert!(sh.flush(Duration::from_secs(10)));
        assert_eq!(sh.stats().sent, 2);
        assert!(sh.pause(Duration::from_secs(10)));
        // A close from a paused state drains like any other.
        sh.push(entry(2), Level::Info);
        assert_eq!(sh.close(Duration::from_secs(5)), 0);
        assert_eq!(sh.stats().sent, 3);
    }

    #[test]
    fn a_thread_busy_in_a_request_is_left_running_and_loses_nothing() {
        let server = MockServer::start();
        server.mock(|when, then| {
            when.method(POST).path("/v1/ingest");
            then.status(200)
                .delay(Duration::from_secs(2))
                .body(r#"{"accepted":1}"#);
        });
        let (sh, _) = shipper(&server.base_url(), |s| s.flush_interval = 60.0);
        sh.push(entry(0), Level::Info);
        assert!(
            !sh.flush(Duration::ZERO),
            "asks for the send, waits for nothing"
        );
        let sent = Instant::now();
        while sh.shared.inflight_min_seq.load(Ordering::Acquire) == u64::MAX {
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "the request never began"
            );
            thread::yield_now();
        }
        let asked = Instant::now();
        assert!(!sh.pause(PAUSE_WAIT), "in a request: left running");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        assert!(sh.handle.lock().is_some());
        sh.resume();
        assert!(sh.flush(Duration::from_secs(10)));
        assert_eq!(sh.stats().sent, 1);
    }

    #[test]
    fn a_panic_in_the_thread_is_reported_counted_and_never_a_hang() {
        struct Panics(Arc<Recorder>);
        impl Events for Panics {
            fn error(&self, error: &Error) {
                self.0.errors.lock().push(error.code());
            }
            fn delivered(&self, _: u64) {
                panic!("a bug in a callback");
            }
        }
        let server = MockServer::start();
        server.mock(|when, then| {
            when.method(POST).path("/v1/ingest");
            then.status(200).body(r#"{"accepted":2}"#);
        });
        let rec = Arc::new(Recorder::default());
        let settings = Settings {
            api_key: format!("lw_{}", "k".repeat(32)),
            endpoint: server.base_url(),
            flush_interval: 60.0,
            ..Settings::default()
        };
        let config = Config::new(&settings).expect("valid config");
        let sh = Shipper::new(config, Box::new(Panics(Arc::clone(&rec))), Arc::default());
        for i in 0..2 {
            sh.push(entry(i), Level::Info);
        }
        let asked = Instant::now();
        // The thread panics after the request, as the owner hears of it: this flush's
        // entries were sent, so it succeeds, or it answers at once that it could not.
        sh.flush(Duration::from_secs(30));
        sh.push(entry(2), Level::Info);
        sh.flush(Duration::from_secs(30));
        assert_eq!(sh.close(Duration::from_secs(30)), 0);
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
        let st = sh.stats();
        assert_eq!(st.sent, 2);
        assert_eq!(st.after_close, 1, "the shipper took no more entries");
        assert_eq!(st.queued(), 0);
        assert_eq!(*rec.errors.lock(), [ErrorCode::ValidationError]);
        let last = sh.shared.stats.snapshot().last_error.expect("reported");
        assert!(
            last.message.contains("a bug in a callback"),
            "{}",
            last.message
        );
    }

    #[test]
    fn flush_delivers_everything_in_batches_of_at_most_100() {
        let server = MockServer::start();
        let m = server.mock(|when, then| {
            when.method(POST).path("/v1/ingest");
            then.status(200).body(r#"{"accepted":100}"#);
        });
        let (sh, rec) = shipper(&server.base_url(), |s| s.batch_size = 100);
        for i in 0..300 {
            sh.push(entry(i), Level::Info);
        }
        assert!(sh.flush(Duration::from_secs(10)));
        let st = sh.stats();
        assert_eq!(st.sent, 300);
        assert_eq!(st.batches, 3);
        assert_eq!(m.calls(), 3);
        assert_eq!(rec.delivered.load(Ordering::Relaxed), 300);
        assert_eq!(sh.close(Duration::from_secs(1)), 0);
    }

    #[test]
    fn retries_through_server_errors_without_loss() {
        let server = MockServer::start();
        let mut failing = server.mock(|when, then| {
            when.method(POST);
            then.status(503);
        });
        let (sh, rec) = shipper(&server.base_url(), |s| s.max_retries = 10);
        sh.push(entry(0), Level::Info);
        let pusher = thread::spawn(move || {
            let ok = sh.flush(Duration::from_secs(10));
            (sh, ok)
        });
        thread::sleep(Duration::from_millis(250));
        failing.delete();
        server.mock(|_, then| {
            then.status(200).body(r#"{"accepted":1}"#);
        });
        let (sh, ok) = pusher.join().expect("flush thread");
        assert!(ok);
        let st = sh.stats();
        assert_eq!(st.sent, 1);
        assert!(st.retries >= 1);
        assert!(
            rec.errors.lock().is_empty(),
            "retried errors are not reported"
        );
    }

    #[test]
    fn permanent_refusal_counts_batch_failed_and_reports() {
        let server = MockServer::start();
        server.mock(|_, then| {
            then.status(401).body(r#"{"error":"unauthorized"}"#);
        });
        let (sh, rec) = shipper(&server.base_url(), |_| {});
        sh.push(entry(0), Level::Info);
        sh.push(entry(1), Level::Info);
        assert!(
            sh.flush(Duration::from_secs(5)),
            "a refusal resolves the entries"
        );
        let st = sh.stats();
        assert_eq!((st.sent, st.failed, st.retries), (0, 2, 0));
        assert_eq!(*rec.errors.lock(), vec![ErrorCode::Unauthorized]);
        let last = st.last_error.expect("an error");
        assert_eq!(last.code, ErrorCode::Unauthorized);
        assert!(last.message.contains("401"), "{}", last.message);
    }

    #[test]
    fn unreachable_server_overflows_and_close_is_bounded() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let (sh, rec) = shipper(&format!("http://127.0.0.1:{port}"), |s| {
            s.max_queue_size = 10;
            s.max_retries = 1;
        });
        for i in 0..25 {
            sh.push(entry(i), Level::Info);
        }
        assert!(!sh.flush(Duration::from_millis(500)));
        let start = Instant::now();
        assert_eq!(sh.close(Duration::from_millis(500)), 10);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let st = sh.stats();
        assert_eq!(
            (st.dropped_overflow, st.dropped_at_close),
            (15, 10),
            "15 overflowed, 10 undelivered at close"
        );
        assert_eq!(st.queued(), 0);
        let errors = rec.errors.lock();
        assert!(errors.contains(&ErrorCode::QueueOverflow), "{errors:?}");
        assert!(errors.contains(&ErrorCode::NetworkError), "{errors:?}");
    }

    #[test]
    fn idle_shipper_closes_at_once_and_ignores_later_pushes() {
        let (sh, _) = shipper("http://127.0.0.1:9", |_| {});
        assert!(sh.flush(Duration::from_millis(10)));
        assert_eq!(sh.close(Duration::from_secs(1)), 0);
        sh.push(entry(0), Level::Info);
        assert_eq!(sh.stats().after_close, 1);
        assert_eq!(sh.stats().enqueued, 0);
    }

    #[test]
    fn a_batch_refused_with_400_is_split_until_the_bad_entry_is_alone() {
        let server = MockServer::start();
        let poisoned = server.mock(|when, then| {
            when.method(POST).body_includes("POISON");
            then.status(400)
                .body(r#"{"error":"validation_error","message":"bad entry"}"#);
        });
        // Every clean request here carries one entry: accepting 1 is the truth.
        let clean = server.mock(|when, then| {
            when.method(POST).body_excludes("POISON");
            then.status(200).body(r#"{"accepted":1}"#);
        });
        let (sh, rec) = shipper(&server.base_url(), |s| s.batch_size = 100);
        sh.push(entry(0), Level::Info);
        sh.push(
            br#"{"level":"info","message":"POISON"}"#.to_vec(),
            Level::Info,
        );
        assert!(sh.flush(Duration::from_secs(5)));
        let st = sh.stats();
        assert_eq!((st.sent, st.failed), (1, 1), "{st:?}");
        assert_eq!(poisoned.calls(), 2, "the pair, then the bad entry alone");
        assert_eq!(clean.calls(), 1);
        assert_eq!(*rec.errors.lock(), vec![ErrorCode::ValidationError]);
        let last = st.last_error.expect("the server's reason");
        assert!(last.message.contains("bad entry"), "{}", last.message);
    }

    #[test]
    fn a_429_holds_the_batch_and_is_counted_as_a_wait() {
        let server = MockServer::start();
        let mut limited = server.mock(|_, then| {
            then.status(429).header("Retry-After", "1");
        });
        let (sh, rec) = shipper(&server.base_url(), |_| {});
        sh.push(entry(0), Level::Info);
        assert!(
            !sh.flush(Duration::from_millis(300)),
            "held while the server refuses"
        );
        let waits = sh.stats().rate_limited_waits;
        assert!(waits >= 1, "{waits}");
        limited.delete();
        server.mock(|_, then| {
            then.status(200).body(r#"{"accepted":1}"#);
        });
        assert!(sh.flush(Duration::from_secs(5)));
        let st = sh.stats();
        assert_eq!(st.sent, 1);
        assert!(st.rate_limited_waits >= waits, "{st:?}");
        // What the server asked for, counted, though the pacer waited less.
        assert_eq!(st.rate_limited_wait_ms, 1000 * st.rate_limited_waits);
        assert_eq!(st.retries, 0);
        assert!(rec.errors.lock().is_empty(), "a wait is not an error");
    }

    #[test]
    fn a_batch_failing_with_500_is_split_until_the_entry_the_server_cannot_store_is_alone() {
        let server = MockServer::start();
        let poisoned = server.mock(|when, then| {
            when.method(POST).body_includes("POISON");
            then.status(500)
                .body(r#"{"id":"x","message":"Internal server error"}"#);
        });
        server.mock(|when, then| {
            when.method(POST).body_excludes("POISON");
            then.status(200).body(r#"{"accepted":1}"#);
        });
        let (sh, rec) = shipper(&server.base_url(), |s| {
            s.batch_size = 100;
            s.max_retries = 1;
        });
        sh.push(
            br#"{"level":"info","message":"POISON"}"#.to_vec(),
            Level::Info,
        );
        for i in 0..7 {
            sh.push(entry(i), Level::Info);
        }
        assert!(sh.flush(Duration::from_secs(10)));
        let st = sh.stats();
        // The mock accepts "1" per request: what matters is the poison alone failed.
        assert_eq!(st.failed, 1, "{st:?}");
        assert_eq!(st.queued(), 0, "{st:?}");
        // The whole batch twice (one retry), halves down to the entry alone, and that
        // alone again, with its retry, once the server took the entry beside it.
        assert_eq!(poisoned.calls(), 2 + 1 + 1 + 1 + 2, "{st:?}");
        let errors = rec.errors.lock();
        let server_errors = errors.iter().filter(|&&c| c == ErrorCode::ServerError);
        assert_eq!(server_errors.count(), 1, "{errors:?}");
    }

    #[test]
    fn a_server_failing_everything_is_an_outage_not_poison() {
        let server = MockServer::start();
        let mut failing = server.mock(|_, then| {
            then.status(500)
                .body("<html><title>Bad Gateway</title></html>");
        });
        let (sh, rec) = shipper(&server.base_url(), |s| {
            s.batch_size = 100;
            s.max_retries = 0;
            s.flush_interval = 0.2;
        });
        for i in 0..40 {
            sh.push(entry(i), Level::Info);
        }
        assert!(!sh.flush(Duration::from_millis(600)));
        let st = sh.stats();
        assert_eq!((st.failed, st.queued()), (0, 40), "{st:?}");
        assert!(failing.calls() >= 2, "split, then gave up for now");
        assert!(rec.errors.lock().contains(&ErrorCode::ServerError));
        failing.delete();
        server.mock(|_, then| {
            then.status(200).body(r#"{"accepted":40}"#);
        });
        assert!(sh.flush(Duration::from_secs(5)));
        let st = sh.stats();
        assert_eq!((st.sent, st.failed), (40, 0), "{st:?}");
    }

    #[test]
    fn entries_a_request_large_make_a_batch_whatever_their_count() {
        let server = MockServer::start();
        let m = server.mock(|_, then| {
            then.status(200).body(r#"{"accepted":100}"#);
        });
        // Defaults: a batch is 50 entries, the tick 5 s away.
        let (sh, _) = shipper(&server.base_url(), |_| {});
        let big = format!(r#"{{"level":"info","message":"{}"}}"#, "x".repeat(8 * 1024));
        for _ in 0..40 {
            sh.push(big.clone().into_bytes(), Level::Info);
        }
        let start = Instant::now();
        while sh.stats().queued() > 0 && start.elapsed() < Duration::from_secs(4) {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sh.stats().queued(), 0, "all sent before the tick");
        assert_eq!(
            m.calls(),
            2,
            "one request's worth, then the rest of the burst"
        );
    }

    #[test]
    fn requests_wait_for_the_budget_and_count_the_wait() {
        let server = MockServer::start();
        server.mock(|_, then| {
            then.status(200).body(r#"{"accepted":1}"#);
        });
        let (sh, _) = shipper(&server.base_url(), |s| {
            s.batch_size = 1;
            s.max_requests_per_minute = 120;
        });
        let start = Instant::now();
        for i in 0..122 {
            sh.push(entry(i), Level::Info);
            assert!(sh.flush(Duration::from_secs(5)));
        }
        // 120 from the full bucket, then one every ~0.5 s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "{took:?}");
        let st = sh.stats();
        assert!(st.paced_waits >= 1 && st.paced_wait_ms >= 400, "{st:?}");
        assert_eq!(st.rate_limited_waits, 0);
    }

    /// A server that fails every batch holding "POISON" with 500 and takes any other
    /// whole (a count above the batch's is read as the batch).
    fn poisoning_server() -> MockServer {
        let server = MockServer::start();
        server.mock(|when, then| {
            when.method(POST).body_includes("POISON");
            then.status(500)
                .body(r#"{"id":"x","message":"Internal server error"}"#);
        });
        server.mock(|when, then| {
            when.method(POST).body_excludes("POISON");
            then.status(200).body(r#"{"accepted":100}"#);
        });
        server
    }

    #[test]
    fn a_run_of_bad_entries_costs_only_those_entries() {
        let server = poisoning_server();
        let (sh, _) = shipper(&server.base_url(), |s| {
            s.batch_size = 100;
            s.max_retries = 1;
        });
        for i in 0..100 {
            if (20..24).contains(&i) || i < 3 {
                sh.push(
                    format!(r#"{{"level":"info","message":"POISON {i}"}}"#).into_bytes(),
                    Level::Info,
                );
            } else {
                sh.push(entry(i), Level::Info);
            }
        }
        assert!(sh.flush(Duration::from_secs(30)));
        let st = sh.stats();
        assert_eq!((st.sent, st.failed, st.queued()), (93, 7, 0), "{st:?}");
    }

    #[test]
    fn a_run_of_bad_entries_ending_a_batch_is_told_apart_by_the_entries_behind_it() {
        // Entries of 2 731 bytes: a batch stops at 96 (`SOFT_MAX_REQUEST_BYTES`), inside
        // the run 90..100, so nothing of it is taken after the run fails. The cycle is a
        // flush's, with all 200 queued: no later flush or tick comes to try again. The
        // entries queued behind the batch tell bad entries from an outage.
        let server = poisoning_server();
        let (sh, _) = shipper(&server.base_url(), |s| {
            s.batch_size = 100;
            s.max_retries = 1;
            s.flush_interval = 60.0;
        });
        for i in 0..200 {
            let word = if (90..100).contains(&i) {
                "POISON"
            } else {
                "good"
            };
            let mut json = format!(r#"{{"level":"info","message":"{word} {i:03} "#).into_bytes();
            json.resize(2729, b'x');
            json.extend_from_slice(br#""}"#);
            sh.push(json, Level::Info);
            if i == 0 {
                assert!(sh.pause(Duration::from_secs(10)));
            }
        }
        // Asked while paused: the thread's first cycle answers it.
        assert!(!sh.flush(Duration::ZERO));
        sh.resume();
        let deadline = Instant::now() + Duration::from_secs(30);
        while sh.shared.stats.resolved() < 200 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let st = sh.stats();
        assert_eq!((st.sent, st.failed, st.queued()), (190, 10, 0), "{st:?}");
    }

    #[test]
    fn a_bad_entry_last_in_its_batch_is_failed_in_the_same_cycle() {
        let server = poisoning_server();
        let (sh, rec) = shipper(&server.base_url(), |s| {
            s.batch_size = 100;
            s.max_retries = 1;
            s.flush_interval = 60.0;
        });
        for i in 0..7 {
            sh.push(entry(i), Level::Info);
        }
        sh.push(
            br#"{"level":"info","message":"POISON"}"#.to_vec(),
            Level::Info,
        );
        assert!(sh.flush(Duration::from_secs(10)));
        let st = sh.stats();
        assert_eq!((st.sent, st.failed, st.queued()), (7, 1, 0), "{st:?}");
        let errors = rec.errors.lock();
        assert_eq!(
            *errors,
            vec![ErrorCode::ServerError],
            "only the confirmed failure"
        );
        drop(errors);
        assert_eq!(sh.close(Duration::from_secs(1)), 0);
    }

    #[test]
    fn a_flush_returns_once_the_retries_are_spent_and_keeps_the_entries() {
        let server = MockServer::start();
        server.mock(|when, then| {
            when.method(POST).path("/v1/ingest");
            then.status(503).body("down");
        });
        let (sh, _) = shipper(&server.base_url(), |s| {
            s.max_retries = 1;
            s.flush_interval = 60.0;
        });
        sh.push(entry(0), Level::Info);
        let start = Instant::now();
        assert!(!sh.flush(Duration::from_secs(30)));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(sh.stats().queued(), 1, "kept for the next try");
        assert_eq!(sh.close(Duration::ZERO), 1);
    }

    #[test]
    fn what_the_server_said_is_summed_in_its_own_words() {
        let mut replies = ServerReplies::default();
        let reply = |accepted, said_rejected, errors: &[&str]| Reply {
            accepted,
            rejected: 0,
            said_rejected,
            errors: errors.iter().map(|e| (*e).to_owned()).collect(),
        };
        replies.add(&reply(3, None, &[]));
        replies.add(&reply(1, Some(2), &["a", "b"]));
        let said = replies.said;
        assert_eq!(
            (
                said.replies,
                said.accepted,
                said.rejected,
                said.rejected_given,
                said.reasons_given
            ),
            (2, 4, 2, 1, 2)
        );
        for i in 0..MAX_SERVER_ERRORS {
            replies.add(&reply(0, Some(1), &[&format!("e{i}")]));
        }
        assert_eq!(replies.recent_errors.len(), MAX_SERVER_ERRORS, "bounded");
        assert_eq!(replies.said.reasons_given, 2 + MAX_SERVER_ERRORS as u64);
    }
}
