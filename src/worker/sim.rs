//! A deterministic simulation of the flush thread: the same `Worker` code, run on the
//! test's thread against a virtual clock, an owner that logs, flushes and closes at
//! moments drawn from a seed, and a simulated Logwell server (`../shared/DESIGN.md`
//! section 2: one token bucket of 600 requests refilled at 10 a second, 429 with
//! `Retry-After: 60` when it is empty, a batch holding an entry the database refuses
//! failing whole with 500). Faults are drawn from the seed too: outages (every request
//! failing with 500, or refused), stray 503s, replies slower than the timeout (the batch
//! stored or not). After each run the promises of `docs/behaviour.md` that hold for
//! every seed are checked; a failure names its seed.
//!
//! `cargo test --lib sim::` runs `SIM_SEEDS` seeds (default 2 000) from `SIM_FIRST`
//! (default 0); `SIM_SEED=n` runs seed n alone and prints what happened.

#![allow(clippy::print_stdout, reason = "SIM_SEED's account of one run")]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::io::Io;
use super::{Events, Shared, Shipper, Worker};
use crate::config::{Config, Settings};
use crate::errors::Error;
use crate::lifecycle::Lifecycle;
use crate::protocol::logwell::Level;
use crate::protocol::Reply;
use crate::transport::Jitter;

/// A seeded xorshift: the same seed, the same run.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }

    pub(super) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, below: usize) -> Duration {
        Duration::from_millis(self.below(below) as u64)
    }
}

/// What the owner does.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Logs entry `id`.
    Log(usize),
    Flush,
    Close(Duration),
}

/// How the server fails for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outage {
    /// Every request answered 500 (Logwell's database down).
    Failing,
    /// No connection (the server process down).
    Refused,
}

struct Server {
    tokens: f64,
    refilled: Instant,
    /// Entries the database refuses: a batch holding one fails whole with 500.
    bad: BTreeSet<usize>,
    /// Entries the server finds invalid: refused one by one in a 200 (a partial reject).
    invalid: BTreeSet<usize>,
    /// A proxy in front that refuses requests of more entries with 413.
    max_entries: usize,
    outages: Vec<(Instant, Instant, Outage)>,
    /// In percent: a stray 503; a reply slower than the client's timeout.
    stray_503: usize,
    slow: usize,
    /// Entries stored, in order; of those, the ones whose reply the client heard.
    stored: Vec<usize>,
    acknowledged: u64,
    /// Invalid entries refused in replies the client heard.
    refused: u64,
    /// When the client last heard a request taken.
    last_taken: Option<Instant>,
    /// Entries stored by requests whose reply was lost: these may come twice.
    unheard: BTreeSet<usize>,
    requests: u64,
    limited: u64,
    /// Requests failed with 500: each sets a triage going, which sends out of order.
    failed_whole: u64,
}

const BUCKET: f64 = 600.0;
const REFILL_PER_SECOND: f64 = 10.0;

impl Server {
    fn outage(&self, at: Instant) -> Option<Outage> {
        self.outages
            .iter()
            .find(|(from, to, _)| (*from..*to).contains(&at))
            .map(|o| o.2)
    }

    /// Answers a request arriving at `at`: its status, having stored its entries or not.
    fn answer(&mut self, at: Instant, ids: &[usize], rng: &mut Rng) -> u16 {
        self.requests += 1;
        if ids.len() > self.max_entries {
            return 413;
        }
        let elapsed = at.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * REFILL_PER_SECOND).min(BUCKET);
        self.refilled = at;
        if self.tokens < 1.0 {
            self.limited += 1;
            return 429;
        }
        self.tokens -= 1.0;
        if self.outage(at) == Some(Outage::Failing) || ids.iter().any(|i| self.bad.contains(i)) {
            self.failed_whole += 1;
            return 500;
        }
        if rng.chance(self.stray_503) {
            return 503;
        }
        self.stored
            .extend(ids.iter().filter(|i| !self.invalid.contains(i)));
        200
    }
}

struct World {
    now: Instant,
    acts: VecDeque<(Instant, Act)>,
    shared: Arc<Shared>,
    server: Server,
    rng: Rng,
    levels: BTreeMap<usize, Level>,
    close_deadline: Option<Instant>,
    /// When the request in flight ends, while one is.
    request_ends: Option<Instant>,
    /// A close came during a request: the thread may stop as late as its end.
    closed_in_request: Option<Instant>,
    t0: Instant,
    /// `SIM_SEED`'s account of each request.
    trace: bool,
    /// Parks that moved neither the clock nor the owner: a thread spinning.
    idle_parks: u32,
}

