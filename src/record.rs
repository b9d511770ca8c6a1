//! A log entry as the server takes it, encoded to JSON once, at the call site.
//!
//! `EntryWriter` writes the object field by field into one buffer; the Python edge
//! feeds it values read from a `LogRecord`. Nothing here knows of Python.

use std::cell::Cell;

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

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `n` in decimal.
fn push_int(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// For each byte: 0 when it stands for itself in a JSON string, else the letter of its
/// short escape (`\\n`), or `u` for `\\u00XX`.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// `s` as a JSON string: quoted, with `"`, `\\` and control characters escaped and all
/// else (UTF-8 included) copied as is.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            let (high, low) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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

/// Containers open at once beyond this share the innermost one's comma flag. Values
/// nest at most `MAX_DEPTH` (8) deep inside an entry, so this is never reached.
const MAX_OPEN: u32 = 64;

/// A streaming JSON writer that places commas itself. Strings are cut at
/// `max_string_bytes` with a visible marker.
pub struct JsonWriter {
    out: Vec<u8>,
    /// One bit per open container, innermost lowest: does its next value need a comma?
    /// Bits rather than a Vec: one allocation fewer per entry.
    needs_comma: u64,
    open: u32,
    /// Set after `key`: the next value follows a colon, not a comma.
    after_key: bool,
    max_string_bytes: usize,
}

/// A point to which a `JsonWriter` can be rolled back.
#[derive(Clone, Copy)]
pub struct Mark {
    len: usize,
    open: u32,
    needs_comma: u64,
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
            needs_comma: 0,
            open: 0,
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
            open: self.open,
            needs_comma: self.needs_comma,
        }
    }

    /// Forgets everything written since `mark`, which must be outside any container
    /// opened since.
    pub fn reset(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.open = mark.open;
        self.needs_comma = mark.needs_comma;
        self.after_key = false;
    }

    fn separate(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if self.open > 0 {
            if self.needs_comma & 1 == 1 {
                self.out.push(b',');
            }
            self.needs_comma |= 1;
        }
    }

    fn open_container(&mut self, bracket: u8) {
        self.separate();
        self.out.push(bracket);
        if self.open < MAX_OPEN {
            self.needs_comma <<= 1;
        }
        self.open += 1;
        self.needs_comma &= !1;
    }

    fn close_container(&mut self, bracket: u8) {
        if self.open <= MAX_OPEN {
            self.needs_comma >>= 1;
        }
        self.open = self.open.saturating_sub(1);
        self.out.push(bracket);
    }

    pub fn begin_object(&mut self) {
        self.open_container(b'{');
    }

    pub fn end_object(&mut self) {
        self.close_container(b'}');
    }

    pub fn begin_array(&mut self) {
        self.open_container(b'[');
    }

    pub fn end_array(&mut self) {
        self.close_container(b']');
    }

    pub fn key(&mut self, key: &str) {
        self.string(key);
        self.out.push(b':');
        self.after_key = true;
    }

    pub fn string(&mut self, s: &str) {
        self.separate();
        self.string_unseparated(s);
    }

    fn string_unseparated(&mut self, s: &str) {
        match cut(s, self.max_string_bytes) {
            None => push_json_string(&mut self.out, s),
            Some((head, total)) => push_json_string(
                &mut self.out,
                &format!("{head}…[truncated: {total} bytes in all]"),
            ),
        }
    }

    pub fn int(&mut self, n: i64) {
        self.separate();
        push_int(&mut self.out, n);
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

/// Each thread's buffers for building entries, reused from one entry to the next: an
/// entry then costs one allocation, of its exact size.
struct Scratch {
    out: Cell<Vec<u8>>,
    keys: Cell<Vec<(usize, usize)>>,
}

/// Buffers grown past this by one huge entry are not kept.
const MAX_SCRATCH_BYTES: usize = 256 * 1024;

impl Scratch {
    fn take(&self) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut out = self.out.take();
        out.clear();
        let mut keys = self.keys.take();
        keys.clear();
        (out, keys)
    }

    fn put_back(&self, out: Vec<u8>, keys: Vec<(usize, usize)>) {
        if out.capacity() <= MAX_SCRATCH_BYTES {
            self.out.set(out);
        }
        self.keys.set(keys);
    }
}

thread_local! {
    static SCRATCH: Scratch = const {
        Scratch {
            out: Cell::new(Vec::new()),
            keys: Cell::new(Vec::new()),
        }
    };
}

