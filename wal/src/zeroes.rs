//! Finding written bytes among a segment's preallocated zeroes.
//!
//! Recovery reads a segment past its last record, up to the bound its frontier slots give
//! (`format.rs`, "Frontier slots": at most two frontier steps past where the writer got),
//! or to its end when neither slot is valid: whatever follows the last record there must
//! be zeroes, or it is a torn write or damage (`recovery.rs`). That is mostly the kernel
//! copying zeroes out of the page cache. A long stretch (a segment read to its end, or an
//! unfinished or spare segment checked whole) is therefore split into parts read and
//! checked by one thread each, every part whole: the answer is the same as one thread's,
//! only sooner.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::LogFile;
use crate::reader::SegmentBytes;

/// Bytes read and checked at a time.
const CHUNK_BYTES: usize = 1 << 20;
/// Stretches shorter than this are checked by one thread: starting another costs more
/// than it saves.
const PARALLEL_BYTES_MIN: u64 = 8 << 20;
/// The most threads one stretch is split over.
const THREADS_MAX: usize = 8;

/// The offset of the first non-zero byte in `[from, to)` of the file `bytes` reads and the
/// end of the last one, or `None` if all are zero (bytes past the end of the file count as
/// zero).
pub(crate) fn nonzero_span(
    bytes: &mut SegmentBytes,
    from: u64,
    to: u64,
    path: &Path,
) -> Result<Option<(u64, u64)>> {
    if to.saturating_sub(from) < PARALLEL_BYTES_MIN {
        return nonzero_span_in(bytes, from, to, path);
    }
    let threads = cores();
    if threads < 2 {
        return nonzero_span_in(bytes, from, to, path);
    }
    nonzero_span_split(bytes.file(), from, to, threads.min(THREADS_MAX), path)
}

/// The process's cores, asked once: the answer takes reading several files of the cgroup
/// file system.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// [`nonzero_span`] by `threads` threads, each reading its own part of `[from, to)`.
fn nonzero_span_split(
    file: &dyn LogFile,
    from: u64,
    to: u64,
    threads: usize,
    path: &Path,
) -> Result<Option<(u64, u64)>> {
    debug_assert!(threads > 1 && from < to);
    let part = (to - from).div_ceil(threads as u64).next_multiple_of(CHUNK_BYTES as u64);
    let bounds = |index: u64| {
        let start = from.saturating_add(index.saturating_mul(part)).min(to);
        (start, start.saturating_add(part).min(to))
    };
    let spans: Vec<Result<Option<(u64, u64)>>> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads as u64)
            .map(|index| {
                let (start, end) = bounds(index);
                scope.spawn(move || nonzero_span_of(file, start, end, path))
            })
            .collect();
        let (start, end) = bounds(0);
        let mut spans = vec![nonzero_span_of(file, start, end, path)];
        for other in others {
            spans.push(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        spans
    });
    // In order: the first error, else from the first part's span to the last one's.
    let mut span: Option<(u64, u64)> = None;
    for found in spans {
        if let Some((first, end)) = found? {
            span = Some((span.map_or(first, |(start, _)| start), end));
        }
    }
    Ok(span)
}

/// [`nonzero_span`] of `file`, read [`CHUNK_BYTES`] at a time into a buffer of its own.
fn nonzero_span_of(
    file: &dyn LogFile,
    from: u64,
    to: u64,
    path: &Path,
) -> Result<Option<(u64, u64)>> {
    let mut buffer = vec![
        0u8;
        usize::try_from(to.saturating_sub(from))
            .map_or(CHUNK_BYTES, |len| len.min(CHUNK_BYTES))
    ];
    let mut span: Option<(u64, u64)> = None;
    let mut at = from;
    while at < to {
        let len = usize::try_from(to - at).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read =
            file.read_at(&mut buffer[..len], at).map_err(|e| Error::io("read segment", path, e))?;
        if read == 0 {
            break;
        }
        span = widened(span, &buffer[..read], at);
        at += read as u64;
    }
    Ok(span)
}

/// [`nonzero_span`] through the window of `bytes`.
fn nonzero_span_in(
    bytes: &mut SegmentBytes,
    from: u64,
    to: u64,
    path: &Path,
) -> Result<Option<(u64, u64)>> {
    let mut span: Option<(u64, u64)> = None;
    let mut at = from;
    while at < to {
        let len = usize::try_from((to - at).min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
        let chunk = bytes.at(at, len, path)?;
        if chunk.is_empty() {
            break;
        }
        span = widened(span, chunk, at);
        at += chunk.len() as u64;
    }
    Ok(span)
}

/// `span` widened by the non-zero bytes of `chunk`, which starts at offset `at`, after it.
fn widened(span: Option<(u64, u64)>, chunk: &[u8], at: u64) -> Option<(u64, u64)> {
    if all_zero(chunk) {
        return span;
    }
    let Some(last) = chunk.iter().rposition(|&b| b != 0) else { return span };
    let first = chunk.iter().position(|&b| b != 0).map_or(last, |first| first);
    let start = span.map_or(at + first as u64, |(start, _)| start);
    Some((start, at + last as u64 + 1))
}

/// Whether every byte of `bytes` is zero. Most of what recovery reads is the zeroes
/// preallocated after the newest segment's records: an OR over all of it, with no early
/// exit, compiles to wide vector instructions, several times faster than looking for the
/// first non-zero byte one byte at a time.
fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &byte| acc | byte) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sync::SyncIo;
    use crate::io::{Io, OpenFlags};

    #[test]
    fn a_stretch_split_over_threads_finds_the_span_one_thread_finds() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("segment");
        let io = SyncIo::new();
        let size = 20 << 20;
        // Written bytes at the ends, inside a part, across the boundary of two parts (of
        // two, three and eight threads) and of two chunks; and none.
        let marks: [&[u64]; 7] = [
            &[],
            &[0],
            &[size - 1],
            &[(10 << 20) - 1, 10 << 20],
            &[3 << 20, 7 << 20, (7 << 20) + 5],
            &[(1 << 20) - 1, 1 << 20, (15 << 20) + 3],
            &[12345, size - 2],
        ];
        for (case, marks) in marks.iter().enumerate() {
            let mut contents = vec![0u8; size as usize];
            for &mark in *marks {
                contents[mark as usize] = 0x5A;
            }
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, &contents).unwrap_or_else(|e| panic!("{e}"));
            let file =
                io.open(&path, false, OpenFlags::default()).unwrap_or_else(|e| panic!("{e}"));
            let mut bytes = SegmentBytes::open(&io, &path).unwrap_or_else(|e| panic!("{e}"));
            for (from, to) in [(0, size), (1, size - 1), (4096, size + 4096), (size / 2, size)] {
                let expected = marks.iter().filter(|&&mark| (from..to).contains(&mark)).fold(
                    None,
                    |span: Option<(u64, u64)>, &mark| {
                        Some((span.map_or(mark, |(first, _)| first), mark + 1))
                    },
                );
                let alone =
                    nonzero_span_in(&mut bytes, from, to, &path).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(alone, expected, "case {case}, {from}..{to}, one thread");
                for threads in [2, 3, 8] {
                    let split = nonzero_span_split(file.as_ref(), from, to, threads, &path)
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(split, expected, "case {case}, {from}..{to}, {threads} threads");
                }
            }
        }
    }
}
