//! A deterministic simulation of the flush thread: the same `Worker` code, run on the
//! test's thread against a virtual clock (its sleeps end at their time or when the
//! owner's acts wake it, as `park_timeout` does), an owner that logs, flushes and closes
//! at moments drawn from a seed, and a simulated Logwell server (`../shared/DESIGN.md`
//! section 2: one token bucket of 600 requests refilled at 10 a second, 429 with
//! `Retry-After: 60` when it is empty, a batch holding an entry the database refuses
//! failing whole with 500). Faults are drawn from the seed too: outages (every request
//! failing with 500, or refused), stray 503s, replies slower than the timeout (the batch
//! stored or not), a proxy's 413, partial rejects, 200s whose body claims too many, too
//! few or cannot be read (read by the transport's own `classify`); in some seeds a `spool_dir`, the
//! process closed or killed, and a second one started on the same spool. After each run
//! the promises of `docs/behaviour.md` that hold for every seed are checked; a failure
//! names its seed.
//!
//! `cargo test --lib sim::` runs `SIM_SEEDS` seeds (default 2 000) from `SIM_FIRST`
//! (default 0); `SIM_SEED=n` runs seed n alone and prints what happened.

#![allow(clippy::print_stdout, reason = "SIM_SEED's account of one run")]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Events, Shipper, Worker};
use crate::config::{Config, Settings};
use crate::errors::Error;
use crate::lifecycle::Lifecycle;
use crate::protocol::logwell::Level;
use crate::stats::Snapshot;
use crate::transport::Jitter;

mod world;

pub(super) use world::Rng;
#[cfg(test)]
use world::REFILL_PER_SECOND;
use world::{Act, Outage, Server, SimIo, World, BUCKET};

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
    /// In percent: a 200 whose body lies about the count, or cannot be read.
    lying: usize,
    /// A `spool_dir`, and a second process on it after the first.
    spool: bool,
}

impl Scenario {
    /// A server that fails nothing but the bad entries: no outage, no stray 503, no slow
    /// reply, no proxy in front.
    fn healthy(&self) -> bool {
        self.outages.is_empty()
            && self.stray_503 == 0
            && self.slow == 0
            && self.max_entries == usize::MAX
    }

    #[cfg(test)]
    fn draw(seed: u64) -> Scenario {
        Scenario::draw_from(Rng::new(seed))
    }

