//! `idhost init <connector>`: writes a commented config for one connector (to `-c FILE`, default
//! `idhost.toml`), never over an existing file unless `--force`.
//!
//! The shipped connectors get their example from `config/` (the same files the tests parse);
//! any other installed plugin gets one made from its manifest: every settings key it declares,
//! with its description, secrets as `${VARIABLE}` references.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{CommandError, Outcome};

/// The shipped examples, by connector name.
const EXAMPLES: [(&str, &str); 3] = [
    ("ironclad", include_str!("../../../config/ironclad.toml")),
    ("entra", include_str!("../../../config/entra.toml")),
    ("clickwrap", include_str!("../../../config/clickwrap.toml")),
];

/// What replaces the examples' `plugin_dir` (which points into this repository's build).
const PLUGIN_DIR_LINE: &str = "# plugin_dir = \"/usr/lib/idhost/plugins\"   # default: beside the idhost executable, then /usr/lib/idhost/plugins";

/// An example with its `plugin_dir` line commented out: a new file lives anywhere.
fn shipped(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("plugin_dir = ") {
                PLUGIN_DIR_LINE
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A config from an installed plugin's manifest.
fn from_manifest(manifest: &idhost_connector_sdk::Manifest) -> String {
    let name = &manifest.name;
    let mut out = String::new();
    let _ = writeln!(out, "# {name}: {}", manifest.description);
    let _ = writeln!(out, "#");
    let _ = writeln!(
        out,
        "#   idhost check -c idhost.toml --offline   # no network, no secret"
    );
    let _ = writeln!(out, "#   idhost sync  -c idhost.toml");
    let _ = writeln!(out, "#");
    let _ = writeln!(
        out,
        "# Relative paths are relative to this file's directory. ${{VAR}} reads the environment,\n# ${{file:/path}} a file; both are redacted from logs when they hold a credential."
    );
    let _ = writeln!(out, "{PLUGIN_DIR_LINE}");
    let _ = writeln!(out, "state_path = \"idhost-state.db\"");
    let _ = writeln!(out);
    let _ = writeln!(out, "[sources.{}]", source_name(name));
    let _ = writeln!(out, "connector = \"{name}\"");
    let types: Vec<&str> = manifest
        .resource_types
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let _ = writeln!(out, "# resource_types = {types:?}   # optional subset");
    let _ = writeln!(
        out,
        "# schedule = \"24h\"                 # for `idhost run`"
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "[sources.{}.settings]", source_name(name));
    for key in &manifest.config_keys {
        let value = if key.secret {
            format!(
                "\"${{{}_{}}}\"",
                name.to_uppercase().replace('-', "_"),
                key.name.to_uppercase()
            )
        } else {
            "\"...\"".to_owned()
        };
        let prefix = if key.required { "" } else { "# " };
        let _ = writeln!(out, "{prefix}{} = {value}", key.name);
        let _ = writeln!(
            out,
            "#   {}{}{}",
            key.description,
            if key.required { " (required)" } else { "" },
            if key.secret {
                "; a secret, redacted everywhere"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "[sinks.local]");
    let _ = writeln!(out, "type = \"sqlite\"");
    let _ = writeln!(out, "path = \"idhost.db\"");
    let _ = writeln!(out, "inputs = [\"*\"]");
    let _ = writeln!(
        out,
        "# records = [\"resource\", \"entitlement\", \"grant\", \"event\", \"sync_run\"]   # add \"event\" for `idhost query diff`"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# [identity]                      # for `idhost query people` and `orphans`"
    );
    let _ = writeln!(out, "# authoritative = \"{}\"", source_name(name));
    let _ = writeln!(out, "# match = [\"email\", \"login\"]");
    out
}

/// A valid source name from a connector name.
fn source_name(connector: &str) -> String {
    let name: String = connector
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() { "main".into() } else { name }
}

pub(crate) fn run(
    config: Option<&Path>,
    plugin_dir: Option<&Path>,
    connector: &str,
    force: bool,
) -> Result<Outcome, CommandError> {
    let path = config.map_or_else(|| PathBuf::from("idhost.toml"), Path::to_owned);
    let text = match EXAMPLES.iter().find(|(name, _)| *name == connector) {
        Some((_, text)) => shipped(text),
        None => {
            let registry = crate::plugins::Registry::for_config(plugin_dir, None)?;
            match registry.get(connector) {
                Some(plugin) => from_manifest(plugin.manifest()),
                None => {
                    let mut known: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
                    known.extend(registry.names());
                    known.sort_unstable();
                    known.dedup();
                    return Err(CommandError::usage(anyhow!(
                        "no connector `{connector}`: it is neither shipped nor installed in {}; connectors: {}",
                        registry.dir.display(),
                        known.join(", ")
                    )));
                }
            }
        }
    };
    if path.exists() && !force {
        return Err(CommandError::usage(anyhow!(
            "{} exists; pass --force to replace it, or -c OTHER.toml to write another file",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CommandError::failed(anyhow!("{}: {e}", dir.display())))?;
    }
    std::fs::write(&path, text)
        .map_err(|e| CommandError::failed(anyhow!("writing {}: {e}", path.display())))?;
    eprintln!(
        "wrote {}: fill in the settings, then `idhost check -c {} --offline`",
        path.display(),
        path.display()
    );
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_example_is_a_valid_config_once_written_anywhere() {
        for (name, text) in EXAMPLES {
            let written = shipped(text);
            assert!(!written.contains("\nplugin_dir = "), "{name}");
            let parsed = crate::config::parse_with(
                Path::new("/tmp/somewhere/idhost.toml"),
                written,
                &|_| Some("12345".to_owned()),
                crate::config::Resolve::All,
            );
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        }
    }
}