/// Builds one entry object. Call order: `new`, optional fields, then metadata, then `finish`.
pub struct EntryWriter {
    json: JsonWriter,
    max_metadata_bytes: usize,
    metadata_start: Option<usize>,
    /// Where each metadata key written so far sits in the output, as its encoded
    /// `"key"`: ranges rather than owned copies, one allocation fewer per key.
    metadata_keys: Vec<(usize, usize)>,
    /// The metadata field written last, not yet checked against `max_metadata_bytes`.
    open_field: Option<Mark>,
    /// Fields left out because the metadata would have been too large: their names, and
    /// their encoded keys (their ranges in the output are gone).
    left_out: Vec<(String, Vec<u8>)>,
}

impl EntryWriter {
    pub fn new(
        level: Level,
        message: &str,
        timestamp: Timestamp<'_>,
        limits: Limits,
    ) -> EntryWriter {
        let (out, metadata_keys) = SCRATCH.with(|s| s.take());
        let mut json = JsonWriter {
            out,
            ..JsonWriter::default()
        };
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
            metadata_keys,
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
        self.close_field();
        if self.metadata_start.is_none() {
            self.json.key("metadata");
            self.metadata_start = Some(self.json.len());
            self.json.begin_object();
        }
        // The key is written, then compared with those before it in encoded form (the
        // encoding is one-to-one), and taken back if it is one of them.
        let mark = self.json.mark();
        self.json.separate();
        let start = self.json.len();
        self.json.string_unseparated(key);
        let end = self.json.len();
        if self.is_written(start, end) {
            self.json.reset(mark);
            return None;
        }
        self.json.out.push(b':');
        self.json.after_key = true;
        self.open_field = Some(mark);
        self.metadata_keys.push((start, end));
        Some(&mut self.json)
    }

    /// Whether the encoded key at `start..end` of the output was written before it.
    fn is_written(&self, start: usize, end: usize) -> bool {
        let key = &self.json.out[start..end];
        self.metadata_keys
            .iter()
            .any(|&(s, e)| &self.json.out[s..e] == key)
            || self.left_out.iter().any(|(_, encoded)| encoded == key)
    }

    /// Takes back the last field if it made the metadata too large.
    fn close_field(&mut self) {
        let (Some(mark), Some(start)) = (self.open_field.take(), self.metadata_start) else {
            return;
        };
        if self.json.len() - start > self.max_metadata_bytes {
            if let Some((s, e)) = self.metadata_keys.pop() {
                let encoded = self.json.out[s..e].to_vec();
                let name = serde_json::from_slice(&encoded).unwrap_or_default();
                self.left_out.push((name, encoded));
            }
            self.json.reset(mark);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.close_field();
        if !self.left_out.is_empty() {
            let names: Vec<&str> = self.left_out.iter().map(|(n, _)| n.as_str()).collect();
            let note = format!(
                "left out to keep metadata under {} bytes: {}",
                self.max_metadata_bytes,
                names.join(", ")
            );
            // Unless a field of that name was written already (a record's own). The
            // note is not checked for size: nothing closes it.
            if let Some(w) = self.metadata_field(METADATA_TRUNCATED_KEY) {
                w.string(&note);
            }
        }
        if self.metadata_start.is_some() {
            self.json.end_object();
        }
        self.json.end_object();
        // An exact copy: the entry may wait in the queue a while, and a right-sized
        // allocation holds no slack.
        let entry = self.json.out.clone();
        SCRATCH.with(|s| s.put_back(self.json.out, self.metadata_keys));
        entry
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
    fn every_character_survives_a_round_trip_through_json() {
        let mut text: String = (0u8..0x80).map(char::from).collect();
        text.push_str("é中😀\u{2028}\u{7f}");
        let mut w = JsonWriter::default();
        w.string(&text);
        let out = w.into_bytes();
        assert_eq!(serde_json::from_slice::<String>(&out).ok(), Some(text));
        // Only what JSON requires is escaped: UTF-8 goes as is.
        assert!(String::from_utf8_lossy(&out).contains("é中😀"));
    }

    #[test]
    fn nesting_deeper_than_the_comma_bits_still_parses() {
        let mut w = JsonWriter::default();
        for _ in 0..100 {
            w.begin_array();
            w.int(1);
        }
        for _ in 0..100 {
            w.end_array();
        }
        assert!(serde_json::from_slice::<Value>(&w.into_bytes()).is_ok());
    }

    #[test]
    fn the_first_of_two_equal_metadata_keys_wins_even_when_escaped() {
        let mut e = EntryWriter::new(Level::Info, "m", Timestamp::Seconds(0.0), Limits::NONE);
        for (key, value) in [("a\"b", 1), ("a\"b", 2), ("n", 3), ("n", 4)] {
            if let Some(w) = e.metadata_field(key) {
                w.int(value);
            }
        }
        let v = parse(&e.finish());
        assert_eq!(v["metadata"], serde_json::json!({"a\"b": 1, "n": 3}));
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
