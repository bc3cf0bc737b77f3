//! A piece of a dirty bitmap, as exchanged on connect so that both nodes
//! know every block either side changed.
//!
//! In memory a chunk is a run of 64-bit bitmap words (bit `i` of word `w`
//! stands for block `(word_offset + w) × 64 + i`, as in
//! [`crate::bitmap::DirtyBitmap`]). On the wire the encoder sends the words
//! raw, or run-length coded when that is shorter: LEB128 varints giving the
//! lengths of alternating runs of clean and dirty bits, starting with clean.
//! A mostly clean bitmap of a large device thus costs a few bytes.

use std::ops::Range;

use thiserror::Error;

use super::MAX_BITMAP_WORDS;
use super::WireError;
use super::message::MessageType;

/// Header flag of a BitmapChunk frame: the last chunk of this bitmap.
pub(crate) const FLAG_LAST: u16 = 0x0001;
/// Header flag of a BitmapChunk frame: the body is run-length coded.
pub(crate) const FLAG_RLE: u16 = 0x0002;

/// Bytes before the body: word offset and word count.
pub(crate) const FIXED_LEN: usize = 8 + 4;

/// Longest LEB128 encoding of a u64.
const MAX_VARINT_LEN: usize = 10;

/// Part of a dirty bitmap: 1 to [`MAX_BITMAP_WORDS`] words starting at word
/// `word_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitmapChunk {
    word_offset: u64,
    words: Vec<u64>,
    last: bool,
}

/// Words that cannot form one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BitmapChunkError {
    #[error("a bitmap chunk needs at least one word")]
    Empty,
    #[error("{0} bitmap words do not fit one chunk (at most {MAX_BITMAP_WORDS}; send several)")]
    TooLong(usize),
    #[error("bitmap words {word_offset}.. (+{count}) reach past the last block number 2^64-1")]
    PastEnd { word_offset: u64, count: usize },
}

impl BitmapChunk {
    /// The chunk of `words` starting at word `word_offset`; `last` marks the
    /// final chunk of a bitmap.
    pub fn new(word_offset: u64, words: Vec<u64>, last: bool) -> Result<Self, BitmapChunkError> {
        if words.is_empty() {
            return Err(BitmapChunkError::Empty);
        }
        if words.len() > MAX_BITMAP_WORDS {
            return Err(BitmapChunkError::TooLong(words.len()));
        }
        if end_word(word_offset, words.len()).is_none() {
            return Err(BitmapChunkError::PastEnd {
                word_offset,
                count: words.len(),
            });
        }
        Ok(Self {
            word_offset,
            words,
            last,
        })
    }

    pub fn word_offset(&self) -> u64 {
        self.word_offset
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub fn into_words(self) -> Vec<u64> {
        self.words
    }

    /// True for the final chunk of a bitmap.
    pub fn is_last(&self) -> bool {
        self.last
    }

    /// The blocks this chunk covers.
    pub fn blocks(&self) -> Range<u64> {
        let end = end_word(self.word_offset, self.words.len()).unwrap_or(u64::MAX / 64);
        self.word_offset * 64..end * 64
    }

    /// Appends the payload and returns the header flags.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> u16 {
        out.extend_from_slice(&self.word_offset.to_be_bytes());
        out.extend_from_slice(&(self.words.len() as u32).to_be_bytes());
        let runs = run_lengths(&self.words);
        let last = if self.last { FLAG_LAST } else { 0 };
        if runs.len() < self.words.len() * 8 {
            out.extend_from_slice(&runs);
            last | FLAG_RLE
        } else {
            for word in &self.words {
                out.extend_from_slice(&word.to_be_bytes());
            }
            last
        }
    }

    /// Decodes a payload sent with header `flags`.
    pub(crate) fn decode(flags: u16, payload: &[u8]) -> Result<Self, WireError> {
        let malformed = |detail: String| WireError::malformed(MessageType::BitmapChunk, detail);
        let (fixed, body) = payload.split_at_checked(FIXED_LEN).ok_or_else(|| {
            malformed(format!("{} bytes, shorter than {FIXED_LEN}", payload.len()))
        })?;
        let word_offset = u64::from_be_bytes(fixed[..8].try_into().expect("8 bytes"));
        let count = u32::from_be_bytes(fixed[8..].try_into().expect("4 bytes")) as usize;
        if count == 0 || count > MAX_BITMAP_WORDS {
            return Err(malformed(format!(
                "word count {count}, must be 1 to {MAX_BITMAP_WORDS}"
            )));
        }
        if end_word(word_offset, count).is_none() {
            return Err(malformed(format!(
                "words {word_offset}.. (+{count}) reach past block 2^64-1"
            )));
        }
        let words = if flags & FLAG_RLE != 0 {
            expand_runs(body, count).map_err(malformed)?
        } else {
            if body.len() != count * 8 {
                return Err(malformed(format!(
                    "{count} raw words need {} bytes, the payload has {}",
                    count * 8,
                    body.len()
                )));
            }
            body.chunks_exact(8)
                .map(|word| u64::from_be_bytes(word.try_into().expect("8 bytes")))
                .collect()
        };
        Ok(Self {
            word_offset,
            words,
            last: flags & FLAG_LAST != 0,
        })
    }
}

/// The word after the chunk, if every block number in it fits a u64.
fn end_word(word_offset: u64, count: usize) -> Option<u64> {
    word_offset
        .checked_add(count as u64)
        .filter(|&end| end <= u64::MAX / 64)
}

