//! Small state files written atomically (temp, fsync, rename, fsync dir) and Kafka's offset checkpoint text format; it holds no log state itself.

use std::io;
use std::path::{Path, PathBuf};

use super::io::{FileIo, OpenMode};
use crate::types::TopicPartition;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
const CHECKPOINT_VERSION: u32 = 0;

/// Replaces `path` with `bytes` so a crash leaves either the old or the new content, never a mix.
pub fn write_atomic(io: &dyn FileIo, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = io.open(&tmp, OpenMode::CreateReadWrite).and_then(|f| {
        f.set_len(0)?;
        f.write_all_at(bytes, 0)?;
        f.sync_data()
    });
    if let Err(e) = written {
        // A full disk must not keep a half-written temp file holding the space it lacks.
        let _ = io.remove_file(&tmp);
        return Err(e);
    }
    io.rename(&tmp, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    io.sync_dir(dir)
}

/// Reads a whole small file; `None` when it does not exist.
pub fn read_small(io: &dyn FileIo, path: &Path) -> io::Result<Option<Vec<u8>>> {
    if !io.exists(path)? {
        return Ok(None);
    }
    let f = io.open(path, OpenMode::ReadWrite)?;
    let mut buf = vec![0u8; f.len()? as usize];
    let n = f.read_full_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// Kafka's format: version line, count line, then `topic partition offset` lines.
pub fn encode_offsets(entries: &[(TopicPartition, i64)]) -> String {
    let mut s = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (tp, off) in entries {
        s.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, off));
    }
    s
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

pub fn decode_offsets(text: &str) -> io::Result<Vec<(TopicPartition, i64)>> {
    // Kafka creates `cleaner-offset-checkpoint` empty when its cleaner starts and reads an empty
    // file as no entries; Fjord's own writes are atomic, so an empty file never is a torn one.
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines = text.lines();
    let version: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| invalid("bad version line"))?;
    if version != CHECKPOINT_VERSION {
        return Err(invalid("unsupported checkpoint version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| invalid("bad count line"))?;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for line in lines.by_ref().take(count) {
        let mut parts = line.split(' ');
        let (Some(topic), Some(p), Some(o), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("bad entry line"));
        };
        let partition = p.parse().map_err(|_| invalid("bad partition"))?;
        let offset = o.parse().map_err(|_| invalid("bad offset"))?;
        out.push((TopicPartition::new(topic, partition), offset));
    }
    if out.len() != count {
        return Err(invalid("fewer entries than the count line says"));
    }
    Ok(out)
}

pub fn write_offsets(
    io: &dyn FileIo,
    path: &Path,
    entries: &[(TopicPartition, i64)],
) -> io::Result<()> {
    write_atomic(io, path, encode_offsets(entries).as_bytes())
}

/// Missing file: empty. A malformed file is an error: silently ignoring it would reset offsets.
pub fn read_offsets(io: &dyn FileIo, path: &Path) -> io::Result<Vec<(TopicPartition, i64)>> {
    match read_small(io, path)? {
        None => Ok(Vec::new()),
        Some(bytes) => decode_offsets(
            std::str::from_utf8(&bytes).map_err(|_| invalid("checkpoint is not UTF-8"))?,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::StdIo;

    #[test]
    fn offsets_round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        assert!(read_offsets(&StdIo, &p).expect("missing").is_empty());
        let entries = vec![
            (TopicPartition::new("a-b", 0), 5),
            (TopicPartition::new("c", 3), 99),
        ];
        write_offsets(&StdIo, &p, &entries).expect("write");
        assert_eq!(
            std::fs::read_to_string(&p).expect("read"),
            "0\n2\na-b 0 5\nc 3 99\n"
        );
        assert_eq!(read_offsets(&StdIo, &p).expect("read"), entries);
        assert!(
            !dir.path()
                .join(format!("{RECOVERY_POINT_CHECKPOINT}.tmp"))
                .exists()
        );
    }

    #[test]
    fn malformed_checkpoints_are_errors() {
        assert!(decode_offsets("").expect("an empty file, as Kafka leaves it").is_empty());
        for bad in [
            "\n",
            "1\n0\n",
            "0\n2\na 0 1\n",
            "0\n1\na x 1\n",
            "0\n1\na 0 1 2\n",
            "0\nz\n",
        ] {
            assert!(decode_offsets(bad).is_err(), "{bad:?}");
        }
    }
}
