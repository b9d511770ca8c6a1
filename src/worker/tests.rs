use super::*;
use crate::config::Settings;
use crate::errors::ErrorCode;
use crate::protocol::logwell::Level;
use httpmock::prelude::*;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Recorder {
    errors: Mutex<Vec<ErrorCode>>,
    delivered: AtomicU64,
}

impl Events for Arc<Recorder> {
    fn error(&self, error: &Error) {
        self.errors.lock().push(error.code());
    }
    fn delivered(&self, count: u64) {
        self.delivered.fetch_add(count, Ordering::Relaxed);
    }
}

fn shipper(endpoint: &str, tweak: impl FnOnce(&mut Settings)) -> (Shipper, Arc<Recorder>) {
    let mut s = Settings {
        api_key: format!("lw_{}", "k".repeat(32)),
        endpoint: endpoint.to_owned(),
        ..Settings::default()
    };
    tweak(&mut s);
    let rec = Arc::new(Recorder::default());
    let config = Config::new(&s).expect("valid config");
    (
        Shipper::new(config, Box::new(Arc::clone(&rec)), Arc::default()),
        rec,
    )
}

fn entry(i: usize) -> Vec<u8> {
    format!(r#"{{"level":"info","message":"m{i}"}}"#).into_bytes()
}

#[test]
fn a_paused_thread_is_gone_and_resumes_with_what_it_held() {
    let server = MockServer::start();
    let m = server.mock(|when, then| {
        when.method(POST).path("/v1/ingest");
        then.status(200).body(r#"{"accepted":2}"#);
    });
    let (sh, _) = shipper(&server.base_url(), |s| s.flush_interval = 60.0);
    assert!(
        sh.pause(Duration::from_secs(10)),
        "a shipper with no thread yet has nothing to stop"
    );
    sh.push(entry(0), Level::Info);
    assert!(sh.pause(Duration::from_secs(10)));
    assert!(
        sh.handle.lock().is_none(),
        "no thread of ours across a fork"
    );
    assert!(
        sh.pause(Duration::from_secs(10)),
        "pausing twice is harmless"
    );
    sh.push(entry(1), Level::Info);
    // Nothing can be sent while paused: the flush waits its whole timeout.
    assert!(!sh.flush(Duration::from_millis(100)));
    assert_eq!(m.calls(), 0);
    sh.resume();
    sh.resume();
    assert!(sh.flush(Duration::from_secs(10)));
    assert_eq!(sh.stats().sent, 2);
    assert!(sh.pause(Duration::from_secs(10)));
    // A close from a paused state drains like any other.
    sh.push(entry(2), Level::Info);
    assert_eq!(sh.close(Duration::from_secs(5)), 0);
    assert_eq!(sh.stats().sent, 3);
}

#[test]
fn a_thread_busy_in_a_request_is_left_running_and_loses_nothing() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(POST).path("/v1/ingest");
        then.status(200)
            .delay(Duration::from_secs(2))
            .body(r#"{"accepted":1}"#);
    });
    let (sh, _) = shipper(&server.base_url(), |s| s.flush_interval = 60.0);
    sh.push(entry(0), Level::Info);
    assert!(
        !sh.flush(Duration::ZERO),
        "asks for the send, waits for nothing"
    );
    let sent = Instant::now();
    while sh.shared.inflight_min_seq.load(Ordering::Acquire) == u64::MAX {
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "the request never began"
        );
        thread::yield_now();
    }
    let asked = Instant::now();
    assert!(!sh.pause(PAUSE_WAIT), "in a request: left running");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert!(sh.handle.lock().is_some());
    sh.resume();
    assert!(sh.flush(Duration::from_secs(10)));
    assert_eq!(sh.stats().sent, 1);
}

