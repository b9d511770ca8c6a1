//! Which entries of a failing batch the server cannot store, found by sending parts of
//! it again. Sans-I/O: `Triage` decides what to send next and learns from each answer;
//! the flush thread does the sending, the pacing and the counting.
//!
//! A request refused as a whole (400 or 413, or a 500 on every try) is sent again in
//! halves, each piece once, so one entry the server cannot take costs only itself. An
//! entry that fails alone with 500 is a suspect: once the server takes a request sent
//! after it, it is sent alone again, with its retries, and failed for good if the server
//! fails it once more. A server that fails everything is an outage, not poison: all is
//! kept for later. (Logwell answers 500 while its database is down.)
//!
//! A long run of failures is either a run of bad entries or an outage. Past a binary
//! search's depth of them, the entry farthest from the run is tried alone: a server that
//! takes it is up. When the batch cannot tell the two apart (two such tries failed, or
//! suspects end the batch), triage wants more. If the server took part of the batch, the
//! caller sends what is left again in front of its next request's worth, whose later
//! entries will tell; if not, it lends triage that next request's worth, once, to try
//! from its far end the same way. With nothing queued behind (the last records logged,
//! or a batch read back from the spool), once the server took part of the batch, the
//! rest is searched in order and every suspect gets its last chance, so that bad entries
//! never hold up what follows. That is the one case where an outage beginning right
//! after a taken request can fail the good entries failing beside a bad one. Nothing
//! taken is an outage: all is kept. A run of bad entries longer than two requests' worth
//! looks like one too, and waits.
//!
//! `tests` drives it over thousands of seeded runs against a simulated server (bad
//! entries in runs and scattered, requests too large, outages from any request on).

use std::ops::Range;

/// How a request went, as far as triage cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The server answered for its entries: taken, or refused for good (counted by the
    /// caller). Either way they are resolved.
    Taken,
    /// Refused as a whole with 400 or 413: too large, or one bad entry spoils it.
    Split,
    /// A 500 on every try: an entry the server cannot store, or an outage.
    ServerFault,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Post `range` of the batch. `retries`: with the retries of a transient failure
    /// (the whole batch and a suspect's last chance get them; pieces do not).
    Send(Request),
    /// The batch cannot tell bad entries from an outage: if the server took part of it
    /// (`taken`), send what is unresolved again in front of the next request's worth;
    /// else lend that (`grow`, once); with nothing queued behind, `nothing_more`.
    WantMore,
    /// Every entry resolved.
    Done,
    /// Nothing tells bad entries from an outage: keep what is unresolved for later.
    Outage,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub range: Range<usize>,
    pub retries: bool,
    /// A suspect's last chance: a `ServerFault` fails it for good.
    pub confirm: bool,
}

pub struct Triage {
    resolved: Vec<bool>,
    /// Parts not sent yet: the next on top, the farthest from the run at the bottom.
    todo: Vec<Range<usize>>,
    /// Entries that failed alone, waiting for the server to take something.
    suspects: Vec<usize>,
    /// Suspects to send alone again now that the server took something: the next on top.
    confirming: Vec<usize>,
    /// The part tried from the far end, while a run of failures is being told apart.
    probe: Option<Range<usize>>,
    phase: Phase,
    /// Requests failed in a row, and how many a binary search down to one entry makes.
    blind: u32,
    blind_limit: u32,
    /// Probes failed since the server last took something.
    failed_probes: u32,
    /// Entries queued behind the batch were lent to it (`grow`).
    lent: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet: the whole batch goes first, with retries.
    Fresh,
    Searching,
    /// The batch cannot tell a run of bad entries from an outage: more entries are wanted.
    Undecided,
    /// Nothing tells a run of bad entries from an outage: keep what is unresolved.
    Outage,
}

impl Triage {
    /// A triage of a batch of `len` entries, sent in one request.
    #[cfg(any(test, fuzzing))]
    pub fn new(len: usize) -> Triage {
        Triage::in_parts(std::slice::from_ref(&(0..len)))
    }

