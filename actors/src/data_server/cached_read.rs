//! A small file read on the request thread when, and only when, that cannot block: the path is resolved from the
//! kernel's dentry cache alone and the bytes come from the page cache alone. Anything else (a lookup or a page
//! that would need the disk, a kernel without `openat2`'s `RESOLVE_CACHED` (5.12) or `RWF_NOWAIT`, a file that is
//! not regular, larger than asked, changing, or outside the root) answers `None` and the caller takes the blocking
//! path ([`super::paths::open_under_root`] on the blocking pool), which also gives every error its answer and log.
//!
//! Why: for a file of 100 KiB most of a request's cost was handing it to a blocking-pool thread and back (two
//! context switches); served from memory it needs neither. A stuck disk still never holds a request thread,
//! which is what keeps `/health` prompt. The server does not try it for a category on a network filesystem,
//! where even an open waits on the network.
//!
//! Safety of the path: `RESOLVE_BENEATH` makes the kernel refuse any resolution that leaves the root, `..` and
//! symlinks included (a relative symlink to a file inside the root is followed, as on the blocking path; an
//! absolute one is refused here and left to the blocking path, which serves it if it stays inside);
//! `RESOLVE_NO_MAGICLINKS` refuses `/proc`-style links. The request path was already checked by
//! [`super::paths::split_request_path`].

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bytes::Bytes;

use super::paths::RelativePath;

/// Cleared the first time the kernel says it lacks `openat2` or `RESOLVE_CACHED`: no use asking again.
static SUPPORTED: AtomicBool = AtomicBool::new(true);

/// A small file read from memory.
#[derive(Debug)]
pub struct CachedFile {
    pub size: u64,
    pub mtime: SystemTime,
    pub body: Bytes,
}

/// `root/relative` read whole if it is a regular file of at most `max` bytes and nothing needs the disk; see
/// the module doc. Never blocks on I/O.
pub fn read_if_cached(root: &Path, relative: &RelativePath, max: u64) -> Option<CachedFile> {
    if !SUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let root_path = CString::new(root.as_os_str().as_bytes()).ok()?;
    let root_fd = open_cached(
        libc::AT_FDCWD,
        &root_path,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?;
    let relative = CString::new(relative.as_str()).ok()?;
    let fd = open_cached(
        root_fd.as_raw_fd(),
        &relative,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    )?;
    let file = File::from(fd);
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() || metadata.len() > max {
        return None;
    }
    let size = metadata.len();
    let mtime = metadata.modified().ok()?;
    let mut body = vec![0u8; size as usize];
    let mut filled = 0usize;
    while filled < body.len() {
        let iov = libc::iovec {
            iov_base: body[filled..].as_mut_ptr().cast(),
            iov_len: body.len() - filled,
        };
        // SAFETY: one iovec over the unfilled part of a buffer we own; our own descriptor.
        let read = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                filled as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        match read {
            n if n > 0 => filled += n as usize,
            0 => return None, // shrank while read: the blocking path says so
            _ => {
                note_unsupported(io::Error::last_os_error());
                return None;
            }
        }
    }
    Some(CachedFile {
        size,
        mtime,
        body: Bytes::from(body),
    })
}

/// `openat2` with `RESOLVE_CACHED` (and `resolve`), close-on-exec; `None` when it fails for any reason.
fn open_cached(dir: RawFd, path: &CString, flags: libc::c_int, resolve: u64) -> Option<OwnedFd> {
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve | libc::RESOLVE_CACHED;
    // SAFETY: a valid C string, a valid open_how and its size, as openat2(2) documents.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        note_unsupported(io::Error::last_os_error());
        return None;
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Remembers a kernel that lacks what this needs (EAGAIN and the path's own errors are not that).
fn note_unsupported(error: io::Error) {
    if matches!(
        error.raw_os_error(),
        Some(libc::ENOSYS | libc::E2BIG | libc::EOPNOTSUPP)
    ) || (error.raw_os_error() == Some(libc::EINVAL))
    {
        SUPPORTED.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative(path: &str) -> RelativePath {
        RelativePath::parse(path).expect("a valid relative path")
    }

    /// Reads until the page cache and dentry cache hold the file (a fresh file usually is already).
    fn read_warm(root: &Path, path: &str, max: u64) -> Option<CachedFile> {
        for _ in 0..3 {
            if std::fs::metadata(root.join(path)).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::read(root.join(path));
            }
            if let Some(file) = read_if_cached(root, &relative(path), max) {
                return Some(file);
            }
        }
        None
    }

    #[test]
    fn a_small_regular_file_in_memory_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(root.join("sub/a.bin"), &content).expect("write");
        std::os::unix::fs::symlink("sub/a.bin", root.join("alias.bin")).expect("link");
        std::os::unix::fs::symlink(root.join("sub/a.bin"), root.join("absolute.bin"))
            .expect("link");
        let file = read_warm(&root, "sub/a.bin", 1 << 20).expect("read from memory");
        assert_eq!(file.size, content.len() as u64);
        assert_eq!(&file.body[..], &content[..]);
        assert_eq!(
            file.mtime,
            std::fs::metadata(root.join("sub/a.bin"))
                .unwrap()
                .modified()
                .unwrap()
        );
        assert!(
            read_warm(&root, "alias.bin", 1 << 20).is_some(),
            "a relative link inside the root"
        );
        assert!(
            read_warm(&root, "absolute.bin", 1 << 20).is_none(),
            "an absolute link is left to the blocking path (which serves it if it stays inside)"
        );
    }

    #[test]
    fn anything_else_is_left_to_the_blocking_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("secret");
        std::fs::write(&outside, b"secret").expect("write");
        std::fs::create_dir(dir.path().join("root")).expect("mkdir");
        let root = dir.path().join("root").canonicalize().expect("canonical");
        std::fs::write(root.join("big.bin"), vec![1u8; 4096]).expect("write");
        std::os::unix::fs::symlink(&outside, root.join("escape")).expect("link");
        std::fs::create_dir(root.join("dir")).expect("mkdir");
        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(
            read_warm(&root, "big.bin", 4095).is_none(),
            "larger than asked"
        );
        assert!(
            read_warm(&root, "escape", 1 << 20).is_none(),
            "leaves the root"
        );
        assert!(read_warm(&root, "dir", 1 << 20).is_none(), "a directory");
        assert!(
            read_warm(&root, "fifo", 1 << 20).is_none(),
            "a FIFO, and no wait on it"
        );
        assert!(read_warm(&root, "missing", 1 << 20).is_none());
        assert!(read_warm(&root, "big.bin", 4096).is_some());
    }
}
