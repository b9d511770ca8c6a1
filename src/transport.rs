//! One HTTP POST of a batch, what its answer means, and how long to wait before the next try.

use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig};
use ureq::unversioned::transport::DefaultConnector;

use crate::config::Config;
use crate::errors::{detail, one_line, Error};
use crate::protocol::{Protocol, Reply};
use crate::resolver::CachingResolver;

/// Shorter header words ("Bearer", "Basic") are not secrets, and redacting them would
/// blank common words out of every message.
const MIN_SECRET_CHARS: usize = 8;
/// Longest reply body we read; the ingest reply is a few hundred bytes.
const MAX_REPLY_BYTES: u64 = 64 * 1024;
/// Longest excerpt of a reply that is not JSON (a proxy's HTML error page, say).
const MAX_EXCERPT_CHARS: usize = 100;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

pub struct Transport {
    agent: ureq::Agent,
    url: String,
    protocol: Protocol,
    /// `Authorization: Bearer <key>` unless the caller's headers hold their own, then
    /// the caller's headers.
    headers: Vec<(String, String)>,
    /// What a reply must never bring back into our errors: the headers' values (the key
    /// among them), and a password in the URL.
    secrets: Vec<String>,
}

/// The headers each request carries besides `Content-Type`.
fn request_headers(api_key: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let own_auth = extra
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    let mut headers = Vec::with_capacity(extra.len() + 1);
    if !api_key.is_empty() && !own_auth {
        headers.push(("Authorization".to_owned(), format!("Bearer {api_key}")));
    }
    headers.extend_from_slice(extra);
    headers
}

impl Transport {
    pub fn for_config(config: &Config) -> Transport {
        Transport::new(
            &config.url,
            config.protocol,
            request_headers(&config.api_key, &config.headers),
            config.ca_certs.as_deref(),
        )
    }

    /// `ca_certs`: the roots to trust; `None` verifies against the platform's roots.
    pub fn new(
        url: &str,
        protocol: Protocol,
        headers: Vec<(String, String)>,
        ca_certs: Option<&[ureq::tls::Certificate<'static>]>,
    ) -> Transport {
        let roots = match ca_certs {
            Some(certs) => RootCerts::new_with_certs(certs),
            None => RootCerts::PlatformVerifier,
        };
        let config = ureq::Agent::config_builder()
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            // Statuses are ours to classify, not errors of the client.
            .http_status_as_error(false)
            .user_agent(concat!("logwell-handler/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(1)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::default(),
            CachingResolver::default(),
        );
        let mut secrets: Vec<String> = headers
            .iter()
            .flat_map(|(_, value)| {
                // "Bearer <key>": the whole value, and each word long enough to matter.
                let words = value.split_whitespace().map(str::to_owned);
                std::iter::once(value.clone()).chain(words)
            })
            .chain(url_credentials(url))
            .filter(|s| s.len() >= MIN_SECRET_CHARS)
            .collect();
        // Longest first, so that a value is taken out whole before a word of it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Transport {
            agent,
            url: url.to_owned(),
            protocol,
            headers,
            secrets,
        }
    }

    /// POSTs a JSON body of `entries` entries. `timeout` bounds the whole exchange. No
    /// text of the server's (nor of the network layer's) is trusted to be free of secrets:
    /// what it says comes back redacted.
    pub fn post(&self, body: &[u8], entries: u64, timeout: Duration) -> Result<Reply, Error> {
        match self.exchange(body, entries, timeout) {
            Ok(mut reply) => {
                for e in &mut reply.errors {
                    *e = self.redact(e);
                }
                Ok(reply)
            }
            Err(Error::Http {
                status,
                detail,
                retry_after,
            }) => Err(Error::Http {
                status,
                detail: self.redact(&detail),
                retry_after,
            }),
            Err(Error::Network(detail)) => Err(Error::Network(self.redact(&detail))),
            Err(Error::BadReply(detail)) => Err(Error::BadReply(self.redact(&detail))),
            Err(e) => Err(e),
        }
    }

    /// `text` with our secrets, and anything shaped like a Logwell key, taken out.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        redact_keys(&out)
    }

    fn exchange(&self, body: &[u8], entries: u64, timeout: Duration) -> Result<Reply, Error> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        let mut response = response.map_err(|e| Error::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // A reply cut short still tells us its status; the body is only detail.
        let reply_body = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        classify(self.protocol, status, &reply_body, retry_after, entries)
    }
}

