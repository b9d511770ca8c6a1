//! The simulated world: a virtual clock, the owner's acts, and a Logwell server with its
//! faults, behind the flush thread's `Io` seam.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::super::io::Io;
use super::super::{FlushMark, Shared, PAUSE_ASKED};
use crate::errors::Error;
use crate::protocol::logwell::Level;
use crate::protocol::{Protocol, Reply};
use crate::transport::classify;

/// A seeded xorshift: the same seed, the same run. Made from a fuzzer's bytes, it hands
/// those out first, two at a time, so that the fuzzer's changes to them shape the run.
pub(in crate::worker) struct Rng {
    state: u64,
    given: Vec<u8>,
}

impl Rng {
    pub(in crate::worker) fn new(seed: u64) -> Rng {
        Rng {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            given: Vec::new(),
        }
    }

    /// Draws `data`, then numbers seeded from it.
    #[cfg(fuzzing)]
    pub(in crate::worker) fn from_bytes(data: &[u8]) -> Rng {
        let mut given: Vec<u8> = data.to_vec();
        given.reverse();
        Rng {
            given,
            ..Rng::new(seed_of(data))
        }
    }

    pub(in crate::worker) fn below(&mut self, n: usize) -> usize {
        if let (Some(a), Some(b)) = (self.given.pop(), self.given.pop()) {
            return usize::from(u16::from_le_bytes([a, b])) % n.max(1);
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % n.max(1) as u64) as usize
    }

    pub(in crate::worker) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(in crate::worker) fn millis(&mut self, below: usize) -> Duration {
        Duration::from_millis(self.below(below) as u64)
    }
}

/// A seed made of a fuzzer's bytes (FNV-1a).
#[cfg(fuzzing)]
pub(super) fn seed_of(data: &[u8]) -> u64 {
    data.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// What the owner does.
#[derive(Clone, Copy, Debug)]
pub(super) enum Act {
    /// Logs entry `id`.
    Log(usize),
    Flush,
    Close(Duration),
    /// The process dies (`kill -9`): the thread stops between two cycles, and what it
    /// holds in memory is gone.
    Kill,
}

/// How the server fails for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outage {
    /// Every request answered 500 (Logwell's database down).
    Failing,
    /// No connection (the server process down).
    Refused,
}

pub(super) struct Server {
    pub(super) tokens: f64,
    pub(super) refilled: Instant,
    /// Entries the database refuses: a batch holding one fails whole with 500.
    pub(super) bad: BTreeSet<usize>,
    /// Entries the server finds invalid: refused one by one in a 200 (a partial reject).
    pub(super) invalid: BTreeSet<usize>,
    /// A proxy in front that refuses requests of more entries with 413.
    pub(super) max_entries: usize,
    pub(super) outages: Vec<(Instant, Instant, Outage)>,
    /// In percent: a stray 503; a reply slower than the client's timeout.
    pub(super) stray_503: usize,
    pub(super) slow: usize,
    /// In percent: a 200 (its entries stored) whose body claims too many, too few, or
    /// cannot be read at all.
    pub(super) lying: usize,
    /// Entries stored, in order, with the process (`life`) that sent them; of those, the
    /// ones whose reply the client heard.
    pub(super) stored: Vec<(usize, usize)>,
    /// When each of `stored` was stored.
    pub(super) stored_at: Vec<Instant>,
    /// Which process is sending: 0, then 1 on the same spool.
    pub(super) life: usize,
    pub(super) acknowledged: u64,
    /// Invalid entries refused in replies the client heard.
    pub(super) refused: u64,
    /// When the client last heard a request taken.
    pub(super) last_taken: Option<Instant>,
    /// Entries stored by requests whose reply was lost: these may come twice.
    pub(super) unheard: BTreeSet<usize>,
    pub(super) requests: u64,
    pub(super) limited: u64,
    /// Requests failed with 500: each sets a triage going, which sends out of order.
    pub(super) failed_whole: u64,
    /// Requests whose reply came after the client gave up.
    pub(super) timeouts: u64,
    /// Good entries sent alone while the server failed everything: the only ones a
    /// triage may fail for good (an outage beginning right after it took a request).
    pub(super) alone_in_outage: BTreeSet<usize>,
}

pub(super) const BUCKET: f64 = 600.0;
pub(super) const REFILL_PER_SECOND: f64 = 10.0;

impl Server {
    pub(super) fn outage(&self, at: Instant) -> Option<Outage> {
        self.outages
            .iter()
            .find(|(from, to, _)| (*from..*to).contains(&at))
            .map(|o| o.2)
    }

