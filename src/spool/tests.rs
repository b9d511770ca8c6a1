use super::*;
use crate::protocol::logwell::Level;

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("lw-spool-{name}-{}", new_owner_id()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn entries(range: std::ops::Range<u64>, size: usize) -> Vec<Entry> {
    range
        .map(|i| {
            let mut json = format!("{{\"i\":{i},\"pad\":\"").into_bytes();
            json.resize(size.saturating_sub(2).max(json.len()), b'x');
            json.extend_from_slice(b"\"}");
            Entry {
                seq: i,
                level: Level::Info,
                json: json.into(),
            }
        })
        .collect()
}

fn index(e: &Entry) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap_or_default();
    v["i"].as_u64().unwrap_or(u64::MAX)
}

/// Reads everything `spool` sends, acknowledging each batch.
fn drain(spool: &mut Spool) -> Vec<u64> {
    let mut seen = Vec::new();
    while let Ok(Some(batch)) = spool.next_batch(100, 256 << 10) {
        seen.extend(batch.entries.iter().map(index));
        spool.acknowledge(batch.end).expect("acknowledge");
    }
    seen
}

fn segments(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |items| {
        items
            .flatten()
            .filter(|i| i.file_name().to_string_lossy().ends_with(".lws"))
            .count()
    })
}

fn gone(result: Result<(), WriteError>) -> (usize, &'static str) {
    match result {
        Err(WriteError {
            written,
            error: SpoolError::Gone(how),
        }) => (written, how),
        other => panic!("expected the directory to be gone, got {other:?}"),
    }
}

#[test]
fn a_directory_removed_or_replaced_under_the_spool_fails_the_write_that_follows() {
    let tmp = TempDir::new("gone");
    let mut spool = Spool::open(&tmp.0, "dest", 1 << 20).expect("open");
    spool.write(&entries(0..10, 100)).expect("write");
    fs::remove_dir_all(&tmp.0).expect("remove");
    // The open segment takes the write, but no reader would ever find it.
    assert_eq!(gone(spool.write(&entries(10..20, 100))), (0, "was removed"));
    assert_eq!(spool.abandon(), 1);

    let mut spool = Spool::open(&tmp.0, "dest", 1 << 20).expect("made again");
    spool.write(&entries(20..30, 100)).expect("write");
    let aside = tmp.0.with_extension("old");
    fs::rename(&tmp.0, &aside).expect("move aside");
    fs::create_dir(&tmp.0).expect("replace");
    assert_eq!(
        gone(
            spool
                .scan_if_due(Instant::now() + SCAN_EVERY)
                .map_err(|error| WriteError { written: 0, error })
        ),
        (0, "was replaced by another directory")
    );
    assert_eq!(
        gone(spool.write(&entries(30..40, 100))),
        (0, "was replaced by another directory")
    );
    let _ = fs::remove_dir_all(&aside);

    let mut spool = Spool::open(&tmp.0, "dest", 1 << 20).expect("open");
    spool.write(&entries(40..50, 100)).expect("write");
    for item in fs::read_dir(&tmp.0).expect("list").flatten() {
        fs::remove_file(item.path()).expect("remove a file");
    }
    assert_eq!(
        gone(spool.write(&entries(50..60, 100))),
        (0, "had its files removed")
    );
}

#[test]
fn entries_come_back_in_order_across_segments_and_leave_no_file() {
    let dir = TempDir::new("order");
    let mut spool = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    for chunk in 0..10 {
        spool
            .write(&entries(chunk * 100..(chunk + 1) * 100, 200))
            .expect("write");
        assert_eq!(spool.take_dropped(), 0);
    }
    assert!(segments(&dir.0) > 1, "200 KB in 128 KiB segments");
    assert!(spool.has_backlog());
    assert_eq!(drain(&mut spool), (0..1000).collect::<Vec<_>>());
    assert!(!spool.has_backlog());
    assert_eq!(segments(&dir.0), 0);
    assert_eq!(spool.bytes(), 0);
    spool.close().expect("close");
    assert_eq!(fs::read_dir(&dir.0).map(Iterator::count).ok(), Some(0));
}