#[test]
fn a_panic_in_the_thread_is_reported_counted_and_never_a_hang() {
    struct Panics(Arc<Recorder>);
    impl Events for Panics {
        fn error(&self, error: &Error) {
            self.0.errors.lock().push(error.code());
        }
        fn delivered(&self, _: u64) {
            panic!("a bug in a callback");
        }
    }
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(POST).path("/v1/ingest");
        then.status(200).body(r#"{"accepted":2}"#);
    });
    let rec = Arc::new(Recorder::default());
    let settings = Settings {
        api_key: format!("lw_{}", "k".repeat(32)),
        endpoint: server.base_url(),
        flush_interval: 60.0,
        ..Settings::default()
    };
    let config = Config::new(&settings).expect("valid config");
    let sh = Shipper::new(config, Box::new(Panics(Arc::clone(&rec))), Arc::default());
    for i in 0..2 {
        sh.push(entry(i), Level::Info);
    }
    let asked = Instant::now();
    // The thread panics after the request, as the owner hears of it: this flush's
    // entries were sent, so it succeeds, or it answers at once that it could not.
    sh.flush(Duration::from_secs(30));
    sh.push(entry(2), Level::Info);
    sh.flush(Duration::from_secs(30));
    assert_eq!(sh.close(Duration::from_secs(30)), 0);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let st = sh.stats();
    assert_eq!(st.sent, 2);
    assert_eq!(st.after_close, 1, "the shipper took no more entries");
    assert_eq!(st.queued(), 0);
    assert_eq!(*rec.errors.lock(), [ErrorCode::ValidationError]);
    let last = sh.shared.stats.snapshot().last_error.expect("reported");
    assert!(
        last.message.contains("a bug in a callback"),
        "{}",
        last.message
    );
}

