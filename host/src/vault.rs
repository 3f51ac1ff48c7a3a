//! Where generated passwords go: a vault file readable by its owner only (0600), one JSON
//! object per line. They are never printed or logged.

use std::io::Write as _;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

/// Appends `password` for `login` of `source` to the vault at `path`, creating it 0600.
pub fn store(
    path: &Path,
    source: &str,
    login: &str,
    password: &SecretString,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // An existing file keeps its mode on open: tighten it in case someone loosened it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    let at = crate::clock::now_rfc3339();
    let line = serde_json::json!({
        "at": at, "source": source, "login": login, "password": password.expose_secret(),
    });
    writeln!(file, "{line}")?;
    file.sync_data()
}
