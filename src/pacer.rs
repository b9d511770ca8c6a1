//! Request pacing learnt from the server's 429 replies.
//!
//! Unpaced until the first 429. Then the worker sends no faster than the rate the server
//! just proved it allows (accepted requests over the `Retry-After` window, less a margin),
//! halving that rate on every further 429 and creeping back up by a small step per
//! accepted request. A backlog after an outage therefore drains at the server's pace
//! with a handful of 429s instead of one per request.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Longest window we estimate over (Logwell's limit is per minute).
const MAX_WINDOW: Duration = Duration::from_secs(60);
const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Start times kept for the estimate; more than a minute of Logwell's 600 per minute.
const MAX_RECENT: usize = 1024;
/// Pace at this share of the rate the server allowed, to stay clear of its edge.
const MARGIN: f64 = 0.8;
/// Each accepted request shortens the interval by this share: ~500 to get back 2x.
const RECOVERY: f64 = 1.0 / 700.0;
/// Below this the pacer steps aside.
const MIN_INTERVAL: Duration = Duration::from_micros(500);

#[derive(Default)]
pub struct Pacer {
    /// Least time between the starts of two requests; zero while unpaced.
    interval: Duration,
    last_start: Option<Instant>,
    /// Start times of recently accepted requests, oldest first.
    recent: VecDeque<Instant>,
}

impl Pacer {
    /// When the next request may start (`None`: now).
    pub fn ready_at(&self) -> Option<Instant> {
        if self.interval.is_zero() {
            return None;
        }
        self.last_start.map(|t| t + self.interval)
    }

    /// A request that started at `start` was accepted.
    pub fn on_accepted(&mut self, start: Instant) {
        self.last_start = Some(start);
        if self.recent.len() == MAX_RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(start);
        if !self.interval.is_zero() {
            self.interval = self.interval.mul_f64(1.0 - RECOVERY);
            if self.interval < MIN_INTERVAL {
                self.interval = Duration::ZERO;
            }
        }
    }

    /// The server answered 429 at `now`, asking for a wait of `retry_after`.
    pub fn on_limited(&mut self, now: Instant, retry_after: Duration) {
        let window = retry_after.clamp(MIN_WINDOW, MAX_WINDOW);
        let since = now.checked_sub(window);
        let allowed = self
            .recent
            .iter()
            .filter(|&&t| since.is_none_or(|s| t >= s))
            .count()
            .max(1);
        let estimate = window.div_f64(allowed as f64 * MARGIN);
        self.interval = estimate.max(self.interval * 2).min(window);
        self.last_start = Some(now);
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_until_limited_then_paced_below_the_proven_rate() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        for i in 0..50 {
            p.on_accepted(t0 + Duration::from_millis(i * 10));
            assert_eq!(p.ready_at(), None);
        }
        // 50 accepted in the last second: pace at 40/s.
        let now = t0 + Duration::from_millis(500);
        p.on_limited(now, Duration::from_secs(1));
        assert_eq!(p.interval(), Duration::from_millis(25));
        assert_eq!(p.ready_at(), Some(now + Duration::from_millis(25)));
        // A second 429 halves the rate at least.
        p.on_limited(now, Duration::from_secs(1));
        assert!(
            p.interval() >= Duration::from_millis(50),
            "{:?}",
            p.interval()
        );
    }

    #[test]
    fn recovers_step_by_step_and_steps_aside() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        p.on_limited(t0, Duration::from_secs(1));
        assert_eq!(
            p.interval(),
            Duration::from_secs(1),
            "nothing accepted yet: one a window"
        );
        let mut t = t0;
        for _ in 0..700 {
            t += p.interval();
            p.on_accepted(t);
        }
        let after = p.interval();
        assert!(
            after < Duration::from_millis(400) && after > Duration::from_millis(300),
            "{after:?}"
        );
        for _ in 0..20_000 {
            p.on_accepted(t);
        }
        assert_eq!(p.ready_at(), None);
    }
}