impl World {
    /// Moves the clock to `to`, doing what the owner does until then.
    fn advance(&mut self, to: Instant) {
        while self.acts.front().is_some_and(|(at, _)| *at <= to) {
            if let Some((at, act)) = self.acts.pop_front() {
                self.now = self.now.max(at);
                self.act(act);
            }
        }
        self.now = self.now.max(to);
    }

    fn act(&mut self, act: Act) {
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
                s.flush_requests.fetch_add(1, Ordering::AcqRel);
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

struct SimIo(Arc<Mutex<World>>);

impl Io for SimIo {
    fn now(&self) -> Instant {
        self.0.lock().now
    }

    fn park_until(&mut self, until: Instant) {
        let mut w = self.0.lock();
        match w.acts.front() {
            // Woken by what the owner does first.
            Some(&(at, _)) if at <= until => {
                w.idle_parks = 0;
                w.advance(at);
            }
            _ if until > w.now => {
                w.idle_parks = 0;
                w.advance(until);
            }
            _ => {
                w.idle_parks += 1;
                assert!(w.idle_parks < 10_000, "the thread spins at {:?}", w.now);
            }
        }
    }

    fn post(&mut self, body: &[u8], entries: u64, timeout: Duration) -> Result<Reply, Error> {
        let mut w = self.0.lock();
        let w = &mut *w;
        let ids = ids_in(body);
        assert_eq!(ids.len() as u64, entries, "a body holds what it says");
        let start = w.now;
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
            // What was stored stays stored: the client may send it again.
            if status == 200 {
                w.server.unheard.extend(&ids);
            }
            return Err(Error::Network("timed out".into()));
        }
        match status {
            0 => Err(Error::Network("connection refused".into())),
            200 => {
                let rejected = ids.iter().filter(|i| w.server.invalid.contains(i)).count() as u64;
                w.server.acknowledged += entries - rejected;
                w.server.last_taken = Some(w.now);
                w.server.refused += rejected;
                Ok(Reply {
                    accepted: entries - rejected,
                    rejected,
                    said_rejected: Some(rejected),
                    errors: (0..rejected)
                        .map(|i| format!("Entry at index {i}: invalid"))
                        .collect(),
                })
            }
            status => Err(Error::Http {
                status,
                detail: "simulated".into(),
                retry_after: (status == 429).then_some(Duration::from_secs(60)),
            }),
        }
    }
}

/// The ids of the entries in a Logwell batch body.
fn ids_in(body: &[u8]) -> Vec<usize> {
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

struct Quiet;

impl Events for Quiet {
    fn error(&self, _: &Error) {}
    fn delivered(&self, _: u64) {}
}

/// One seed's world: settings, the owner's acts, the server's faults.
struct Scenario {
    settings: Settings,
    acts: Vec<(Duration, Act)>,
    levels: BTreeMap<usize, Level>,
    bad: BTreeSet<usize>,
    invalid: BTreeSet<usize>,
    max_entries: usize,
    outages: Vec<(Duration, Duration, Outage)>,
    stray_503: usize,
    slow: usize,
}

impl Scenario {
    fn draw(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let mut settings = Settings {
            api_key: format!("lw_{}", "k".repeat(32)),
            endpoint: "http://127.0.0.1:9/".into(),
            batch_size: [1, 10, 50, 100][rng.below(4)],
            flush_interval: [0.1, 1.0, 5.0][rng.below(3)],
            max_retries: [0, 1, 2, 3][rng.below(4)],
            ..Settings::default()
        };
        if rng.chance(20) {
            settings.max_queue_size = 50 + i64::try_from(rng.below(2000)).unwrap_or(0);
        }
        if rng.chance(10) {
            settings.max_queue_bytes = 1024 + i64::try_from(rng.below(100_000)).unwrap_or(0);
        }
        let faulty = rng.chance(60);
        let (mut acts, mut levels, mut bad) = (Vec::new(), BTreeMap::new(), BTreeSet::new());
        let mut invalid = BTreeSet::new();
        let mut t = Duration::ZERO;
        let mut id = 0;
        for _ in 0..=rng.below(6) {
            // A burst: all at once, or spread out.
            let most = [20, 300, 3000][rng.below(3)];
            let count = 1 + rng.below(most);
            let gap = if rng.chance(50) {
                Duration::ZERO
            } else {
                rng.millis(20)
            };
            let bad_run = faulty && rng.chance(25);
            let bad_from = rng.below(count);
            let longest = if rng.chance(50) { 3 } else { 150 };
            let bad_len = 1 + rng.below(longest);
            for i in 0..count {
                levels.insert(
                    id,
                    [Level::Debug, Level::Info, Level::Warn, Level::Error][rng.below(4)],
                );
                if bad_run && (bad_from..bad_from + bad_len).contains(&i) {
                    bad.insert(id);
                } else if faulty && rng.chance(2) {
                    invalid.insert(id);
                }
                acts.push((t, Act::Log(id)));
                id += 1;
                t += gap;
            }
            if rng.chance(50) {
                acts.push((t, Act::Flush));
            }
            t += rng.millis(30_000);
        }
        acts.push((
            t,
            Act::Close(Duration::from_millis(rng.below(30_000) as u64)),
        ));
        let mut outages = Vec::new();
        if faulty {
            for _ in 0..rng.below(3) {
                let from = rng.millis(t.as_millis() as usize + 1);
                let longest = [2_000, 20_000, 120_000][rng.below(3)];
                let length = rng.millis(longest);
                let kind = if rng.chance(50) {
                    Outage::Failing
                } else {
                    Outage::Refused
                };
                outages.push((from, from + length, kind));
            }
        }
        let stray_503 = if faulty { rng.below(10) } else { 0 };
        let slow = if faulty { rng.below(5) } else { 0 };
        let max_entries = if faulty && rng.chance(20) {
            1 + rng.below(60)
        } else {
            usize::MAX
        };
        Scenario {
            settings,
            acts,
            levels,
            bad,
            invalid,
            max_entries,
            outages,
            stray_503,
            slow,
        }
    }
}

/// What a run left behind, for the checks.
struct Run {
    world: World,
    exited_at: Instant,
    logged: usize,
}

fn simulate(seed: u64, scenario: &Scenario) -> Run {
    let config = Config::new(&scenario.settings).expect("valid settings");
    let shipper = Shipper::new(config, Box::new(Quiet), Arc::new(Lifecycle::default()));
    let shared = Arc::clone(&shipper.shared);
    let t0 = Instant::now();
    let world = Arc::new(Mutex::new(World {
        now: t0,
        acts: scenario
            .acts
            .iter()
            .map(|&(at, act)| (t0 + at, act))
            .collect(),
        shared: Arc::clone(&shared),
        server: Server {
            tokens: BUCKET,
            refilled: t0,
            bad: scenario.bad.clone(),
            invalid: scenario.invalid.clone(),
            max_entries: scenario.max_entries,
            outages: scenario
                .outages
                .iter()
                .map(|&(a, b, k)| (t0 + a, t0 + b, k))
                .collect(),
            stray_503: scenario.stray_503,
            slow: scenario.slow,
            stored: Vec::new(),
            acknowledged: 0,
            refused: 0,
            last_taken: None,
            unheard: BTreeSet::new(),
            requests: 0,
            limited: 0,
            failed_whole: 0,
        },
        rng: Rng::new(seed ^ 0x5EED),
        levels: scenario.levels.clone(),
        close_deadline: None,
        t0,
        trace: std::env::var("SIM_SEED").is_ok(),
        request_ends: None,
        closed_in_request: None,
        idle_parks: 0,
    }));
    let io = SimIo(Arc::clone(&world));
    let worker = Worker::with_io(Arc::clone(&shared), Box::new(io), Jitter::seeded(seed));
    assert!(worker.run().is_none(), "ran until closed");
    let world = Arc::try_unwrap(world)
        .ok()
        .expect("the worker is gone")
        .into_inner();
    let exited_at = world.now;
    drop(shipper);
    Run {
        world,
        exited_at,
        logged: scenario.levels.len(),
    }
}

/// The promises that hold whatever the seed drew.
fn check(seed: u64, run: &Run) {
    let w = &run.world;
    let stats = w.shared.stats.snapshot();
    let case = format!("seed {seed} (SIM_SEED={seed} cargo test --lib sim:: -- --nocapture)");
    // Every entry logged ends in exactly one outcome.
    assert_eq!(stats.enqueued, run.logged as u64, "{case}: all logged");
    assert_eq!(
        stats.queued(),
        0,
        "{case}: nothing left unaccounted: {stats:?}"
    );
    let outcomes = stats.sent
        + stats.failed
        + stats.rejected_by_server
        + stats.dropped_overflow
        + stats.dropped_at_close
        + stats.spooled;
    assert_eq!(
        outcomes, stats.enqueued,
        "{case}: one outcome each: {stats:?}"
    );
    // What the server acknowledged is what was counted sent, and what it refused in its
    // replies, rejected.
    assert_eq!(stats.sent, w.server.acknowledged, "{case}: {stats:?}");
    assert_eq!(
        stats.rejected_by_server, w.server.refused,
        "{case}: {stats:?}"
    );
    // Nothing stored twice but what a lost reply made the client send again.
    let mut stored_once = BTreeSet::new();
    for id in &w.server.stored {
        assert!(
            stored_once.insert(*id) || w.server.unheard.contains(id),
            "{case}: e{id} twice"
        );
        assert!(!w.server.bad.contains(id), "{case}: a bad entry stored");
    }
    assert!(
        stats.failed <= w.server.bad.len() as u64,
        "{case}: good entries failed: {stats:?}"
    );
    // Within a level, entries arrive in the order they were logged, but for those a
    // triage sends out of order (after a 500) and resends after a lost reply.
    if w.server.failed_whole == 0 && w.server.unheard.is_empty() {
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for id in &w.server.stored {
            let level = w.levels[id];
            if let Some(before) = last.insert(level.as_str(), *id) {
                assert!(before < *id, "{case}: e{id} after e{before} at {level:?}");
            }
        }
    }
    // The pacer keeps to the server's budget: no 429 from a server with the same one.
    assert_eq!(w.server.limited, 0, "{case}: 429s");
    // The thread stops by the close deadline, or as the request a close found in flight
    // ends (the owner's `close` returns at its deadline all the same).
    let closed = w.close_deadline.expect("closed");
    let deadline = w.closed_in_request.map_or(closed, |end| end.max(closed));
    assert!(
        run.exited_at <= deadline,
        "{case}: stopped {:?} late",
        run.exited_at - deadline
    );
}

/// Seeds that once found a bug, run every time: 6539 (good entries failed for good when
/// an outage began just after the server took a request of their batch).
const FOUND: [u64; 1] = [6539];

fn seeds() -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = var("SIM_SEED") {
        return vec![seed];
    }
    let first = var("SIM_FIRST").unwrap_or(0);
    let mut seeds: Vec<u64> = (first..first + var("SIM_SEEDS").unwrap_or(2_000)).collect();
    seeds.extend(FOUND);
    seeds
}

#[test]
fn seeds_keep_every_promise() {
    let verbose = std::env::var("SIM_SEED").is_ok();
    for seed in seeds() {
        let scenario = Scenario::draw(seed);
        let run = simulate(seed, &scenario);
        if verbose {
            let w = &run.world;
            println!(
                "seed {seed}: {} logged, {} bad, outages {:?}, 503s {}%, slow {}%, {} requests, stats {:?}",
                run.logged,
                scenario.bad.len(),
                scenario.outages,
                scenario.stray_503,
                scenario.slow,
                w.server.requests,
                w.shared.stats.snapshot()
            );
        }
        check(seed, &run);
    }
}

/// A backlog with nothing going wrong: the 600 requests the bucket holds go at once, the
/// rest at its 10 a second. Draining takes at most 1.25 times that least time (the pacer
/// keeps 3 % under the server's rate, and the burst's tail waits for its 50 ms), with at
/// most two 429s.
#[test]
fn a_backlog_drains_within_a_quarter_of_the_buckets_least_time() {
    for seed in 0..4_u64 {
        let entries = 70_000 + 10_000 * usize::try_from(seed).unwrap_or(0);
        let levels = (0..entries).map(|id| (id, Level::Info)).collect();
        let mut acts: Vec<(Duration, Act)> = (0..entries)
            .map(|id| (Duration::ZERO, Act::Log(id)))
            .collect();
        acts.push((Duration::ZERO, Act::Flush));
        acts.push((
            Duration::from_secs(1_000),
            Act::Close(Duration::from_secs(5)),
        ));
        let scenario = Scenario {
            settings: Settings {
                api_key: format!("lw_{}", "k".repeat(32)),
                endpoint: "http://127.0.0.1:9/".into(),
                batch_size: 100,
                ..Settings::default()
            },
            acts,
            levels,
            bad: BTreeSet::new(),
            invalid: BTreeSet::new(),
            max_entries: usize::MAX,
            outages: Vec::new(),
            stray_503: 0,
            slow: 0,
        };
        let run = simulate(seed, &scenario);
        check(seed, &run);
        let w = &run.world;
        let requests = entries.div_ceil(100) as f64;
        let least = ((requests - BUCKET) / REFILL_PER_SECOND).max(0.0);
        let took = w
            .server
            .last_taken
            .map_or(f64::MAX, |t| (t - w.t0).as_secs_f64());
        println!(
            "{entries} entries: {took:.1} s, least {least:.1} s ({:.3}x)",
            took / least
        );
        assert!(
            took <= 1.25 * least,
            "{entries} entries: {took:.1} s, least {least:.1} s"
        );
        assert!(w.server.limited <= 2, "{} 429s", w.server.limited);
        assert_eq!(w.shared.stats.snapshot().sent, entries as u64);
    }
}