#[test]
fn one_big_write_is_cut_into_segments_of_the_segment_size() {
    // Dropping the oldest for room drops a segment: an eighth of the bound at most, even
    // when one write (a backlog, what is left at close) holds far more.
    let dir = TempDir::new("cut");
    let mut spool = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    spool.write(&entries(0..1000, 500)).expect("write");
    let sizes: Vec<u64> = fs::read_dir(&dir.0)
        .expect("list")
        .flatten()
        .filter(|i| i.file_name().to_string_lossy().ends_with(".lws"))
        .filter_map(|i| i.metadata().ok().map(|m| m.len()))
        .collect();
    assert!(sizes.len() >= 4, "{sizes:?}");
    assert!(sizes.iter().all(|&size| size <= 128 << 10), "{sizes:?}");
    assert_eq!(drain(&mut spool), (0..1000).collect::<Vec<_>>());
}

#[test]
fn past_the_bound_the_oldest_go_and_are_counted() {
    let dir = TempDir::new("bound");
    let mut spool = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    let mut dropped = 0;
    for chunk in 0..40 {
        spool
            .write(&entries(chunk * 100..(chunk + 1) * 100, 500))
            .expect("room is made");
        dropped += spool.take_dropped();
    }
    assert!(spool.bytes() <= 1 << 20, "{}", spool.bytes());
    let left = drain(&mut spool);
    assert_eq!(left.len() as u64 + dropped, 4000);
    // What is left is the newest, in order, without a gap.
    let first = left[0];
    assert_eq!(left, (first..4000).collect::<Vec<_>>());
    // An entry bigger than the bound cannot be written at all, and nothing is
    // dropped for it.
    spool.write(&entries(0..300, 500)).expect("write");
    let before = spool.bytes();
    assert!(matches!(
        spool.write(&entries(0..1, 2 << 20)),
        Err(WriteError {
            written: 0,
            error: SpoolError::Full
        })
    ));
    assert_eq!((spool.take_dropped(), spool.bytes()), (0, before));
}

#[test]
fn another_destinations_files_neither_count_nor_block() {
    let dir = TempDir::new("destinations");
    let mut stale = Spool::open(&dir.0, "old", 1 << 20).expect("open");
    stale.write(&entries(0..3000, 300)).expect("write");
    drop(stale);
    let mut spool = Spool::open(&dir.0, "new", 1 << 20).expect("open");
    assert_eq!(spool.bytes(), 0);
    spool
        .write(&entries(0..2000, 300))
        .expect("within its own bound");
    assert_eq!(spool.take_dropped(), 0);
    assert_eq!(drain(&mut spool), (0..2000).collect::<Vec<_>>());
}

#[test]
fn a_gone_owners_files_are_adopted_by_one_process_and_resume_after_the_acknowledged() {
    let dir = TempDir::new("adopt");
    let mut first = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    first.write(&entries(0..300, 100)).expect("write");
    let mut reader = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    assert!(!reader.has_backlog(), "a living owner's files are its own");
    // The first takes 100 entries, then dies (its lock goes with it).
    let batch = first
        .next_batch(100, 1 << 20)
        .ok()
        .flatten()
        .expect("batch");
    first.acknowledge(batch.end).expect("acknowledge");
    drop(first);
    let other_destination = Spool::open(&dir.0, "e", 1 << 20).expect("open");
    assert!(
        !other_destination.has_backlog(),
        "entries go where they were meant to"
    );
    reader.scan().expect("scan");
    let mut late = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    assert!(!late.has_backlog(), "adopted by the reader, not by both");
    assert_eq!(drain(&mut reader), (100..300).collect::<Vec<_>>());
    assert_eq!(segments(&dir.0), 0);
    assert!(drain(&mut late).is_empty());
    drop((reader, late, other_destination));
}

#[test]
fn a_torn_tail_and_a_flipped_byte_cost_their_entries_only() {
    let dir = TempDir::new("damage");
    let mut writer = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    writer.write(&entries(0..10, 100)).expect("write");
    writer.close().expect("close");
    drop(writer);
    let path = fs::read_dir(&dir.0)
        .expect("dir")
        .flatten()
        .map(|i| i.path())
        .find(|p| p.extension().is_some_and(|e| e == "lws"))
        .expect("a segment");
    let mut data = fs::read(&path).expect("read");
    data[frame::HEADER_BYTES + frame::size(100) * 3 + 40] ^= 1;
    data.truncate(data.len() - 30);
    fs::write(&path, &data).expect("write");
    let mut reader = Spool::open(&dir.0, "d", 1 << 20).expect("open");
    assert_eq!(drain(&mut reader), vec![0, 1, 2, 4, 5, 6, 7, 8]);
    assert_eq!(reader.take_damaged(), 2);
}
