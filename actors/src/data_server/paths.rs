//! Safe resolution of a request's category and path to a file under that category's root.
//!
//! Two steps with one error type:
//! - [`split_request_path`] is pure: it takes the *raw* (still percent-encoded) request path, decodes it strictly and
//!   refuses anything that could climb out of a category: `.`/`..` segments, absolute paths, empty segments,
//!   backslashes, NUL and control characters, and encoded separators or dots (`%2f`, `%5c`, `%2e`, also double-encoded
//!   as `%252e`). Refusals are 400.
//! - [`open_under_root`] touches the disk: it canonicalizes root and file and refuses a file whose real path leaves
//!   the root (a symlink pointing outside), or that is not a regular file. Those are 404, like a missing file, so the
//!   server reveals nothing about what exists outside. Files are opened with [`open_regular`]: non-blocking, so a
//!   FIFO or device named by a request never holds a thread, and checked to be regular before anything reads them.
//!
//! Callers log refusals (the server does, with `tracing::warn`). It knows nothing of HTTP beyond [`PathError::status`].

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a request path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// Nothing after the category.
    #[error("path is empty; name a file inside the category, like /files/games/a.db")]
    Empty,
    /// The path (after the category) starts with `/`.
    #[error("absolute paths are refused; give a path relative to the category")]
    Absolute,
    /// A `.` or `..` segment.
    #[error("'.' and '..' segments are refused; give a plain path inside the category")]
    Traversal,
    /// `%2f`, `%5c`, `%2e`, `%00` (or their double encodings) in the path.
    #[error("encoded separators and dots (%2f, %5c, %2e) are refused; send '/' and '.' unencoded")]
    EncodedTraversal,
    /// A backslash.
    #[error("backslashes are refused; separate directories with '/'")]
    Backslash,
    /// An empty segment (`a//b` or a trailing `/`).
    #[error("empty path segments ('//' or a trailing '/') are refused")]
    EmptySegment,
    /// NUL or another control character.
    #[error("control characters (including NUL) are refused in paths")]
    ControlCharacter,
    /// Broken percent-encoding or bytes that are not UTF-8.
    #[error("path is not valid percent-encoded UTF-8")]
    BadEncoding,
    /// The category is not configured.
    #[error("unknown category {name:?}; served categories: {known}")]
    UnknownCategory {
        /// The category asked for.
        name: String,
        /// The configured categories, comma separated.
        known: String,
    },
    /// No such file (or the category directory is missing).
    #[error("no such file")]
    NotFound,
    /// The file's real path leaves the category root (a symlink pointing outside).
    #[error("no such file")]
    OutsideRoot {
        /// The real path the request resolved to (for logs only, never sent).
        resolved: PathBuf,
    },
    /// A directory, socket or other non-regular file.
    #[error("no such file")]
    NotAFile,
    /// Any other filesystem error.
    #[error("could not read the file: {0}")]
    Io(#[source] io::Error),
}

impl PathError {
    /// The HTTP status the server answers with: 400 for malformed or hostile paths, 404 for anything about what
    /// exists, 500 for other filesystem errors.
    pub fn status(&self) -> u16 {
        match self {
            PathError::UnknownCategory { .. }
            | PathError::NotFound
            | PathError::OutsideRoot { .. }
            | PathError::NotAFile => 404,
            PathError::Io(_) => 500,
            _ => 400,
        }
    }

    /// True for refusals that look like an attack or a broken client (worth a warning in the log).
    pub fn is_suspicious(&self) -> bool {
        matches!(self.status(), 400) || matches!(self, PathError::OutsideRoot { .. })
    }
}

/// A validated path relative to a category root: non-empty, `/`-separated plain segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelativePath(String);

impl RelativePath {
    /// Validate an already decoded path.
    pub fn parse(decoded: &str) -> Result<Self, PathError> {
        if decoded.is_empty() {
            return Err(PathError::Empty);
        }
        if decoded.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if decoded.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if decoded.contains('\\') {
            return Err(PathError::Backslash);
        }
        for segment in decoded.split('/') {
            match segment {
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::Traversal),
                _ => {}
            }
        }
        Ok(RelativePath(decoded.to_string()))
    }

    /// The path as text (`/`-separated).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Split a raw request path like `/files/games/sub/a.db` after `prefix` (`/files/`) into the decoded category and the
