//! Small-file durability (write-temp + fsync + rename + fsync(dir)) and
//! privacy: the Raft files hold shard URLs with their passwords and token
//! hashes, so every file is created 0600 and every directory 0700, at
//! creation (there is no moment in which another user could open them).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::Path,
};

/// Replaces `path` with `data` so that after a crash the file holds either
/// the old or the new bytes, never a mix, and the new bytes are on disk
/// when this returns.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = private()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        restrict(&f)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Options that create a file readable and writable by its owner only.
pub fn private() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Narrows an open file to its owner (0600) if it is open to others: a
/// file created by an older version, or one that existed before.
pub fn restrict(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Creates `dir` and its missing parents, owner-only (0700).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes a directory's entries (a created or renamed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a small file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn files_are_created_owner_only_and_old_ones_narrowed() -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        let root = tempfile::tempdir()?;
        let dir = root.path().join("raft/node-1");
        create_private_dir(&dir)?;
        assert_eq!(mode(&dir)?, 0o700);
        let p = dir.join("vote.json");
        write_atomic(&p, b"one")?;
        assert_eq!(mode(&p)?, 0o600);
        let old = dir.join("log");
        fs::write(&old, b"")?;
        fs::set_permissions(&old, fs::Permissions::from_mode(0o644))?;
        restrict(&File::open(&old)?)?;
        assert_eq!(mode(&old)?, 0o600);
        Ok(())
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("vote.json");
        assert_eq!(read_optional(&p)?, None);
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(read_optional(&p)?.as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }
}
