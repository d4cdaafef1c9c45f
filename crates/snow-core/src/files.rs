//! File helpers every crate shares.
//!
//! Writes never leave a half-written file behind, even on a crash or a
//! failed command: write a temporary file in the same directory, flush it to
//! disk, then rename it over the target and flush the directory. Reads are
//! bounded, because every file Snow reads may come from someone else.

use std::io::{self, Read, Write};
use std::path::Path;

/// Who may read the file once it is in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Readable by everyone (certificates, CRLs).
    Public,
    /// Readable by the owner only (keys, passwords, anything with a secret).
    Private,
}

/// Atomically replaces `path` with `contents`. The parent directory is
/// created if missing.
pub fn write(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".snow-tmp-").tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let bits = match mode {
            Mode::Public => 0o644,
            Mode::Private => 0o600,
        };
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(bits))?;
    }
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename is durable only once the directory is: after a crash the
    // name would otherwise still show the old file (or none).
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Like [`write`], but refuses to replace a file that already exists.
pub fn write_new(path: &Path, contents: &[u8], mode: Mode) -> io::Result<()> {
    if path.exists() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} already exists", path.display())));
    }
    write(path, contents, mode)
}

/// Reads a whole file, refusing one larger than `max_bytes` with
/// `InvalidData` (so a wrong path to a huge file cannot exhaust memory).
pub fn read_limited(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {} bytes", path.display(), max_bytes),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/file.txt");
        write(&p, b"one", Mode::Private).unwrap();
        write(&p, b"two", Mode::Public).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(write_new(&p, b"three", Mode::Public).is_err());
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(read_limited(&p, 3).unwrap(), b"two");
        assert!(read_limited(&p, 2).is_err());
    }
}