/// validated relative path.
pub fn split_request_path(
    raw_path: &str,
    prefix: &str,
) -> Result<(String, RelativePath), PathError> {
    let rest = raw_path.strip_prefix(prefix).ok_or(PathError::Empty)?;
    let (raw_category, raw_relative) = rest.split_once('/').ok_or(PathError::Empty)?;
    let category = decode_strict(raw_category)?;
    if category == "." || category == ".." {
        return Err(PathError::Traversal);
    }
    let relative = RelativePath::parse(&decode_strict(raw_relative)?)?;
    Ok((category, relative))
}

/// Percent-decode, refusing encoded `/`, `\`, `.` and NUL, their double encodings, and non-UTF-8 results.
pub fn decode_strict(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let byte = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(PathError::BadEncoding)?;
            if matches!(byte, b'/' | b'\\' | b'.' | 0) {
                return Err(PathError::EncodedTraversal);
            }
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::BadEncoding)?;
    if contains_encoded_traversal(&text) {
        return Err(PathError::EncodedTraversal);
    }
    Ok(text)
}

/// True when `text` still holds `%2e`, `%2f`, `%5c` or `%00` (any case): a double-encoded traversal attempt.
fn contains_encoded_traversal(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// A regular file opened under a category root, with the metadata read from the open handle.
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file.
    pub file: File,
    /// Its canonical path (inside the root).
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub mtime: SystemTime,
}

/// Canonicalize `root` and `root/relative`, refuse a result outside the root or not a regular file, and open it.
/// Blocking: call it off the request threads.
pub fn open_under_root(root: &Path, relative: &RelativePath) -> Result<OpenedFile, PathError> {
    let path = canonical_under_root(root, relative)?;
    let (file, metadata) = open_regular(&path)?;
    let mtime = metadata.modified().map_err(PathError::Io)?;
    Ok(OpenedFile {
        file,
        path,
        size: metadata.len(),
        mtime,
    })
}

/// Opens `path` for reading without waiting on what it is, and refuses anything but a regular file.
///
/// A plain `open` of a FIFO blocks until a writer appears (and a read of a device may block for ever), holding a
/// blocking-pool thread each time: enough such requests starve every file request. So the open is `O_NONBLOCK`
/// (which returns at once for a FIFO), the handle is checked with `fstat` to be a regular file ([`PathError::NotAFile`]
/// otherwise, 404), and only then switched back to blocking reads. Blocking: call it off the request threads.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), PathError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(map_io)?;
    let metadata = file.metadata().map_err(map_io)?;
    if !metadata.is_file() {
        return Err(PathError::NotAFile);
    }
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function owns; no memory is passed.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(PathError::Io(io::Error::last_os_error()));
    }
    Ok((file, metadata))
}

/// The canonical path of `root/relative` if it stays inside the canonical root. Blocking.
pub fn canonical_under_root(root: &Path, relative: &RelativePath) -> Result<PathBuf, PathError> {
    let root = root.canonicalize().map_err(map_io)?;
    let path = root
        .join(relative.as_str())
        .canonicalize()
        .map_err(map_io)?;
    if !path.starts_with(&root) {
        return Err(PathError::OutsideRoot { resolved: path });
    }
    Ok(path)
}

