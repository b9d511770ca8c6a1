//! What to do when a request fails: wait for the server's limit, send it again in
//! halves, retry it after a backoff, leave it to the triage, or keep it for a later
//! cycle. Pure: it is given the failure, the time and the close deadline, and says what
//! to do; the thread waits, counts and reports.

use std::time::{Duration, Instant};

use crate::errors::Error;
use crate::transport::{retry_delay, Jitter};

/// One request's tries.
pub(super) struct Attempts {
    /// Retries allowed: `max_retries`, or none for a triage's probe.
    max_retries: u32,
    /// Retries used so far.
    retried: u32,
    /// Entries in the request: one cannot be split.
    entries: usize,
}

/// What a failure calls for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A 429, with the server's `Retry-After`: no retry is used up, and the pacer
    /// decides whether the wait happens here or the batch is held.
    RateLimited(Option<Duration>),
    /// Refused as a whole with 400 or 413: worth sending again in halves.
    Split,
    /// Transient: try again after this wait.
    RetryAfter(Duration),
    /// A 500 on the last try: an entry the server cannot store, or an outage. The
    /// triage tells which.
    ServerFault,
    /// Transient, with no retry or no time left: kept for a later cycle.
    KeepForLater,
    /// Answered 2xx with a body that cannot be read: taken, and never sent again, since
    /// that could store it twice.
    TakenUnread,
    /// Refused for good: any other 4xx, of one entry or of the whole request.
    Refused,
}

impl Attempts {
    pub(super) fn new(max_retries: u32, entries: usize) -> Attempts {
        Attempts {
            max_retries,
            retried: 0,
            entries,
        }
    }

    /// Judges the failure of the latest try, made at `now`; a retry must end before the
    /// close `deadline`. `jitter` moves on with every transient failure, whether a retry
    /// is left or not.
    pub(super) fn judge(
        &mut self,
        error: &Error,
        now: Instant,
        deadline: Option<Instant>,
        jitter: &mut Jitter,
    ) -> Verdict {
        match error {
            Error::Http {
                status: 429,
                retry_after,
                ..
            } => Verdict::RateLimited(*retry_after),
            Error::Http {
                status: 400 | 413, ..
            } if self.entries > 1 => Verdict::Split,
            e if e.retryable() => {
                let out_of_retries = self.retried >= self.max_retries;
                if out_of_retries && e.may_be_poison() {
                    return Verdict::ServerFault;
                }
                let delay = retry_delay(e, self.retried, jitter.sample());
                let past_deadline = deadline.is_some_and(|d| now + delay > d);
                if out_of_retries || past_deadline {
                    return Verdict::KeepForLater;
                }
                self.retried += 1;
                Verdict::RetryAfter(delay)
            }
            Error::BadReply(_) => Verdict::TakenUnread,
            _ => Verdict::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, retry_after: Option<u64>) -> Error {
        Error::Http {
            status,
            detail: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    /// The verdicts of a request of `entries` failing with `errors` in turn.
    fn verdicts(max_retries: u32, entries: usize, errors: &[Error]) -> Vec<Verdict> {
        let now = Instant::now();
        let mut attempts = Attempts::new(max_retries, entries);
        let mut jitter = Jitter::seeded(7);
        errors
            .iter()
            .map(|e| attempts.judge(e, now, None, &mut jitter))
            .collect()
    }

    #[test]
    fn a_429_never_uses_up_a_retry() {
        let errors = [http(429, Some(60)), http(429, None), http(429, None)];
        assert_eq!(
            verdicts(0, 10, &errors),
            [
                Verdict::RateLimited(Some(Duration::from_secs(60))),
                Verdict::RateLimited(None),
                Verdict::RateLimited(None)
            ]
        );
    }

    #[test]
    fn a_500_is_retried_then_left_to_the_triage_and_a_gateway_error_kept_for_later() {
        for (status, last) in [(500, Verdict::ServerFault), (503, Verdict::KeepForLater)] {
            let v = verdicts(
                2,
                10,
                &[http(status, None), http(status, None), http(status, None)],
            );
            assert!(matches!(v[0], Verdict::RetryAfter(_)), "{status}: {v:?}");
            assert!(matches!(v[1], Verdict::RetryAfter(_)), "{status}: {v:?}");
            assert_eq!(v[2], last, "{status}");
        }
        let network = Error::Network("reset".into());
        assert_eq!(verdicts(0, 10, &[network]), [Verdict::KeepForLater]);
    }

    #[test]
    fn the_backoff_doubles_and_a_longer_retry_after_wins() {
        let errors = [http(502, None), http(502, None), http(502, Some(5))];
        let delays: Vec<Duration> = verdicts(5, 1, &errors)
            .into_iter()
            .map(|v| match v {
                Verdict::RetryAfter(d) => d,
                other => panic!("not a retry: {other:?}"),
            })
            .collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] <= Duration::from_millis(130));
        assert!(delays[1] >= Duration::from_millis(200) && delays[1] <= Duration::from_millis(260));
        assert_eq!(delays[2], Duration::from_secs(5));
    }

    #[test]
    fn a_retry_that_would_end_past_the_close_deadline_is_not_made() {
        let now = Instant::now();
        let mut attempts = Attempts::new(3, 10);
        let mut jitter = Jitter::seeded(7);
        let deadline = Some(now + Duration::from_millis(50));
        assert_eq!(
            attempts.judge(&http(502, None), now, deadline, &mut jitter),
            Verdict::KeepForLater
        );
        let later = Some(now + Duration::from_secs(1));
        assert!(matches!(
            attempts.judge(&http(502, None), now, later, &mut jitter),
            Verdict::RetryAfter(_)
        ));
    }

    #[test]
    fn a_whole_request_refused_is_split_until_one_entry_is_refused_for_good() {
        assert_eq!(verdicts(3, 2, &[http(413, None)]), [Verdict::Split]);
        assert_eq!(verdicts(3, 2, &[http(400, None)]), [Verdict::Split]);
        assert_eq!(verdicts(3, 1, &[http(413, None)]), [Verdict::Refused]);
        assert_eq!(verdicts(3, 5, &[http(401, None)]), [Verdict::Refused]);
        let unread = Error::BadReply("not JSON".into());
        assert_eq!(verdicts(3, 5, &[unread]), [Verdict::TakenUnread]);
    }
}