    fn draw_from(mut rng: Rng) -> Scenario {
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
        let spool = rng.chance(30);
        if spool && rng.chance(50) {
            let at = rng.millis(t.as_millis() as usize + 1);
            acts.push((at, Act::Kill));
            acts.sort_by_key(|&(at, _)| at);
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
        // Drawn last, so that the seeds drawn before it stay the runs they were.
        let lying = if faulty && rng.chance(30) {
            1 + rng.below(10)
        } else {
            0
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
            lying,
            spool,
        }
    }
}

/// One process's life: what it counted, and how it ended.
struct Life {
    stats: Snapshot,
    /// Killed (no close, no drain): what it held in memory is gone with it.
    killed: bool,
    close_deadline: Option<Instant>,
    closed_in_request: Option<Instant>,
    exited_at: Instant,
}

/// What a run left behind, for the checks: one process, or, with a spool, one and then
/// a second on the same directory.
struct Run {
    lives: Vec<Life>,
    server: Server,
    levels: BTreeMap<usize, Level>,
    /// When the run began (the backlog test times its drain from it).
    #[cfg_attr(not(test), allow(dead_code))]
    t0: Instant,
}

/// A process's shipper, its thread not started: the simulation runs it.
fn process(settings: &Settings) -> Shipper {
    let config = Config::new(settings).expect("valid settings");
    Shipper::unstarted(config, Box::new(Quiet), Arc::new(Lifecycle::default()))
}

/// Runs `shipper`'s flush thread on `world` (whose owner is this shipper's) from its
/// `now`, the owner doing its `acts`, until closed or killed.
fn live(seed: u64, shipper: Shipper, world: World) -> (Life, World) {
    let shared = Arc::clone(&shipper.shared);
    let world = Arc::new(Mutex::new(world));
    let io = SimIo(Arc::clone(&world));
    let worker = Worker::with_io(Arc::clone(&shared), Box::new(io), Jitter::seeded(seed));
    // A kill stops it between two cycles, as a pause does; dropped, it drains nothing.
    let killed = worker.run().is_some();
    let world = Arc::try_unwrap(world)
        .ok()
        .expect("the worker is gone")
        .into_inner();
    drop(shipper);
    let life = Life {
        stats: shared.stats.snapshot(),
        killed,
        close_deadline: world.close_deadline,
        closed_in_request: world.closed_in_request,
        exited_at: world.now,
    };
    (life, world)
}

fn simulate(seed: u64, scenario: &Scenario) -> Run {
    let t0 = Instant::now();
    let mut settings = scenario.settings.clone();
    let spool = scenario.spool.then(|| {
        let dir = std::env::temp_dir().join(format!("lw-sim-{}-{seed}", std::process::id()));
        settings.spool_dir = dir.display().to_string();
        dir
    });
    let first = process(&settings);
    let world = World {
        now: t0,
        acts: scenario
            .acts
            .iter()
            .map(|&(at, act)| (t0 + at, act))
            .collect(),
        shared: Arc::clone(&first.shared),
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
            lying: scenario.lying,
            slow: scenario.slow,
            stored: Vec::new(),
            stored_at: Vec::new(),
            life: 0,
            acknowledged: 0,
            refused: 0,
            last_taken: None,
            unheard: BTreeSet::new(),
            requests: 0,
            limited: 0,
            failed_whole: 0,
            alone_in_outage: BTreeSet::new(),
            timeouts: 0,
        },
        rng: Rng::new(seed ^ 0x5EED),
        levels: scenario.levels.clone(),
        close_deadline: None,
        t0,
        trace: std::env::var("SIM_SEED").is_ok(),
        request_ends: None,
        closed_in_request: None,
        idle_parks: 0,
        flushes: Vec::new(),
        watch_flushes: scenario.healthy(),
        last_request: None,
        wakes_seen: 0,
        parked_at: t0,
    };
    let (life, mut world) = live(seed, first, world);
    let mut lives = vec![life];
    if let Some(dir) = spool {
        // The next process on the same spool, once the server is back: it logs nothing,
        // and sends what the first left on disk.
        let back = world
            .server
            .outages
            .iter()
            .map(|o| o.1)
            .max()
            .unwrap_or(world.now);
        let quiet = back.max(world.now) + Duration::from_secs(300);
        world.acts = VecDeque::from([(quiet, Act::Close(Duration::from_secs(30)))]);
        world.close_deadline = None;
        world.closed_in_request = None;
        world.flushes.clear();
        world.wakes_seen = 0;
        world.server.life = 1;
        let second = process(&settings);
        world.shared = Arc::clone(&second.shared);
        let (life, end) = live(seed.wrapping_add(1), second, world);
        lives.push(life);
        world = end;
        let _ = std::fs::remove_dir_all(dir);
    }
    Run {
        lives,
        server: world.server,
        levels: world.levels,
        t0,
    }
}

