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
mod identity;
mod interpolate;
mod notify;
mod raw;
mod sink;
mod source;
mod text;
mod validate;
mod validator;

use std::path::Path;

use raw::RawConfig;

pub use daemon::{Coordination, DEFAULT_DEADLINE};
pub use error::{ConfigError, Located};
pub use export::{ColumnSource, ExportConfig, ExportMode};
pub use identity::{IdentityConfig, MatchRule};
pub use notify::{EmailTarget, NotifyEvent, NotifyKind, NotifyTarget, SmtpTls};
pub use sink::{SinkConfig, SinkKind};
pub use source::{DEFAULT_CALL_TIMEOUT_SECS, RemovalLimit, SourceConfig};
pub use text::SourceText;
pub use validate::Config;
use validator::Validator;
pub use validator::{Resolve, Unresolved};

/// Reads and validates `path`, expanding `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, Resolve::All)
}

/// Reads and validates `path`, resolving the references `resolve` asks for.
pub fn load_with(path: &Path, resolve: Resolve) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_with(path, text, &|name| std::env::var(name).ok(), resolve)
}

/// Validates config `text` as if read from `path`; `env` looks up variables.
pub fn parse(
    path: &Path,
    text: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_with(path, text, env, Resolve::All)
}

/// [`parse`], resolving the references `resolve` asks for.
pub fn parse_with(
    path: &Path,
    text: String,
    env: &dyn Fn(&str) -> Option<String>,
    resolve: Resolve,
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
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    Validator {
        text: &text,
        // `${file:relative}` is read relative to the config file, like every other path.
        file_dir: base_dir.clone(),
        base_dir,
        env,
        errors: Vec::new(),
        resolve,
        unresolved: Vec::new(),
        settings_of: None,
    }
    .validate(raw, &text)
}

#[cfg(test)]
mod tests;
