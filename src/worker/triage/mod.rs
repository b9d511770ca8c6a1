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
//! taken is an outage: all is kept.
//!
//! A batch kept that way carries `Evidence` across cycles: when it has failed whole three
//! times, the server taking other requests (what is logged meanwhile, or the spool)
//! between each and once more since, the server is up, and its next triage searches it
//! as if part of it had been taken. Until then a run of bad entries longer than two
//! requests' worth looks like an outage, and waits.
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

/// What earlier cycles showed of a batch the server failed whole, with nothing of it
/// taken: whether the server took other requests around those failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// How many requests the server had taken in all when the batch last failed whole.
    taken_at_failure: Option<u64>,
    /// Its failures whole that came after the server took another request.
    after_takes: u8,
}

/// Failures whole after other requests were taken that prove the server up: an outage
/// would have to begin and end around them this many times.
const FAILURES_TO_PROVE: u8 = 2;

impl Evidence {
    /// The batch failed whole again, with nothing taken, when the server had taken
    /// `taken` requests in all.
    pub fn failed_whole(&mut self, taken: u64) {
        if self.taken_at_failure.is_some_and(|then| taken > then) {
            self.after_takes = self.after_takes.saturating_add(1);
        }
        self.taken_at_failure = Some(taken);
    }

    /// Whether the server is known to be up, having taken `taken` requests in all: the
    /// batch failed whole between takes enough times, and the server took one since.
    pub fn server_up(&self, taken: u64) -> bool {
        self.after_takes >= FAILURES_TO_PROVE
            && self.taken_at_failure.is_some_and(|then| taken > then)
    }
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
    /// The server is known to be up (`Evidence`): failures are the batch's own.
    server_up: bool,
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
            server_up: false,
        }
    }

    /// The server is known to be up: with nothing more to tell by, what is left is
    /// searched, and its suspects confirmed, as if part of the batch had been taken.
    pub fn knowing_the_server_up(mut self) -> Triage {
        self.server_up = true;
        self
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
    /// the spool never has anything). If the server took a request of it, or is known to
    /// be up, what is left is searched in order, probing no more, and every suspect gets
    /// its last chance: bad entries at the end of what was logged must not hold up what
    /// is logged next, nor a spool read back after them. Otherwise it is an outage.
    pub fn nothing_more(&mut self) {
        if !self.taken() && !self.server_up {
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
mod tests;
