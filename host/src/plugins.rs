//! Plugin discovery: the shared libraries of the connectors a config names (every one for
//! `idhost plugins`) are checked before they are mapped ([`crate::plugin_files`]), then loaded;
//! every failure is collected and reported (a bad file never hides the good ones, and never
//! fails a source that does not use it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use idhost_connector_sdk::host::{self, LoadError, PluginLibrary};

use crate::config::Config;
use crate::plugin_files::{self, FileError, is_library};

/// Why a plugin file is not usable: the loader refused it, or it failed a check before it was
/// mapped ([`crate::plugin_files`]).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The SDK's loader refused the file.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A check before mapping refused it.
    #[error(transparent)]
    File(#[from] FileError),
}

/// The plugins found in one directory.
#[derive(Debug, Default)]
pub struct Registry {
    /// Where they were looked for.
    pub dir: PathBuf,
    plugins: BTreeMap<String, PluginLibrary>,
    /// Files that failed to load, with why.
    pub errors: Vec<PluginError>,
    /// Why the plugin of a connector is not there although a file names it, by connector name.
    refused: BTreeMap<String, String>,
    /// Connector names the directory's files provide (by file name), loaded or not.
    named: Vec<String>,
}

/// Why discovery could not even start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The directory cannot be listed.
    #[error("plugin directory {dir} cannot be read")]
    Unreadable {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory itself is not trusted (the error names it).
    #[error("{0}")]
    Untrusted(FileError),
}

/// Which plugins to load: all (`idhost plugins`), or those of some connectors, with the
/// `plugin_sha256` pins of the sources that name them.
#[derive(Debug, Default)]
pub struct Wanted {
    /// `None`: every file.
    names: Option<BTreeMap<String, Vec<(String, String)>>>,
}

impl Wanted {
    /// Every file in the directory.
    pub fn all() -> Self {
        Self { names: None }
    }

    /// The connectors `config`'s sources name, with their pins.
    pub fn of(config: &Config) -> Self {
        let mut names: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for source in &config.sources {
            let pins = names
                .entry(crate::plugin_files::normalize(&source.connector))
                .or_default();
            if let Some(pin) = &source.plugin_sha256 {
                pins.push((source.name.clone(), pin.clone()));
            }
        }
        Self { names: Some(names) }
    }

    fn pins(&self, name: &str) -> Option<&[(String, String)]> {
        match &self.names {
            None => Some(&[]),
            Some(names) => names.get(name).map(Vec::as_slice),
        }
    }
}