/// The promises that hold whatever the seed drew.
fn check(seed: u64, run: &Run) {
    let server = &run.server;
    let case = format!("seed {seed} (SIM_SEED={seed} cargo test --lib sim:: -- --nocapture)");
    let sum = |count: fn(&Snapshot) -> u64| run.lives.iter().map(|l| count(&l.stats)).sum::<u64>();
    for life in &run.lives {
        let stats = &life.stats;
        if life.killed {
            continue;
        }
        // Every entry logged ends in exactly one outcome.
        assert_eq!(stats.queued(), 0, "{case}: left unaccounted: {stats:?}");
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
        // The thread stops by the close deadline, or as the request a close found in
        // flight ends (the owner's `close` returns at its deadline all the same).
        let closed = life.close_deadline.expect("closed");
        let deadline = life.closed_in_request.map_or(closed, |end| end.max(closed));
        assert!(
            life.exited_at <= deadline,
            "{case}: stopped {:?} late",
            life.exited_at - deadline
        );
    }
    let first = &run.lives[0];
    if !first.killed {
        let logged = run.levels.len() as u64;
        assert_eq!(first.stats.enqueued, logged, "{case}: all logged");
    }
    // What the server acknowledged is what was counted sent or replayed; what it refused
    // in its replies, rejected (or, from the spool, failed in replay).
    assert_eq!(sum(|s| s.sent + s.replayed), server.acknowledged, "{case}");
    let rejected = sum(|s| s.rejected_by_server);
    assert!(
        (rejected..=rejected + sum(|s| s.replay_failed)).contains(&server.refused),
        "{case}: {} refused",
        server.refused
    );
    // Everything written to the spool comes back, or is counted lost, once the last
    // process has drained it: once each, but for what a killed process had read back
    // and sent out of order without marking it on disk.
    let spooled = sum(|s| s.spooled);
    let back = sum(|s| s.replayed + s.replay_failed + s.dropped_spool_full + s.spool_corrupt);
    let killed = run.lives.iter().any(|l| l.killed);
    let drained = run.lives.last().is_some_and(|l| l.stats.spool_bytes == 0);
    if drained {
        assert!(
            back >= spooled,
            "{case}: spooled {spooled}, came back {back}"
        );
    }
    if !killed {
        assert!(
            back <= spooled,
            "{case}: spooled {spooled}, came back {back}"
        );
    }
    // Nothing stored twice but what a lost reply made the client send again, or what a
    // killed process had taken from its spool without marking it there.
    let mut first_stored: BTreeMap<usize, usize> = BTreeMap::new();
    for &(id, life) in &server.stored {
        if let Some(&earlier) = first_stored.get(&id) {
            let crash = earlier < life && run.lives[earlier].killed;
            assert!(server.unheard.contains(&id) || crash, "{case}: e{id} twice");
        }
        first_stored.entry(id).or_insert(life);
        assert!(!server.bad.contains(&id), "{case}: a bad entry stored");
    }
    // A good entry is failed only when the server failed it alone during an outage.
    let may_fail = server.bad.len() + server.alone_in_outage.len();
    assert!(
        sum(|s| s.failed) <= may_fail as u64,
        "{case}: good entries failed"
    );
    // Within a level, entries arrive in the order they were logged, but for those a
    // triage sends out of order (after a 500), a lost reply makes the client send again,
    // or the spool sends after newer ones.
    if server.failed_whole == 0 && server.unheard.is_empty() && spooled == 0 {
        let mut last: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, _) in &server.stored {
            let level = run.levels[id];
            if let Some(before) = last.insert(level.as_str(), *id) {
                assert!(before < *id, "{case}: e{id} after e{before} at {level:?}");
            }
        }
    }
    // The pacer keeps to the server's budget: no 429 from a server with the same one,
    // unless timeouts hid from it requests the server counted.
    // A process started after another knows nothing of what that one used up.
    if server.unheard.is_empty() && server.timeouts == 0 && run.lives.len() == 1 {
        assert_eq!(server.limited, 0, "{case}: 429s");
    }
}

/// A run drawn from a fuzzer's bytes (`fuzz/`), checked as a seed's is.
#[cfg(fuzzing)]
pub(crate) fn fuzz(data: &[u8]) {
    let seed = world::seed_of(data);
    let scenario = Scenario::draw_from(Rng::from_bytes(data));
    let run = simulate(seed, &scenario);
    check(seed, &run);
}

/// Seeds that once found something, run every time: 6539 (an outage beginning just after
/// the server took a request, with a bad entry and good ones failing beside it: with
/// nothing queued behind, the good ones are failed too, the one case where that happens).
#[cfg(test)]
const FOUND: [u64; 1] = [6539];