    /// Answers a request arriving at `at`: its status, having stored its entries or not.
    pub(super) fn answer(&mut self, at: Instant, ids: &[usize], rng: &mut Rng) -> u16 {
        self.requests += 1;
        // A proxy's answers, in front of the server's limiter.
        if ids.len() > self.max_entries {
            return 413;
        }
        if rng.chance(self.stray_503) {
            return 503;
        }
        let elapsed = at.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * REFILL_PER_SECOND).min(BUCKET);
        self.refilled = at;
        if self.tokens < 1.0 {
            self.limited += 1;
            return 429;
        }
        self.tokens -= 1.0;
        let failing = self.outage(at) == Some(Outage::Failing);
        if failing || ids.iter().any(|i| self.bad.contains(i)) {
            self.failed_whole += 1;
            if let [id] = ids {
                if failing && !self.bad.contains(id) {
                    self.alone_in_outage.insert(*id);
                }
            }
            return 500;
        }
        let life = self.life;
        let taken = ids.iter().filter(|i| !self.invalid.contains(i));
        self.stored.extend(taken.map(|&id| (id, life)));
        self.stored_at.resize(self.stored.len(), at);
        200
    }
}

pub(super) struct World {
    pub(super) now: Instant,
    pub(super) acts: VecDeque<(Instant, Act)>,
    pub(super) shared: Arc<Shared>,
    pub(super) server: Server,
    pub(super) rng: Rng,
    pub(super) levels: BTreeMap<usize, Level>,
    pub(super) close_deadline: Option<Instant>,
    /// When the request in flight ends, while one is.
    pub(super) request_ends: Option<Instant>,
    /// A close came during a request: the thread may stop as late as its end.
    pub(super) closed_in_request: Option<Instant>,
    pub(super) t0: Instant,
    /// `SIM_SEED`'s account of each request.
    pub(super) trace: bool,
    /// Parks that moved neither the clock nor the owner: a thread spinning.
    pub(super) idle_parks: u32,
    /// Flushes asked and not answered yet: when, their ticket, what they wait for.
    pub(super) flushes: Vec<(Instant, u64, FlushMark)>,
    /// Whether the server is healthy all along, so that a flush must never wait on a
    /// thread with nothing to do.
    pub(super) watch_flushes: bool,
    /// When the thread last posted a request.
    pub(super) last_request: Option<Instant>,
    /// The wake-ups the thread has had (`Shared::wakes`), and the time of its last park.
    pub(super) wakes_seen: u64,
    pub(super) parked_at: Instant,
}

/// The longest a flush may see the thread send nothing while the server is healthy: a
/// back-off (0.52 s at most with three retries) or a pacing wait fits; a tick does not.
const MOST_IDLE_IN_A_FLUSH: Duration = Duration::from_millis(750);

impl World {
    /// Moves the clock to `to`, doing what the owner does until then.
    pub(super) fn advance(&mut self, to: Instant) {
        while self.acts.front().is_some_and(|(at, _)| *at <= to) {
            if let Some((at, act)) = self.acts.pop_front() {
                self.watch_flushes_until(at);
                self.now = self.now.max(at);
                self.act(act);
            }
        }
        self.watch_flushes_until(to);
        self.now = self.now.max(to);
    }

    /// Drops the flushes answered (all they wait for resolved, or the thread stalled on
    /// them); with a healthy server, fails if one would wait until `to` with the thread
    /// sending nothing.
    fn watch_flushes_until(&mut self, to: Instant) {
        let s = &self.shared;
        let never = self.now + Duration::from_secs(86_400);
        self.flushes
            .retain(|&(_, ticket, mark)| !s.flushed(mark) && !s.flush_stalled(ticket, never));
        if !self.watch_flushes {
            return;
        }
        if let Some(&(asked, ticket, _)) = self.flushes.first() {
            let busy = self.last_request.map_or(asked, |at| at.max(asked));
            assert!(
                to.saturating_duration_since(busy) <= MOST_IDLE_IN_A_FLUSH,
                "flush {ticket}, asked at {:?}, waits on an idle thread from {:?} to {:?}",
                asked - self.t0,
                busy - self.t0,
                to - self.t0
            );
        }
    }

    pub(super) fn act(&mut self, act: Act) {
        let s = &self.shared;
        match act {
            Act::Log(id) => {
                let level = self.levels[&id];
                let bad = if self.server.bad.contains(&id) {
                    " POISON"
                } else {
                    ""
                };
                let json = format!(r#"{{"level":"{}","message":"e{id}{bad}"}}"#, level.as_str());
                if s.lifecycle.is_open() {
                    s.enqueue(json.into_bytes(), level);
                    // Memory stays within its bounds, whatever the server does.
                    assert!(
                        s.buffer.bytes() <= s.config.max_queue_bytes,
                        "over max_queue_bytes"
                    );
                    assert!(
                        s.buffer.len() <= s.config.max_queue_size,
                        "over max_queue_size"
                    );
                }
            }
            Act::Flush => {
                let mark = s.flush_mark();
                if !s.flushed(mark) {
                    let ticket = s.ask_flush();
                    self.flushes.push((self.now, ticket, mark));
                }
            }
            Act::Kill => {
                s.pause.store(PAUSE_ASKED, Ordering::Release);
                s.wake();
                self.acts.clear();
            }
            Act::Close(timeout) => {
                let deadline = self.now + timeout;
                self.close_deadline =
                    Some(self.close_deadline.map_or(deadline, |d| d.min(deadline)));
                s.close_by(deadline);
                self.closed_in_request = self.closed_in_request.max(self.request_ends);
            }
        }
    }
}

pub(super) struct SimIo(pub(super) Arc<Mutex<World>>);

impl Io for SimIo {
    fn now(&self) -> Instant {
        self.0.lock().now
    }

