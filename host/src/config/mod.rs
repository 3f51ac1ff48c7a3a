//! The one TOML file: parsed raw (serde, [`raw`]), then validated into [`Config`], which is all
//! the rest of the host sees. Every error names the file and, where it can, line and column.
//!
//! One file per part of the file: [`source`] (`[sources.NAME]`), [`sink`] (`[sinks.NAME]`) and
//! its [`export`] keys, [`notify`] (`[notify.NAME]`), [`daemon`] (`deadline`,
//! `[coordination]`); [`validator`] is what they share, [`validate`] the walk over the whole
//! file, [`text`] and [`error`] how a problem is located and told.

mod daemon;
mod error;
mod export;
mod interpolate;
mod notify;
mod raw;
mod sink;
mod source;
mod text;
mod validate;
mod validator;

use std::path::{Path, PathBuf};

use raw::RawConfig;

pub use daemon::{Coordination, DEFAULT_DEADLINE};
pub use error::{ConfigError, Located};
pub use export::{ColumnSource, ExportConfig, ExportMode};
pub use notify::{EmailTarget, NotifyEvent, NotifyKind, NotifyTarget, SmtpTls};
pub use sink::{SinkConfig, SinkKind};
pub use source::{DEFAULT_CALL_TIMEOUT_SECS, SourceConfig};
pub use text::SourceText;
pub use validate::Config;
use validator::Validator;

/// Reads and validates `path`, expanding `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, text, &|name| std::env::var(name).ok())
}

/// Validates config `text` as if read from `path`; `env` looks up variables.
pub fn parse(
    path: &Path,
    text: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = SourceText {
        path: path.to_owned(),
        text,
    };
    let raw: RawConfig = toml::from_str(&text.text).map_err(|err| {
        let message = err.message().to_owned();
        let located = match err.span() {
            Some(span) => text.at(span.start, message),
            None => text.unlocated(message),
        };
        ConfigError::Invalid(vec![located])
    })?;
    Validator {
        text: &text,
        base_dir: path.parent().map(Path::to_owned).unwrap_or_default(),
        // `${file:relative}` is read relative to the working directory, like every other path.
        file_dir: PathBuf::new(),
        env,
        errors: Vec::new(),
    }
    .validate(raw, &text)
}

#[cfg(test)]
mod tests;
