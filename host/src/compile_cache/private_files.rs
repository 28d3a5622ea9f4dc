//! Files of the compile cache (and of the plugin store beside it, [`crate::oci::store`]) that
//! only the running user can have written: private
//! directories and files (mode 0700 / 0600, created never through an existing file or
//! symlink, replaced by rename), and the checks a file read from the cache must pass (no
//! symlink, a regular file of this user that nobody else may write).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail, ensure};

/// Check files, index records and keys are small: anything larger is not ours.
const SMALL_FILE_MAX: u64 = 4096;

/// Creates `path` and its missing parents with mode 0700.
pub(crate) fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

pub(super) fn check_private_dir(path: &Path, meta: std::io::Result<fs::Metadata>) -> Result<()> {
    let meta = meta.with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(meta.is_dir(), "{} is not a directory", path.display());
    check_owner(path, &meta)
}

/// Owned by the user the host runs as (effective uid), and not writable by anyone else.
#[cfg(unix)]
fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    ensure!(
        meta.uid() == euid,
        "{} is owned by uid {}, not by the running user (uid {euid})",
        path.display(),
        meta.uid()
    );
    ensure!(
        meta.mode() & 0o022 == 0,
        "{} is writable by group or others (mode {:04o})",
        path.display(),
        meta.mode() & 0o7777
    );
    Ok(())
}

/// No owners or modes to check here: only a symlink is refused (by `open_entry_file`).
#[cfg(not(unix))]
fn check_owner(_path: &Path, _meta: &fs::Metadata) -> Result<()> {
    Ok(())
}

/// Opens a file of the cache for reading, refusing anything the host may not have written
/// itself: a symlink (never followed), anything but a regular file, a file of another user or
/// one that others may write. `Ok(None)`: no such file.
pub(crate) fn open_entry_file(path: &Path) -> Result<Option<(File, fs::Metadata)>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a planted FIFO must not hang the host (no effect on a file).
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    #[cfg(not(unix))]
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{} is a symbolic link (not followed)", path.display());
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            bail!("{} is a symbolic link (not followed)", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(meta.is_file(), "{} is not a regular file", path.display());
    check_owner(path, &meta)?;
    Ok(Some((file, meta)))
}

/// A small file of the cache (check file, index record), checked as `open_entry_file` does.
pub(crate) fn read_entry_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match open_entry_file(path)? {
        Some((file, _)) => read_small(file, path).map(Some),
        None => Ok(None),
    }
}

pub(super) fn read_small(file: File, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(SMALL_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        bytes.len() as u64 <= SMALL_FILE_MAX,
        "{} is larger than {SMALL_FILE_MAX} bytes: not a cache file",
        path.display()
    );
    Ok(bytes)
}

/// Replaces `path` with a new private file holding `bytes`; returns the file, now at `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<File> {
    let (tmp, file) = write_private_file(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot rename {} into place", tmp.display()));
    }
    Ok(file)
}

/// Writes `bytes` to a new file (mode 0600) next to `path`, synced; returns its name and the
/// file. Never writes through an existing file or symlink.
pub(super) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().context("cache file has no directory")?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let cannot_write = || format!("cannot write {}", tmp.display());
    let mut file = match new_private_file(&tmp) {
        // Left by a process that had this id and stopped before its rename.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&tmp);
            new_private_file(&tmp)
        }
        result => result,
    }
    .with_context(cannot_write)?;
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(cannot_write);
    }
    Ok((tmp, file))
}

/// `O_CREAT | O_EXCL`, mode 0600: fails on any existing file or symlink.
pub(super) fn new_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}