    /// A triage of a batch sent in `parts`, consecutive, in order: each a request's worth.
    pub fn in_parts(parts: &[Range<usize>]) -> Triage {
        let len = parts.last().map_or(0, |p| p.end);
        let largest = parts.iter().map(ExactSizeIterator::len).max().unwrap_or(0);
        Triage {
            resolved: vec![false; len],
            todo: parts
                .iter()
                .rev()
                .filter(|r| r.start < r.end)
                .cloned()
                .collect(),
            suspects: Vec::new(),
            confirming: Vec::new(),
            probe: None,
            phase: Phase::Fresh,
            blind: 0,
            blind_limit: blind_limit(largest),
            failed_probes: 0,
            lent: false,
        }
    }

    pub fn next(&mut self) -> Step {
        if let Some(&i) = self.confirming.last() {
            return Step::Send(Request {
                range: i..i + 1,
                retries: true,
                confirm: true,
            });
        }
        if let Some(range) = &self.probe {
            return Step::Send(Request {
                range: range.clone(),
                retries: false,
                confirm: false,
            });
        }
        match self.phase {
            Phase::Undecided => return Step::WantMore,
            Phase::Outage => return Step::Outage,
            Phase::Fresh | Phase::Searching => {}
        }
        if let Some(range) = self.todo.last() {
            let whole = self.phase == Phase::Fresh;
            self.phase = Phase::Searching;
            return Step::Send(Request {
                range: range.clone(),
                retries: whole,
                confirm: false,
            });
        }
        if self.suspects.is_empty() {
            return Step::Done;
        }
        // Suspects, and nothing taken since they failed: bad entries at the end of the
        // batch, or an outage that began after the server last took something.
        self.decide_later();
        self.next()
    }

    /// What became of the request `next` asked for.
    pub fn answer(&mut self, request: &Request, answer: Answer) {
        let range = request.range.clone();
        if request.confirm {
            self.confirming.pop();
            // Taken, or failed for good: resolved either way.
            self.resolved[range.start] = true;
            return;
        }
        let probing = self.probe.take();
        if probing.is_none() {
            self.todo.pop();
        }
        match answer {
            Answer::Taken => {
                self.resolved[range].fill(true);
                self.blind = 0;
                self.failed_probes = 0;
                // Each suspect's last chance, in order.
                self.confirming.extend(self.suspects.drain(..).rev());
            }
            Answer::Split => self.todo.extend(halves(range)),
            Answer::ServerFault if probing.is_some() => {
                self.failed_probes += 1;
                self.suspects.push(range.start);
                if self.failed_probes < MAX_FAILED_PROBES {
                    self.probe_next();
                } else {
                    self.decide_later();
                }
            }
            Answer::ServerFault => {
                if range.len() == 1 {
                    self.suspects.push(range.start);
                } else {
                    self.todo.extend(halves(range));
                }
                self.blind += 1;
                if self.blind > self.blind_limit && self.failed_probes < MAX_FAILED_PROBES {
                    self.probe_next();
                }
            }
        }
    }

    /// Whether the server took a request of this batch.
    pub fn taken(&self) -> bool {
        self.resolved.contains(&true)
    }

    /// Whether entries queued behind were lent already.
    pub fn lent(&self) -> bool {
        self.lent
    }

    /// Adds the `more` entries queued behind the batch, after `WantMore`: the farthest of
    /// them is tried first, alone.
    pub fn grow(&mut self, more: usize) {
        self.lent = true;
        if more == 0 {
            return self.nothing_more();
        }
        let start = self.resolved.len();
        self.resolved.resize(start + more, false);
        self.blind_limit = self.blind_limit.max(blind_limit(more));
        self.phase = Phase::Searching;
        self.failed_probes = 0;
        self.todo.insert(0, start..start + more);
        self.probe_next();
    }

