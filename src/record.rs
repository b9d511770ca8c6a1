//! A log entry as the server takes it, encoded to JSON once, at the call site.
//!
//! `EntryWriter` writes the object field by field into one buffer; the Python edge
//! feeds it values read from a `LogRecord`. Nothing here knows of Python.

/// Shown in place of a message that is blank after trimming (the server refuses those).
pub const EMPTY_MESSAGE_PLACEHOLDER: &str = "(empty message)";
/// The metadata field that names the fields left out for `max_metadata_bytes`.
pub const METADATA_TRUNCATED_KEY: &str = "_truncated";

/// Size limits on one entry, in bytes of UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Any one string (the message, a metadata value or key) is cut at this length.
    pub max_string_bytes: usize,
    /// Metadata fields that would take the encoded metadata object past this are left out.
    pub max_metadata_bytes: usize,
}

impl Limits {
    pub const NONE: Limits = Limits {
        max_string_bytes: usize::MAX,
        max_metadata_bytes: usize::MAX,
    };
}

/// `s` cut to at most `max` bytes at a character boundary, and the byte length it had.
fn cut(s: &str, max: usize) -> Option<(&str, usize)> {
    if s.len() <= max {
        return None;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some((&s[..end], s.len()))
}

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
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
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

/// A streaming JSON writer that places commas itself. Strings are escaped by serde_json,
/// and cut at `max_string_bytes` with a visible marker.
pub struct JsonWriter {
    out: Vec<u8>,
    /// One flag per open container: does the next value need a comma before it?
    needs_comma: Vec<bool>,
    /// Set after `key`: the next value follows a colon, not a comma.
    after_key: bool,
    max_string_bytes: usize,
}

/// A point to which a `JsonWriter` can be rolled back.
#[derive(Clone, Copy)]
pub struct Mark {
    len: usize,
    depth: usize,
    needs_comma: bool,
}

impl Default for JsonWriter {
    fn default() -> Self {
        JsonWriter::with_capacity(0)
    }
}

impl JsonWriter {
    pub fn with_capacity(n: usize) -> JsonWriter {
        JsonWriter {
            out: Vec::with_capacity(n),
            needs_comma: Vec::with_capacity(4),
            after_key: false,
            max_string_bytes: usize::MAX,
        }
    }

    pub fn set_max_string_bytes(&mut self, max: usize) {
        self.max_string_bytes = max;
    }

    pub fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            depth: self.needs_comma.len(),
            needs_comma: self.needs_comma.last().copied().unwrap_or(false),
        }
    }

    /// Forgets everything written since `mark`, which must be outside any container
    /// opened since.
    pub fn reset(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.needs_comma.truncate(mark.depth);
        if let Some(flag) = self.needs_comma.last_mut() {
            *flag = mark.needs_comma;
        }
        self.after_key = false;
    }

    fn separate(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(flag) = self.needs_comma.last_mut() {
            if *flag {
                self.out.push(b',');
            }
            *flag = true;
        }
    }

    pub fn begin_object(&mut self) {
        self.separate();
        self.out.push(b'{');
        self.needs_comma.push(false);
    }

    pub fn end_object(&mut self) {
        self.needs_comma.pop();
        self.out.push(b'}');
    }

    pub fn begin_array(&mut self) {
        self.separate();
        self.out.push(b'[');
        self.needs_comma.push(false);
    }

    pub fn end_array(&mut self) {
        self.needs_comma.pop();
        self.out.push(b']');
    }

    pub fn key(&mut self, key: &str) {
        self.string(key);
        self.out.push(b':');
        self.after_key = true;
    }

    pub fn string(&mut self, s: &str) {
        self.separate();
        // Serializing a &str into a Vec cannot fail.
        match cut(s, self.max_string_bytes) {
            None => {
                let _ = serde_json::to_writer(&mut self.out, s);
            }
            Some((head, total)) => {
                let marked = format!("{head}…[truncated: {total} bytes in all]");
                let _ = serde_json::to_writer(&mut self.out, &marked);
            }
        }
    }

    pub fn int(&mut self, n: i64) {
        self.separate();
        let _ = serde_json::to_writer(&mut self.out, &n);
    }

    /// A finite float as a JSON number; NaN and infinities as strings ("nan", "inf", "-inf").
    pub fn float(&mut self, f: f64) {
        if f.is_finite() {
            self.separate();
            let _ = serde_json::to_writer(&mut self.out, &f);
        } else if f.is_nan() {
            self.string("nan");
        } else if f > 0.0 {
            self.string("inf");
        } else {
            self.string("-inf");
        }
    }

    /// An integer given as decimal digits (Python ints beyond 64 bits).
    /// Anything that is not `-?[0-9]+` is written as a string instead.
    pub fn big_int(&mut self, digits: &str) {
        let body = digits.strip_prefix('-').unwrap_or(digits);
        if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
            self.separate();
            self.out.extend_from_slice(digits.as_bytes());
        } else {
            self.string(digits);
        }
    }

    pub fn bool(&mut self, b: bool) {
        self.separate();
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    pub fn null(&mut self) {
        self.separate();
        self.out.extend_from_slice(b"null");
    }

    /// Appends an already-encoded JSON value.
    pub fn raw(&mut self, json: &[u8]) {
        self.separate();
        self.out.extend_from_slice(json);
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
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

/// Builds one entry object. Call order: `new`, optional fields, then metadata, then `finish`.
pub struct EntryWriter {
    json: JsonWriter,
    max_metadata_bytes: usize,
    metadata_start: Option<usize>,
    metadata_keys: Vec<String>,
    /// The metadata field written last, not yet checked against `max_metadata_bytes`.
    open_field: Option<Mark>,
    /// Fields left out because the metadata would have been too large.
    left_out: Vec<String>,
}

impl EntryWriter {
    pub fn new(
        level: Level,
        message: &str,
        timestamp: Timestamp<'_>,
        limits: Limits,
    ) -> EntryWriter {
        let mut json = JsonWriter::with_capacity(256 + message.len().min(limits.max_string_bytes));
        json.set_max_string_bytes(limits.max_string_bytes);
        json.begin_object();
        json.key("level");
        json.string(level.as_str());
        json.key("message");
        json.string(if message.trim().is_empty() {
            EMPTY_MESSAGE_PLACEHOLDER
        } else {
            message
        });
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
        EntryWriter {
            json,
            max_metadata_bytes: limits.max_metadata_bytes,
            metadata_start: None,
            metadata_keys: Vec::new(),
            open_field: None,
            left_out: Vec::new(),
        }
    }

    pub fn service(&mut self, service: &str) {
        self.json.key("service");
        self.json.string(service);
    }

    /// The server takes `lineNumber` only as an integer > 0; other lines are left out.
    pub fn source(&mut self, file: &str, line: i64) {
        if !file.is_empty() {
            self.json.key("sourceFile");
            self.json.string(file);
        }
        if line > 0 {
            self.json.key("lineNumber");
            self.json.int(line);
        }
    }

    /// Starts the next metadata field and returns the writer for its value, or `None`
    /// when a field of that name was already written: the first writer of a key wins,
    /// so callers write in order of precedence, highest first.
    pub fn metadata_field(&mut self, key: &str) -> Option<&mut JsonWriter> {
        if self.metadata_keys.iter().any(|k| k == key) {
            return None;
        }
        self.close_field();
        if self.metadata_start.is_none() {
            self.json.key("metadata");
            self.metadata_start = Some(self.json.len());
            self.json.begin_object();
        }
        self.open_field = Some(self.json.mark());
        self.metadata_keys.push(key.to_owned());
        self.json.key(key);
        Some(&mut self.json)
    }

    /// Takes back the last field if it made the metadata too large.
    fn close_field(&mut self) {
        let (Some(mark), Some(start)) = (self.open_field.take(), self.metadata_start) else {
            return;
        };
        if self.json.len() - start > self.max_metadata_bytes {
            self.json.reset(mark);
            if let Some(key) = self.metadata_keys.last() {
                self.left_out.push(key.clone());
            }
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.close_field();
        if !self.left_out.is_empty()
            && !self
                .metadata_keys
                .iter()
                .any(|k| k == METADATA_TRUNCATED_KEY)
        {
            let note = format!(
                "left out to keep metadata under {} bytes: {}",
                self.max_metadata_bytes,
                self.left_out.join(", ")
            );
            self.json.key(METADATA_TRUNCATED_KEY);
            self.json.string(&note);
        }
        if self.metadata_start.is_some() {
            self.json.end_object();
        }
        self.json.end_object();
        self.json.into_bytes()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

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
    fn entry_with_every_field() {
        let mut w = EntryWriter::new(
            Level::Warn,
            "disk \"low\"\n",
            Timestamp::Seconds(0.5),
            Limits::NONE,
        );
        w.service("shop");
        w.source("app/views.py", 42);
        w.metadata_field("request_id").expect("first").string("r-1");
        assert!(
            w.metadata_field("request_id").is_none(),
            "first writer wins"
        );
        let n = w.metadata_field("nested").expect("new key");
        n.begin_object();
        n.key("xs");
        n.begin_array();
        n.int(1);
        n.float(f64::NAN);
        n.null();
        n.end_array();
        n.end_object();
        let v = parse(&w.finish());
        assert_eq!(
            v,
            json!({
                "level": "warn", "message": "disk \"low\"\n",
                "timestamp": "1970-01-01T00:00:00.500000Z",
                "service": "shop", "sourceFile": "app/views.py", "lineNumber": 42,
                "metadata": {"request_id": "r-1", "nested": {"xs": [1, "nan", null]}}
            })
        );
    }

    #[test]
    fn blank_message_gets_placeholder_and_bad_line_is_left_out() {
        let mut w = EntryWriter::new(Level::Info, " \t\n", Timestamp::Seconds(0.0), Limits::NONE);
        w.source("", 0);
        let v = parse(&w.finish());
        assert_eq!(v["message"], EMPTY_MESSAGE_PLACEHOLDER);
        assert!(v.get("lineNumber").is_none());
        assert!(v.get("metadata").is_none(), "no empty metadata object");
    }

    #[test]
    fn timestamp_text_is_passed_through() {
        let w = EntryWriter::new(
            Level::Info,
            "m",
            Timestamp::Text("2026-01-01T00:00:00Z"),
            Limits::NONE,
        );
        assert_eq!(parse(&w.finish())["timestamp"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn big_ints_stay_numbers_and_junk_becomes_string() {
        let mut j = JsonWriter::default();
        j.begin_array();
        j.big_int("123456789012345678901234567890");
        j.big_int("12e3");
        j.end_array();
        assert_eq!(
            parse(&j.into_bytes()),
            json!([123456789012345678901234567890_f64, "12e3"])
        );
    }

    #[test]
    fn batch_body_is_an_array() {
        let a = br#"{"a":1}"#.as_slice();
        let b = br#"{"b":2}"#.as_slice();
        assert_eq!(batch_body([a, b].into_iter(), 16), br#"[{"a":1},{"b":2}]"#);
    }

    #[test]
    fn long_strings_are_cut_at_a_char_boundary_with_a_marker() {
        let limits = Limits {
            max_string_bytes: 11,
            max_metadata_bytes: usize::MAX,
        };
        // 'é' is two bytes: byte 11 falls inside the fifth one, which is left out whole.
        let message = "ab".to_owned() + &"é".repeat(20);
        let v = parse(
            &EntryWriter::new(Level::Info, &message, Timestamp::Seconds(0.0), limits).finish(),
        );
        let text = v["message"].as_str().expect("string");
        assert!(
            text.starts_with("abéééé…[truncated: 42 bytes in all]"),
            "{text}"
        );
    }

    #[test]
    fn metadata_over_its_limit_leaves_out_whole_fields_and_says_which() {
        let limits = Limits {
            max_string_bytes: usize::MAX,
            max_metadata_bytes: 64,
        };
        let mut w = EntryWriter::new(Level::Info, "m", Timestamp::Seconds(0.0), limits);
        w.metadata_field("big")
            .expect("new")
            .string(&"x".repeat(100));
        w.metadata_field("small").expect("new").int(1);
        let nested = w.metadata_field("nested").expect("new");
        nested.begin_object();
        nested.key("k");
        nested.string(&"y".repeat(100));
        nested.end_object();
        let v = parse(&w.finish());
        assert_eq!(v["metadata"]["small"], 1);
        assert!(v["metadata"].get("big").is_none());
        assert!(v["metadata"].get("nested").is_none());
        let note = v["metadata"][METADATA_TRUNCATED_KEY]
            .as_str()
            .expect("note");
        assert!(note.contains("big, nested"), "{note}");
    }
}
