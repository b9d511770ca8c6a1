//! Validated configuration of a shipper: limits, defaults and the ingest URL.

use std::time::Duration;

use crate::errors::Error;
use crate::protocol::logwell::MAX_ENTRIES_PER_REQUEST;
use crate::protocol::otlp::{self, attribute};
use crate::protocol::Protocol;
use crate::record::Limits;

/// Headers the transport sets itself.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

/// Settings as a caller gives them; `Config::new` checks every one.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_key: String,
    pub endpoint: String,
    /// The endpoint is the URL to post to, used as given, with no path added (as
    /// OpenTelemetry's `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` is).
    pub endpoint_is_url: bool,
    pub batch_size: i64,
    pub flush_interval: f64,
    pub max_queue_size: i64,
    pub max_queue_bytes: i64,
    /// The server's request budget for the key; 0: no limit known.
    pub max_requests_per_minute: i64,
    pub max_retries: i64,
    pub timeout: f64,
    pub shutdown_timeout: f64,
    pub max_message_bytes: i64,
    pub max_metadata_bytes: i64,
    /// A PEM file of CA certificates to trust instead of the system's; empty: none.
    pub ca_file: String,
    /// The directory of the disk spool; empty: no spool. Relative paths are taken
    /// from the working directory at construction.
    pub spool_dir: String,
    pub max_spool_bytes: i64,
    pub protocol: Protocol,
    /// Extra request headers, as given.
    pub headers: Vec<(String, String)>,
    /// OTLP resource attributes besides `service.name` and `process.pid`, each value
    /// already encoded as an `AnyValue`.
    pub resource: Vec<(String, Vec<u8>)>,
}

/// The defaults' home is Python's `_settings.Defaults`, which always passes every
/// setting; these are the same values, for Rust tests.
#[cfg(any(test, fuzzing))]
impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_key: String::new(),
            endpoint: String::new(),
            endpoint_is_url: false,
            batch_size: 50,
            flush_interval: 5.0,
            max_queue_size: 100_000,
            max_queue_bytes: 64 * 1024 * 1024,
            max_requests_per_minute: 600,
            max_retries: 3,
            timeout: 30.0,
            shutdown_timeout: 5.0,
            max_message_bytes: 64 * 1024,
            max_metadata_bytes: 64 * 1024,
            ca_file: String::new(),
            spool_dir: String::new(),
            max_spool_bytes: 256 * 1024 * 1024,
            protocol: Protocol::Logwell,
            headers: Vec::new(),
            resource: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct Config {
    pub protocol: Protocol,
    /// `{endpoint}/v1/ingest`, or `{endpoint}/v1/logs` for OTLP.
    pub url: String,
    /// Empty when not given (OTLP only): no `Authorization: Bearer`.
    pub api_key: String,
    /// Extra request headers; an `Authorization` here replaces the key's.
    pub headers: Vec<(String, String)>,
    /// OTLP: the encoded `KeyValue`s every resource carries besides `service.name`.
    pub resource_attributes: Vec<u8>,
    pub batch_size: usize,
    /// The most entries one request carries.
    pub max_request_entries: usize,
    pub flush_interval: Duration,
    pub max_queue_size: usize,
    pub max_queue_bytes: usize,
    pub max_requests_per_minute: u32,
    pub max_retries: u32,
    pub timeout: Duration,
    pub shutdown_timeout: Duration,
    pub limits: Limits,
    /// CA certificates to trust instead of the platform's; `None`: the platform's.
    pub ca_certs: Option<Vec<ureq::tls::Certificate<'static>>>,
    pub spool: Option<SpoolConfig>,
}

#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub dir: std::path::PathBuf,
    pub max_bytes: u64,
    /// Names where the entries go (protocol, URL, credentials) without revealing the key:
    /// a directory shared by shippers to several servers sends each entry to its own.
    pub destination: String,
}

// Hand-written so the key can never reach a log line through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("protocol", &self.protocol)
            .field("url", &shown_url(&self.url))
            .field("api_key", &"<redacted>")
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("batch_size", &self.batch_size)
            .field("max_request_entries", &self.max_request_entries)
            .field("flush_interval", &self.flush_interval)
            .field("max_queue_size", &self.max_queue_size)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_requests_per_minute", &self.max_requests_per_minute)
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
            .field("spool", &self.spool)
            // `resource_attributes`: encoded bytes, of no use in a debug line.
            .finish_non_exhaustive()
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

/// Whether `url` (a request URL built here) sends to a host other than loopback in the
/// clear.
fn spool_config(s: &Settings, protocol: Protocol) -> Result<Option<SpoolConfig>, Error> {
    let max_bytes = int_in("max_spool_bytes", s.max_spool_bytes, 1 << 20, 1 << 40)? as u64;
    if s.spool_dir.is_empty() {
        return Ok(None);
    }
    let dir = std::path::PathBuf::from(&s.spool_dir);
    if dir.exists() && !dir.is_dir() {
        return Err(invalid(
            "spool_dir",
            format!("must be a directory, and '{}' is a file", dir.display()),
        ));
    }
    // FNV-1a, written out so that the name stays the same across versions and builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes.iter().chain(b"\n") {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(protocol.name().as_bytes());
    feed(request_url(s, protocol)?.as_bytes());
    feed(s.api_key.as_bytes());
    for (name, value) in &s.headers {
        feed(name.to_ascii_lowercase().as_bytes());
        feed(value.as_bytes());
    }
    Ok(Some(SpoolConfig {
        dir,
        max_bytes,
        destination: format!("{hash:016x}"),
    }))
}