/// Reads the status and body of a reply.
pub fn classify(
    protocol: Protocol,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    entries: u64,
) -> Result<Reply, Error> {
    if (200..300).contains(&status) {
        return protocol.read_reply(body, entries);
    }
    Err(Error::Http {
        status,
        detail: error_detail(body),
        retry_after,
    })
}

/// `{"error": code, "message": text}` as "code: text", an OTLP `Status`'s message as
/// itself; any other body as a short excerpt (an HTML page's title, if it has one). On
/// one line whatever the server sent: it goes into log lines and `stats()`.
fn error_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        match (field("error"), field("message")) {
            (Some(code), Some(msg)) => return detail(&format!("{code}: {msg}")),
            (Some(code), None) => return detail(code),
            (None, Some(msg)) => return detail(msg),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let excerpt = html_title(&text).unwrap_or(&text);
    if excerpt.trim().is_empty() {
        return "(empty body)".to_owned();
    }
    one_line(excerpt, MAX_EXCERPT_CHARS)
}

/// The text of an HTML page's `<title>`, if the reply is one.
fn html_title(text: &str) -> Option<&str> {
    let mut end = text.len().min(4096);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let lower = head.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    head.get(start..end).filter(|t| !t.trim().is_empty())
}

/// Longest `Retry-After` we honour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `text` with every `lw_` + 32 key characters (a Logwell key, ours or not) replaced.
/// The secrets a URL's user info carries: the password, and the `Authorization: Basic`
/// credentials ureq makes of it (user and password as the URL writes them).
fn url_credentials(url: &str) -> Vec<String> {
    use base64::Engine;
    let Ok(u) = url::Url::parse(url) else {
        return Vec::new();
    };
    if u.username().is_empty() && u.password().is_none() {
        return Vec::new();
    }
    let password = u.password().unwrap_or_default();
    let basic = format!("{}:{password}", u.username());
    vec![
        password.to_owned(),
        base64::prelude::BASE64_STANDARD.encode(basic),
    ]
}

fn redact_keys(text: &str) -> String {
    let is_key_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = text[i..].find("lw_") {
        let start = i + found;
        let key_end = start + 3 + 32;
        let is_key = bytes.len() >= key_end
            && bytes[start + 3..key_end].iter().all(|&b| is_key_char(b))
            && bytes.get(key_end).is_none_or(|&b| !is_key_char(b));
        if is_key {
            out.push_str(&text[i..start]);
            out.push_str("lw_[redacted]");
            i = key_end;
        } else {
            out.push_str(&text[i..start + 3]);
            i = start + 3;
        }
    }
    out.push_str(&text[i..]);
    out
}

/// `Retry-After` in seconds, or as an HTTP date (a proxy's or a collector's), from now.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// `min(100 ms * 2^attempt, 10 s)` stretched by `jitter` (0..=1) times 30 %.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = BACKOFF_BASE
        .checked_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    base.mul_f64(1.0 + 0.3 * jitter.clamp(0.0, 1.0))
}

/// How long to wait before retrying after `error`: the backoff, or the server's
/// `Retry-After` when that is longer.
pub fn retry_delay(error: &Error, attempt: u32, jitter: f64) -> Duration {
    let delay = backoff(attempt, jitter);
    error.retry_after().map_or(delay, |ra| ra.max(delay))
}

/// A cheap source of jitter: xorshift seeded from the clock. Not for anything secret.
pub struct Jitter(u64);

impl Jitter {
    pub fn new() -> Jitter {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
        Jitter(seed | 1)
    }

