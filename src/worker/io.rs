//! What the flush thread does to the world: read the clock, sleep, post a request. The
//! thread's own `Wired` uses the system clock, `park_timeout` and HTTP; the simulator
//! (`sim`) runs a virtual clock, the owner's calls and a simulated server instead, on
//! the same `Worker` code.

use std::thread;
use std::time::{Duration, Instant};

use crate::errors::Error;
use crate::protocol::Reply;
use crate::transport::Transport;

pub(super) trait Io: Send {
    fn now(&self) -> Instant;
    /// Sleeps until `until`, or until woken by a push, a flush or a close.
    fn park_until(&mut self, until: Instant);
    fn post(&mut self, body: &[u8], entries: u64, timeout: Duration) -> Result<Reply, Error>;
}

pub(super) struct Wired {
    transport: Transport,
}

impl Wired {
    pub(super) fn new(transport: Transport) -> Wired {
        Wired { transport }
    }
}

impl Io for Wired {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn park_until(&mut self, until: Instant) {
        thread::park_timeout(until.saturating_duration_since(Instant::now()));
    }

    fn post(&mut self, body: &[u8], entries: u64, timeout: Duration) -> Result<Reply, Error> {
        self.transport.post(body, entries, timeout)
    }
}