/// The run-length body: varint lengths of alternating clean and dirty runs,
/// starting with clean (which alone may be zero).
fn run_lengths(words: &[u64]) -> Vec<u8> {
    let total = words.len() as u64 * 64;
    let mut out = Vec::new();
    let mut position = 0;
    let mut dirty = false;
    loop {
        let end = find_bit(words, position, !dirty).unwrap_or(total);
        put_varint(&mut out, end - position);
        if end == total {
            return out;
        }
        position = end;
        dirty = !dirty;
    }
}

/// The first bit at or after `from` that is set (`set`) or clear (`!set`).
fn find_bit(words: &[u64], from: u64, set: bool) -> Option<u64> {
    let mut index = (from / 64) as usize;
    let mut mask = !0u64 << (from % 64);
    while let Some(&word) = words.get(index) {
        let candidates = if set { word } else { !word } & mask;
        if candidates != 0 {
            return Some(index as u64 * 64 + u64::from(candidates.trailing_zeros()));
        }
        index += 1;
        mask = !0;
    }
    None
}

/// Rebuilds `count` words from a run-length body.
fn expand_runs(mut body: &[u8], count: usize) -> Result<Vec<u64>, String> {
    let total = count as u64 * 64;
    let mut words = vec![0u64; count];
    let mut position = 0u64;
    let mut dirty = false;
    let mut first = true;
    while !body.is_empty() {
        let run = take_varint(&mut body)?;
        if run == 0 && !first {
            return Err(format!(
                "a run of length 0 at bit {position} (only the first run may be empty)"
            ));
        }
        let end = position
            .checked_add(run)
            .filter(|&end| end <= total)
            .ok_or_else(|| {
                format!("a run of {run} bits at bit {position} passes the {total} bits announced")
            })?;
        if dirty {
            set_bits(&mut words, position, end);
        }
        position = end;
        dirty = !dirty;
        first = false;
    }
    if position != total {
        return Err(format!(
            "the runs cover {position} bits, the word count announces {total}"
        ));
    }
    Ok(words)
}

/// Sets bits `start..end`.
fn set_bits(words: &mut [u64], start: u64, end: u64) {
    let mut bit = start;
    while bit < end {
        let offset = bit % 64;
        let count = (end - bit).min(64 - offset);
        let mask = if count == 64 {
            u64::MAX
        } else {
            ((1u64 << count) - 1) << offset
        };
        words[(bit / 64) as usize] |= mask;
        bit += count;
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Takes one LEB128 varint off the front of `bytes`. Refuses values past
/// u64 and redundant trailing zero groups, so that each value has exactly
/// one encoding.
fn take_varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for (index, &byte) in bytes.iter().enumerate().take(MAX_VARINT_LEN) {
        let group = u64::from(byte & 0x7f);
        let shift = 7 * index as u32;
        if index == MAX_VARINT_LEN - 1 && group > 1 {
            return Err("a run length exceeds 2^64-1".to_owned());
        }
        value |= group << shift;
        if byte & 0x80 == 0 {
            if byte == 0 && index > 0 {
                return Err("a run length has a redundant zero byte".to_owned());
            }
            *bytes = &bytes[index + 1..];
            return Ok(value);
        }
    }
    Err(if bytes.len() < MAX_VARINT_LEN {
        "the payload ends inside a run length".to_owned()
    } else {
        "a run length is longer than 10 bytes".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        out
    }

    #[test]
    fn varints_round_trip_and_are_canonical() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let bytes = varint(value);
            let mut rest = &bytes[..];
            assert_eq!(take_varint(&mut rest), Ok(value));
            assert!(rest.is_empty());
        }
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(u64::MAX).len(), MAX_VARINT_LEN);
        for bad in [
            &[0x80, 0x00][..],
            &[0xff; 9][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..],
            &[0x80; 11][..],
        ] {
            let mut rest = bad;
            assert!(take_varint(&mut rest).is_err(), "{bad:02x?} was accepted");
        }
    }

    #[test]
    fn runs_start_clean_and_alternate() {
        // Bits 0..3 dirty, 3..64 clean, then a fully dirty word.
        let words = [0b111, u64::MAX];
        let mut expected = varint(0);
        expected.extend(varint(3));
        expected.extend(varint(61));
        expected.extend(varint(64));
        assert_eq!(run_lengths(&words), expected);
        assert_eq!(expand_runs(&expected, 2), Ok(words.to_vec()));
    }

    #[test]
    fn bad_run_bodies_are_refused() {
        let mut zero_run = varint(10);
        zero_run.extend(varint(0));
        zero_run.extend(varint(54));
        assert!(expand_runs(&zero_run, 1).unwrap_err().contains("length 0"));
        assert!(expand_runs(&varint(65), 1).unwrap_err().contains("passes"));
        assert!(
            expand_runs(&varint(63), 1)
                .unwrap_err()
                .contains("cover 63")
        );
        assert!(expand_runs(&[], 1).unwrap_err().contains("cover 0"));
    }

    #[test]
    fn constructor_checks_size_and_end() {
        assert_eq!(
            BitmapChunk::new(0, Vec::new(), true),
            Err(BitmapChunkError::Empty)
        );
        assert_eq!(
            BitmapChunk::new(0, vec![0; MAX_BITMAP_WORDS + 1], true),
            Err(BitmapChunkError::TooLong(MAX_BITMAP_WORDS + 1))
        );
        assert!(matches!(
            BitmapChunk::new(u64::MAX / 64, vec![0], true),
            Err(BitmapChunkError::PastEnd { .. })
        ));
        let chunk = BitmapChunk::new(u64::MAX / 64 - 1, vec![1], false).unwrap();
        assert_eq!(chunk.blocks().end, (u64::MAX / 64) * 64);
    }
}
