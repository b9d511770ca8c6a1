//! Logwell's simple API: `POST /v1/ingest` with a JSON array of entry objects
//! (`{"level", "message", "timestamp", "service", "sourceFile", "lineNumber",
//! "metadata"}`), answered by `{"accepted", "rejected", "errors"}`.

use crate::errors::{detail, Error};
use crate::json::{push_digits, push_int, JsonWriter};

use super::{shown_message, Reply};

pub const PATH: &str = "/v1/ingest";
/// The server refuses requests with more entries than this (`batch_too_large`).
pub const MAX_ENTRIES_PER_REQUEST: usize = 100;
/// The entry's field that holds every other field, an object.
pub const METADATA: &str = "metadata";

/// Metadata fields this crate fills from a record.
pub mod field {
    pub const LOGGER: &str = "logger";
    /// `{"type", "message", "stacktrace"}` of the record's exception.
    pub const EXCEPTION: &str = "exception";
    pub const EXCEPTION_PARTS: [&str; 3] = ["type", "message", "stacktrace"];
    pub const STACK: &str = "stack";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
}

/// Logwell's levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// The band a Python level number falls in: DEBUG and below are debug, up to INFO
    /// info, up to WARNING warn, up to ERROR error, above that fatal.
    pub fn from_levelno(levelno: i64) -> Level {
        match levelno {
            i64::MIN..=10 => Level::Debug,
            11..=20 => Level::Info,
            21..=30 => Level::Warn,
            31..=40 => Level::Error,
            _ => Level::Fatal,
        }
    }

    pub fn parse(name: &str) -> Option<Level> {
        match name {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" => Some(Level::Warn),
            "error" => Some(Level::Error),
            "fatal" => Some(Level::Fatal),
            _ => None,
        }
    }

    /// Every level, least important first: the order in which a full buffer sheds.
    pub const ALL: [Level; 5] = [
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

/// When an entry happened.
#[derive(Clone, Copy, Debug)]
pub enum Timestamp<'a> {
    /// Seconds since the Unix epoch, written as ISO 8601 UTC.
    Seconds(f64),
    /// A caller's own timestamp text, passed through (the server parses it).
    Text(&'a str),
}

/// Opens an entry object and writes its level, message and timestamp.
pub fn write_head(json: &mut JsonWriter, level: Level, message: &str, timestamp: Timestamp<'_>) {
    json.begin_object();
    json.key("level");
    json.string(level.as_str());
    json.key("message");
    json.string(shown_message(message));
    json.key("timestamp");
    match timestamp {
        Timestamp::Seconds(created) => {
            json.separate();
            json.out.push(b'"');
            write_timestamp(&mut json.out, created);
            json.out.push(b'"');
        }
        Timestamp::Text(text) => json.string(text),
    }
}

pub fn write_service(json: &mut JsonWriter, service: &str) {
    json.key("service");
    json.string(service);
}

/// The file and line of the call. Logwell takes `lineNumber` only as an integer > 0;
/// other lines are left out.
pub fn write_source(json: &mut JsonWriter, file: &str, line: i64) {
    if !file.is_empty() {
        json.key("sourceFile");
        json.string(file);
    }
    if line > 0 {
        json.key("lineNumber");
        json.int(line);
    }
}

/// Writes `seconds` since the Unix epoch as ISO 8601 UTC with microseconds,
/// e.g. `2026-11-20T22:37:46.123456Z`.
pub fn write_timestamp(out: &mut Vec<u8>, seconds: f64) {
    let seconds = if seconds.is_finite() { seconds } else { 0.0 };
    let total_micros = (seconds * 1_000_000.0).round() as i64;
    let micros = total_micros.rem_euclid(1_000_000);
    let secs = total_micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // By hand rather than through `write!`: this runs once per record, and the
    // formatting machinery cost more than the rest of the timestamp.
    if (0..=9999).contains(&y) {
        push_digits(out, y as u64, 4);
    } else {
        push_int(out, y);
    }
    out.push(b'-');
    push_digits(out, u64::from(m), 2);
    out.push(b'-');
    push_digits(out, u64::from(d), 2);
    out.push(b'T');
    push_digits(out, (sod / 3600) as u64, 2);
    out.push(b':');
    push_digits(out, (sod / 60 % 60) as u64, 2);
    out.push(b':');
    push_digits(out, (sod % 60) as u64, 2);
    out.push(b'.');
    push_digits(out, micros as u64, 6);
    out.push(b'Z');
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The request body for a batch: a JSON array of already-encoded entries.
pub fn batch_body<'a>(entries: impl Iterator<Item = &'a [u8]>, size_hint: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size_hint + 2);
    body.push(b'[');
    for (i, e) in entries.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.push(b']');
    body
}

/// `{"accepted": n, "rejected": m, "errors": [...]}`.
pub fn read_reply(body: &[u8], entries: u64) -> Result<Reply, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::BadReply(e.to_string()))?;
    let count = |name: &str| value.get(name).and_then(serde_json::Value::as_u64);
    let Some(accepted) = count("accepted") else {
        return Err(Error::BadReply(format!(
            "no \"accepted\" count in {}",
            detail(&String::from_utf8_lossy(body))
        )));
    };
    // Whatever the server did not accept is refused, whether or not it said so in
    // "rejected": an entry is never left uncounted.
    let accepted = accepted.min(entries);
    let rejected = entries - accepted;
    let errors = value
        .get("errors")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply {
        accepted,
        rejected,
        said_rejected: count("rejected"),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_bands() {
        let cases = [
            (0, Level::Debug),
            (5, Level::Debug),
            (10, Level::Debug),
            (15, Level::Info),
            (20, Level::Info),
            (25, Level::Warn),
            (30, Level::Warn),
            (35, Level::Error),
            (40, Level::Error),
            (45, Level::Fatal),
            (50, Level::Fatal),
        ];
        for (n, level) in cases {
            assert_eq!(Level::from_levelno(n), level, "levelno {n}");
        }
    }

    #[test]
    fn timestamps_are_iso8601_utc_with_micros() {
        let mut out = Vec::new();
        write_timestamp(&mut out, 0.0);
        assert_eq!(out, b"1970-01-01T00:00:00.000000Z");
        out.clear();
        write_timestamp(&mut out, 1_709_251_199.999_999_7);
        assert_eq!(out, b"2024-03-01T00:00:00.000000Z");
        out.clear();
        write_timestamp(&mut out, 951_782_400.25); // 2000-02-29, a leap day
        assert_eq!(out, b"2000-02-29T00:00:00.250000Z");
    }

    #[test]
    fn batch_body_is_an_array() {
        let a = br#"{"a":1}"#.as_slice();
        let b = br#"{"b":2}"#.as_slice();
        assert_eq!(batch_body([a, b].into_iter(), 16), br#"[{"a":1},{"b":2}]"#);
    }
}
