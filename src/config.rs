//! Validated configuration of a shipper: limits, defaults and the ingest URL.

use std::time::Duration;

use crate::errors::Error;
use crate::record::Limits;

/// The server refuses requests with more entries than this (`batch_too_large`).
pub const MAX_ENTRIES_PER_REQUEST: usize = 100;

/// Raw settings as a caller gives them; `Config::new` checks every one.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_key: String,
    pub endpoint: String,
    pub batch_size: i64,
    pub flush_interval: f64,
    pub max_queue_size: i64,
    pub max_queue_bytes: i64,
    pub max_retries: i64,
    pub timeout: f64,
    pub shutdown_timeout: f64,
    pub max_message_bytes: i64,
    pub max_metadata_bytes: i64,
    /// A PEM file of CA certificates to trust instead of the system's; empty: none.
    pub ca_file: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_key: String::new(),
            endpoint: String::new(),
            batch_size: 50,
            flush_interval: 5.0,
            // The official SDKs hold 1000 and lose most of a burst; see DESIGN.md.
            // The byte bound is what caps memory; this one only sizes the ring.
            max_queue_size: 100_000,
            max_queue_bytes: 16 * 1024 * 1024,
            max_retries: 3,
            timeout: 30.0,
            shutdown_timeout: 5.0,
            max_message_bytes: 64 * 1024,
            max_metadata_bytes: 64 * 1024,
            ca_file: String::new(),
        }
    }
}

#[derive(Clone)]
pub struct Config {
    /// `{endpoint}/v1/ingest`.
    pub ingest_url: String,
    pub api_key: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub max_queue_size: usize,
    pub max_queue_bytes: usize,
    pub max_retries: u32,
    pub timeout: Duration,
    pub shutdown_timeout: Duration,
    pub limits: Limits,
    /// CA certificates to trust instead of the platform's; `None`: the platform's.
    pub ca_certs: Option<Vec<ureq::tls::Certificate<'static>>>,
}

// Hand-written so the key can never reach a log line through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("ingest_url", &self.ingest_url)
            .field("api_key", &"<redacted>")
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("max_queue_size", &self.max_queue_size)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_retries", &self.max_retries)
            .field("timeout", &self.timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("limits", &self.limits)
            .field(
                "ca_certs",
                &self
                    .ca_certs
                    .as_ref()
                    .map(|c| format!("{} certificates", c.len())),
            )
            .finish()
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Error {
    Error::InvalidConfig {
        field,
        problem: problem.into(),
    }
}

fn int_in(field: &'static str, value: i64, min: i64, max: i64) -> Result<i64, Error> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            field,
            format!("must be an integer from {min} to {max}, got {value}"),
        ))
    }
}

fn seconds_in(field: &'static str, value: f64, min: f64, max: f64) -> Result<Duration, Error> {
    if value.is_finite() && value >= min && value <= max {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(invalid(
            field,
            format!("must be a number of seconds from {min} to {max}, got {value}"),
        ))
    }
}

fn positive_seconds(field: &'static str, value: f64) -> Result<Duration, Error> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(invalid(
            field,
            format!("must be a number of seconds greater than 0 (at most 86400), got {value}"),
        ))
    }
}

/// `lw_` then 32 characters from `[A-Za-z0-9_-]`, as the server checks it.
pub fn is_valid_api_key(key: &str) -> bool {
    key.len() == 35
        && key.starts_with("lw_")
        && key
            .bytes()
            .skip(3)
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads the CA certificates of a PEM file.
fn ca_certs(path: &str) -> Result<Option<Vec<ureq::tls::Certificate<'static>>>, Error> {
    if path.is_empty() {
        return Ok(None);
    }
    let pem = std::fs::read(path)
        .map_err(|e| invalid("ca_file", format!("cannot be read ({path:?}: {e})")))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(invalid(
            "ca_file",
            format!("must be a PEM file with at least one CERTIFICATE block, got {path:?}"),
        ));
    }
    Ok(Some(certs))
}