    /// The same numbers for the same seed (the simulator's).
    #[cfg(any(test, fuzzing))]
    pub fn seeded(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// A number in 0..1.
    pub fn sample(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Jitter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;
    use httpmock::prelude::*;

    const KEY: &str = "lw_0123456789abcdef0123456789abcdef";

    fn auth() -> Vec<(String, String)> {
        request_headers(KEY, &[])
    }

    fn post(server: &MockServer, entries: u64) -> Result<Reply, Error> {
        Transport::new(&server.url("/v1/ingest"), Protocol::Logwell, auth(), None).post(
            b"[]",
            entries,
            Duration::from_secs(5),
        )
    }

    #[test]
    fn accepted_reply_is_read() {
        let server = MockServer::start();
        let m = server.mock(|when, then| {
            when.method(POST)
                .path("/v1/ingest")
                .header("authorization", format!("Bearer {KEY}"))
                .header("content-type", "application/json");
            then.status(200).body(r#"{"accepted":3}"#);
        });
        let reply = post(&server, 3).expect("accepted");
        assert_eq!(reply.accepted, 3);
        assert_eq!(reply.rejected, 0);
        m.assert();
    }

    #[test]
    fn partial_rejection_is_read_from_a_200() {
        let server = MockServer::start();
        server.mock(|_, then| {
            then.status(200)
                .body(r#"{"accepted":1,"rejected":1,"errors":["Entry at index 1: bad level"]}"#);
        });
        let reply = post(&server, 2).expect("200");
        assert_eq!((reply.accepted, reply.rejected), (1, 1));
        assert_eq!(
            reply.errors,
            vec!["Entry at index 1: bad level".to_string()]
        );
    }

    #[test]
    fn statuses_are_classified() {
        let cases = [
            (
                401,
                r#"{"error":"unauthorized","message":"Invalid API key"}"#,
                ErrorCode::Unauthorized,
                false,
            ),
            (
                400,
                r#"{"error":"batch_too_large"}"#,
                ErrorCode::ValidationError,
                false,
            ),
            (
                415,
                r#"{"error":"unsupported_media_type"}"#,
                ErrorCode::ValidationError,
                false,
            ),
            (
                429,
                r#"{"error":"rate_limited"}"#,
                ErrorCode::RateLimited,
                true,
            ),
            (500, "boom", ErrorCode::ServerError, true),
            (503, "", ErrorCode::ServerError, true),
        ];
        for (status, body, code, retryable) in cases {
            let server = MockServer::start();
            server.mock(|_, then| {
                then.status(status).body(body);
            });
            let err = post(&server, 1).expect_err("not 2xx");
            assert_eq!(err.code(), code, "{status}");
            assert_eq!(err.retryable(), retryable, "{status}");
            assert_eq!(err.status_code(), Some(status));
        }
    }

    #[test]
    fn error_detail_keeps_the_servers_words() {
        let server = MockServer::start();
        server.mock(|_, then| {
            then.status(401)
                .body(r#"{"error":"unauthorized","message":"Invalid API key"}"#);
        });
        let msg = post(&server, 1).expect_err("401").to_string();
        assert_eq!(
            msg,
            "server answered HTTP 401: unauthorized: Invalid API key"
        );
    }

    #[test]
    fn retry_after_header_is_kept() {
        let server = MockServer::start();
        server.mock(|_, then| {
            then.status(429)
                .header("Retry-After", "7")
                .body(r#"{"error":"rate_limited"}"#);
        });
        let err = post(&server, 1).expect_err("429");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(retry_delay(&err, 0, 0.0), Duration::from_secs(7));
    }

    #[test]
    fn unreachable_server_is_a_retryable_network_error() {
        // Bind then drop a listener: nothing answers on that port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let t = Transport::new(
            &format!("http://127.0.0.1:{port}/v1/ingest"),
            Protocol::Logwell,
            auth(),
            None,
        );
        let err = t
            .post(b"[]", 1, Duration::from_secs(2))
            .expect_err("refused");
        assert_eq!(err.code(), ErrorCode::NetworkError);
        assert!(err.retryable());
    }

    #[test]
    fn slow_server_times_out_within_bound() {
        let server = MockServer::start();
        server.mock(|_, then| {
            then.status(200)
                .delay(Duration::from_secs(3))
                .body(r#"{"accepted":1}"#);
        });
        let start = std::time::Instant::now();
        let t = Transport::new(&server.url("/v1/ingest"), Protocol::Logwell, auth(), None);
        let err = t
            .post(b"[]", 1, Duration::from_millis(300))
            .expect_err("timeout");
        assert!(err.retryable());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn unreadable_2xx_is_a_bad_reply() {
        let err = classify(Protocol::Logwell, 200, b"<html>", None, 2).expect_err("bad body");
        assert_eq!(err.code(), ErrorCode::ServerError);
        assert!(
            !err.retryable(),
            "the server took the batch; resending would duplicate"
        );
    }

    #[test]
    fn otlp_replies_count_partial_success() {
        let ok = |body: &[u8]| classify(Protocol::Otlp, 200, body, None, 5).expect("2xx");
        assert_eq!(ok(b"").accepted, 5);
        assert_eq!(ok(b"{}").accepted, 5);
        assert_eq!(ok(br#"{"partialSuccess":{}}"#).accepted, 5);
        let partial = ok(br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"x"}}"#);
        assert_eq!((partial.accepted, partial.rejected), (3, 2));
        assert_eq!(partial.errors, vec!["x".to_string()]);
        let logwell = ok(br#"{"accepted":4,"rejected":1,"errors":["e"]}"#);
        assert_eq!((logwell.accepted, logwell.rejected), (4, 1));
    }

    #[test]
    fn extra_headers_are_sent_and_an_own_authorization_replaces_the_key() {
        let server = MockServer::start();
        let m = server.mock(|when, then| {
            when.method(POST)
                .path("/v1/logs")
                .header("authorization", "Basic dTpw")
                .header("x-scope-orgid", "tenant-1")
                .header("content-type", "application/json");
            then.status(200).body("{}");
        });
        let extra = vec![
            ("Authorization".to_string(), "Basic dTpw".to_string()),
            ("X-Scope-OrgID".to_string(), "tenant-1".to_string()),
        ];
        let headers = request_headers(KEY, &extra);
        assert_eq!(headers.len(), 2, "no Bearer beside the caller's own");
        let t = Transport::new(&server.url("/v1/logs"), Protocol::Otlp, headers, None);
        let reply = t.post(b"{}", 2, Duration::from_secs(5)).expect("200");
        assert_eq!(reply.accepted, 2);
        m.assert();
    }

    #[test]
    fn backoff_doubles_caps_and_jitters_up_to_30_percent() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(3, 0.0), Duration::from_millis(800));
        assert_eq!(backoff(10, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(200, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(130));
        let mut j = Jitter::new();
        for _ in 0..1000 {
            let x = j.sample();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("60"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        // An HTTP date: the time until then, none if it is past.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = std::time::SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(soon)).expect("a date");
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("not a date"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn a_page_that_is_not_json_is_quoted_short_and_on_one_line() {
        let page = format!(
            "<!doctype html>\n<html><head>\n<title>404\n  Not Found</title></head>\n<body>{}</body></html>",
            "<p>lots of markup</p>\n".repeat(40)
        );
        let detail = error_detail(page.as_bytes());
        assert_eq!(detail, "404 Not Found");
        let text = format!("upstream\n\nconnect error {}", "x".repeat(500));
        let detail = error_detail(text.as_bytes());
        assert!(detail.starts_with("upstream connect error xxx"), "{detail}");
        assert!(detail.chars().count() <= MAX_EXCERPT_CHARS + 3, "{detail}");
        assert!(!detail.contains('\n'));
        let json = br#"{"error":"internal_error","message":"Failed\nto store logs"}"#;
        assert_eq!(error_detail(json), "internal_error: Failed to store logs");
        assert_eq!(error_detail(b" \n "), "(empty body)");
        // A character across the 4 KiB the title is looked for in.
        let page = format!("<title>T</title>{}é", "x".repeat(4096 - 17));
        assert_eq!(error_detail(page.as_bytes()), "T");
    }

    #[test]
    fn secrets_the_server_echoes_are_redacted() {
        let other = format!("lw_{}", "o".repeat(32));
        let server = MockServer::start();
        server.mock(|_, then| {
            then.status(401).body(format!(
                r#"{{"error":"unauthorized","message":"Invalid API key: Bearer {KEY}, not {other}"}}"#
            ));
        });
        let err = post(&server, 1).expect_err("401").to_string();
        assert!(!err.contains(KEY), "{err}");
        assert!(!err.contains(&other), "{err}");
        assert!(err.contains("Invalid API key: [redacted]"), "{err}");
        assert!(err.contains("not lw_[redacted]"), "{err}");

        let headers = vec![("X-Token".to_owned(), "tok-s3cr3t-value".to_owned())];
        let t = Transport::new(&server.url("/v1/logs"), Protocol::Otlp, headers, None);
        assert_eq!(
            t.redact("echo: tok-s3cr3t-value and lw_short"),
            "echo: [redacted] and lw_short"
        );

        // Credentials in the URL go as `Basic base64("user:s3cr3tPW9")`.
        let with_user = "http://user:s3cr3tPW9@127.0.0.1:9/v1/logs";
        let t = Transport::new(with_user, Protocol::Otlp, Vec::new(), None);
        assert_eq!(
            t.redact("Invalid credentials: Basic dXNlcjpzM2NyM3RQVzk= (s3cr3tPW9)"),
            "Invalid credentials: Basic [redacted] ([redacted])"
        );
    }
}