fn map_io(error: io::Error) -> PathError {
    let missing = error.kind() == io::ErrorKind::NotFound
        || matches!(
            error.raw_os_error(),
            Some(libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG)
        );
    if missing {
        PathError::NotFound
    } else {
        PathError::Io(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_paths() {
        let table = [
            ("/files/games/a.db", "games", "a.db"),
            ("/files/games/sub/dir/a.db", "games", "sub/dir/a.db"),
            ("/files/models/model%20v1.pth", "models", "model v1.pth"),
            ("/files/training/..data.npz", "training", "..data.npz"),
            ("/files/training/a..b", "training", "a..b"),
            ("/files/games/%C3%A9.db", "games", "é.db"),
        ];
        for (raw, category, relative) in table {
            let (got_category, got_relative) = split_request_path(raw, "/files/").expect(raw);
            assert_eq!(got_category, category, "{raw}");
            assert_eq!(got_relative.as_str(), relative, "{raw}");
        }
    }

    #[test]
    fn refuses_every_traversal_form_with_400() {
        let table = [
            "/files/games/../secret",
            "/files/games/sub/../../secret",
            "/files/games/./a.db",
            "/files/games/..",
            "/files/../games/a.db",
            "/files/games/%2e%2e/secret",
            "/files/games/%2E%2E/secret",
            "/files/games/.%2e/secret",
            "/files/games/..%2fsecret",
            "/files/games/..%2Fsecret",
            "/files/games/..%5csecret",
            "/files/games/%252e%252e/secret",
            "/files/games/%252fetc",
            "/files/games//etc/passwd",
            "/files/games/%2fetc/passwd",
            "/files/games/..\\secret",
            "/files/games/a%00.db",
            "/files/games/a%0a.db",
            "/files/games/a//b",
            "/files/games/a/",
            "/files/games/",
            "/files/games",
            "/files/games/%zz",
            "/files/games/%ff.db",
            "/files/%2e%2e/a.db",
        ];
        for raw in table {
            match split_request_path(raw, "/files/") {
                Ok(parsed) => panic!("{raw} accepted as {parsed:?}"),
                Err(error) => assert_eq!(error.status(), 400, "{raw}: {error}"),
            }
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(PathError::NotFound.status(), 404);
        assert_eq!(
            PathError::OutsideRoot {
                resolved: PathBuf::from("/etc")
            }
            .status(),
            404
        );
        assert!(PathError::OutsideRoot {
            resolved: PathBuf::from("/etc")
        }
        .is_suspicious());
        assert!(!PathError::NotFound.is_suspicious());
        assert_eq!(
            PathError::UnknownCategory {
                name: "x".into(),
                known: "games".into()
            }
            .status(),
            404
        );
        assert_eq!(PathError::Traversal.status(), 400);
        assert_eq!(PathError::Io(io::Error::other("x")).status(), 500);
    }

    #[test]
    fn open_under_root_refuses_symlinks_leaving_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("games");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("secret"), b"secret").expect("write");
        std::fs::write(root.join("sub/a.db"), b"data").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.path(), root.join("up")).expect("symlink");
        std::os::unix::fs::symlink(root.join("sub/a.db"), root.join("inside")).expect("symlink");
        std::os::unix::fs::symlink(root.join("loop"), root.join("loop")).expect("symlink");

        let open =
            |relative: &str| open_under_root(&root, &RelativePath::parse(relative).expect("valid"));
        assert_eq!(open("sub/a.db").expect("opens").size, 4);
        assert_eq!(open("inside").expect("inside symlink opens").size, 4);
        assert!(matches!(open("escape"), Err(PathError::OutsideRoot { .. })));
        assert!(matches!(
            open("up/secret"),
            Err(PathError::OutsideRoot { .. })
        ));
        assert!(matches!(open("missing"), Err(PathError::NotFound)));
        assert!(matches!(open("sub/a.db/x"), Err(PathError::NotFound)));
        assert!(matches!(open("sub"), Err(PathError::NotAFile)));
        assert!(matches!(open("loop"), Err(PathError::NotFound)));
        let fifo = root.join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo");
        let started = std::time::Instant::now();
        assert!(matches!(open("fifo"), Err(PathError::NotAFile)));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "a FIFO must not block the open"
        );
        assert!(matches!(
            open_under_root(
                Path::new("/dev"),
                &RelativePath::parse("null").expect("valid")
            ),
            Err(PathError::NotAFile)
        ));
        let missing_root = dir.path().join("nope");
        let result = open_under_root(&missing_root, &RelativePath::parse("a").expect("valid"));
        assert!(matches!(result, Err(PathError::NotFound)));
    }
}
