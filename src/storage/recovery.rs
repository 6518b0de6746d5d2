//! Startup recovery: after an unclean shutdown, walk the segments from the recovery point, check framing, magic, offsets and CRC32C, cut the log at the first torn or corrupt batch and rebuild those indexes. It never touches segments below the recovery point.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::io::{FileIo, is_out_of_space};
use super::segment::Segment;
use crate::records::batch::{BatchHeader, LOG_OVERHEAD, MIN_BATCH_LENGTH};

/// What recovering one segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentRecovery {
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    pub batches: u64,
}

/// Validates every batch of `seg` and rebuilds its indexes; truncates at the first bad batch.
/// Two positional reads per batch (length, then the batch) into one reused buffer.
pub fn recover_segment(seg: &mut Segment) -> io::Result<SegmentRecovery> {
    seg.offset_index.clear()?;
    seg.time_index.clear()?;
    seg.bytes_since_last_index_entry = 0;
    seg.max_timestamp = -1;
    seg.offset_of_max_timestamp = seg.base_offset;
    seg.rolling_timestamp = None;
    seg.next_offset = seg.base_offset;
    let file_size = seg.log.len()?;
    let mut position = 0u64;
    let mut batches = 0u64;
    let mut buf = Vec::new();
    let mut indexed = true;
    loop {
        let mut prefix = [0u8; LOG_OVERHEAD];
        if position + LOG_OVERHEAD as u64 > file_size {
            break;
        }
        if seg.log.read_full_at(&mut prefix, position)? < LOG_OVERHEAD {
            break;
        }
        let length = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
        if length < MIN_BATCH_LENGTH {
            break;
        }
        let total = LOG_OVERHEAD + length as usize;
        if position + total as u64 > file_size {
            break;
        }
        buf.resize(total, 0);
        if seg.log.read_full_at(&mut buf, position)? < total {
            break;
        }
        let Some(h) = BatchHeader::parse(&buf) else {
            break;
        };
        let offsets_ok = h.base_offset() >= seg.next_offset
            && h.last_offset_delta() >= 0
            && h.last_offset() - seg.base_offset <= u32::MAX as i64;
        if h.magic() != 2 || !offsets_ok || h.computed_crc() != Some(h.crc()) {
            break;
        }
        let (last, max_ts) = (h.last_offset(), h.max_timestamp());
        if indexed {
            let noted = seg.note_appended(position, total as u64, last, max_ts, last);
            indexed = keep_indexing(seg, noted)?;
        }
        if !indexed {
            seg.note_unindexed(last, max_ts, last);
        }
        position += total as u64;
        batches += 1;
    }
    let truncated = file_size - position;
    if truncated > 0 {
        tracing::warn!(
            segment = %seg.log_path_buf().display(),
            valid_bytes = position,
            truncated_bytes = truncated,
            "truncating torn or corrupt tail of segment"
        );
    }
    // Also without a cut: the truncation gives back blocks a crash left preallocated past the end
    // (a sealed segment would keep them for good; the active one reserves again as it grows).
    seg.log.set_len(position)?;
    if truncated > 0 {
        seg.log.sync_data()?;
    }
    seg.size = position;
    seg.preallocated_end = position;
    // Validated is not durable: mark it so the caller's flush fsyncs it before moving the recovery point.
    seg.dirty = true;
    // Written, not fsynced: the segment is dirty, so the flush that moves the recovery point past
    // it fsyncs them; until then the next unclean start rebuilds them again (an fsync of two
    // index files per recovered partition was most of a start after kill -9 with many partitions).
    if indexed {
        let written = seg.offset_index.write_pending().and_then(|()| seg.time_index.write_pending());
        keep_indexing(seg, written)?;
    }
    Ok(SegmentRecovery {
        valid_bytes: position,
        truncated_bytes: truncated,
        batches,
    })
}

