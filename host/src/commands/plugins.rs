//! `idhost plugins [--output table|json|csv]` (`--json` is `--output json`).

use std::path::Path;

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::exit::{CommandError, Outcome};
use crate::inspect::output::Rows;

#[derive(Serialize)]
struct PluginRow<'a> {
    name: &'a str,
    version: &'a str,
    interface_version: u32,
    path: String,
    resource_types: Vec<&'a str>,
    capabilities: Vec<&'a str>,
    description: &'a str,
}

pub(crate) fn run(flag: Option<&Path>, format: OutputFormat) -> Result<Outcome, CommandError> {
    let registry = crate::plugins::Registry::for_config(flag, None)?;
    let rows: Vec<PluginRow<'_>> = registry
        .plugins()
        .map(|p| {
            let m = p.manifest();
            PluginRow {
                name: &m.name,
                version: &m.version,
                interface_version: p.interface_version(),
                path: p.path().display().to_string(),
                resource_types: m.resource_types.iter().map(|r| r.name.as_str()).collect(),
                capabilities: m.capabilities.iter().map(|c| c.as_str()).collect(),
                description: &m.description,
            }
        })
        .collect();
    if format == OutputFormat::Csv {
        let mut table = Rows::new(&[
            "name",
            "version",
            "interface_version",
            "path",
            "resource_types",
            "capabilities",
            "description",
        ]);
        for r in &rows {
            table.push(vec![
                r.name.into(),
                r.version.into(),
                r.interface_version.into(),
                r.path.clone().into(),
                r.resource_types.join(",").into(),
                r.capabilities.join(",").into(),
                r.description.into(),
            ]);
        }
        crate::inspect::output::print(&table, format)
            .map_err(|e| CommandError::failed(anyhow::anyhow!("writing the list: {e}")))?;
        for err in &registry.errors {
            eprintln!("warning: {err}");
        }
    } else if format == OutputFormat::Json {
        let errors: Vec<String> = registry.errors.iter().map(ToString::to_string).collect();
        let doc = serde_json::json!({ "dir": registry.dir, "plugins": rows, "errors": errors });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!("plugins in {}", registry.dir.display());
        println!(
            "{:<12} {:<9} {:<4} {:<28} CAPABILITIES",
            "NAME", "VERSION", "ABI", "RESOURCE TYPES"
        );
        for r in &rows {
            println!(
                "{:<12} {:<9} {:<4} {:<28} {}",
                r.name,
                r.version,
                r.interface_version,
                r.resource_types.join(","),
                if r.capabilities.is_empty() {
                    "-".to_owned()
                } else {
                    r.capabilities.join(",")
                }
            );
        }
        for err in &registry.errors {
            eprintln!("warning: {err}");
        }
    }
    Ok(Outcome::Success)
}