    /// Nothing more is queued behind the batch (after `WantMore`; a batch read back from
    /// the spool never has anything). If the server took a request of it, what is left is
    /// searched in order, probing no more, and every suspect gets its last chance: bad
    /// entries at the end of what was logged must not hold up what is logged next, nor a
    /// spool read back after them. Otherwise it is an outage.
    pub fn nothing_more(&mut self) {
        if !self.taken() {
            self.phase = Phase::Outage;
            return;
        }
        self.phase = Phase::Searching;
        if self.todo.is_empty() {
            self.confirming.extend(self.suspects.drain(..).rev());
        } else {
            self.failed_probes = MAX_FAILED_PROBES;
        }
    }

    /// Whether entry `i` was taken or failed for good.
    pub fn resolved(&self) -> &[bool] {
        &self.resolved
    }

    /// Nothing more can be learned from this batch alone.
    fn decide_later(&mut self) {
        self.phase = Phase::Undecided;
    }

    /// Tries the entry farthest from the run of failures next, alone, if any is left: the
    /// rest of its part stays to be sent after the run.
    fn probe_next(&mut self) {
        let Some(far) = self.todo.first_mut() else {
            return;
        };
        let last = far.end - 1;
        far.end = last;
        if far.start == far.end {
            self.todo.remove(0);
        }
        self.probe = Some(last..last + 1);
    }
}

/// Far entries tried, each alone, before a run of failures is taken for an outage.
const MAX_FAILED_PROBES: u32 = 2;

/// Failures in a row a binary search through `len` entries makes down to one, and two
/// to spare.
fn blind_limit(len: usize) -> u32 {
    usize::BITS - len.leading_zeros() + 2
}

/// `range` in two, the first half first off a stack (`[second, first]`).
fn halves(range: Range<usize>) -> [Range<usize>; 2] {
    let mid = range.start + range.len() / 2;
    [mid..range.end, range.start..mid]
}

#[cfg(test)]
mod tests {
    use super::super::sim::Rng;
    use super::*;
    use std::collections::BTreeSet;

    /// A Logwell server as triage sees it: entries it cannot store (poison), a largest
    /// request it takes (413 above), and maybe an outage (500 for everything) from the
    /// `down_from`th request on.
    struct Server {
        poison: BTreeSet<usize>,
        max_entries: usize,
        down_from: Option<usize>,
        requests: usize,
    }

    impl Server {
        fn answer(&mut self, ids: &[usize], retries: bool) -> Answer {
            let tries = if retries { 4 } else { 1 };
            let mut answer = Answer::ServerFault;
            for _ in 0..tries {
                self.requests += 1;
                answer = if self.down_from.is_some_and(|d| self.requests >= d) {
                    Answer::ServerFault
                } else if ids.len() > self.max_entries {
                    Answer::Split
                } else if ids.iter().any(|id| self.poison.contains(id)) {
                    Answer::ServerFault
                } else {
                    Answer::Taken
                };
                if answer != Answer::ServerFault {
                    break;
                }
            }
            answer
        }
    }

    /// What became of a stream of entries sent as the flush thread sends them: a batch
    /// of up to `per_request`, triaged; what it leaves unresolved at the front of the
    /// next, filled up from the stream.
    #[derive(Debug, Default)]
    struct Delivery {
        failed: BTreeSet<usize>,
        taken: BTreeSet<usize>,
        /// What no triage could resolve once the stream ran out.
        left: BTreeSet<usize>,
    }

