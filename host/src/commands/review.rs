//! `idhost review [--source S]… -o FILE.csv|FILE.xlsx`: the access review (DESIGN §7.2).

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{CommandError, Outcome};
use crate::inspect::db::{SinkDb, choose};
use crate::inspect::review::{self, Format};

pub(crate) fn run(
    path: &Path,
    sources: &[String],
    sink: Option<&str>,
    output: Option<&str>,
) -> Result<Outcome, CommandError> {
    let Some(file) = output.map(str::trim).filter(|o| !o.is_empty()) else {
        return Err(CommandError::usage(anyhow!(
            "review writes a file: pass -o FILE.csv or -o FILE.xlsx"
        )));
    };
    let file = PathBuf::from(file);
    let Some(format) = Format::of(&file) else {
        return Err(CommandError::usage(anyhow!(
            "-o {}: the review is written as .csv or .xlsx, chosen by the file's extension",
            file.display()
        )));
    };
    let config = super::query::load_for_reading(path)?;
    for wanted in sources {
        if !config.sources.iter().any(|s| &s.name == wanted) {
            let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(CommandError::usage(anyhow!(
                "--source `{wanted}` is not a source in {}; sources are: {}",
                path.display(),
                known.join(", ")
            )));
        }
    }
    let chosen = choose(&config, sink)?;
    let scope: Vec<String> = if sources.is_empty() {
        config
            .sources
            .iter()
            .filter(|s| chosen.inputs.includes(&s.name))
            .map(|s| s.name.clone())
            .collect()
    } else {
        let mut named = sources.to_vec();
        named.sort();
        named.dedup();
        named
    };
    let db = SinkDb::open(&config, sink)?;
    let snapshots = review::snapshots(&db, &scope, !sources.is_empty())?;
    let reviewed = review::write(&db, &snapshots, &file, format)?;
    for r in &reviewed {
        eprintln!(
            "{}: {} effective grants of {} principals (snapshot of {})",
            r.source, r.rows, r.principals, r.synced_at
        );
    }
    println!("{}", file.display());
    Ok(Outcome::Success)
}
