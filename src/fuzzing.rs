//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz builds with `--cfg fuzzing`):
//! each takes arbitrary bytes and panics when a promise breaks. `scripts/fuzz.sh` runs
//! them.
#![allow(
    clippy::missing_panics_doc,
    reason = "panicking is how a target reports"
)]

use crate::json::cut;
use crate::json_string::push_json_string;
use crate::spool::frame::{self, Frames, HEADER_BYTES};
use crate::worker::triage::{Answer, Step, Triage};

/// The spool's reader on any bytes: it never panics, and what it hands back lies within
/// the data, in order. Entries framed behind a header read back as written, whatever
/// damage is written after them.
pub fn spool_frames(data: &[u8]) {
    if let Some(resume) = frame::resume_at(data) {
        let mut last = 0;
        for f in Frames::new(data, resume.offset()) {
            assert!(last <= f.start && f.start < f.end && f.end <= data.len());
            assert_eq!(&data[f.end - f.entry.len()..f.end], f.entry);
            last = f.end;
        }
    }
    let entries: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let mut segment = frame::header().to_vec();
    for entry in &entries {
        frame::push(&mut segment, entry);
    }
    let sound = segment.len();
    segment.extend_from_slice(data);
    let read: Vec<&[u8]> = Frames::new(&segment, HEADER_BYTES)
        .take_while(|f| f.end <= sound)
        .map(|f| f.entry)
        .collect();
    assert_eq!(read, entries);
}

/// The JSON string writer against `serde_json`: any text goes out as a JSON string that
/// reads back as the same text, NUL replaced by U+FFFD; a cut keeps a character boundary.
pub fn json_string(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut out = Vec::new();
    push_json_string(&mut out, text);
    let back: String = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(back, text.replace('\0', "\u{FFFD}"));
    let max = data.first().map_or(0, |&b| usize::from(b));
    match cut(text, max) {
        Some((head, len)) => {
            assert!(head.len() <= max && text.starts_with(head) && len == text.len());
            assert!(text.len() - head.len() < 4 + text.len().saturating_sub(max));
        }
        None => assert!(text.len() <= max),
    }
}

/// A triage against a server answering as the bytes say, and a caller lending entries
/// or not: it ends, never sends a range outside the batch, and resolves every entry
/// when it says it is done.
pub fn triage(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let len = usize::from(bytes.next().unwrap_or(1));
    let mut triage = Triage::new(len);
    let mut total = len;
    let mut requests = 0;
    loop {
        requests += 1;
        assert!(requests < 20 * (total + 8), "no end in sight");
        match triage.next() {
            Step::Send(request) => {
                let range = request.range.clone();
                assert!(
                    range.start < range.end && range.end <= total,
                    "{range:?} of {total}"
                );
                let answer = match bytes.next().unwrap_or(0) % 3 {
                    0 => Answer::Taken,
                    1 if range.len() > 1 => Answer::Split,
                    _ => Answer::ServerFault,
                };
                triage.answer(&request, answer);
            }
            Step::WantMore => match bytes.next().unwrap_or(0) % 3 {
                0 if triage.taken() => return,
                1 if !triage.lent() => {
                    let more = usize::from(bytes.next().unwrap_or(0) % 8);
                    total += more;
                    triage.grow(more);
                }
                _ => triage.nothing_more(),
            },
            Step::Done => {
                assert!(triage.resolved().iter().all(|&r| r));
                return;
            }
            Step::Outage => return,
        }
    }
}

/// The flush thread in the simulator (`worker::sim`), the owner's acts and the server's
/// faults drawn from the bytes: every promise the simulator checks holds.
pub fn delivery(data: &[u8]) {
    crate::worker::sim::fuzz(data);
}