impl Registry {
    /// The plugins for `config`: in the directory [`resolve_dir`] picks from the
    /// `--plugin-dir` flag and the config, only those of the connectors its sources name (all
    /// of them without a config). Files that fail fail only the sources that need them: they
    /// are logged (at debug level, or as warnings when a source's connector is missing;
    /// `idhost plugins` prints every one).
    pub fn for_config(
        flag: Option<&Path>,
        config: Option<&Config>,
    ) -> Result<Self, DiscoveryError> {
        let dir = resolve_dir(flag, config.and_then(|c| c.plugin_dir.as_deref()));
        let wanted = config.map_or_else(Wanted::all, Wanted::of);
        let registry = Self::discover_wanted(&dir, &wanted)?;
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

    /// Loads every library in `dir` (not recursively) that passes the checks.
    pub fn discover(dir: &Path) -> Result<Self, DiscoveryError> {
        Self::discover_wanted(dir, &Wanted::all())
    }

    /// Loads the libraries in `dir` (not recursively) that `wanted` asks for and that pass the
    /// checks of [`crate::plugin_files`]; no other file is mapped.
    pub fn discover_wanted(dir: &Path, wanted: &Wanted) -> Result<Self, DiscoveryError> {
        let entries = std::fs::read_dir(dir).map_err(|source| DiscoveryError::Unreadable {
            dir: dir.to_owned(),
            source,
        })?;
        plugin_files::check_trusted(dir, "plugin directory").map_err(DiscoveryError::Untrusted)?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_library(p))
            .collect();
        files.sort();
        let mut by_name: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        let mut registry = Registry {
            dir: dir.to_owned(),
            ..Registry::default()
        };
        for file in files {
            match plugin_files::connector_name_of(&file) {
                Some(name) => by_name.entry(name).or_default().push(file),
                None => registry.errors.push(PluginError::File(FileError::Damaged {
                    path: file,
                    reason: "its file name names no connector".to_owned(),
                })),
            }
        }
        registry.named = by_name.keys().cloned().collect();
        for (name, files) in by_name {
            let Some(pins) = wanted.pins(&name) else {
                continue;
            };
            if let [first, second, ..] = files.as_slice() {
                registry.refuse(
                    &name,
                    FileError::Duplicate {
                        name: name.clone(),
                        first: first.clone(),
                        second: second.clone(),
                    },
                );
                continue;
            }
            let Some(file) = files.into_iter().next() else {
                continue;
            };
            if let Err(err) = Self::check_file(&file, pins) {
                registry.refuse(&name, err);
                continue;
            }
            let started = std::time::Instant::now();
            match host::load(&file) {
                Ok(plugin) => {
                    let declared = plugin.manifest().name.clone();
                    tracing::debug!(
                        file = %file.display(),
                        connector = %declared,
                        micros = started.elapsed().as_micros() as u64,
                        "loaded plugin"
                    );
                    if plugin_files::normalize(&declared) != name {
                        registry.refuse(
                            &name,
                            FileError::Misnamed {
                                path: file.clone(),
                                named: name.clone(),
                                expected_file: plugin_files::file_name_for(&declared),
                                declared,
                            },
                        );
                        continue;
                    }
                    registry.plugins.insert(name, plugin);
                }
                Err(err) => {
                    registry.refused.insert(name, err.to_string());
                    registry.errors.push(PluginError::Load(err));
                }
            }
        }
        Ok(registry)
    }

    /// The checks before a file is mapped: trust, a complete ELF file, the pins.
    fn check_file(file: &Path, pins: &[(String, String)]) -> Result<(), FileError> {
        plugin_files::check_trusted(file, "plugin file")?;
        plugin_files::check_elf(file)?;
        if !pins.is_empty() {
            let found = plugin_files::sha256_of(file)?;
            if let Some((source_name, expected)) = pins.iter().find(|(_, pin)| *pin != found) {
                return Err(FileError::Pin {
                    path: file.to_owned(),
                    source_name: source_name.clone(),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        Ok(())
    }

    fn refuse(&mut self, name: &str, err: FileError) {
        self.refused.insert(name.to_owned(), err.to_string());
        self.errors.push(PluginError::File(err));
    }

    /// The plugin providing connector `name`.
    pub fn get(&self, name: &str) -> Option<&PluginLibrary> {
        self.plugins.get(&plugin_files::normalize(name))
    }

    /// Why connector `name` has no plugin although a file in the directory names it.
    pub fn refusal(&self, name: &str) -> Option<&str> {
        self.refused
            .get(&plugin_files::normalize(name))
            .map(String::as_str)
    }

    /// Why connector `name` has no plugin: the refusal of its file, or that no file provides
    /// it (with the ones that do and the file name looked for).
    pub fn explain_missing(&self, name: &str) -> String {
        if let Some(reason) = self.refusal(name) {
            return format!(
                "the plugin for connector `{name}` in {} was not loaded: {reason}",
                self.dir.display()
            );
        }
        format!(
            "no plugin provides connector `{name}` in {} (looked for {}); available: {}",
            self.dir.display(),
            plugin_files::file_name_for(name),
            if self.named.is_empty() {
                "none".to_owned()
            } else {
                self.named.join(", ")
            }
        )
    }

    /// All loaded plugins, by connector name.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginLibrary> {
        self.plugins.values()
    }

    /// Connector names the directory's files provide (loaded or not).
    pub fn names(&self) -> Vec<&str> {
        self.named.iter().map(String::as_str).collect()
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
