//! When the flush thread sends: at the `flush_interval` tick, when a flush asks, when a
//! batch is full, when a burst is over, never before a wait the server asked for, and
//! only at the tick or on a flush while the server fails. Sans-I/O: it is told the time
//! and what the thread sees, and answers whether to run a cycle or until when to sleep.

use std::time::{Duration, Instant};

/// The last entries of a burst, fewer than a batch, go once no record was logged for
/// this long, instead of waiting for the flush tick.
pub const BURST_QUIET: Duration = Duration::from_millis(50);

pub struct Schedule {
    interval: Duration,
    /// When the next `flush_interval` tick is due.
    next_tick: Instant,
    /// The last flush request a cycle answered (`Shared::flush_requests`).
    flushes_seen: u64,
    /// The cycle running answers a flush or the tick: the next tick is an interval after
    /// its end.
    restart_tick: bool,
    /// The server asked (`Retry-After`) not to be sent anything before this.
    hold_until: Option<Instant>,
    /// The last delivery failed: the next cycle waits for a tick or a flush, not for a
    /// full batch.
    failing: bool,
    /// A batch read back from the spool failed whole: the spool is tried again at the
    /// tick, while what is logged goes as usual (the failure may be that batch's own).
    replay_resting: bool,
    /// After a full batch went with entries left behind: when to look again, and how
    /// many records had been logged then. If none were logged since, the burst is over.
    burst_tail: Option<(Instant, u64)>,
}

/// What the thread sees at the top of its loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// Flushes asked for so far (`Shared::flush_requests`).
    pub flushes: u64,
    /// A batch's worth of entries waits (by count or by bytes).
    pub batch_waiting: bool,
    /// Any entry waits, held by the thread or in the buffer.
    pub waiting: bool,
    /// Records logged so far.
    pub logged: u64,
    /// Nothing is held and the spool has entries to send again.
    pub replayable: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Run a cycle: send what waits (`send`), then read back a spooled batch and send it
    /// (`replay`). `full`: a full batch started it.
    Cycle {
        send: bool,
        replay: bool,
        full: bool,
    },
    /// Nothing may go: sleep until `until`, or until woken. `quiet`: a full buffer is no
    /// reason to wake (the server fails, or asked for a wait). `stalled`: the flushes
    /// asked for so far cannot be answered before this (the end of the server's wait).
    Sleep {
        until: Instant,
        quiet: bool,
        stalled: Option<Instant>,
    },
}

impl Schedule {
    pub fn new(interval: Duration, now: Instant) -> Schedule {
        Schedule {
            interval,
            next_tick: now + interval,
            flushes_seen: 0,
            restart_tick: false,
            hold_until: None,
            failing: false,
            replay_resting: false,
            burst_tail: None,
        }
    }

    /// What to do at `now`. A `Cycle` is answered with `cycle_done` once it has run.
    pub fn plan(&mut self, now: Instant, seen: &Seen) -> Plan {
        let held = self.hold_until.filter(|&t| t > now);
        // A wait the server asked for is over: carry on with what it held up.
        let resume = held.is_none() && self.hold_until.take().is_some();
        let flush_wanted = seen.flushes != self.flushes_seen || resume;
        let tick = now >= self.next_tick;
        let full = !self.failing && seen.batch_waiting;
        let tail = self.burst_over(now, seen);
        let send = flush_wanted || tick || full || tail;
        // While the server or the spool's last batch fails, a replay is a probe, at the
        // tick.
        let replay =
            held.is_none() && seen.replayable && (!(self.failing || self.replay_resting) || tick);
        if held.is_some() || !(send || replay) {
            let mut until = held.unwrap_or(self.next_tick);
            if let Some((look, _)) = self.burst_tail {
                until = until.min(look);
            }
            return Plan::Sleep {
                until,
                quiet: held.is_some() || self.failing,
                stalled: held.filter(|_| flush_wanted),
            };
        }
        self.flushes_seen = seen.flushes;
        self.restart_tick = flush_wanted || tick;
        if replay {
            self.replay_resting = false;
        }
        Plan::Cycle { send, replay, full }
    }

    /// A cycle `plan` asked for has run, ending at `now` with `seen`. A full batch that
    /// left entries behind looks for the end of the burst.
    pub fn cycle_done(&mut self, now: Instant, full: bool, seen: &Seen) {
        if std::mem::take(&mut self.restart_tick) {
            self.next_tick = now + self.interval;
        }
        if full && !self.failing && seen.waiting {
            self.burst_tail = Some((now + BURST_QUIET, seen.logged));
        }
    }

