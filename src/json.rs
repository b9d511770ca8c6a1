//! A streaming JSON writer for entries built field by field, and the writer of values
//! as plain JSON or as OTLP `AnyValue`s.

use crate::json_string::push_json_string;

/// `s` cut to at most `max` bytes at a character boundary, and the byte length it had.
pub(crate) fn cut(s: &str, max: usize) -> Option<(&str, usize)> {
    if s.len() <= max {
        return None;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some((&s[..end], s.len()))
}

/// The last `width` decimal digits of `n`, zero-padded.
pub(crate) fn push_digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `n` in decimal.
pub(crate) fn push_int(out: &mut Vec<u8>, n: i64) {
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

/// Containers open at once beyond this share the innermost one's comma flag. Values
/// nest at most `MAX_DEPTH` (8) deep inside an entry, so this is never reached.
const MAX_OPEN: u32 = 64;

/// A streaming JSON writer that places commas itself. Strings are cut at
/// `max_string_bytes` with a visible marker.
pub struct JsonWriter {
    pub(crate) out: Vec<u8>,
    /// One bit per open container, innermost lowest: does its next value need a comma?
    /// Bits rather than a Vec: one allocation fewer per entry.
    needs_comma: u64,
    open: u32,
    /// Set after `key`: the next value follows a colon, not a comma.
    pub(crate) after_key: bool,
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

    /// A writer that appends to `out`, whose capacity it reuses.
    pub fn from_vec(out: Vec<u8>) -> JsonWriter {
        JsonWriter {
            out,
            ..JsonWriter::default()
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

    pub(crate) fn separate(&mut self) {
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

    pub(crate) fn string_unseparated(&mut self, s: &str) {
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

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// How values are written: as themselves, or wrapped as OTLP `AnyValue`s
/// (`{"stringValue": ...}`, `{"kvlistValue": {"values": [{"key", "value"}]}}`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueStyle {
    Plain,
    AnyValue,
}

/// Writes one value (scalars, maps, lists, nested) in a `ValueStyle`.
pub struct ValueWriter<'a> {
    json: &'a mut JsonWriter,
    style: ValueStyle,
    /// One bit per open map, innermost lowest: is a `{"key", "value"}` pair open in it?
    pair_open: u64,
}

impl<'a> ValueWriter<'a> {
    pub fn new(json: &'a mut JsonWriter, style: ValueStyle) -> ValueWriter<'a> {
        ValueWriter {
            json,
            style,
            pair_open: 0,
        }
    }

    /// `{"<tag>": <what write puts>}` in the `AnyValue` style; what `write` puts otherwise.
    fn tagged(&mut self, tag: &str, write: impl FnOnce(&mut JsonWriter)) {
        if self.style == ValueStyle::Plain {
            return write(self.json);
        }
        self.json.begin_object();
        self.json.key(tag);
        write(self.json);
        self.json.end_object();
    }

    pub fn string(&mut self, s: &str) {
        self.tagged("stringValue", |j| j.string(s));
    }

    /// An int64; OTLP's JSON mapping gives 64-bit integers as decimal strings.
    pub fn int(&mut self, n: i64) {
        match self.style {
            ValueStyle::Plain => self.json.int(n),
            ValueStyle::AnyValue => {
                self.json.begin_object();
                self.json.key("intValue");
                self.json.separate();
                self.json.out.push(b'"');
                push_int(&mut self.json.out, n);
                self.json.out.push(b'"');
                self.json.end_object();
            }
        }
    }

    /// An integer beyond 64 bits, given as decimal digits: a JSON number when plain, a
    /// string in OTLP (whose integers are 64-bit).
    pub fn big_int(&mut self, digits: &str) {
        match self.style {
            ValueStyle::Plain => self.json.big_int(digits),
            ValueStyle::AnyValue => self.string(digits),
        }
    }

    /// Non-finite floats as "nan"/"inf"/"-inf" when plain; as protobuf's JSON mapping
    /// spells them ("NaN", "Infinity", "-Infinity") in OTLP.
    pub fn float(&mut self, f: f64) {
        match self.style {
            ValueStyle::Plain => self.json.float(f),
            ValueStyle::AnyValue => self.tagged("doubleValue", |j| {
                if f.is_finite() {
                    j.float(f);
                } else if f.is_nan() {
                    j.string("NaN");
                } else if f > 0.0 {
                    j.string("Infinity");
                } else {
                    j.string("-Infinity");
                }
            }),
        }
    }

    pub fn bool(&mut self, b: bool) {
        self.tagged("boolValue", |j| j.bool(b));
    }

    /// `null`; in OTLP an empty `AnyValue`.
    pub fn null(&mut self) {
        match self.style {
            ValueStyle::Plain => self.json.null(),
            ValueStyle::AnyValue => {
                self.json.begin_object();
                self.json.end_object();
            }
        }
    }

    /// An already-encoded value of this writer's style.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.json.raw(encoded);
    }

    pub fn begin_map(&mut self) {
        match self.style {
            ValueStyle::Plain => self.json.begin_object(),
            ValueStyle::AnyValue => {
                self.json.begin_object();
                self.json.key("kvlistValue");
                self.json.begin_object();
                self.json.key("values");
                self.json.begin_array();
                self.pair_open <<= 1;
            }
        }
    }

    /// The key of the map's next entry; its value is written next.
    pub fn map_key(&mut self, key: &str) {
        match self.style {
            ValueStyle::Plain => self.json.key(key),
            ValueStyle::AnyValue => {
                if self.pair_open & 1 == 1 {
                    self.json.end_object();
                }
                self.pair_open |= 1;
                self.json.begin_object();
                self.json.key("key");
                self.json.string(key);
                self.json.key("value");
            }
        }
    }

    pub fn end_map(&mut self) {
        match self.style {
            ValueStyle::Plain => self.json.end_object(),
            ValueStyle::AnyValue => {
                if self.pair_open & 1 == 1 {
                    self.json.end_object();
                }
                self.pair_open >>= 1;
                self.json.end_array();
                self.json.end_object();
                self.json.end_object();
            }
        }
    }

    pub fn begin_list(&mut self) {
        match self.style {
            ValueStyle::Plain => self.json.begin_array(),
            ValueStyle::AnyValue => {
                self.json.begin_object();
                self.json.key("arrayValue");
                self.json.begin_object();
                self.json.key("values");
                self.json.begin_array();
            }
        }
    }

    pub fn end_list(&mut self) {
        self.json.end_array();
        if self.style == ValueStyle::AnyValue {
            self.json.end_object();
            self.json.end_object();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
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
            json!([123_456_789_012_345_678_901_234_567_890_f64, "12e3"])
        );
    }

    #[test]
    fn every_character_but_nul_survives_a_round_trip_through_json() {
        let mut text: String = (1u8..0x80).map(char::from).collect();
        text.push_str("é中😀\u{2028}\u{7f}\u{fffd}");
        let mut w = JsonWriter::default();
        w.string(&text);
        let out = w.into_bytes();
        assert_eq!(serde_json::from_slice::<String>(&out).ok(), Some(text));
        // Only what JSON requires is escaped: UTF-8 goes as is.
        assert!(String::from_utf8_lossy(&out).contains("é中😀"));
    }

    #[test]
    fn nul_becomes_the_replacement_character_in_values_and_keys() {
        let mut w = JsonWriter::default();
        w.begin_object();
        w.key("k\0ey");
        w.string("\0a\0\0b\0");
        w.end_object();
        let out = w.into_bytes();
        assert!(!out.windows(6).any(|s| s == br"\u0000"), "{out:?}");
        assert_eq!(
            parse(&out),
            json!({"k\u{fffd}ey": "\u{fffd}a\u{fffd}\u{fffd}b\u{fffd}"})
        );
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

    fn sample(w: &mut ValueWriter<'_>) {
        w.begin_map();
        w.map_key("s");
        w.string("x");
        w.map_key("n");
        w.int(-7);
        w.map_key("list");
        w.begin_list();
        w.float(1.5);
        w.float(f64::INFINITY);
        w.bool(true);
        w.null();
        w.big_int("123456789012345678901234567890");
        w.end_list();
        w.map_key("empty");
        w.begin_map();
        w.end_map();
        w.end_map();
    }

    #[test]
    fn values_in_both_styles() {
        let mut plain = JsonWriter::default();
        sample(&mut ValueWriter::new(&mut plain, ValueStyle::Plain));
        assert_eq!(
            parse(&plain.into_bytes()),
            json!({"s": "x", "n": -7, "list": [1.5, "inf", true, null,
                   123_456_789_012_345_678_901_234_567_890_f64], "empty": {}})
        );
        let mut otlp = JsonWriter::default();
        sample(&mut ValueWriter::new(&mut otlp, ValueStyle::AnyValue));
        assert_eq!(
            parse(&otlp.into_bytes()),
            json!({"kvlistValue": {"values": [
                {"key": "s", "value": {"stringValue": "x"}},
                {"key": "n", "value": {"intValue": "-7"}},
                {"key": "list", "value": {"arrayValue": {"values": [
                    {"doubleValue": 1.5}, {"doubleValue": "Infinity"}, {"boolValue": true}, {},
                    {"stringValue": "123456789012345678901234567890"}]}}},
                {"key": "empty", "value": {"kvlistValue": {"values": []}}}
            ]}})
        );
    }
}
