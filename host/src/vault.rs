//! Where secrets idhost is handed go: generated passwords (`provision create-account
//! --generate-password`) and the refresh tokens of `idhost login`. The vault is one file, one
//! JSON object per line, readable by its owner only. Nothing in it is ever printed or logged.
//!
//! DESIGN §7.3: the path must be a regular file owned by the running user with mode 0600, or
//! absent (then created with `O_CREAT|O_EXCL|O_NOFOLLOW`, 0600). A symlink, a directory, a
//! FIFO, or a file of another owner or mode is refused, and [`Vault::open`] checks it before a
//! command sends any upstream request. Every later open repeats the check on the opened file
//! (`fstat`), so a path swapped between the check and the write is refused too.
//!
//! With `vault_age_recipients = ["age1…"]` each secret is written age-encrypted with ASCII
//! armour (the `age` crate), so `jq -r .age vault.jsonl | age -d -i key.txt` reads it back.
//! A line is then `{"at", "source", "kind", "login"?, "age": "-----BEGIN AGE ENCRYPTED FILE-----…"}`
//! instead of carrying `password` / `refresh_token` in clear.
//!
//! Refresh tokens rotate: storing one rewrites the whole file atomically (a new file beside it,
//! written, fsynced, renamed over the old one, the directory fsynced), so a crash leaves either
//! the old token or the new one, never half a file.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use secrecy::{ExposeSecret, SecretString};

/// The vault's file name beside the state database when `--vault` is not given.
pub const DEFAULT_FILE_NAME: &str = "idhost-vault.jsonl";