    /// Whether the tail of a burst is due: entries were left behind a full batch and no
    /// record was logged for `BURST_QUIET`. While records keep coming, it looks again
    /// later; they make batches of their own.
    fn burst_over(&mut self, now: Instant, seen: &Seen) -> bool {
        let Some((look, logged)) = self.burst_tail else {
            return false;
        };
        if now < look {
            return false;
        }
        self.burst_tail = None;
        if !seen.waiting {
            return false;
        }
        if seen.logged != logged {
            self.burst_tail = Some((now + BURST_QUIET, seen.logged));
            return false;
        }
        true
    }

    /// Nothing is sent before `until` (the server's `Retry-After`, or its 429 where no
    /// pacer models its limit).
    pub fn hold(&mut self, until: Instant) {
        self.hold_until = Some(until);
    }

    /// The wait the server asked for, if one is on.
    pub fn held_until(&self) -> Option<Instant> {
        self.hold_until
    }

    /// Ends the wait the server asked for (closing: waited out or given up), saying when
    /// it was to end.
    pub fn take_hold(&mut self) -> Option<Instant> {
        self.hold_until.take()
    }

    /// A delivery failed and was given up on for this cycle.
    pub fn failed(&mut self) {
        self.failing = true;
    }

    /// A batch read back from the spool failed whole, nothing of it taken: bad entries,
    /// or an outage that what is logged will show.
    pub fn replay_failed(&mut self) {
        self.replay_resting = true;
    }

    /// The server answered a request; returns whether it had been failing.
    pub fn answered(&mut self) -> bool {
        std::mem::replace(&mut self.failing, false)
    }

    pub fn failing(&self) -> bool {
        self.failing
    }

    /// Whether the tick's cycle runs at `now`: the tick is due, and no wait the server
    /// asked for holds it back.
    pub fn probe_due(&self, now: Instant) -> bool {
        now >= self.next_tick && self.hold_until.is_none_or(|t| t <= now)
    }