/// After an index write of recovery: whether to go on indexing. A full disk is no reason to fail:
/// the indexes are a speed-up, the batches are the data, so the segment goes on without entries
/// (lookups in it scan from its start) until recovery runs again with space. Other errors fail.
fn keep_indexing(seg: &mut Segment, written: io::Result<()>) -> io::Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if is_out_of_space(&e) => {
            tracing::warn!(segment = %seg.log_path_buf().display(), "disk full: recovering the segment without rebuilding its indexes");
            seg.offset_index.clear()?;
            seg.time_index.clear()?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Recovers every segment from the one containing `recovery_point` onwards. A cut in one segment means
/// everything after it is unreachable, so later segments are deleted. Returns total bytes removed.
pub fn recover_log(segments: &mut BTreeMap<i64, Segment>, recovery_point: i64) -> io::Result<u64> {
    let start = segments
        .range(..=recovery_point)
        .next_back()
        .map(|(b, _)| *b)
        .unwrap_or(i64::MIN);
    let bases: Vec<i64> = segments.range(start..).map(|(b, _)| *b).collect();
    let mut removed = 0;
    let mut cut_at: Option<i64> = None;
    for base in bases {
        if cut_at.is_some() {
            if let Some(seg) = segments.remove(&base) {
                removed += seg.size();
                tracing::warn!(base_offset = base, "deleting segment after a corrupt one");
                seg.delete()?;
            }
            continue;
        }
        let Some(seg) = segments.get_mut(&base) else {
            continue;
        };
        let r = recover_segment(seg)?;
        removed += r.truncated_bytes;
        if r.truncated_bytes > 0 {
            cut_at = Some(base);
        }
    }
    Ok(removed)
}

/// Removes leftovers of interrupted deletes, compactions and checkpoint writes, plus index files whose
/// log is gone; Kafka does the same at load.
pub fn clean_stray_files(io: &dyn FileIo, dir: &Path) -> io::Result<usize> {
    let entries = io.list_dir(dir)?;
    let logs: std::collections::HashSet<&str> = entries
        .iter()
        .filter_map(|e| e.name.strip_suffix(".log"))
        .collect();
    let mut removed = 0;
    for e in &entries {
        if e.is_dir {
            continue;
        }
        let stray = [".deleted", ".cleaned", ".swap", ".tmp"]
            .iter()
            .any(|s| e.name.ends_with(s));
        let orphan_index = [".index", ".timeindex", ".txnindex"].iter().any(|s| {
            e.name
                .strip_suffix(s)
                .is_some_and(|stem| !logs.contains(stem))
        });
        if stray || orphan_index {
            tracing::info!(file = %e.path.display(), "removing stray file");
            io.remove_file(&e.path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Finishes cleaner swaps a crash interrupted. A `<base>.log.swap` is a committed cleaned segment:
/// the live segments it replaces (those starting inside its offset range, the one at `base` among
/// them) are deleted, then its files are renamed into place. Index `.swap` files left without
/// their log (the crash came between the renames) are renamed too. Returns how many segments
/// were swapped in.
pub fn complete_swaps(io: &dyn FileIo, dir: &Path) -> io::Result<usize> {
    let entries = io.list_dir(dir)?;
    let live: Vec<i64> = entries.iter().filter_map(|e| super::parse_file_name(&e.name, "log")).collect();
    let mut swapped = 0;
    for e in &entries {
        let Some(base) = e.name.strip_suffix(".swap").and_then(|n| super::parse_file_name(n, "log")) else { continue };
        let end = swap_end_offset(io, &e.path, base)?;
        for b in live.iter().copied().filter(|b| *b >= base && *b < end.max(base + 1)) {
            for p in Segment::file_paths(dir, b, "") {
                match io.remove_file(&p) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
        }
        tracing::info!(segment = %e.path.display(), replaced_up_to = end, "finishing an interrupted cleaner swap");
        swapped += 1;
    }
    for e in io.list_dir(dir)? {
        if let Some(stem) = e.name.strip_suffix(".swap") {
            if [".log", ".index", ".timeindex"].iter().any(|ext| stem.ends_with(ext)) {
                io.rename(&e.path, &dir.join(stem))?;
            }
        }
    }
    if swapped > 0 {
        io.sync_dir(dir)?;
    }
    Ok(swapped)
}

/// One past the last offset of a swap segment's whole batches (its base when it holds none).
fn swap_end_offset(io: &dyn FileIo, path: &Path, base: i64) -> io::Result<i64> {
    let f = io.open(path, super::io::OpenMode::ReadWrite)?;
    let size = f.len()?;
    let mut position = 0u64;
    let mut end = base;
    let mut head = [0u8; 27];
    while position + head.len() as u64 <= size {
        if f.read_full_at(&mut head, position)? < head.len() {
            break;
        }
        let length = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if length < MIN_BATCH_LENGTH || position + LOG_OVERHEAD as u64 + length as u64 > size {
            break;
        }
        let base_offset = i64::from_be_bytes(head[0..8].try_into().unwrap_or([0; 8]));
        let delta = i32::from_be_bytes([head[23], head[24], head[25], head[26]]);
        end = end.max(base_offset + delta as i64 + 1);
        position += LOG_OVERHEAD as u64 + length as u64;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_support::simple_batch;
    use crate::records::validate::assign_offsets;

    // The same suite runs on the std and the io_uring backend.
    crate::storage::io::on_each_backend! {
    fn segment_with(dir: &Path, bytes: &[u8]) -> Segment {
        std::fs::write(Segment::log_path(dir, 0), bytes).expect("write");
        Segment::open(io(), dir, 0, 4096, 0, true).expect("open")
    }

    #[test]
    fn garbage_segment_is_truncated_to_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = segment_with(dir.path(), &[0xab; 500]);
        let r = recover_segment(&mut seg).expect("recover");
        assert_eq!(
            r,
            SegmentRecovery {
                valid_bytes: 0,
                truncated_bytes: 500,
                batches: 0
            }
        );
        assert_eq!(seg.size(), 0);
        assert_eq!(seg.next_offset(), 0);
    }

    #[test]
    fn wrong_magic_and_backwards_offsets_end_the_valid_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = simple_batch(2);
        assign_offsets(&mut a, 0);
        let mut b = simple_batch(2);
        assign_offsets(&mut b, 1); // overlaps a
        let mut seg = segment_with(dir.path(), &[a.clone(), b].concat());
        assert_eq!(
            recover_segment(&mut seg).expect("recover").valid_bytes,
            a.len() as u64
        );

        let mut c = simple_batch(2);
        assign_offsets(&mut c, 2);
        c[16] = 1;
        let mut seg = segment_with(dir.path(), &[a.clone(), c].concat());
        let r = recover_segment(&mut seg).expect("recover");
        assert_eq!((r.valid_bytes, r.batches), (a.len() as u64, 1));
        assert_eq!(seg.next_offset(), 2);
    }

    #[test]
    fn blocks_a_crash_left_preallocated_are_given_back_and_the_data_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut a, mut b) = (simple_batch(3), simple_batch(2));
        assign_offsets(&mut a, 0);
        assign_offsets(&mut b, 3);
        let data = [a, b].concat();
        let mut seg = segment_with(dir.path(), &data);
        seg.log.preallocate(data.len() as u64, 1 << 20).expect("preallocate");
        let allocated = |seg: &Segment| crate::storage::io::allocated_bytes(seg.log.as_ref());
        assert!(allocated(&seg) >= 1 << 20);
        let r = recover_segment(&mut seg).expect("recover");
        assert_eq!((r.valid_bytes, r.truncated_bytes, r.batches), (data.len() as u64, 0, 2));
        assert_eq!((seg.size(), seg.next_offset(), seg.log.len().expect("len")), (data.len() as u64, 5, data.len() as u64));
        assert!(allocated(&seg) <= 8192, "{} bytes still allocated", allocated(&seg));
        assert_eq!(seg.read(0, data.len()).expect("read"), data);
    }

    #[test]
    fn stray_files_and_orphan_indexes_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "00000000000000000000.log",
            "00000000000000000000.index",
            "00000000000000000005.log.deleted",
            "00000000000000000005.index",
            "00000000000000000009.log.swap",
            "00000000000000000009.timeindex.cleaned",
            "00000000000000000003.snapshot.tmp",
            "00000000000000000003.snapshot",
        ] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        assert_eq!(clean_stray_files(io().as_ref(), dir.path()).expect("clean"), 5);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("e").file_name().into_string().expect("utf8"))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "00000000000000000000.index",
                "00000000000000000000.log",
                "00000000000000000003.snapshot"
            ]
        );
    }
    }
}
