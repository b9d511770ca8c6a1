//! A str as a JSON string, at a few instructions per 16 bytes: messages run to 64 KiB,
//! and escaping them one byte at a time cost more than everything else in a record.
//!
//! Bytes that need an escape (a control character, `"` or `\`) are found 16 at a time
//! with SSE2 (part of every x86-64 CPU), else 8 at a time in a `u64`. A block without
//! one is copied whole; in a block with some, the runs between them are.

/// For each byte: 0 when it stands for itself in a JSON string, else the letter of its
/// short escape (`\\n`), `u` for `\\u00XX`, or `0` for NUL.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 1;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0] = b'0';
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
/// else (UTF-8 included) copied as is, but for NUL, which becomes U+FFFD: Logwell stores
/// entries in `PostgreSQL`, which refuses NUL in text and jsonb and so fails the whole
/// batch (500) for one NUL anywhere in it.
pub(crate) fn push_json_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Room for some escapes and for the fields after a long message: growing the
    // buffer later would copy the message again.
    out.reserve(bytes.len() + bytes.len() / 8 + 256);
    out.push(b'"');
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = bytes
        .get(i..i + 16)
        .and_then(|b| <&[u8; 16]>::try_from(b).ok())
    {
        i += 16;
        let mut escapes = sse2::escape_mask(block);
        if escapes == 0 {
            out.extend_from_slice(block);
            continue;
        }
        let mut from = 0;
        while escapes != 0 {
            let at = escapes.trailing_zeros() as usize;
            out.extend_from_slice(&block[from..at]);
            push_escape(out, block[at]);
            from = at + 1;
            escapes &= escapes - 1;
        }
        out.extend_from_slice(&block[from..]);
    }
    // The SWAR mask is exact only up to its first match: the scan starts again after it.
    while let Some(word) = bytes
        .get(i..i + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        let clean = (swar::escape_mask(word).trailing_zeros() / 8) as usize;
        if clean >= 8 {
            out.extend_from_slice(&word);
            i += 8;
        } else {
            out.extend_from_slice(&word[..clean]);
            push_escape(out, word[clean]);
            i += clean + 1;
        }
    }
    for &b in &bytes[i..] {
        if ESCAPE[usize::from(b)] == 0 {
            out.push(b);
        } else {
            push_escape(out, b);
        }
    }
    out.push(b'"');
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    const REPLACEMENT_CHARACTER: &[u8] = "\u{FFFD}".as_bytes();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[usize::from(b)] {
        b'0' => out.extend_from_slice(REPLACEMENT_CHARACTER),
        b'u' => {
            let (high, low) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
        }
        short => {
            // Pushed one by one: a call to copy two bytes costs more than the bytes.
            out.push(b'\\');
            out.push(short);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// One bit per byte of the 16 in `block` (lowest first), set where it needs an escape.
    pub(super) fn escape_mask(block: &[u8; 16]) -> u32 {
        // SAFETY: SSE2 is part of x86-64, so these instructions always exist; the load
        // reads the 16 bytes of `block` and has no alignment requirement.
        unsafe {
            let x = _mm_loadu_si128(block.as_ptr().cast());
            // A byte is below 0x20 when it is its own minimum with 0x1f.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
            let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x22)); // '"'
            let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x5c)); // '\\'
            let hits = _mm_or_si128(control, _mm_or_si128(quote, backslash));
            _mm_movemask_epi8(hits) as u32
        }
    }
}

mod swar {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;

    /// The top bit of each byte of the 8 in `word` that needs an escape, for the first
    /// such byte (lowest first); bits above it may be set wrongly, by the borrow out of
    /// a matching byte.
    pub(super) fn escape_mask(word: [u8; 8]) -> u64 {
        let w = u64::from_le_bytes(word);
        // A byte is zero when its top bit is set in `(v - 1) & !v`; below 0x20 when it
        // is set in `(w - 0x20) & !w`. Bytes with their top bit set (UTF-8 beyond ASCII)
        // never match.
        let control = w.wrapping_sub(ONES * 0x20);
        let quote = (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
        let backslash = (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
        (control | quote | backslash) & !w & TOPS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `push_json_string` must write: `serde_json`'s escaping, NUL replaced.
    fn expected(s: &str) -> Vec<u8> {
        serde_json::to_vec(&s.replace('\0', "\u{FFFD}")).unwrap_or_default()
    }

    fn pushed(s: &str) -> Vec<u8> {
        let mut out = b"prefix".to_vec();
        push_json_string(&mut out, s);
        out.split_off(6)
    }

    #[test]
    fn escapes_each_special_character_at_every_offset() {
        // At every offset of a 40-byte run (two SSE2 blocks, a word, a tail), alone and
        // followed at once by another: characters that need an escape, and neighbours
        // and non-ASCII ones that must not get one.
        let specials = [
            "\0",
            "\u{1}",
            "\u{1f}",
            "\"",
            "\\",
            "\n",
            "\t",
            "\u{7f}",
            " ",
            "!",
            "#",
            "[",
            "]",
            "é",
            "日",
            "\u{1F600}",
        ];
        for special in specials {
            for follower in ["", "\"", "\n", "a"] {
                for at in 0..40 {
                    let s = format!(
                        "{}{special}{follower}{}",
                        "a".repeat(at),
                        "b".repeat(40 - at)
                    );
                    assert_eq!(pushed(&s), expected(&s), "{special:?}{follower:?} at {at}");
                }
            }
        }
    }

    #[test]
    fn the_swar_mask_marks_the_first_match_exactly() {
        // The borrow out of a matching byte may mark bytes above it: only the first counts.
        let bytes = [b'a', 0, 1, b'"', b'a', b'a', b'a', b'a'];
        assert_eq!(swar::escape_mask(bytes).trailing_zeros() / 8, 1);
        assert_eq!(swar::escape_mask(*b"abc\\\"def").trailing_zeros() / 8, 3);
        assert_eq!(swar::escape_mask(*b"abcdefgh"), 0);
    }

    #[test]
    fn text_of_any_length_round_trips() {
        let text =
            "plain, \"quoted\", back\\slash, tab\t, nl\n, bell\u{7}, é, 日本, \u{1F600}, end";
        for n in [0, 1, 2, 50] {
            let s = text.repeat(n);
            assert_eq!(pushed(&s), expected(&s));
            let back: String = serde_json::from_slice(&pushed(&s)).unwrap_or_default();
            assert_eq!(back, s);
        }
    }
}