    /// `late`: when what is left is stuck, this many more good entries are logged, as an
    /// application keeps logging (the server knows nothing bad of them).
    fn deliver(server: &mut Server, mut total: usize, per_request: usize, late: usize) -> Delivery {
        let mut out = Delivery::default();
        let mut pending: Vec<usize> = Vec::new();
        let mut next = 0;
        let mut cycles = 0;
        loop {
            cycles += 1;
            assert!(cycles < 10 * total + 10, "no end in sight");
            let pending_before = pending.len();
            let before = pending_before + out.taken.len() + out.failed.len();
            let fill = per_request.saturating_sub(pending.len()).min(total - next);
            pending.extend(next..next + fill);
            next += fill;
            if pending.is_empty() {
                return out;
            }
            let parts: Vec<Range<usize>> = (0..pending.len())
                .step_by(per_request)
                .map(|start| start..(start + per_request).min(pending.len()))
                .collect();
            let mut triage = Triage::in_parts(&parts);
            let end = loop {
                match triage.next() {
                    Step::Send(request) => {
                        let ids = &pending[request.range.clone()];
                        let answer = server.answer(ids, request.retries);
                        match answer {
                            Answer::Taken => out.taken.extend(ids),
                            Answer::ServerFault if request.confirm => {
                                out.failed.insert(ids[0]);
                            }
                            _ => {}
                        }
                        triage.answer(&request, answer);
                    }
                    // As the flush thread does: with the server up, the rest goes in
                    // front of the next batch; else the next batch is lent, once.
                    Step::WantMore if next < total && triage.taken() => break Step::WantMore,
                    Step::WantMore
                        if next < total && pending.len() <= per_request && !triage.lent() =>
                    {
                        let more = per_request.min(total - next);
                        pending.extend(next..next + more);
                        next += more;
                        triage.grow(more);
                    }
                    Step::WantMore => triage.nothing_more(),
                    end @ (Step::Done | Step::Outage) => break end,
                }
            };
            let resolved = triage.resolved();
            assert_eq!(resolved.len(), pending.len());
            for (&id, &r) in pending.iter().zip(resolved) {
                let outcomes =
                    usize::from(out.failed.contains(&id)) + usize::from(out.taken.contains(&id));
                assert_eq!(
                    usize::from(r),
                    outcomes,
                    "entry {id}: one outcome once resolved"
                );
            }
            assert!(
                end != Step::Done || resolved.iter().all(|&r| r),
                "done: all resolved"
            );
            let mut kept = resolved.iter();
            pending.retain(|_| !kept.next().copied().unwrap_or(true));
            // Nothing resolved, and the next batch would be this one again.
            let resolved_before = before - pending_before;
            let stuck = out.taken.len() + out.failed.len() == resolved_before
                && (next == total || pending.len() >= per_request);
            if end == Step::Outage && stuck {
                if late == 0 || next < total {
                    out.left = pending.into_iter().chain(next..total).collect();
                    return out;
                }
                total += late;
            }
        }
    }

    /// Bad entries: one run (shorter than two requests' worth, `per_request`: longer
    /// ones are held as an outage, `a_run_longer_than_two_requests_is_held_as_an_outage`),
    /// maybe some scattered, maybe none.
    fn poison(rng: &mut Rng, n: usize, per_request: usize) -> BTreeSet<usize> {
        let mut poison = BTreeSet::new();
        if rng.chance(80) {
            let start = rng.below(n);
            let longest = if rng.chance(50) {
                4
            } else {
                150.min(2 * per_request - 1)
            };
            let run = 1 + rng.below(longest);
            poison.extend(start..(start + run).min(n));
        }
        if rng.chance(30) {
            for _ in 0..rng.below(n / 5 + 1) {
                poison.insert(rng.below(n));
            }
        }
        poison
    }

    /// The most consecutive entries in `ids`.
    fn longest_run(ids: &BTreeSet<usize>) -> usize {
        let (mut longest, mut run, mut last) = (0, 0, None);
        for &id in ids {
            run = if last.is_some_and(|l| l + 1 == id) {
                run + 1
            } else {
                1
            };
            longest = longest.max(run);
            last = Some(id);
        }
        longest
    }

    /// A stream's length, and the entries a request takes (mostly Logwell's 100).
    fn stream(rng: &mut Rng) -> (usize, usize) {
        let total = 1 + rng.below(400);
        let per_request = if rng.chance(70) {
            100
        } else {
            10 + rng.below(240)
        };
        (total, per_request)
    }

