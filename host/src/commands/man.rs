//! `idhost man [--dir DIR]`: man pages from the command-line definition (clap_mangen), so they
//! never disagree with `--help`.

use std::path::Path;

use anyhow::anyhow;
use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::exit::{CommandError, Outcome};

pub(crate) fn run(dir: Option<&Path>) -> Result<Outcome, CommandError> {
    let command = Cli::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .map_err(|e| CommandError::failed(anyhow!("rendering the man page: {e}")))?;
        super::output::write_stdout(&page)?;
        return Ok(Outcome::Success);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| CommandError::failed(anyhow!("{}: {e}", dir.display())))?;
    clap_mangen::generate_to(command, dir).map_err(|e| {
        CommandError::failed(anyhow!("writing man pages into {}: {e}", dir.display()))
    })?;
    println!("{}", dir.display());
    Ok(Outcome::Success)
}
