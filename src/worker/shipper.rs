//! The owner's handle: pushes entries, starts, pauses and resumes the flush thread, and
//! waits on it in `flush` and `close`, each against a deadline.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{
    after, later, wait_for_exit, Events, Said, ServerReplies, Shared, Shipper, Worker, CLOSE_GRACE,
    PAUSE_ASKED, PAUSING, RUNNING,
};
use crate::buffer::Buffer;
use crate::config::Config;
use crate::errors::{panic_text, Error};
use crate::fork;
use crate::lifecycle::{Lifecycle, State};
use crate::protocol::logwell::Level;
use crate::stats::{Snapshot, Stats};

impl Shipper {
    /// The thread starts on the first push, so a handler built before `fork()`
    /// and never used there starts its own thread in the child; with a spool, at once.
    /// `lifecycle`: the shipper's state, which `events` may read too.
    pub fn new(config: Config, events: Box<dyn Events>, lifecycle: Arc<Lifecycle>) -> Shipper {
        let shipper = Shipper::unstarted(config, events, lifecycle);
        // A spool may hold what an earlier process left: send it without waiting for a
        // first record.
        if shipper.shared.config.spool.is_some() {
            shipper.start();
        }
        shipper
    }

    /// A shipper whose thread is not started (the simulator runs it itself).
    pub(super) fn unstarted(
        config: Config,
        events: Box<dyn Events>,
        lifecycle: Arc<Lifecycle>,
    ) -> Shipper {
        let buffer = Buffer::new(
            config.max_queue_size,
            config.max_queue_bytes,
            config.spool.is_some(),
        );
        Shipper {
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
                #[cfg(any(test, fuzzing))]
                wakes: AtomicU64::new(0),
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
        }
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
        s.enqueue(json, level);
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
        let mark = s.flush_mark();
        let done = || s.flushed(mark);
        if done() {
            return true;
        }
        if self.on_worker() || !self.started() || s.lifecycle.state() == State::Closed {
            return false;
        }
        let ticket = s.ask_flush();
        let deadline = after(timeout);
        self.wait_until(deadline, || done() || s.flush_stalled(ticket, deadline));
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
        self.shared.close_by(after(timeout));
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