    fn log2(n: usize) -> usize {
        (usize::BITS - n.leading_zeros()) as usize
    }

    #[test]
    fn seeds_with_a_healthy_server_fail_exactly_the_bad_entries() {
        for seed in 0..5000 {
            let mut rng = Rng::new(seed);
            let (total, per_request) = stream(&mut rng);
            let bad = poison(&mut rng, total, per_request);
            let late = if rng.chance(50) { 0 } else { 1 + rng.below(20) };
            let max_entries = if rng.chance(20) {
                1 + rng.below(60)
            } else {
                usize::MAX
            };
            let mut server = Server {
                poison: bad.clone(),
                max_entries,
                down_from: None,
                requests: 0,
            };
            let out = deliver(&mut server, total, per_request, late);
            let case = format!("seed {seed}: {total} entries by {per_request}, bad {bad:?}");
            assert!(out.failed.is_subset(&bad), "{case}: a good entry failed");
            assert!(out.taken.is_disjoint(&bad), "{case}");
            // Only bad entries wait, and a good one logged later settles them; but a run
            // of a request's worth of bad entries is held as an outage, with what follows.
            if longest_run(&bad) < per_request {
                assert!(
                    out.left.is_subset(&bad),
                    "{case}: good entries left {:?}",
                    out.left
                );
                if late > 0 {
                    assert_eq!(out.failed, bad, "{case}");
                }
            }
            let late_entries = out.taken.len() + out.failed.len() + out.left.len() - total;
            // The cost: per bad entry a binary search, its confirmation, and its share of
            // the searches a run longer than a request repeats while it waits for good
            // entries behind it; per request's worth the whole batch's retries; and the
            // halving of requests too large.
            let sent = total + late_entries;
            let batches = sent.div_ceil(per_request) + late_entries;
            let halving = 4 * sent / max_entries.min(sent);
            let budget = (bad.len() + 1) * (4 * log2(per_request) + 16) + 8 * batches + halving;
            assert!(
                server.requests <= budget,
                "{case}: {} requests",
                server.requests
            );
        }
    }

    #[test]
    fn seeds_with_an_outage_fail_nothing_that_was_not_taken_between() {
        for seed in 0..5000 {
            let mut rng = Rng::new(seed);
            let (total, per_request) = stream(&mut rng);
            let bad = if rng.chance(50) {
                BTreeSet::new()
            } else {
                poison(&mut rng, total, per_request)
            };
            let down_from = 1 + rng.below(60);
            let mut server = Server {
                poison: bad.clone(),
                max_entries: usize::MAX,
                down_from: Some(down_from),
                requests: 0,
            };
            let out = deliver(&mut server, total, per_request, 0);
            let case = format!(
                "seed {seed}: {total} by {per_request}, down from request {down_from}, bad {bad:?}"
            );
            // An outage from the first request: nothing can be told apart.
            if down_from == 1 {
                assert!(out.failed.is_empty() && out.taken.is_empty(), "{case}");
            }
            // Without bad entries nothing is ever failed, whenever the outage begins.
            if bad.is_empty() {
                assert!(out.failed.is_empty(), "{case}: failed {:?}", out.failed);
            }
            assert_eq!(
                out.taken.len() + out.failed.len() + out.left.len(),
                total,
                "{case}"
            );
        }
    }

    /// Runs one triage of `len` entries, `behind` more queued behind them; returns its
    /// last step, the entries failed for good and the order the server took the rest in.
    fn triage(server: &mut Server, len: usize, behind: usize) -> (Step, Vec<usize>, Vec<usize>) {
        let mut triage = Triage::new(len);
        let (mut failed, mut taken) = (Vec::new(), Vec::new());
        loop {
            match triage.next() {
                Step::Send(request) => {
                    let ids: Vec<usize> = request.range.clone().collect();
                    let answer = server.answer(&ids, request.retries);
                    match answer {
                        Answer::Taken => taken.extend(ids),
                        Answer::ServerFault if request.confirm => failed.extend(ids),
                        _ => {}
                    }
                    triage.answer(&request, answer);
                }
                Step::WantMore if behind > 0 && triage.taken() => {
                    return (Step::WantMore, failed, taken);
                }
                Step::WantMore if behind > 0 && !triage.lent() => triage.grow(behind),
                Step::WantMore => triage.nothing_more(),
                end => return (end, failed, taken),
            }
        }
    }