    /// As `park_timeout`: returns at `until`, or once the owner's acts wake the thread
    /// (a push that fills a batch, a flush, a close), or at once when a wake-up came
    /// while it was not parked.
    fn park_until(&mut self, until: Instant) {
        let mut w = self.0.lock();
        let woken = |w: &World| w.shared.wakes.load(Ordering::Acquire) != w.wakes_seen;
        if !woken(&w) {
            while let Some(&(at, _)) = w.acts.front().filter(|(at, _)| *at <= until) {
                w.advance(at);
                if woken(&w) {
                    break;
                }
            }
        }
        if woken(&w) {
            w.wakes_seen = w.shared.wakes.load(Ordering::Acquire);
        } else if until > w.now {
            w.advance(until);
        }
        if w.now > w.parked_at {
            w.idle_parks = 0;
            w.parked_at = w.now;
        } else {
            w.idle_parks += 1;
            assert!(w.idle_parks < 10_000, "the thread spins at {:?}", w.now);
        }
    }

    fn post(&mut self, body: &[u8], entries: u64, timeout: Duration) -> Result<Reply, Error> {
        let mut w = self.0.lock();
        let w = &mut *w;
        let ids = ids_in(body);
        assert_eq!(ids.len() as u64, entries, "a body holds what it says");
        let start = w.now;
        w.last_request = Some(start);
        let refused = w.server.outage(start) == Some(Outage::Refused);
        let status = if refused {
            0
        } else {
            w.server.answer(start, &ids, &mut w.rng)
        };
        // Most replies come in a few milliseconds; some after the client gave up.
        let latency = if w.rng.chance(w.server.slow) {
            timeout + Duration::from_millis(1)
        } else {
            Duration::from_millis(1) + w.rng.millis(30)
        };
        let end = start + latency.min(timeout);
        if w.trace {
            let t = start.saturating_duration_since(w.t0).as_secs_f64();
            let (a, b) = (ids.first(), ids.last());
            println!("{t:9.3}s {a:?}..={b:?} ({entries}) -> {status}");
        }
        w.request_ends = Some(end);
        w.advance(end);
        w.request_ends = None;
        if latency > timeout {
            w.server.timeouts += 1;
            // What was stored stays stored: the client may send it again.
            if status == 200 {
                w.server.unheard.extend(&ids);
            }
            return Err(Error::Network("timed out".into()));
        }
        if status == 0 {
            return Err(Error::Network("connection refused".into()));
        }
        let rejected = ids.iter().filter(|i| w.server.invalid.contains(i)).count() as u64;
        let lie = status == 200 && w.server.lying > 0 && w.rng.chance(w.server.lying);
        let body = match (status, lie.then(|| w.rng.below(3))) {
            (200, None) => serde_json::json!({
                "accepted": entries - rejected,
                "rejected": rejected,
                "errors": (0..rejected).map(|i| format!("Entry at index {i}: invalid")).collect::<Vec<_>>(),
            })
            .to_string(),
            (200, Some(0)) => serde_json::json!({ "accepted": entries + 3 }).to_string(),
            (200, Some(1)) => {
                serde_json::json!({ "accepted": (entries - rejected).saturating_sub(1) }).to_string()
            }
            (200, Some(_)) => "<html>gateway says ok</html>".to_owned(),
            _ => r#"{"error":"simulated"}"#.to_owned(),
        };
        // Logwell's 429s ask for a minute; a gateway's 503 may ask for a while too.
        let retry_after = match status {
            429 => Some(Duration::from_secs(60)),
            503 => Some(Duration::from_secs(20)),
            _ => None,
        };
        // Read as the thread's own transport reads a reply.
        let reply = classify(
            Protocol::Logwell,
            status,
            body.as_bytes(),
            retry_after,
            entries,
        );
        // What the client is told is what it counts: all of it, when the body is not read.
        match &reply {
            Ok(said) => {
                w.server.acknowledged += said.accepted;
                w.server.refused += said.rejected;
            }
            Err(Error::BadReply(_)) => w.server.acknowledged += entries,
            Err(_) => {}
        }
        if status == 200 {
            w.server.last_taken = Some(w.now);
        }
        reply
    }
}

/// The ids of the entries in a Logwell batch body.
pub(super) fn ids_in(body: &[u8]) -> Vec<usize> {
    let entries: Vec<serde_json::Value> = serde_json::from_slice(body).expect("a JSON array");
    entries
        .iter()
        .map(|e| {
            let message = e["message"].as_str().expect("a message");
            let id = message
                .trim_start_matches('e')
                .split(' ')
                .next()
                .unwrap_or("");
            id.parse().expect("an id")
        })
        .collect()
}
