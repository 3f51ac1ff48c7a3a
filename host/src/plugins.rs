//! Plugin discovery: every shared library in the plugin directory is loaded and checked; every
//! failure is collected and reported (a bad file never hides the good ones).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use idhost_connector_sdk::host::{self, LoadError, PluginLibrary};

use crate::config::Config;

/// The plugins found in one directory.
#[derive(Debug, Default)]
pub struct Registry {
    /// Where they were looked for.
    pub dir: PathBuf,
    plugins: BTreeMap<String, PluginLibrary>,
    /// Files that failed to load, with why.
    pub errors: Vec<LoadError>,
}

/// Why discovery could not even start.
#[derive(Debug, thiserror::Error)]
#[error("plugin directory {dir} cannot be read")]
pub struct DiscoveryError {
    dir: PathBuf,
    source: std::io::Error,
}

fn is_library(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    matches!(ext, "so" | "dylib" | "dll")
}

impl Registry {
    /// The plugins for `config`: discovered in the directory [`resolve_dir`] picks from the
    /// `--plugin-dir` flag and the config. Files that fail to load fail only the sources that
    /// need them: they are logged (at debug level, or as warnings when a source's connector is
    /// missing; `idhost plugins` prints every one).
    pub fn for_config(
        flag: Option<&Path>,
        config: Option<&Config>,
    ) -> Result<Self, DiscoveryError> {
        let dir = resolve_dir(flag, config.and_then(|c| c.plugin_dir.as_deref()));
        let registry = Self::discover(&dir)?;
        for err in &registry.errors {
            tracing::debug!("{err}");
        }
        let missing = config.is_some_and(|c| {
            c.sources
                .iter()
                .any(|s| registry.get(&s.connector).is_none())
        });
        if missing {
            for err in &registry.errors {
                tracing::warn!("{err}");
            }
        }
        Ok(registry)
    }

    /// Loads every library in `dir` (not recursively).
    pub fn discover(dir: &Path) -> Result<Self, DiscoveryError> {
        let entries = std::fs::read_dir(dir).map_err(|source| DiscoveryError {
            dir: dir.to_owned(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_library(p))
            .collect();
        files.sort();
        let mut registry = Registry {
            dir: dir.to_owned(),
            ..Registry::default()
        };
        for file in files {
            let started = std::time::Instant::now();
            match host::load(&file) {
                Ok(plugin) => {
                    tracing::debug!(
                        file = %file.display(),
                        connector = %plugin.manifest().name,
                        micros = started.elapsed().as_micros() as u64,
                        "loaded plugin"
                    );
                    let name = plugin.manifest().name.clone();
                    if let Some(existing) = registry.plugins.get(&name) {
                        registry.errors.push(LoadError::Manifest {
                            path: file.clone(),
                            reason: format!(
                                "connector name `{name}` is also provided by {}; keep one of them in the plugin directory",
                                existing.path().display()
                            ),
                        });
                        continue;
                    }
                    registry.plugins.insert(name, plugin);
                }
                Err(err) => registry.errors.push(err),
            }
        }
        Ok(registry)
    }

    /// The plugin providing connector `name`.
    pub fn get(&self, name: &str) -> Option<&PluginLibrary> {
        self.plugins.get(name)
    }

    /// All loaded plugins, by connector name.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginLibrary> {
        self.plugins.values()
    }

    /// Connector names available.
    pub fn names(&self) -> Vec<&str> {
        self.plugins.keys().map(String::as_str).collect()
    }
}

/// The plugin directory: `--plugin-dir`/`IDHOST_PLUGIN_DIR`, else the config's `plugin_dir`,
/// else the directory of the `idhost` executable (where `cargo build` puts the plugins too),
/// else `/usr/lib/idhost/plugins`.
pub fn resolve_dir(flag: Option<&Path>, config: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag.or(config) {
        return dir.to_owned();
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        let has_plugins = std::fs::read_dir(&dir)
            .map(|mut entries| entries.any(|e| e.is_ok_and(|e| is_library(&e.path()))))
            .unwrap_or(false);
        if has_plugins {
            return dir;
        }
    }
    PathBuf::from("/usr/lib/idhost/plugins")
}

impl From<DiscoveryError> for crate::exit::CommandError {
    fn from(err: DiscoveryError) -> Self {
        crate::exit::CommandError::plugin(anyhow::Error::new(err).context("cannot list plugins"))
    }
}
