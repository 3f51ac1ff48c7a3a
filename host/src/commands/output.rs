//! Writing a command's data to stdout (logs go to stderr).

use crate::exit::CommandError;

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), CommandError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CommandError::failed(
            anyhow::anyhow!("writing to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}
