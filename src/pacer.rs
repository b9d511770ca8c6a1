//! Request pacing: a model of the server's rate limit, kept on our side, so that a
//! backlog drains at the server's pace instead of running into 429s.
//!
//! Logwell keeps one token bucket per project: it holds `requests_per_minute` requests,
//! refills continuously at that rate, and answers 429 with `Retry-After: 60` when empty,
//! whatever it holds a moment later. With `requests_per_minute` set, the pacer keeps the
//! same bucket and waits for a token before each request, so one process alone meets no
//! 429. Processes sharing a key (gunicorn workers, a cron job) drain the server's bucket
//! together; a 429 says so, and the pacer takes its share of the refill from what the
//! server was seen to allow it. While requests are accepted the share grows again: by a
//! small step a second at first, which evens shares out, then faster the longer no 429
//! has come, so a sender whose neighbours have finished (or that measured a small share
//! because it joined late) takes the whole budget back within about 20 s.
//!
//! With no rate given (0), the pacer stays out of the way until a 429, then paces at the
//! rate the server was seen to allow over the `Retry-After` window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Logwell's limit is per minute: nothing older tells us anything.
const WINDOW: Duration = Duration::from_secs(60);
/// Our refill against the server's: a request leaves before it arrives, and the server's
/// clock is not ours.
const REFILL_MARGIN: f64 = 0.97;
/// The share of the server's refill we take after a 429, against the share measured.
const SHARE_MARGIN: f64 = 0.75;
const MIN_SHARE: f64 = 0.01;
/// While requests are accepted, the share grows by this much a second: the same for every
/// sender, so senders sharing a key drift towards equal shares (a share grown by a
/// multiple keeps their ratios).
const GROWTH_PER_SECOND: f64 = 0.002;
/// And by a multiple that speeds up with the time since the last 429: `t` seconds after
/// it, by `(t / PROBE_TIME)^2 / PROBE_TIME` of itself a second (x1.4 over the first
/// `PROBE_TIME`, x14 over two). Senders still sharing the key meet a 429 again after about
/// `PROBE_TIME`; one left alone is back to the whole budget within two. In a simulation of
/// ten mixes of senders (together, staggered by 0.3-30 s, one large among small ones, 2-8
/// senders) every drain took within 1.25x the least time, with about one 429 per sender
/// per 10 s of contention, where the constant step alone left a late starter at 4x. Real
/// runs do worse when starts are staggered (docs/behaviour.md has the figures).
const PROBE_TIME: f64 = 10.0;
/// The longest gap between accepted requests that counts towards growth.
const MAX_GROWTH_GAP: Duration = Duration::from_secs(10);
/// Fewer of our own requests than this since the bucket was last seen empty, sent with
/// more waiting behind them, say nothing about our share: other senders were still
/// bursting, or we were sending too little to need more.
const MIN_EVIDENCE: usize = 4;
/// The least share a first 429 leaves, against the share before it.
const FIRST_CUT_FLOOR: f64 = 0.25;
/// Without a configured rate: the wait after a 429 that brought no evidence, doubled for
/// each further one.
const MIN_HOLD: Duration = Duration::from_secs(1);
/// Times of requests the server charged, kept for the estimate; more than a minute of
/// Logwell's default 600 per minute.
const MAX_CHARGED: usize = 4096;
/// Without a configured rate, a learnt one grown to this many times itself steps aside.
const MAX_LEARNT_SHARE: f64 = 2.0;

pub struct Pacer {
    /// The server's bucket size and refill (requests a second); 0: not known.
    capacity: f64,
    refill: f64,
    /// Whether `refill` was configured (the server's figure) or learnt from 429s.
    configured: bool,
    tokens: f64,
    refreshed: Instant,
    /// Our part of `refill`: 1 until another sender shows up in a 429.
    share: f64,
    /// Requests the server charged (any reply but a 429), oldest first: when each started,
    /// and whether more entries were waiting behind it.
    charged: VecDeque<(Instant, bool)>,
    /// The last 429: the server's bucket was empty then.
    last_limited: Option<Instant>,
    /// No request before this, whatever the tokens say.
    hold_until: Option<Instant>,
    /// Without a configured rate: 429s in a row that taught no rate.
    blind_limits: u32,
}

impl Pacer {
    /// `requests_per_minute`: the server's limit for our key; 0: none known.
    pub fn new(requests_per_minute: u32, now: Instant) -> Pacer {
        let per_minute = f64::from(requests_per_minute);
        Pacer {
            capacity: per_minute,
            refill: per_minute / 60.0 * REFILL_MARGIN,
            configured: requests_per_minute > 0,
            tokens: per_minute,
            refreshed: now,
            share: 1.0,
            charged: VecDeque::new(),
            last_limited: None,
            hold_until: None,
            blind_limits: 0,
        }
    }