/// Why the vault could not be used. Each message names the path and what is wrong, never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The path is not something idhost may write secrets to.
    #[error("the vault {path} {problem}", path = .path.display())]
    Refused {
        /// The vault path.
        path: PathBuf,
        /// What is wrong with it (a symlink, a directory, a FIFO, its owner or mode).
        problem: String,
    },
    /// Reading or writing failed.
    #[error("the vault {path}: {what}: {source}", path = .path.display())]
    Io {
        /// The vault path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A `vault_age_recipients` entry is not an age recipient.
    #[error("vault_age_recipients: `{value}` is not an age X25519 recipient (`age1…`): {reason}")]
    Recipient {
        /// The entry as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// An entry could not be encrypted or decrypted.
    #[error("the vault {path}: {reason}", path = .path.display())]
    Crypto {
        /// The vault path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The vault path of a command: `--vault` (or `IDHOST_VAULT`), else [`DEFAULT_FILE_NAME`]
/// beside the state database.
pub fn path_for(config: &crate::config::Config, flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(path) => path.to_owned(),
        None => config.state_path.with_file_name(DEFAULT_FILE_NAME),
    }
}

/// The command's vault, checked ([`Vault::open`]) with the config's age settings.
pub fn open_for(config: &crate::config::Config, flag: Option<&Path>) -> Result<Vault, VaultError> {
    Vault::open(
        &path_for(config, flag),
        &config.vault_age_recipients,
        config.vault_age_identity.as_deref(),
    )
}

/// Where a sync's connectors find the refresh tokens of `idhost login`: the vault path
/// (`IDHOST_VAULT`, else the default) with the config's age settings, opened (and checked) only
/// when a connector asks for its token, so sources that never log in never touch it.
#[derive(Debug, Clone)]
pub struct VaultRef {
    path: PathBuf,
    recipients: Vec<String>,
    identity: Option<PathBuf>,
}

impl VaultRef {
    /// The vault of `config`'s sources.
    pub fn for_sources(config: &crate::config::Config) -> Self {
        let flag = std::env::var_os("IDHOST_VAULT").map(PathBuf::from);
        Self {
            path: path_for(config, flag.as_deref()),
            recipients: config.vault_age_recipients.clone(),
            identity: config.vault_age_identity.clone(),
        }
    }

    /// Opens it, checked as [`Vault::open`] does.
    pub fn open(&self) -> Result<Vault, VaultError> {
        Vault::open(&self.path, &self.recipients, self.identity.as_deref())
    }
}

/// Parses one `vault_age_recipients` entry (an X25519 recipient, `age1…`).
pub fn parse_recipient(value: &str) -> Result<age::x25519::Recipient, VaultError> {
    age::x25519::Recipient::from_str(value.trim()).map_err(|reason| VaultError::Recipient {
        value: value.to_owned(),
        reason: reason.to_string(),
    })
}

/// The vault of one command, checked.
#[derive(Clone)]
pub struct Vault {
    path: PathBuf,
    recipients: Vec<age::x25519::Recipient>,
    identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("recipients", &self.recipients.len())
            .finish_non_exhaustive()
    }
}

/// The entry kinds.
const PASSWORD: &str = "password";
const REFRESH_TOKEN: &str = "refresh_token";

/// Serialises the read-modify-rename of refresh tokens within one process (several sources of
/// one sync may rotate theirs at once).
static REWRITE: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Vault {
    /// The vault at `path`, refused unless it is absent or a regular 0600 file of the running
    /// user (see the module docs). `recipients` are `vault_age_recipients` (already checked by
    /// the config, parsed again here); `identity`, when given, is an age identity file that can
    /// decrypt the entries (`vault_age_identity`), needed to read encrypted refresh tokens.
    pub fn open(
        path: &Path,
        recipients: &[String],
        identity: Option<&Path>,
    ) -> Result<Self, VaultError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => judge(path, &meta)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(VaultError::Io {
                    path: path.to_owned(),
                    what: "checking it",
                    source,
                });
            }
        }
        let recipients = recipients
            .iter()
            .map(|r| parse_recipient(r))
            .collect::<Result<Vec<_>, _>>()?;
        let identities = match identity {
            None => Vec::new(),
            Some(file) => read_identities(path, file)?,
        };
        Ok(Self {
            path: path.to_owned(),
            recipients,
            identities,
        })
    }

    /// The vault path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether entries are written age-encrypted.
    pub fn encrypts(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// Appends the generated `password` of `login` on `source`.
    pub fn store_password(
        &self,
        source: &str,
        login: &str,
        password: &SecretString,
    ) -> Result<(), VaultError> {
        let mut entry = serde_json::json!({
            "at": crate::clock::now_rfc3339(), "source": source, "kind": PASSWORD, "login": login,
        });
        self.put_secret(&mut entry, PASSWORD, password)?;
        self.ensure_dir()?;
        let mut file = self.open_for_append()?;
        writeln!(file, "{entry}").map_err(|source| self.io("writing an entry", source))?;
        file.sync_data()
            .map_err(|source| self.io("flushing it to disk", source))
    }

    /// Stores `token` as the refresh token of `source`, replacing the one held before, in one
    /// atomic rewrite of the file.
    pub fn store_refresh_token(
        &self,
        source: &str,
        token: &SecretString,
    ) -> Result<(), VaultError> {
        let _guard = REWRITE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut entry = serde_json::json!({
            "at": crate::clock::now_rfc3339(), "source": source, "kind": REFRESH_TOKEN,
        });
        self.put_secret(&mut entry, REFRESH_TOKEN, token)?;
        let mut kept = String::new();
        if let Some(old) = self.read_all()? {
            for line in old.lines().filter(|l| !l.trim().is_empty()) {
                if !is_refresh_token_of(line, source) {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
        }
        kept.push_str(&entry.to_string());
        kept.push('\n');
        self.replace(&kept)
    }

    /// The refresh token `idhost login` stored for `source`, if any.
    pub fn refresh_token(&self, source: &str) -> Result<Option<SecretString>, VaultError> {
        let Some(text) = self.read_all()? else {
            return Ok(None);
        };
        let Some(entry) = text
            .lines()
            .filter(|l| is_refresh_token_of(l, source))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .next_back()
        else {
            return Ok(None);
        };
        if let Some(token) = entry.get(REFRESH_TOKEN).and_then(|v| v.as_str()) {
            return Ok(Some(SecretString::from(token.to_owned())));
        }
        let Some(armoured) = entry.get("age").and_then(|v| v.as_str()) else {
            return Err(self.crypto(format!(
                "the refresh token entry of source `{source}` holds neither `refresh_token` nor `age`"
            )));
        };
        if self.identities.is_empty() {
            return Err(self.crypto(format!(
                "the refresh token of source `{source}` is age-encrypted: set `vault_age_identity` \
                 to the age identity file that decrypts it"
            )));
        }
        self.decrypt(armoured).map(Some)
    }

    fn put_secret(
        &self,
        entry: &mut serde_json::Value,
        key: &str,
        secret: &SecretString,
    ) -> Result<(), VaultError> {
        if self.recipients.is_empty() {
            entry[key] = serde_json::Value::from(secret.expose_secret());
        } else {
            entry["age"] = serde_json::Value::from(self.encrypt(secret)?);
        }
        Ok(())
    }

    fn encrypt(&self, secret: &SecretString) -> Result<String, VaultError> {
        let recipients = self.recipients.iter().map(|r| r as &dyn age::Recipient);
        let encryptor = age::Encryptor::with_recipients(recipients)
            .map_err(|e| self.crypto(format!("encrypting an entry: {e}")))?;
        let mut out = Vec::new();
        let fail = |e: std::io::Error| self.crypto(format!("encrypting an entry: {e}"));
        let armour =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .map_err(fail)?;
        let mut writer = encryptor.wrap_output(armour).map_err(fail)?;
        writer
            .write_all(secret.expose_secret().as_bytes())
            .map_err(fail)?;
        writer.finish().and_then(|a| a.finish()).map_err(fail)?;
        String::from_utf8(out).map_err(|e| self.crypto(format!("encrypting an entry: {e}")))
    }

    fn decrypt(&self, armoured: &str) -> Result<SecretString, VaultError> {
        let fail = |e: String| self.crypto(format!("decrypting the refresh token: {e}"));
        let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(armoured.as_bytes()))
            .map_err(|e| fail(e.to_string()))?;
        let mut reader = decryptor
            .decrypt(self.identities.iter().map(|i| i as &dyn age::Identity))
            .map_err(|e| fail(e.to_string()))?;
        let mut plain = String::new();
        reader
            .read_to_string(&mut plain)
            .map_err(|e| fail(e.to_string()))?;
        Ok(SecretString::from(plain))
    }

    fn ensure_dir(&self) -> Result<(), VaultError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| self.io("creating its directory", source))?;
        }
        Ok(())
    }

    /// Opens the vault to append, creating it if absent; the opened file is judged again.
    fn open_for_append(&self) -> Result<File, VaultError> {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc_flags())
            .open(&self.path);
        let file = match created {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => OpenOptions::new()
                .append(true)
                .custom_flags(libc_flags() | nonblock())
                .open(&self.path)
                .map_err(|source| self.open_error(source))?,
            Err(source) => return Err(self.open_error(source)),
        };
        self.judge_open(&file)?;
        Ok(file)
    }

    /// The whole file, `None` when it does not exist.
    fn read_all(&self) -> Result<Option<String>, VaultError> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc_flags() | nonblock())
            .open(&self.path);
        let mut file = match opened {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.open_error(source)),
        };
        self.judge_open(&file)?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|source| self.io("reading it", source))?;
        Ok(Some(text))
    }

    /// Writes `content` to a new file beside the vault and renames it over the vault.
    fn replace(&self, content: &str) -> Result<(), VaultError> {
        self.ensure_dir()?;
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir.to_owned(),
            None => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULT_FILE_NAME.to_owned());
        let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc_flags())
                .open(&temp)?;
            file.write_all(content.as_bytes())?;
            file.sync_all()
        })();
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(self.io("writing its replacement", source));
        }
        if let Err(source) = std::fs::rename(&temp, &self.path) {
            let _ = std::fs::remove_file(&temp);
            return Err(self.io("renaming its replacement into place", source));
        }
        // The rename is durable once the directory is.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| self.io("flushing its directory", source))
    }

    fn judge_open(&self, file: &File) -> Result<(), VaultError> {
        let meta = file
            .metadata()
            .map_err(|source| self.io("checking it", source))?;
        judge(&self.path, &meta)
    }

    fn open_error(&self, source: std::io::Error) -> VaultError {
        // O_NOFOLLOW on a symlink fails with ELOOP: say what it means.
        if source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            return VaultError::Refused {
                path: self.path.clone(),
                problem: "is a symbolic link (a vault is never written through a link)".to_owned(),
            };
        }
        self.io("opening it", source)
    }

    fn io(&self, what: &'static str, source: std::io::Error) -> VaultError {
        VaultError::Io {
            path: self.path.clone(),
            what,
            source,
        }
    }

    fn crypto(&self, reason: String) -> VaultError {
        VaultError::Crypto {
            path: self.path.clone(),
            reason,
        }
    }
}

fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32
}

/// A FIFO swapped in after the check must not make the open hang.
fn nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

fn is_refresh_token_of(line: &str, source: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
        v.get("kind").and_then(|k| k.as_str()) == Some(REFRESH_TOKEN)
            && v.get("source").and_then(|s| s.as_str()) == Some(source)
    })
}

fn read_identities(vault: &Path, file: &Path) -> Result<Vec<age::x25519::Identity>, VaultError> {
    let text = std::fs::read_to_string(file).map_err(|source| VaultError::Io {
        path: vault.to_owned(),
        what: "reading vault_age_identity",
        source,
    })?;
    let identities: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect();
    if identities.is_empty() {
        return Err(VaultError::Crypto {
            path: vault.to_owned(),
            reason: format!(
                "vault_age_identity {} holds no age identity (`AGE-SECRET-KEY-1…`)",
                file.display()
            ),
        });
    }
    Ok(identities)
}

/// Refuses anything but a regular 0600 file of the running user.
fn judge(path: &Path, meta: &Metadata) -> Result<(), VaultError> {
    let refuse = |problem: String| VaultError::Refused {
        path: path.to_owned(),
        problem,
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(refuse(
            "is a symbolic link (a vault is never written through a link)".to_owned(),
        ));
    }
    if kind.is_dir() {
        return Err(refuse(
            "is a directory; --vault names the vault file itself".to_owned(),
        ));
    }
    if kind.is_fifo() {
        return Err(refuse(
            "is a FIFO (named pipe), not a regular file".to_owned(),
        ));
    }
    if kind.is_socket() || kind.is_char_device() || kind.is_block_device() {
        return Err(refuse(
            "is a socket or device, not a regular file".to_owned(),
        ));
    }
    if !kind.is_file() {
        return Err(refuse("is not a regular file".to_owned()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!(
            "belongs to uid {}, not to the user idhost runs as (uid {me})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o600 {
        return Err(refuse(format!(
            "has mode {mode:04o}; a vault must be 0600 (`chmod 600 {}`)",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_refresh_tokens_replace_the_old_one_and_keep_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        let vault = Vault::open(&path, &[], None).unwrap();
        vault
            .store_password("legal", "a@example.com", &SecretString::from("pw-1"))
            .unwrap();
        vault
            .store_refresh_token("legal", &SecretString::from("rt-1"))
            .unwrap();
        vault
            .store_refresh_token("corp", &SecretString::from("rt-c"))
            .unwrap();
        vault
            .store_refresh_token("legal", &SecretString::from("rt-2"))
            .unwrap();
        let token = vault.refresh_token("legal").unwrap().unwrap();
        assert_eq!(token.expose_secret(), "rt-2");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains("rt-1") && text.contains("pw-1") && text.contains("rt-c"));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn encrypted_entries_decrypt_with_the_identity_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let key = dir.path().join("key.txt");
        std::fs::write(&key, identity.to_string().expose_secret()).unwrap();
        let writer = Vault::open(&path, std::slice::from_ref(&recipient), None).unwrap();
        writer
            .store_refresh_token("legal", &SecretString::from("rt-secret"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("rt-secret") && text.contains("BEGIN AGE ENCRYPTED FILE"));
        let err = writer.refresh_token("legal").unwrap_err();
        assert!(err.to_string().contains("vault_age_identity"), "{err}");
        let reader = Vault::open(&path, &[recipient], Some(&key)).unwrap();
        let token = reader.refresh_token("legal").unwrap().unwrap();
        assert_eq!(token.expose_secret(), "rt-secret");
    }

    #[test]
    fn a_loose_mode_is_refused_naming_the_path_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let err = Vault::open(&path, &[], None).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("0644"),
            "{err}"
        );
    }
}
