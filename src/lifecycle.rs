//! Where a shipper is in its life. The one home of "closed": the worker, the shipper and
//! the Python edge (callbacks, `Core.closed`) all read it here.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Taking entries.
    Open = 0,
    /// A close has begun: no new entries; the thread delivers what it holds by the
    /// deadline. Callbacks still run (deliveries during the drain are reported).
    Closing = 1,
    /// A close has returned: nothing left to wait for, and no callback runs again.
    Closed = 2,
}

/// A `State` shared between threads. It only moves forward.
#[derive(Debug, Default)]
pub struct Lifecycle(AtomicU8);

impl Lifecycle {
    pub fn state(&self) -> State {
        match self.0.load(Ordering::Acquire) {
            0 => State::Open,
            1 => State::Closing,
            _ => State::Closed,
        }
    }

    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// Moves to `state` unless it is there or past it already.
    pub fn advance(&self, state: State) {
        self.0.fetch_max(state as u8, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_only_moves_forward() {
        let life = Lifecycle::default();
        assert!(life.is_open());
        life.advance(State::Closed);
        life.advance(State::Closing);
        assert_eq!(life.state(), State::Closed);
    }
}
