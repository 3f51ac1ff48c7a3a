//! Colour on the terminal, and only there: `--color auto|always|never` (`IDHOST_COLOR`); in
//! `auto`, a stream gets colour when it is a terminal and `NO_COLOR` is not set
//! (<https://no-color.org>). Piped output and files never carry escape codes unless asked.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always, even into a pipe.
    Always,
    /// Never.
    Never,
}

/// Whether stdout and stderr get colour.
#[derive(Debug, Clone, Copy, Default)]
struct Streams {
    stdout: bool,
    stderr: bool,
}

static STREAMS: OnceLock<Streams> = OnceLock::new();

/// Decides colour for both streams once, at start-up.
pub fn init(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let decide = |terminal: bool| match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && !no_color,
    };
    let _ = STREAMS.set(Streams {
        stdout: decide(std::io::stdout().is_terminal()),
        stderr: decide(std::io::stderr().is_terminal()),
    });
}

/// Whether stderr gets colour (log lines, the sync summary).
pub fn stderr() -> bool {
    STREAMS.get().copied().unwrap_or_default().stderr
}

/// Whether stdout gets colour (tables).
pub fn stdout() -> bool {
    STREAMS.get().copied().unwrap_or_default().stdout
}

/// A style to paint text with.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    /// Column headers.
    Bold,
    /// Success.
    Green,
    /// Failure.
    Red,
    /// Something to look at.
    Yellow,
}

/// `text` in `style` when `enabled`, else `text` unchanged.
pub fn paint(text: &str, style: Style, enabled: bool) -> String {
    if !enabled || text.is_empty() {
        return text.to_owned();
    }
    let code = match style {
        Style::Bold => "1",
        Style::Green => "32",
        Style::Red => "31",
        Style::Yellow => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
