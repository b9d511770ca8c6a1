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
    run(Triage::new(len), server, behind)
}

/// Runs `triage` to its end against `server`, `behind` more queued behind its batch.
fn run(mut triage: Triage, server: &mut Server, behind: usize) -> (Step, Vec<usize>, Vec<usize>) {
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

#[test]
fn a_batch_failing_whole_between_taken_requests_proves_the_server_up() {
    let mut evidence = Evidence::default();
    evidence.failed_whole(10);
    evidence.failed_whole(10);
    assert!(
        !evidence.server_up(10),
        "nothing taken around its failures: an outage"
    );
    evidence.failed_whole(11);
    evidence.failed_whole(12);
    assert!(
        !evidence.server_up(12),
        "the last failure may begin an outage"
    );
    assert!(evidence.server_up(13));
}

#[test]
fn known_up_a_batch_of_bad_entries_is_searched_out_and_failed() {
    // Nothing of it taken, nothing behind: alone, an outage.
    let (end, failed, _) = triage(&mut server(0..8), 8, 0);
    assert_eq!((end, failed.len()), (Step::Outage, 0));
    let (end, mut failed, mut taken) =
        run(Triage::new(8).knowing_the_server_up(), &mut server(0..8), 0);
    assert_eq!(end, Step::Done);
    failed.sort_unstable();
    taken.sort_unstable();
    assert_eq!((failed, taken), ((0..8).collect(), Vec::new()));
}
