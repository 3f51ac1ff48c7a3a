//! What a plugin file must be before it is mapped (DESIGN §7.3): in a directory and a file no
//! one but root or the running user can write, a complete ELF shared object for this machine
//! (a truncated file mapped by the dynamic loader kills the process with SIGBUS when a page past
//! its end is touched), of the SHA-256 a source pins, and the only file for its connector name.
//!
//! Which connector a file provides is read from its name, so the files no source names are never
//! mapped: `libidhost_<name>.so`, `lib<name>.so` and `lib<name>_connector.so` provide connector
//! `<name>` (`-` and `_` are the same). Once loaded, the manifest must agree with the name.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Why a plugin file (or directory) is not mapped. Every variant names the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Someone other than root or the running user could have written it.
    #[error(
        "{path}: refused: {reason}; idhost maps only plugins that no one but root or the running user can change"
    )]
    Untrusted {
        /// The file or directory (as found; a symlink is judged by its target).
        path: PathBuf,
        /// Mode or owner, said plainly.
        reason: String,
    },
    /// Not a complete shared object for this machine.
    #[error("{path}: not an idhost connector plugin: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `plugin_sha256` of a source does not match the file.
    #[error(
        "{path}: its SHA-256 is {found}, but source `{source_name}` pins plugin_sha256 = \"{expected}\"; the file was not loaded"
    )]
    Pin {
        /// The file.
        path: PathBuf,
        /// The source that pins it.
        source_name: String,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// Two files claim one connector name.
    #[error(
        "connector `{name}` is provided by both {first} and {second}; neither was loaded: keep one of them in the plugin directory"
    )]
    Duplicate {
        /// The connector name.
        name: String,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// The manifest names another connector than the file name says.
    #[error(
        "{path}: its manifest names connector `{declared}`, but its file name says `{named}`; rename the file to {expected_file}"
    )]
    Misnamed {
        /// The file.
        path: PathBuf,
        /// Name read from the file name.
        named: String,
        /// Name the manifest declares.
        declared: String,
        /// The file name it should have.
        expected_file: String,
    },
    /// It could not be read at all.
    #[error("{path}: cannot be read: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

impl FileError {
    /// The file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Untrusted { path, .. }
            | FileError::Damaged { path, .. }
            | FileError::Pin { path, .. }
            | FileError::Misnamed { path, .. }
            | FileError::Unreadable { path, .. } => path,
            FileError::Duplicate { second, .. } => second,
        }
    }
}

/// Whether `path` looks like a shared library by its extension.
pub fn is_library(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    matches!(ext, "so" | "dylib" | "dll")
}

/// `-` and `_` are one character in connector names (crate names use either).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The connector a plugin file provides, read from its name: `libidhost_entra.so` → `entra`,
/// `libfixture_connector.so` → `fixture`, `libacme.so` → `acme`.
pub fn connector_name_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file.rsplit_once('.').map_or(file, |(stem, _ext)| stem);
    let stem = stem
        .strip_prefix(std::env::consts::DLL_PREFIX)
        .filter(|s| !s.is_empty())
        .unwrap_or(stem);
    let stem = normalize(stem);
    let stem = stem.strip_prefix("idhost_").unwrap_or(&stem);
    let stem = stem.strip_suffix("_connector").unwrap_or(stem);
    (!stem.is_empty()).then(|| stem.to_owned())
}

/// The file name a plugin for connector `name` should have.
pub fn file_name_for(name: &str) -> String {
    format!(
        "{}idhost_{}{}",
        std::env::consts::DLL_PREFIX,
        normalize(name),
        std::env::consts::DLL_SUFFIX
    )
}

/// `mode` as `ls -l` shows the permission bits, e.g. `0777 (rwxrwxrwx)`.
fn mode_text(mode: u32) -> String {
    let bits = mode & 0o777;
    let mut rwx = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let b = (bits >> shift) & 7;
        rwx.push(if b & 4 != 0 { 'r' } else { '-' });
        rwx.push(if b & 2 != 0 { 'w' } else { '-' });
        rwx.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    format!("{bits:04o} ({rwx})")
}