    fn refresh(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refreshed).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill * self.share).min(self.capacity);
        self.refreshed = now;
    }

    /// When the next request may start; `None`: now.
    pub fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        let hold = self.hold_until.filter(|&t| t > now);
        if self.refill == 0.0 {
            return hold;
        }
        self.refresh(now);
        let token = (self.tokens < 1.0).then(|| {
            now + Duration::from_secs_f64((1.0 - self.tokens) / (self.refill * self.share))
        });
        match (hold, token) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// A request starts now: it takes a token.
    pub fn on_send(&mut self, now: Instant) {
        if self.refill > 0.0 {
            self.refresh(now);
            self.tokens -= 1.0;
        }
    }

    /// The server answered the request that started at `start` with anything but 429:
    /// it took one of its tokens. `accepted`: with 2xx; `backlogged`: more entries were
    /// waiting behind this request.
    pub fn on_charged(&mut self, start: Instant, accepted: bool, backlogged: bool) {
        let previous = self.charged.back().map(|&(t, _)| t);
        if self.charged.len() == MAX_CHARGED {
            self.charged.pop_front();
        }
        self.charged.push_back((start, backlogged));
        if !accepted || self.refill == 0.0 {
            return;
        }
        self.blind_limits = 0;
        let gap = previous
            .map_or(Duration::ZERO, |p| start.saturating_duration_since(p))
            .min(MAX_GROWTH_GAP)
            .as_secs_f64();
        if let Some(limited) = self.last_limited {
            // The growth above, integrated over the gap: exact whatever the gap.
            let since = start.saturating_duration_since(limited).as_secs_f64();
            let before = (since - gap).max(0.0);
            self.share *= ((since.powi(3) - before.powi(3)) / (3.0 * PROBE_TIME.powi(3))).exp();
        }
        self.share += GROWTH_PER_SECOND * gap;
        if self.configured {
            self.share = self.share.min(1.0);
        } else if self.share >= MAX_LEARNT_SHARE {
            *self = Pacer::new(0, start);
        }
    }

    /// The server answered 429 at `now`: its bucket is empty. Returns how long to wait
    /// before the next request.
    pub fn on_limited(&mut self, now: Instant, retry_after: Option<Duration>) -> Duration {
        while self
            .charged
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > WINDOW)
        {
            self.charged.pop_front();
        }
        if self.configured {
            self.learn_share(now);
        } else {
            self.learn_rate(now, retry_after);
        }
        self.tokens = 0.0;
        self.refreshed = now;
        self.last_limited = Some(now);
        self.hold_until = match retry_after {
            // The server's word where we have no model of our own.
            Some(wait) if !self.configured => Some(now + wait),
            // No rate learnt yet: let other senders finish their burst before probing.
            _ if self.blind_limits > 0 => {
                Some(now + MIN_HOLD * (1 << (self.blind_limits - 1).min(6)))
            }
            // The share learnt paces the next request.
            _ => None,
        };
        self.ready_at(now)
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Our share of the refill, from our requests against all the server allowed since
    /// its bucket was last seen empty. Only what a sender sent with more waiting behind
    /// it measures a share: one sending little learns nothing of what it could have, and
    /// would starve itself when a backlog comes.
    fn learn_share(&mut self, now: Instant) {
        let recent_limit = self
            .last_limited
            .filter(|&t| now.saturating_duration_since(t) < WINDOW);
        let since = recent_limit
            .or_else(|| self.charged.front().map(|&(t, _)| t))
            .unwrap_or(now);
        let recent = self.charged.iter().filter(|&&(t, _)| t >= since);
        let ours = recent.clone().count();
        let backlogged = recent.filter(|&&(_, b)| b).count();
        let span = now.saturating_duration_since(since).as_secs_f64();
        let allowed = span * self.refill / REFILL_MARGIN;
        self.share = if recent_limit.is_none() {
            if backlogged < MIN_EVIDENCE {
                return;
            }
            // The first 429: what the server's bucket held when we started is not known,
            // at most all of it. Measured against a full bucket the share is the least it
            // can be; a sender that started after others had emptied the bucket measures
            // almost nothing that way, so a first 429 leaves at least a quarter.
            let least = ours as f64 / (allowed + self.capacity).max(1.0);
            (least * SHARE_MARGIN).max(self.share * FIRST_CUT_FLOOR)
        } else if backlogged >= MIN_EVIDENCE {
            // Between two 429s the bucket was empty at both ends: `allowed` is exact.
            let measured = ours as f64 / allowed.max(1.0);
            measured.min(self.share) * SHARE_MARGIN
        } else {
            // Too little to measure, and the bucket is empty again: others are sending
            // more than it refills. A step down, as any congestion control takes, so a
            // server that keeps refusing is asked less and less often.
            self.share * SHARE_MARGIN
        }
        .clamp(MIN_SHARE, 1.0);
    }

    /// A rate from what the server accepted over the `Retry-After` window, less a margin;
    /// halved on each further 429. Too few requests in the window tell nothing (another
    /// sender emptied the bucket): then only `Retry-After` is waited out.
    fn learn_rate(&mut self, now: Instant, retry_after: Option<Duration>) {
        let window = retry_after
            .unwrap_or(MIN_HOLD)
            .clamp(Duration::from_secs(1), WINDOW);
        let since = now.checked_sub(window);
        let allowed = self
            .charged
            .iter()
            .filter(|&&(t, _)| since.is_none_or(|s| t >= s))
            .count();
        if allowed < MIN_EVIDENCE {
            self.blind_limits += 1;
            return;
        }
        self.blind_limits = 0;
        let measured = allowed as f64 / window.as_secs_f64() * SHARE_MARGIN;
        let current = self.refill * self.share;
        self.refill = if current > 0.0 {
            measured.min(current / 2.0)
        } else {
            measured
        };
        self.share = 1.0;
        self.capacity = 1.0;
    }

    #[cfg(test)]
    fn share(&self) -> f64 {
        self.share
    }
}

