//! `${VAR}` and `${file:/path}` in config strings.
//!
//! Values that came from interpolation are credentials more often than not, so every one is
//! recorded for redaction.

use std::io::Read as _;
use std::path::Path;

/// Most bytes a `${file:PATH}` reference reads. It holds one value (a secret, a token, a
/// certificate), and a path such as `/dev/zero` must fail instead of reading until memory runs
/// out (found while fuzzing `config::parse`).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    /// `${VAR}` names an unset variable.
    MissingVar(String),
    /// `${file:PATH}` could not be read.
    File { path: String, reason: String },
    /// `${` without a closing `}`, or an empty name.
    Malformed(String),
}

impl InterpolationError {
    /// The text to look for in the file to locate the error.
    pub(crate) fn needle(&self) -> String {
        match self {
            InterpolationError::MissingVar(name) => format!("${{{name}}}"),
            InterpolationError::File { path, .. } => format!("${{file:{path}}}"),
            InterpolationError::Malformed(text) => text.clone(),
        }
    }
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpolationError::MissingVar(name) => write!(
                f,
                "environment variable `{name}` is not set (referenced as `${{{name}}}`); set it, or write the value literally"
            ),
            InterpolationError::File { path, reason } => {
                write!(f, "cannot read `${{file:{path}}}`: {reason}")
            }
            InterpolationError::Malformed(text) => write!(
                f,
                "malformed reference `{text}`: write `${{NAME}}` for a variable, `${{file:/path}}` for a file, `$${{` for a literal `${{`"
            ),
        }
    }
}

/// Expands references in `input`. `lookup` reads environment variables (injected for tests).
/// Returns the expanded text and the values substituted.
pub(crate) fn expand(
    input: &str,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), InterpolationError> {
    if !input.contains('$') {
        return Ok((input.to_owned(), Vec::new()));
    }
    let mut out = String::with_capacity(input.len());
    let mut substituted = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(InterpolationError::Malformed(tail.to_owned()));
        };
        let reference = &body_start[..end];
        let value = if let Some(path) = reference.strip_prefix("file:") {
            let text =
                read_file(&base_dir.join(path)).map_err(|reason| InterpolationError::File {
                    path: path.to_owned(),
                    reason,
                })?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        } else {
            let valid = !reference.is_empty()
                && reference
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(InterpolationError::Malformed(format!("${{{reference}}}")));
            }
            lookup(reference).ok_or_else(|| InterpolationError::MissingVar(reference.to_owned()))?
        };
        out.push_str(&value);
        if !value.is_empty() {
            substituted.push(value);
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok((out, substituted))
}

/// The text of a referenced file, at most [`MAX_FILE_BYTES`] of it.
fn read_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "it holds more than {MAX_FILE_BYTES} bytes; a referenced file holds one value, \
             such as a secret"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cr3t".to_owned())
    }

    #[test]
    fn expands_variables_files_and_escapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret.txt"), "from-file\n").expect("write");
        let (out, subs) = expand(
            "Bearer ${TOKEN} / ${file:secret.txt} / $${LITERAL} / $5",
            dir.path(),
            &env,
        )
        .expect("expands");
        assert_eq!(out, "Bearer s3cr3t / from-file / ${LITERAL} / $5");
        assert_eq!(subs, vec!["s3cr3t".to_owned(), "from-file".to_owned()]);
    }

    #[test]
    fn missing_variable_and_malformed_references_are_errors() {
        let dir = Path::new(".");
        assert_eq!(
            expand("${NOPE}", dir, &env),
            Err(InterpolationError::MissingVar("NOPE".into()))
        );
        assert!(matches!(
            expand("${UNCLOSED", dir, &env),
            Err(InterpolationError::Malformed(_))
        ));
        assert!(matches!(
            expand("${bad name}", dir, &env),
            Err(InterpolationError::Malformed(_))
        ));
        assert!(matches!(
            expand("${file:does-not-exist}", dir, &env),
            Err(InterpolationError::File { .. })
        ));
    }

    // Issue 8 (fuzzing): `${file:/dev/zero}` read until memory ran out.
    #[test]
    fn an_endless_referenced_file_is_an_error_not_an_endless_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = vec![b'x'; MAX_FILE_BYTES as usize + 1];
        std::fs::write(dir.path().join("big"), big).expect("write");
        let err = expand("${file:big}", dir.path(), &env).expect_err("too large");
        assert!(err.to_string().contains("more than"), "{err}");
        if Path::new("/dev/zero").exists() {
            assert!(expand("${file:/dev/zero}", dir.path(), &env).is_err());
        }
    }
}