/// Whether requests to `url` carry the key unencrypted over a network: plain `http://`
/// to a host other than loopback.
pub fn sends_key_in_clear(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// Checks the endpoint and returns the ingest URL under it.
fn ingest_url(endpoint: &str) -> Result<String, Error> {
    let trimmed = endpoint.trim();
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(invalid(
            "endpoint",
            format!("must be an http:// or https:// URL, got {endpoint:?}"),
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid(
            "endpoint",
            format!("must name a host, as in https://logs.example.com, got {endpoint:?}"),
        ));
    }
    let base = trimmed.trim_end_matches('/');
    if base.ends_with("/v1/ingest") {
        Ok(base.to_string())
    } else {
        Ok(format!("{base}/v1/ingest"))
    }
}

impl Config {
    pub fn new(s: &Settings) -> Result<Config, Error> {
        if s.api_key.is_empty() {
            return Err(invalid(
                "api_key",
                "is required: pass api_key= or set LOGWELL_API_KEY",
            ));
        }
        if !is_valid_api_key(&s.api_key) {
            // Never echo the key itself: it may be a real secret with a typo.
            return Err(invalid(
                "api_key",
                format!(
                    "must be 'lw_' followed by 32 characters from A-Z a-z 0-9 _ - \
                     (the given key has {} characters)",
                    s.api_key.chars().count()
                ),
            ));
        }
        if s.endpoint.is_empty() {
            return Err(invalid(
                "endpoint",
                "is required: pass endpoint= or set LOGWELL_ENDPOINT",
            ));
        }
        Ok(Config {
            ingest_url: ingest_url(&s.endpoint)?,
            api_key: s.api_key.clone(),
            batch_size: int_in(
                "batch_size",
                s.batch_size,
                1,
                MAX_ENTRIES_PER_REQUEST as i64,
            )? as usize,
            flush_interval: seconds_in("flush_interval", s.flush_interval, 0.1, 60.0)?,
            max_queue_size: int_in("max_queue_size", s.max_queue_size, 1, 1_000_000)? as usize,
            max_queue_bytes: int_in("max_queue_bytes", s.max_queue_bytes, 1024, 1 << 40)? as usize,
            max_retries: int_in("max_retries", s.max_retries, 0, 100)? as u32,
            timeout: positive_seconds("timeout", s.timeout)?,
            shutdown_timeout: seconds_in("shutdown_timeout", s.shutdown_timeout, 0.0, 3600.0)?,
            limits: Limits {
                max_string_bytes: int_in("max_message_bytes", s.max_message_bytes, 1024, 64 << 20)?
                    as usize,
                max_metadata_bytes: int_in(
                    "max_metadata_bytes",
                    s.max_metadata_bytes,
                    1024,
                    64 << 20,
                )? as usize,
            },
            ca_certs: ca_certs(&s.ca_file)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            api_key: format!("lw_{}", "a".repeat(32)),
            endpoint: "http://127.0.0.1:9000/".into(),
            ..Settings::default()
        }
    }

    fn field_of(e: Error) -> &'static str {
        match e {
            Error::InvalidConfig { field, .. } => field,
            other => panic!("not a config error: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_url_is_built() {
        let c = Config::new(&settings()).expect("valid");
        assert_eq!(c.ingest_url, "http://127.0.0.1:9000/v1/ingest");
        assert_eq!(c.batch_size, 50);
        assert_eq!(c.max_queue_size, 100_000);
        assert_eq!(c.limits.max_string_bytes, 64 * 1024);
        assert_eq!(c.flush_interval, Duration::from_secs(5));
    }

    type Mutation = fn(&mut Settings);

    #[test]
    fn out_of_range_values_name_their_field() {
        let cases: Vec<(Mutation, &str)> = vec![
            (|s| s.batch_size = 0, "batch_size"),
            (|s| s.batch_size = 101, "batch_size"),
            (|s| s.flush_interval = 0.05, "flush_interval"),
            (|s| s.flush_interval = f64::NAN, "flush_interval"),
            (|s| s.max_queue_size = 0, "max_queue_size"),
            (|s| s.max_retries = -1, "max_retries"),
            (|s| s.timeout = 0.0, "timeout"),
            (|s| s.endpoint = "ftp://x".into(), "endpoint"),
            (|s| s.endpoint = "http://".into(), "endpoint"),
            (|s| s.endpoint = "https:///".into(), "endpoint"),
            (|s| s.api_key = "lw_short".into(), "api_key"),
            (|s| s.api_key = String::new(), "api_key"),
            (|s| s.max_message_bytes = 10, "max_message_bytes"),
            (|s| s.max_metadata_bytes = 1 << 40, "max_metadata_bytes"),
            (|s| s.ca_file = "/nonexistent/ca.pem".into(), "ca_file"),
            (|s| s.ca_file = "Cargo.toml".into(), "ca_file"),
        ];
        for (mutate, field) in cases {
            let mut s = settings();
            mutate(&mut s);
            assert_eq!(field_of(Config::new(&s).expect_err(field)), field);
        }
    }

    #[test]
    fn key_never_appears_in_errors_or_debug() {
        let mut s = settings();
        s.api_key = format!("lw_{}!", "s3cr3t".repeat(5));
        let msg = Config::new(&s).expect_err("bad key").to_string();
        assert!(!msg.contains("s3cr3t"), "{msg}");
        let c = Config::new(&settings()).expect("valid");
        assert!(!format!("{c:?}").contains(&"a".repeat(32)));
    }

    #[test]
    fn plain_http_is_flagged_only_off_loopback() {
        assert!(sends_key_in_clear("http://logs.example.com/v1/ingest"));
        assert!(sends_key_in_clear("http://10.0.0.5:3000/v1/ingest"));
        assert!(!sends_key_in_clear("http://127.0.0.1:3000/v1/ingest"));
        assert!(!sends_key_in_clear("http://localhost:3000/v1/ingest"));
        assert!(!sends_key_in_clear("http://[::1]:3000/v1/ingest"));
        assert!(!sends_key_in_clear("https://logs.example.com/v1/ingest"));
    }
}