#[cfg(test)]
// A share is clamped to 1.0 or set to a floor exactly: equality is what is meant.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_then_the_configured_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(600, t0);
        for _ in 0..600 {
            assert_eq!(p.ready_at(t0), None);
            p.on_send(t0);
            p.on_charged(t0, true, true);
        }
        let next = p.ready_at(t0).expect("the bucket is empty");
        let wait = next - t0;
        // 10 a second, less the margin.
        assert!(wait > ms(100) && wait < ms(110), "{wait:?}");
        // Over the next minute: about 600 more.
        let mut t = t0;
        let mut sent = 0;
        while let Some(at) = p.ready_at(t) {
            t = at;
            if t - t0 > Duration::from_secs(60) {
                break;
            }
            p.on_send(t);
            sent += 1;
        }
        assert!((570..=600).contains(&sent), "{sent}");
    }

    #[test]
    fn no_rate_stays_out_of_the_way_until_a_429() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0, t0);
        for i in 0..50 {
            let t = t0 + ms(i * 10);
            assert_eq!(p.ready_at(t), None);
            p.on_send(t);
            p.on_charged(t, true, true);
        }
        let now = t0 + ms(500);
        // Retry-After is the server's word here.
        let wait = p.on_limited(now, Some(Duration::from_secs(1)));
        assert_eq!(wait, Duration::from_secs(1));
        // 50 in the last second: then 37.5 a second.
        let later = now + Duration::from_secs(1);
        p.on_send(later);
        let gap = p.ready_at(later).expect("paced") - later;
        assert!(gap > ms(20) && gap < ms(30), "{gap:?}");
    }

    #[test]
    fn a_429_after_a_burst_takes_the_share_this_sender_had() {
        let t0 = Instant::now();
        let mut p = Pacer::new(600, t0);
        // Two senders emptied the server's bucket together; we got 300 of its 600.
        for i in 0..300 {
            let t = t0 + ms(i * 2);
            p.on_send(t);
            p.on_charged(t, true, true);
        }
        let now = t0 + ms(600);
        let wait = p.on_limited(now, Some(Duration::from_secs(60)));
        let share = p.share();
        assert!(share > 0.36 && share < 0.38, "{share}");
        // The next request when a token comes at that share: about 0.28 s.
        assert!(wait > ms(250) && wait < ms(300), "{wait:?}");
        // Then about 3.6 a second, growing.
        let mut t = now + wait;
        let mut sent = 0;
        loop {
            let at = p.ready_at(t).unwrap_or(t);
            if at - now > Duration::from_secs(11) {
                break;
            }
            t = at;
            p.on_send(t);
            p.on_charged(t, true, true);
            sent += 1;
        }
        assert!((38..=48).contains(&sent), "{sent}");
    }

    #[test]
    fn later_429s_with_too_little_to_measure_step_the_share_down_each_time() {
        let t0 = Instant::now();
        let mut p = Pacer::new(600, t0);
        for _ in 0..100 {
            p.on_send(t0);
            p.on_charged(t0, true, true);
        }
        p.on_limited(t0 + ms(100), None);
        let measured = p.share();
        // Two requests accepted, then a 429: too few to measure, a step down.
        let mut t = t0 + ms(1100);
        for _ in 0..2 {
            p.on_send(t);
            p.on_charged(t, true, true);
            t += ms(100);
        }
        p.on_send(t);
        let mut wait = p.on_limited(t + ms(5), None);
        let stepped = p.share();
        assert!(
            (stepped / measured - SHARE_MARGIN).abs() < 0.01,
            "{measured} -> {stepped}"
        );
        // A server that goes on refusing: each 429 steps down again, each wait is
        // longer, and none is longer than one token at the share.
        for _ in 0..5 {
            t += ms(5) + wait;
            let before = p.share();
            p.on_send(t);
            let next = p.on_limited(t + ms(5), None);
            assert!((p.share() / before - SHARE_MARGIN).abs() < 1e-9);
            assert!(next > wait, "{next:?} {wait:?}");
            let token = Duration::from_secs_f64(1.0 / (10.0 * REFILL_MARGIN * p.share()));
            assert!(next <= token, "{next:?} {token:?}");
            wait = next;
        }
    }

    #[test]
    fn a_sender_that_starts_after_the_bucket_is_empty_keeps_a_quarter() {
        let t0 = Instant::now();
        let mut p = Pacer::new(600, t0);
        for i in 0..8 {
            let t = t0 + ms(i);
            p.on_send(t);
            p.on_charged(t, true, true);
        }
        // 8 requests against a bucket that may have been full: at least 1 %.
        p.on_limited(t0 + ms(10), None);
        assert_eq!(p.share(), FIRST_CUT_FLOOR);
    }

    #[test]
    fn the_share_grows_slowly_after_a_429_then_takes_back_the_whole_budget() {
        let t0 = Instant::now();
        let mut small = Pacer::new(600, t0);
        let mut large = Pacer::new(600, t0);
        for (p, requests) in [(&mut small, 60), (&mut large, 240)] {
            for _ in 0..requests {
                p.on_send(t0);
                p.on_charged(t0, true, true);
            }
            p.on_limited(t0 + ms(10), None);
        }
        let (s0, l0) = (small.share(), large.share());
        assert!(s0 < l0, "{s0} {l0}");
        let accepted_until = |p: &mut Pacer, from: u64, to: u64| {
            for i in from..=to {
                p.on_charged(t0 + ms(10) + ms(100 * i), true, true);
            }
        };
        // The first 5 s: close to the constant step, the same for both, so the small
        // share gains on the large one in ratio.
        accepted_until(&mut small, 1, 50);
        accepted_until(&mut large, 1, 50);
        let (s1, l1) = (small.share(), large.share());
        assert!(s1 - s0 > 0.01 && s1 / s0 < 1.2, "{s0} -> {s1}");
        assert!(s1 / s0 > l1 / l0, "{s0} -> {s1}, {l0} -> {l1}");
        // Left alone for 20 s, the small one is back to the whole.
        accepted_until(&mut small, 51, 200);
        assert_eq!(small.share(), 1.0);
    }

    #[test]
    fn the_growth_does_not_depend_on_how_often_requests_are_accepted() {
        let t0 = Instant::now();
        let limited_at_share = |requests: usize| {
            let mut p = Pacer::new(600, t0);
            for _ in 0..requests {
                p.on_send(t0);
                p.on_charged(t0, true, true);
            }
            p.on_limited(t0 + ms(10), None);
            p
        };
        let (mut often, mut seldom) = (limited_at_share(100), limited_at_share(100));
        for i in 1..=80 {
            often.on_charged(t0 + ms(10) + ms(100 * i), true, true);
        }
        for i in 1..=8 {
            seldom.on_charged(t0 + ms(10) + ms(1000 * i), true, true);
        }
        let (a, b) = (often.share(), seldom.share());
        assert!((a - b).abs() < 0.01 * a, "{a} {b}");
    }

    #[test]
    fn a_sender_with_nothing_waiting_learns_nothing_from_a_429() {
        let t0 = Instant::now();
        let mut p = Pacer::new(600, t0);
        // One request every 5 s, nothing behind it; another sender empties the bucket.
        for i in 0..10 {
            let t = t0 + Duration::from_secs(5 * i);
            p.on_send(t);
            p.on_charged(t, true, false);
        }
        let now = t0 + Duration::from_secs(50);
        let wait = p.on_limited(now, Some(Duration::from_secs(60)));
        assert_eq!(p.share(), 1.0, "its share is not what it happened to use");
        // The next request when a token comes at its whole share.
        assert!(wait > ms(100) && wait < ms(110), "{wait:?}");
    }

    #[test]
    fn without_a_rate_a_429_after_too_few_requests_teaches_no_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0, t0);
        p.on_send(t0);
        p.on_charged(t0, true, false);
        let now = t0 + ms(100);
        assert_eq!(
            p.on_limited(now, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        // Once the wait is over, requests go unpaced again.
        let later = now + Duration::from_secs(3);
        assert_eq!(p.ready_at(later), None);
        p.on_send(later);
        assert_eq!(p.ready_at(later), None);
    }
}
