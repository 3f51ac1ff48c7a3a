//! The config file's text, kept after parsing so that any later error (a key a plugin rejects,
//! a missing plugin) can be located in it.

use std::path::{Path, PathBuf};

use super::error::Located;

/// The config file's text, kept to turn byte offsets and keys into line:col.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub(super) path: PathBuf,
    pub(super) text: String,
}

impl SourceText {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, col)
    }

    /// An error at byte `offset`.
    pub fn at(&self, offset: usize, message: impl Into<String>) -> Located {
        let (line, col) = self.line_col(offset);
        Located {
            path: self.path.clone(),
            line: Some(line),
            col: Some(col),
            message: message.into(),
        }
    }

    /// An error at the first occurrence of `needle` after `from` (or unlocated).
    pub fn at_text(&self, from: usize, needle: &str, message: impl Into<String>) -> Located {
        let from = from.min(self.text.len());
        match self.text[from..]
            .find(needle)
            .or_else(|| self.text.find(needle))
        {
            Some(i) if self.text[from..].contains(needle) => self.at(from + i, message),
            Some(i) => self.at(i, message),
            None => self.unlocated(message),
        }
    }

    /// An error at the key `key = ...` inside the table `[header]`.
    pub fn at_key(&self, header: &str, key: &str, message: impl Into<String>) -> Located {
        let header_line = format!("[{header}]");
        let start = self
            .text
            .find(&header_line)
            .map_or(0, |i| i + header_line.len());
        let mut offset = start;
        for line in self.text[start..].split_inclusive('\n') {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') {
                break;
            }
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                return self.at(offset + (line.len() - trimmed.len()), message);
            }
            offset += line.len();
        }
        self.at_text(start, key, message)
    }

    /// An error about the file as a whole.
    pub fn unlocated(&self, message: impl Into<String>) -> Located {
        Located {
            path: self.path.clone(),
            line: None,
            col: None,
            message: message.into(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