pub fn sends_key_in_clear(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "http" && !loopback
}

/// `url` with the password of its user info, if any, replaced: for every text we show.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not a URL: whatever sits between "://" and an "@" may be a password.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
            }
            _ => url.to_owned(),
        },
    }
}

/// Checks the endpoint and returns the URL under it that `protocol` posts to: the path
/// gets `protocol`'s (unless it already ends in it, or `endpoint_is_url`), the query is
/// kept.
fn request_url(s: &Settings, protocol: Protocol) -> Result<String, Error> {
    let endpoint = s.endpoint.as_str();
    let shown = shown_url(endpoint.trim());
    let bad = |problem: &str| invalid("endpoint", format!("{problem}, got {shown:?}"));
    let mut url = match url::Url::parse(endpoint.trim()) {
        Ok(url) => url,
        Err(url::ParseError::EmptyHost) => {
            return Err(bad("must name a host, as in https://logs.example.com"))
        }
        Err(url::ParseError::InvalidPort) => {
            return Err(bad("has a port that is not a number from 1 to 65535"))
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err(bad("must be an http:// or https:// URL"))
        }
        Err(e) => return Err(bad(&format!("is not a valid URL ({e})"))),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host, as in https://logs.example.com"));
    }
    if url.port() == Some(0) {
        return Err(bad("has a port that is not a number from 1 to 65535"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a #fragment, which is never sent"));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    if s.endpoint_is_url {
        return Ok(url.to_string());
    }
    if path.ends_with(protocol.path()) {
        url.set_path(&path);
    } else {
        url.set_path(&format!("{path}{}", protocol.path()));
    }
    Ok(url.to_string())
}

/// A bearer token for an OTLP receiver: visible ASCII, as an HTTP header value takes it.
fn check_bearer_token(key: &str) -> Result<(), Error> {
    if key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(
            "api_key",
            "must be visible ASCII with no spaces: it is sent as 'Authorization: Bearer <key>'",
        ))
    }
}

/// Header names are HTTP tokens; values are visible ASCII, spaces and tabs.
fn check_headers(headers: &[(String, String)]) -> Result<(), Error> {
    const TOKEN_PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";
    for (name, value) in headers {
        let is_token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || TOKEN_PUNCTUATION.contains(&b));
        if !is_token {
            return Err(invalid(
                "headers",
                format!(
                    "names must be HTTP tokens (letters, digits and !#$%&'*+-.^_`|~), got {name:?}"
                ),
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(invalid(
                "headers",
                format!(
                    "cannot set {name:?}: the handler sets {} itself",
                    RESERVED_HEADERS.join(", ")
                ),
            ));
        }
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            // The value may be a secret: name the header, not the value.
            return Err(invalid(
                "headers",
                format!("the value of {name:?} must be visible ASCII, spaces and tabs only"),
            ));
        }
    }
    Ok(())
}

/// The resource attributes besides `service.name`, encoded, with this process's pid.
fn resource_attributes(resource: &[(String, Vec<u8>)]) -> Vec<u8> {
    let pid = otlp::int_attribute(attribute::PROCESS_PID, i64::from(std::process::id()));
    let attributes: Vec<Vec<u8>> = resource
        .iter()
        .map(|(key, value)| otlp::key_value(key, value))
        .chain([pid])
        .collect();
    attributes.join(&b',')
}