    fn server(poison: impl IntoIterator<Item = usize>) -> Server {
        Server {
            poison: poison.into_iter().collect(),
            max_entries: usize::MAX,
            down_from: None,
            requests: 0,
        }
    }

    #[test]
    fn one_bad_entry_costs_a_binary_search_and_keeps_the_order() {
        let mut server = server([37]);
        let (end, failed, taken) = triage(&mut server, 100, 0);
        assert_eq!((end, failed), (Step::Done, vec![37]));
        assert_eq!(taken, (0..100).filter(|&i| i != 37).collect::<Vec<_>>());
        // Four tries of the whole, twelve parts, four tries of the suspect alone.
        assert_eq!(server.requests, 4 + 12 + 4);
    }

    #[test]
    fn a_run_of_bad_entries_ending_the_batch_wants_what_waits_behind() {
        // The batch ends inside the run: nothing in it is taken after the run fails. With
        // entries queued behind, the undecided go again in front of them; the stream
        // runs fail exactly the run.
        let (end, failed, taken) = triage(&mut server(90..100), 96, 104);
        assert_eq!((end, failed.len(), taken.len()), (Step::WantMore, 0, 90));
        let out = deliver(&mut server(90..100), 200, 96, 0);
        assert_eq!(out.failed, (90..100).collect());
        assert_eq!(out.taken.len(), 190);
        // Without, the last records logged: once the server took part of the batch, the
        // run is searched out and failed, not left to hold up what comes next.
        let (end, mut failed, _) = triage(&mut server(80..96), 96, 0);
        failed.sort_unstable();
        assert_eq!((end, failed), (Step::Done, (80..96).collect()));
    }

    #[test]
    fn a_run_longer_than_two_requests_is_held_as_an_outage() {
        // Nothing of the batch or of the request's worth lent to it is taken: that is
        // what an outage looks like. The run waits, and what follows it with it.
        let out = deliver(&mut server(0..250), 400, 100, 5);
        assert!(out.failed.is_empty() && out.taken.is_empty());
        assert_eq!(out.left.len(), 400);
    }

    #[test]
    fn a_bad_entry_logged_last_is_failed_in_its_own_batch() {
        let (end, failed, taken) = triage(&mut server([7]), 8, 0);
        assert_eq!(
            (end, failed, taken),
            (Step::Done, vec![7], (0..7).collect())
        );
    }

    #[test]
    fn an_outage_just_after_a_taken_request_fails_no_good_entry_queued_before_others() {
        // The simulator's seed 6539: entry 0 is bad, 1 is taken, and the server fails
        // everything from the next request on, when 2..5 have not gone yet. With more
        // queued behind, they wait for those instead of being confirmed into the outage.
        let mut down = server([0]);
        down.down_from = Some(8);
        let (end, failed, taken) = triage(&mut down, 5, 10);
        assert_eq!((end, failed, taken), (Step::WantMore, vec![0], vec![1]));
    }

    #[test]
    fn an_outage_after_a_taken_request_fails_nothing_that_failed_after_it() {
        // Entry 10 is bad; the server fails everything from the 21st request on, when
        // 10 has been failed for good and the first half taken.
        let mut down = server([10]);
        down.down_from = Some(22);
        let (end, failed, taken) = triage(&mut down, 100, 100);
        assert_eq!((end, failed), (Step::WantMore, vec![10]));
        assert_eq!(taken, (0..50).filter(|&i| i != 10).collect::<Vec<_>>());
    }
}