#[cfg(test)]
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
            println!(
                "seed {seed}: {} logged, {} bad, outages {:?}, 503s {}%, slow {}%, spool {}, {} requests",
                run.levels.len(),
                scenario.bad.len(),
                scenario.outages,
                scenario.stray_503,
                scenario.slow,
                scenario.spool,
                run.server.requests,
            );
            for life in &run.lives {
                println!(
                    "  {}: {:?}",
                    if life.killed { "killed" } else { "closed" },
                    life.stats
                );
            }
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
            lying: 0,
            spool: false,
        };
        let run = simulate(seed, &scenario);
        check(seed, &run);
        let requests = entries.div_ceil(100) as f64;
        let least = ((requests - BUCKET) / REFILL_PER_SECOND).max(0.0);
        let took = run
            .server
            .last_taken
            .map_or(f64::MAX, |t| (t - run.t0).as_secs_f64());
        println!(
            "{entries} entries: {took:.1} s, least {least:.1} s ({:.3}x)",
            took / least
        );
        assert!(
            took <= 1.25 * least,
            "{entries} entries: {took:.1} s, least {least:.1} s"
        );
        assert!(run.server.limited <= 2, "{} 429s", run.server.limited);
        assert_eq!(run.lives[0].stats.sent, entries as u64);
    }
}

/// Entries the server cannot store, spooled in an outage, then read back while the
/// application logs on: they are failed, and what is logged meanwhile is not held up.
#[test]
fn a_spooled_batch_of_bad_entries_does_not_hold_up_what_is_logged_after_it() {
    let mut acts: Vec<(Duration, Act)> = (0..300)
        .map(|id| (Duration::from_millis(10 * id as u64), Act::Log(id)))
        .collect();
    let steady = 300..3300;
    for id in steady.clone() {
        let at = Duration::from_secs(12) + Duration::from_millis(20 * (id - 300) as u64);
        acts.push((at, Act::Log(id)));
    }
    acts.push((
        Duration::from_secs(400),
        Act::Close(Duration::from_secs(30)),
    ));
    let scenario = Scenario {
        settings: Settings {
            api_key: format!("lw_{}", "k".repeat(32)),
            endpoint: "http://127.0.0.1:9/".into(),
            ..Settings::default()
        },
        acts: acts.clone(),
        levels: (0..3300).map(|id| (id, Level::Info)).collect(),
        bad: (0..150).collect(),
        invalid: BTreeSet::new(),
        max_entries: usize::MAX,
        outages: vec![(Duration::ZERO, Duration::from_secs(10), Outage::Failing)],
        stray_503: 0,
        slow: 0,
        lying: 0,
        spool: true,
    };
    let run = simulate(1, &scenario);
    check(1, &run);
    let logged_at: BTreeMap<usize, Duration> = acts
        .iter()
        .filter_map(|&(at, act)| match act {
            Act::Log(id) => Some((id, at)),
            _ => None,
        })
        .collect();
    let server = &run.server;
    let lag = server
        .stored
        .iter()
        .zip(&server.stored_at)
        .filter(|((id, _), _)| steady.contains(id))
        .map(|(&(id, _), &at)| (at - run.t0).saturating_sub(logged_at[&id]))
        .max()
        .unwrap_or(Duration::MAX);
    let stats = &run.lives[0].stats;
    println!("lag {lag:?}; {stats:?}");
    // Three ticks to prove the server up, then the search, whose suspects get their
    // retries: about a second for each bad entry, what was spooled meanwhile waiting
    // behind them. Before, all of it waited for the next process, however long this one
    // lived.
    assert!(
        lag <= Duration::from_secs(240),
        "logged after the outage, stored {lag:?} later"
    );
    let first_life = server
        .stored
        .iter()
        .filter(|(id, life)| steady.contains(id) && *life == 0);
    assert_eq!(first_life.count(), steady.len(), "{stats:?}");
    assert_eq!(stats.replay_failed + stats.failed, 150, "{stats:?}");
}