impl Config {
    pub fn new(s: &Settings) -> Result<Config, Error> {
        let protocol = s.protocol;
        if protocol == Protocol::Otlp {
            // A collector may want no key, or a token of its own.
            check_bearer_token(&s.api_key)?;
        } else if s.api_key.is_empty() {
            return Err(Error::MissingConfig {
                field: "api_key",
                hint: "pass api_key= or set LOGWELL_API_KEY",
            });
        }
        if s.endpoint.is_empty() {
            return Err(Error::MissingConfig {
                field: "endpoint",
                hint: "pass endpoint= or set LOGWELL_ENDPOINT",
            });
        }
        if protocol == Protocol::Logwell && !is_valid_api_key(&s.api_key) {
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
        // The order of the official SDKs' checks: key, endpoint, then the numbers.
        let url = request_url(s, protocol)?;
        check_headers(&s.headers)?;
        let max_batch_size = i64::try_from(protocol.max_batch_size()).unwrap_or(i64::MAX);
        let batch_size = int_in("batch_size", s.batch_size, 1, max_batch_size)? as usize;
        Ok(Config {
            protocol,
            url,
            api_key: s.api_key.clone(),
            headers: s.headers.clone(),
            resource_attributes: match protocol {
                Protocol::Logwell => Vec::new(),
                Protocol::Otlp => resource_attributes(&s.resource),
            },
            batch_size,
            max_request_entries: batch_size.max(MAX_ENTRIES_PER_REQUEST),
            flush_interval: seconds_in("flush_interval", s.flush_interval, 0.1, 60.0)?,
            max_queue_size: int_in("max_queue_size", s.max_queue_size, 1, 1_000_000)? as usize,
            max_queue_bytes: int_in("max_queue_bytes", s.max_queue_bytes, 1024, 1 << 40)? as usize,
            max_requests_per_minute: int_in(
                "max_requests_per_minute",
                s.max_requests_per_minute,
                0,
                1_000_000,
            )? as u32,
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
            spool: spool_config(s, protocol)?,
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
            Error::InvalidConfig { field, .. } | Error::MissingConfig { field, .. } => field,
            other => panic!("not a config error: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_url_is_built() {
        let c = Config::new(&settings()).expect("valid");
        assert_eq!(c.url, "http://127.0.0.1:9000/v1/ingest");
        assert_eq!(c.max_request_entries, 100);
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
            (|s| s.endpoint = "https://h:notaport".into(), "endpoint"),
            (|s| s.endpoint = "https://h:0".into(), "endpoint"),
            (|s| s.endpoint = "https://h/#x".into(), "endpoint"),
            (|s| s.endpoint = "localhost:8080".into(), "endpoint"),
            (|s| s.api_key = "lw_short".into(), "api_key"),
            (|s| s.api_key = String::new(), "api_key"),
            (|s| s.max_message_bytes = 10, "max_message_bytes"),
            (|s| s.max_metadata_bytes = 1 << 40, "max_metadata_bytes"),
            (|s| s.ca_file = "/nonexistent/ca.pem".into(), "ca_file"),
            (|s| s.ca_file = "Cargo.toml".into(), "ca_file"),
            (
                |s| s.headers = vec![("bad name".into(), "v".into())],
                "headers",
            ),
            (
                |s| s.headers = vec![("X-Token".into(), "a\r\nb".into())],
                "headers",
            ),
            (
                |s| s.headers = vec![("Content-Type".into(), "x".into())],
                "headers",
            ),
            (
                |s| {
                    s.protocol = Protocol::Otlp;
                    s.batch_size = 10_001;
                },
                "batch_size",
            ),
            (
                |s| {
                    s.protocol = Protocol::Otlp;
                    s.api_key = "has space".into();
                },
                "api_key",
            ),
        ];
        for (mutate, field) in cases {
            let mut s = settings();
            mutate(&mut s);
            assert_eq!(field_of(Config::new(&s).expect_err(field)), field);
        }
    }

    #[test]
    fn otlp_posts_to_v1_logs_and_takes_any_token_or_none() {
        let mut s = settings();
        s.protocol = Protocol::Otlp;
        s.api_key = String::new();
        s.batch_size = 1000;
        let c = Config::new(&s).expect("valid");
        assert_eq!(c.url, "http://127.0.0.1:9000/v1/logs");
        assert_eq!(c.max_request_entries, 1000);
        let pid = format!("\"intValue\":\"{}\"", std::process::id());
        assert!(String::from_utf8_lossy(&c.resource_attributes).contains(&pid));
        s.endpoint = "https://otel.example.com/ingest/v1/logs/".into();
        s.api_key = "collector-token.123".into();
        assert_eq!(
            Config::new(&s).expect("valid").url,
            "https://otel.example.com/ingest/v1/logs"
        );
    }

    #[test]
    fn endpoints_are_parsed_not_cut() {
        let url = |endpoint: &str| {
            let mut s = settings();
            s.endpoint = endpoint.into();
            Config::new(&s).expect(endpoint).url
        };
        assert_eq!(url("https://h/?tenant=a"), "https://h/v1/ingest?tenant=a");
        assert_eq!(
            url("https://H.example.com:8443/base/"),
            "https://h.example.com:8443/base/v1/ingest"
        );
        assert_eq!(url("https://h/v1/ingest/"), "https://h/v1/ingest");
        let mut s = settings();
        s.endpoint = "https://user:s3cret@h:notaport".into();
        let msg = Config::new(&s).expect_err("bad port").to_string();
        assert!(msg.contains("port"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn a_password_in_the_endpoint_is_never_shown() {
        assert_eq!(
            shown_url("https://user:s3cret@h/v1/ingest"),
            "https://user:***@h/v1/ingest"
        );
        assert_eq!(shown_url("https://h/v1/ingest"), "https://h/v1/ingest");
        assert_eq!(shown_url("not a url://u:p@h"), "not a url://***@h");
        assert!(sends_key_in_clear("http://logs.example.com/v1/ingest"));
        assert!(!sends_key_in_clear("http://[::1]:9/v1/ingest"));
        assert!(!sends_key_in_clear("http://localhost/v1/ingest"));
        assert!(!sends_key_in_clear("https://logs.example.com/v1/ingest"));
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