    /// Closing: what is left is tried once more, whatever the last delivery did.
    pub fn closing(&mut self) {
        self.failing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn start() -> (Schedule, Instant) {
        let t0 = Instant::now();
        (Schedule::new(5 * SECOND, t0), t0)
    }

    fn cycle(send: bool, replay: bool, full: bool) -> Plan {
        Plan::Cycle { send, replay, full }
    }

    fn sleep(until: Instant, quiet: bool) -> Plan {
        Plan::Sleep {
            until,
            quiet,
            stalled: None,
        }
    }

    #[test]
    fn an_idle_thread_sleeps_until_the_tick_and_sends_then() {
        let (mut s, t0) = start();
        let idle = Seen::default();
        assert_eq!(s.plan(t0, &idle), sleep(t0 + 5 * SECOND, false));
        assert_eq!(s.plan(t0 + 5 * SECOND, &idle), cycle(true, false, false));
        // The next tick is an interval after the cycle's end.
        s.cycle_done(t0 + 6 * SECOND, false, &idle);
        assert_eq!(
            s.plan(t0 + 7 * SECOND, &idle),
            sleep(t0 + 11 * SECOND, false)
        );
    }

    #[test]
    fn a_flush_runs_a_cycle_at_once_and_moves_the_tick() {
        let (mut s, t0) = start();
        let asked = Seen {
            flushes: 1,
            waiting: true,
            ..Seen::default()
        };
        assert_eq!(s.plan(t0 + SECOND, &asked), cycle(true, false, false));
        s.cycle_done(t0 + SECOND, false, &Seen::default());
        // Answered: the same flush count asks for nothing more.
        assert_eq!(
            s.plan(t0 + 2 * SECOND, &asked),
            sleep(t0 + 6 * SECOND, false)
        );
    }

    #[test]
    fn a_full_batch_sends_but_not_while_the_server_fails() {
        let (mut s, t0) = start();
        let full = Seen {
            batch_waiting: true,
            waiting: true,
            ..Seen::default()
        };
        assert_eq!(s.plan(t0, &full), cycle(true, false, true));
        s.failed();
        s.cycle_done(t0, true, &full);
        assert_eq!(s.plan(t0 + MS, &full), sleep(t0 + 5 * SECOND, true));
        assert_eq!(s.plan(t0 + 5 * SECOND, &full), cycle(true, false, false));
        assert!(s.answered(), "it was failing");
        s.cycle_done(t0 + 5 * SECOND, false, &Seen::default());
        assert_eq!(s.plan(t0 + 5 * SECOND, &full), cycle(true, false, true));
    }

    #[test]
    fn nothing_goes_before_a_wait_the_server_asked_for_and_a_flush_hears_so() {
        let (mut s, t0) = start();
        s.hold(t0 + 60 * SECOND);
        let asked = Seen {
            flushes: 1,
            batch_waiting: true,
            waiting: true,
            ..Seen::default()
        };
        let held = Plan::Sleep {
            until: t0 + 60 * SECOND,
            quiet: true,
            stalled: Some(t0 + 60 * SECOND),
        };
        assert_eq!(s.plan(t0 + SECOND, &asked), held);
        assert_eq!(
            s.plan(t0 + 10 * SECOND, &asked),
            held,
            "not even at the tick"
        );
        // The wait is over: what it held up goes, as if flushed.
        let idle = Seen::default();
        assert_eq!(s.plan(t0 + 60 * SECOND, &idle), cycle(true, false, false));
        assert_eq!(s.held_until(), None);
        s.cycle_done(t0 + 60 * SECOND, false, &idle);
        assert_eq!(
            s.plan(t0 + 61 * SECOND, &idle),
            sleep(t0 + 65 * SECOND, false)
        );
    }

    #[test]
    fn the_tail_of_a_burst_goes_once_no_record_came_for_50_ms() {
        let (mut s, t0) = start();
        let burst = |logged| Seen {
            batch_waiting: true,
            waiting: true,
            logged,
            ..Seen::default()
        };
        assert_eq!(s.plan(t0, &burst(100)), cycle(true, false, true));
        let left = Seen {
            waiting: true,
            logged: 130,
            ..Seen::default()
        };
        s.cycle_done(t0 + 10 * MS, true, &left);
        assert_eq!(s.plan(t0 + 20 * MS, &left), sleep(t0 + 60 * MS, false));
        // Records still coming at the look: look again 50 ms later.
        let more = Seen {
            logged: 140,
            ..left
        };
        assert_eq!(s.plan(t0 + 60 * MS, &more), sleep(t0 + 110 * MS, false));
        assert_eq!(s.plan(t0 + 110 * MS, &more), cycle(true, false, false));
    }

    #[test]
    fn a_burst_with_nothing_left_behind_waits_for_nothing() {
        let (mut s, t0) = start();
        s.cycle_done(t0, true, &Seen::default());
        assert_eq!(
            s.plan(t0 + MS, &Seen::default()),
            sleep(t0 + 5 * SECOND, false)
        );
    }

    #[test]
    fn a_spooled_batch_failing_whole_rests_till_the_tick_while_what_is_logged_goes() {
        let (mut s, t0) = start();
        let spooled = Seen {
            replayable: true,
            ..Seen::default()
        };
        assert_eq!(s.plan(t0, &spooled), cycle(false, true, false));
        s.replay_failed();
        s.cycle_done(t0, false, &spooled);
        let full = Seen {
            batch_waiting: true,
            waiting: true,
            ..spooled
        };
        assert_eq!(
            s.plan(t0 + SECOND, &full),
            cycle(true, false, true),
            "not failing"
        );
        s.cycle_done(t0 + SECOND, true, &spooled);
        assert_eq!(
            s.plan(t0 + 2 * SECOND, &spooled),
            sleep(t0 + 5 * SECOND, false)
        );
        assert_eq!(s.plan(t0 + 5 * SECOND, &spooled), cycle(true, true, false));
        s.cycle_done(t0 + 5 * SECOND, false, &spooled);
        assert_eq!(
            s.plan(t0 + 6 * SECOND, &spooled),
            cycle(false, true, false),
            "tried again at the tick, and taken"
        );
    }

    #[test]
    fn the_spool_is_replayed_when_idle_and_only_at_the_tick_while_failing() {
        let (mut s, t0) = start();
        let spooled = Seen {
            replayable: true,
            ..Seen::default()
        };
        assert_eq!(s.plan(t0, &spooled), cycle(false, true, false));
        s.failed();
        s.cycle_done(t0, false, &spooled);
        assert_eq!(s.plan(t0 + SECOND, &spooled), sleep(t0 + 5 * SECOND, true));
        assert_eq!(s.plan(t0 + 5 * SECOND, &spooled), cycle(true, true, false));
        s.cycle_done(t0 + 5 * SECOND, false, &spooled);
        s.hold(t0 + 70 * SECOND);
        assert_eq!(
            s.plan(t0 + 10 * SECOND, &spooled),
            sleep(t0 + 70 * SECOND, true),
            "not during a wait the server asked for"
        );
    }
}