#[test]
fn flush_delivers_everything_in_batches_of_at_most_100() {
    let server = MockServer::start();
    let m = server.mock(|when, then| {
        when.method(POST).path("/v1/ingest");
        then.status(200).body(r#"{"accepted":100}"#);
    });
    let (sh, rec) = shipper(&server.base_url(), |s| s.batch_size = 100);
    for i in 0..300 {
        sh.push(entry(i), Level::Info);
    }
    assert!(sh.flush(Duration::from_secs(10)));
    let st = sh.stats();
    assert_eq!(st.sent, 300);
    assert_eq!(st.batches, 3);
    assert_eq!(m.calls(), 3);
    assert_eq!(rec.delivered.load(Ordering::Relaxed), 300);
    assert_eq!(sh.close(Duration::from_secs(1)), 0);
}

#[test]
fn retries_through_server_errors_without_loss() {
    let server = MockServer::start();
    let mut failing = server.mock(|when, then| {
        when.method(POST);
        then.status(503);
    });
    let (sh, rec) = shipper(&server.base_url(), |s| s.max_retries = 10);
    sh.push(entry(0), Level::Info);
    let pusher = thread::spawn(move || {
        let ok = sh.flush(Duration::from_secs(10));
        (sh, ok)
    });
    thread::sleep(Duration::from_millis(250));
    failing.delete();
    server.mock(|_, then| {
        then.status(200).body(r#"{"accepted":1}"#);
    });
    let (sh, ok) = pusher.join().expect("flush thread");
    assert!(ok);
    let st = sh.stats();
    assert_eq!(st.sent, 1);
    assert!(st.retries >= 1);
    assert!(
        rec.errors.lock().is_empty(),
        "retried errors are not reported"
    );
}

#[test]
fn permanent_refusal_counts_batch_failed_and_reports() {
    let server = MockServer::start();
    server.mock(|_, then| {
        then.status(401).body(r#"{"error":"unauthorized"}"#);
    });
    let (sh, rec) = shipper(&server.base_url(), |_| {});
    sh.push(entry(0), Level::Info);
    sh.push(entry(1), Level::Info);
    assert!(
        sh.flush(Duration::from_secs(5)),
        "a refusal resolves the entries"
    );
    let st = sh.stats();
    assert_eq!((st.sent, st.failed, st.retries), (0, 2, 0));
    assert_eq!(*rec.errors.lock(), vec![ErrorCode::Unauthorized]);
    let last = st.last_error.expect("an error");
    assert_eq!(last.code, ErrorCode::Unauthorized);
    assert!(last.message.contains("401"), "{}", last.message);
}

#[test]
fn unreachable_server_overflows_and_close_is_bounded() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let (sh, rec) = shipper(&format!("http://127.0.0.1:{port}"), |s| {
        s.max_queue_size = 10;
        s.max_retries = 1;
    });
    for i in 0..25 {
        sh.push(entry(i), Level::Info);
    }
    assert!(!sh.flush(Duration::from_millis(500)));
    let start = Instant::now();
    assert_eq!(sh.close(Duration::from_millis(500)), 10);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let st = sh.stats();
    assert_eq!(
        (st.dropped_overflow, st.dropped_at_close),
        (15, 10),
        "15 overflowed, 10 undelivered at close"
    );
    assert_eq!(st.queued(), 0);
    let errors = rec.errors.lock();
    assert!(errors.contains(&ErrorCode::QueueOverflow), "{errors:?}");
    assert!(errors.contains(&ErrorCode::NetworkError), "{errors:?}");
}

#[test]
fn idle_shipper_closes_at_once_and_ignores_later_pushes() {
    let (sh, _) = shipper("http://127.0.0.1:9", |_| {});
    assert!(sh.flush(Duration::from_millis(10)));
    assert_eq!(sh.close(Duration::from_secs(1)), 0);
    sh.push(entry(0), Level::Info);
    assert_eq!(sh.stats().after_close, 1);
    assert_eq!(sh.stats().enqueued, 0);
}

#[test]
fn a_batch_refused_with_400_is_split_until_the_bad_entry_is_alone() {
    let server = MockServer::start();
    let poisoned = server.mock(|when, then| {
        when.method(POST).body_includes("POISON");
        then.status(400)
            .body(r#"{"error":"validation_error","message":"bad entry"}"#);
    });
    // Every clean request here carries one entry: accepting 1 is the truth.
    let clean = server.mock(|when, then| {
        when.method(POST).body_excludes("POISON");
        then.status(200).body(r#"{"accepted":1}"#);
    });
    let (sh, rec) = shipper(&server.base_url(), |s| s.batch_size = 100);
    sh.push(entry(0), Level::Info);
    sh.push(
        br#"{"level":"info","message":"POISON"}"#.to_vec(),
        Level::Info,
    );
    assert!(sh.flush(Duration::from_secs(5)));
    let st = sh.stats();
    assert_eq!((st.sent, st.failed), (1, 1), "{st:?}");
    assert_eq!(poisoned.calls(), 2, "the pair, then the bad entry alone");
    assert_eq!(clean.calls(), 1);
    assert_eq!(*rec.errors.lock(), vec![ErrorCode::ValidationError]);
    let last = st.last_error.expect("the server's reason");
    assert!(last.message.contains("bad entry"), "{}", last.message);
}

#[test]
fn a_429_holds_the_batch_and_is_counted_as_a_wait() {
    let server = MockServer::start();
    let mut limited = server.mock(|_, then| {
        then.status(429).header("Retry-After", "1");
    });
    let (sh, rec) = shipper(&server.base_url(), |_| {});
    sh.push(entry(0), Level::Info);
    assert!(
        !sh.flush(Duration::from_millis(300)),
        "held while the server refuses"
    );
    let waits = sh.stats().rate_limited_waits;
    assert!(waits >= 1, "{waits}");
    limited.delete();
    server.mock(|_, then| {
        then.status(200).body(r#"{"accepted":1}"#);
    });
    assert!(sh.flush(Duration::from_secs(5)));
    let st = sh.stats();
    assert_eq!(st.sent, 1);
    assert!(st.rate_limited_waits >= waits, "{st:?}");
    // What the server asked for, counted, though the pacer waited less.
    assert_eq!(st.rate_limited_wait_ms, 1000 * st.rate_limited_waits);
    assert_eq!(st.retries, 0);
    assert!(rec.errors.lock().is_empty(), "a wait is not an error");
}

#[test]
fn a_batch_failing_with_500_is_split_until_the_entry_the_server_cannot_store_is_alone() {
    let server = MockServer::start();
    let poisoned = server.mock(|when, then| {
        when.method(POST).body_includes("POISON");
        then.status(500)
            .body(r#"{"id":"x","message":"Internal server error"}"#);
    });
    server.mock(|when, then| {
        when.method(POST).body_excludes("POISON");
        then.status(200).body(r#"{"accepted":1}"#);
    });
    let (sh, rec) = shipper(&server.base_url(), |s| {
        s.batch_size = 100;
        s.max_retries = 1;
    });
    sh.push(
        br#"{"level":"info","message":"POISON"}"#.to_vec(),
        Level::Info,
    );
    for i in 0..7 {
        sh.push(entry(i), Level::Info);
    }
    assert!(sh.flush(Duration::from_secs(10)));
    let st = sh.stats();
    // The mock accepts "1" per request: what matters is the poison alone failed.
    assert_eq!(st.failed, 1, "{st:?}");
    assert_eq!(st.queued(), 0, "{st:?}");
    // The whole batch twice (one retry), halves down to the entry alone, and that
    // alone again, with its retry, once the server took the entry beside it.
    assert_eq!(poisoned.calls(), 2 + 1 + 1 + 1 + 2, "{st:?}");
    let errors = rec.errors.lock();
    let server_errors = errors.iter().filter(|&&c| c == ErrorCode::ServerError);
    assert_eq!(server_errors.count(), 1, "{errors:?}");
}

#[test]
fn a_server_failing_everything_is_an_outage_not_poison() {
    let server = MockServer::start();
    let mut failing = server.mock(|_, then| {
        then.status(500)
            .body("<html><title>Bad Gateway</title></html>");
    });
    let (sh, rec) = shipper(&server.base_url(), |s| {
        s.batch_size = 100;
        s.max_retries = 0;
        s.flush_interval = 0.2;
    });
    for i in 0..40 {
        sh.push(entry(i), Level::Info);
    }
    assert!(!sh.flush(Duration::from_millis(600)));
    let st = sh.stats();
    assert_eq!((st.failed, st.queued()), (0, 40), "{st:?}");
    assert!(failing.calls() >= 2, "split, then gave up for now");
    assert!(rec.errors.lock().contains(&ErrorCode::ServerError));
    failing.delete();
    server.mock(|_, then| {
        then.status(200).body(r#"{"accepted":40}"#);
    });
    assert!(sh.flush(Duration::from_secs(5)));
    let st = sh.stats();
    assert_eq!((st.sent, st.failed), (40, 0), "{st:?}");
}

#[test]
fn entries_a_request_large_make_a_batch_whatever_their_count() {
    let server = MockServer::start();
    let m = server.mock(|_, then| {
        then.status(200).body(r#"{"accepted":100}"#);
    });
    // Defaults: a batch is 50 entries, the tick 5 s away.
    let (sh, _) = shipper(&server.base_url(), |_| {});
    let big = format!(r#"{{"level":"info","message":"{}"}}"#, "x".repeat(8 * 1024));
    for _ in 0..40 {
        sh.push(big.clone().into_bytes(), Level::Info);
    }
    let start = Instant::now();
    while sh.stats().queued() > 0 && start.elapsed() < Duration::from_secs(4) {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sh.stats().queued(), 0, "all sent before the tick");
    assert_eq!(
        m.calls(),
        2,
        "one request's worth, then the rest of the burst"
    );
}

#[test]
fn requests_wait_for_the_budget_and_count_the_wait() {
    let server = MockServer::start();
    server.mock(|_, then| {
        then.status(200).body(r#"{"accepted":1}"#);
    });
    let (sh, _) = shipper(&server.base_url(), |s| {
        s.batch_size = 1;
        s.max_requests_per_minute = 120;
    });
    let start = Instant::now();
    for i in 0..122 {
        sh.push(entry(i), Level::Info);
        assert!(sh.flush(Duration::from_secs(5)));
    }
    // 120 from the full bucket, then one every ~0.5 s.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let st = sh.stats();
    assert!(st.paced_waits >= 1 && st.paced_wait_ms >= 400, "{st:?}");
    assert_eq!(st.rate_limited_waits, 0);
}

/// A server that fails every batch holding "POISON" with 500 and takes any other
/// whole (a count above the batch's is read as the batch).
fn poisoning_server() -> MockServer {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(POST).body_includes("POISON");
        then.status(500)
            .body(r#"{"id":"x","message":"Internal server error"}"#);
    });
    server.mock(|when, then| {
        when.method(POST).body_excludes("POISON");
        then.status(200).body(r#"{"accepted":100}"#);
    });
    server
}

#[test]
fn a_run_of_bad_entries_costs_only_those_entries() {
    let server = poisoning_server();
    let (sh, _) = shipper(&server.base_url(), |s| {
        s.batch_size = 100;
        s.max_retries = 1;
    });
    for i in 0..100 {
        if (20..24).contains(&i) || i < 3 {
            sh.push(
                format!(r#"{{"level":"info","message":"POISON {i}"}}"#).into_bytes(),
                Level::Info,
            );
        } else {
            sh.push(entry(i), Level::Info);
        }
    }
    assert!(sh.flush(Duration::from_secs(30)));
    let st = sh.stats();
    assert_eq!((st.sent, st.failed, st.queued()), (93, 7, 0), "{st:?}");
}

#[test]
fn a_run_of_bad_entries_ending_a_batch_is_told_apart_by_the_entries_behind_it() {
    // Entries of 2 731 bytes: a batch stops at 96 (`SOFT_MAX_REQUEST_BYTES`), inside
    // the run 90..100, so nothing of it is taken after the run fails. The cycle is a
    // flush's, with all 200 queued: no later flush or tick comes to try again. The
    // entries queued behind the batch tell bad entries from an outage.
    let server = poisoning_server();
    let (sh, _) = shipper(&server.base_url(), |s| {
        s.batch_size = 100;
        s.max_retries = 1;
        s.flush_interval = 60.0;
    });
    for i in 0..200 {
        let word = if (90..100).contains(&i) {
            "POISON"
        } else {
            "good"
        };
        let mut json = format!(r#"{{"level":"info","message":"{word} {i:03} "#).into_bytes();
        json.resize(2729, b'x');
        json.extend_from_slice(br#""}"#);
        sh.push(json, Level::Info);
        if i == 0 {
            assert!(sh.pause(Duration::from_secs(10)));
        }
    }
    // Asked while paused: the thread's first cycle answers it.
    assert!(!sh.flush(Duration::ZERO));
    sh.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sh.shared.stats.resolved() < 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let st = sh.stats();
    assert_eq!((st.sent, st.failed, st.queued()), (190, 10, 0), "{st:?}");
}

#[test]
fn a_bad_entry_last_in_its_batch_is_failed_in_the_same_cycle() {
    let server = poisoning_server();
    let (sh, rec) = shipper(&server.base_url(), |s| {
        s.batch_size = 100;
        s.max_retries = 1;
        s.flush_interval = 60.0;
    });
    for i in 0..7 {
        sh.push(entry(i), Level::Info);
    }
    sh.push(
        br#"{"level":"info","message":"POISON"}"#.to_vec(),
        Level::Info,
    );
    assert!(sh.flush(Duration::from_secs(10)));
    let st = sh.stats();
    assert_eq!((st.sent, st.failed, st.queued()), (7, 1, 0), "{st:?}");
    let errors = rec.errors.lock();
    assert_eq!(
        *errors,
        vec![ErrorCode::ServerError],
        "only the confirmed failure"
    );
    drop(errors);
    assert_eq!(sh.close(Duration::from_secs(1)), 0);
}

#[test]
fn a_flush_returns_once_the_retries_are_spent_and_keeps_the_entries() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(POST).path("/v1/ingest");
        then.status(503).body("down");
    });
    let (sh, _) = shipper(&server.base_url(), |s| {
        s.max_retries = 1;
        s.flush_interval = 60.0;
    });
    sh.push(entry(0), Level::Info);
    let start = Instant::now();
    assert!(!sh.flush(Duration::from_secs(30)));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(sh.stats().queued(), 1, "kept for the next try");
    assert_eq!(sh.close(Duration::ZERO), 1);
}

#[test]
fn what_the_server_said_is_summed_in_its_own_words() {
    let mut replies = ServerReplies::default();
    let reply = |accepted, said_rejected, errors: &[&str]| Reply {
        accepted,
        rejected: 0,
        said_rejected,
        errors: errors.iter().map(|e| (*e).to_owned()).collect(),
    };
    replies.add(&reply(3, None, &[]));
    replies.add(&reply(1, Some(2), &["a", "b"]));
    let said = replies.said;
    assert_eq!(
        (
            said.replies,
            said.accepted,
            said.rejected,
            said.rejected_given,
            said.reasons_given
        ),
        (2, 4, 2, 1, 2)
    );
    for i in 0..MAX_SERVER_ERRORS {
        replies.add(&reply(0, Some(1), &[&format!("e{i}")]));
    }
    assert_eq!(replies.recent_errors.len(), MAX_SERVER_ERRORS, "bounded");
    assert_eq!(replies.said.reasons_given, 2 + MAX_SERVER_ERRORS as u64);
}
