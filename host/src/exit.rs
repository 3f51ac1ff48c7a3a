//! How a command ends: the exit codes are a contract (scripts and supervisors act on them), so
//! they are named once here and every command returns one of them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a source or an operation failed |
//! | 2 | the config or the command line is invalid (also: a subcommand this build leaves out) |
//! | 3 | a plugin could not be loaded or found |

/// How a command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything worked.
    Success = 0,
    /// A source or operation failed.
    Failed = 1,
    /// The config or command line is invalid.
    Usage = 2,
    /// A plugin could not be loaded or found.
    Plugin = 3,
}

/// A command error with the exit code it maps to.
#[derive(Debug)]
pub struct CommandError {
    /// Exit code.
    pub outcome: Outcome,
    /// What to print.
    pub error: anyhow::Error,
}

impl CommandError {
    /// A config or usage error.
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            outcome: Outcome::Usage,
            error: error.into(),
        }
    }
    /// A plugin error.
    pub fn plugin(error: impl Into<anyhow::Error>) -> Self {
        Self {
            outcome: Outcome::Plugin,
            error: error.into(),
        }
    }
    /// A failure.
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self {
            outcome: Outcome::Failed,
            error: error.into(),
        }
    }
}