/// Refuses `path` (a plugin directory or file; a symlink is followed and its target judged)
/// when group or others may write it, or it belongs to someone other than root or the running
/// user.
pub fn check_trusted(path: &Path, what: &str) -> Result<(), FileError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(|e| FileError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let shown = match std::fs::canonicalize(path) {
        Ok(target) if target != path => format!("{} (a symlink to {})", what, target.display()),
        _ => what.to_owned(),
    };
    let mode = meta.mode();
    // The sticky bit (a shared /tmp) does not stop another user from adding a file there.
    if mode & 0o022 != 0 {
        return Err(FileError::Untrusted {
            path: path.to_owned(),
            reason: format!(
                "the {shown} has mode {}: group or others can write it",
                mode_text(mode)
            ),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    if owner != 0 && owner != me {
        return Err(FileError::Untrusted {
            path: path.to_owned(),
            reason: format!(
                "the {shown} is owned by uid {owner}, neither root nor the running user (uid {me})"
            ),
        });
    }
    Ok(())
}

/// Checks that `path` is a complete ELF shared object for this machine, without mapping it:
/// the class, byte order and machine of this build, and a file at least as long as every table
/// and loadable segment its headers point at.
pub fn check_elf(path: &Path) -> Result<(), FileError> {
    let damaged = |reason: String| FileError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(|e| FileError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let len = file
        .metadata()
        .map_err(|e| FileError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .len();
    let cache = object::ReadCache::new(file);
    let data = &cache;
    let kind = object::FileKind::parse(data)
        .map_err(|_| damaged("it is not an ELF shared object (no ELF header)".to_owned()))?;
    let expected_kind = if cfg!(target_pointer_width = "64") {
        object::FileKind::Elf64
    } else {
        object::FileKind::Elf32
    };
    if kind != expected_kind {
        return Err(damaged(format!(
            "it is a {kind:?} file; this idhost loads {expected_kind:?} shared objects"
        )));
    }
    let elf = object::read::File::parse(data).map_err(|e| {
        damaged(format!(
            "its ELF headers are damaged or cut short ({e}); the file is {len} bytes"
        ))
    })?;
    check_parsed(&elf, len).map_err(damaged)
}

fn check_parsed<'d, R: object::ReadRef<'d>>(
    elf: &object::read::File<'d, R>,
    len: u64,
) -> Result<(), String> {
    use object::{Object as _, ObjectSection as _, ObjectSegment as _};
    let here = this_architecture();
    if elf.architecture() != here {
        return Err(format!(
            "it is built for {:?}, this machine is {here:?}",
            elf.architecture()
        ));
    }
    let little = cfg!(target_endian = "little");
    if elf.is_little_endian() != little {
        return Err("its byte order is not this machine's".to_owned());
    }
    if elf.kind() != object::ObjectKind::Dynamic {
        return Err(format!(
            "it is a {:?} ELF file, not a shared object",
            elf.kind()
        ));
    }
    for segment in elf.segments() {
        let (offset, size) = segment.file_range();
        if offset.checked_add(size).is_none_or(|end| end > len) {
            return Err(format!(
                "it is cut short: a loadable segment spans bytes {offset}..{} but the file is {len} bytes",
                offset.saturating_add(size)
            ));
        }
    }
    for section in elf.sections() {
        if let Some((offset, size)) = section.file_range()
            && offset.checked_add(size).is_none_or(|end| end > len)
        {
            return Err(format!(
                "it is cut short: section {} spans bytes {offset}..{} but the file is {len} bytes",
                section.name().unwrap_or("?"),
                offset.saturating_add(size)
            ));
        }
    }
    Ok(())
}

fn this_architecture() -> object::Architecture {
    use object::Architecture as A;
    if cfg!(target_arch = "x86_64") {
        A::X86_64
    } else if cfg!(target_arch = "aarch64") {
        A::Aarch64
    } else if cfg!(target_arch = "x86") {
        A::I386
    } else if cfg!(target_arch = "arm") {
        A::Arm
    } else if cfg!(target_arch = "riscv64") {
        A::Riscv64
    } else {
        A::Unknown
    }
}

/// The SHA-256 of the file at `path`, lowercase hex.
pub fn sha256_of(path: &Path) -> Result<String, FileError> {
    use sha2::Digest as _;
    let unreadable = |e: std::io::Error| FileError::Unreadable {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_to_connector_names() {
        let lib = |s: &str| {
            PathBuf::from(format!(
                "{}{s}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
        };
        assert_eq!(
            connector_name_of(&lib("idhost_entra")).as_deref(),
            Some("entra")
        );
        assert_eq!(
            connector_name_of(&lib("fixture_connector")).as_deref(),
            Some("fixture")
        );
        assert_eq!(
            connector_name_of(&lib("fixture_bad_abi")).as_deref(),
            Some("fixture_bad_abi")
        );
        assert_eq!(
            connector_name_of(&lib("acme-v2")).as_deref(),
            Some("acme_v2")
        );
        assert_eq!(mode_text(0o100755), "0755 (rwxr-xr-x)");
    }

    #[test]
    fn a_file_that_is_not_elf_or_is_cut_short_is_refused_without_mapping_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let junk = dir.path().join("libjunk.so");
        std::fs::write(&junk, b"not an ELF file").expect("write");
        let err = check_elf(&junk).expect_err("junk refused");
        assert!(err.to_string().contains("no ELF header"), "{err}");
        // The test binary itself is a complete ELF file; its first 4 KiB are not.
        let me = std::env::current_exe().expect("exe");
        let bytes = std::fs::read(&me).expect("read");
        let cut = dir.path().join("libcut.so");
        std::fs::write(&cut, &bytes[..4096.min(bytes.len())]).expect("write");
        let err = check_elf(&cut).expect_err("cut refused");
        assert!(
            err.to_string().contains("cut short") || err.to_string().contains("damaged"),
            "{err}"
        );
    }
}
