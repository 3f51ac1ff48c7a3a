//! Rows with named columns, printed as aligned columns, one JSON array of objects, or CSV.
//!
//! A cell is a JSON value: text, `null`, or a list (`via`). In a table and in CSV a list is its
//! items joined by ` > ` (ids hold no whitespace, so the join is unambiguous) and `null` is
//! empty. Every CSV (and XLSX) cell that a spreadsheet would read as a formula gets a leading
//! `'` (DESIGN §7.3).

use std::borrow::Cow;
use std::io::Write;

use serde_json::{Map, Value};

use crate::cli::OutputFormat;
use crate::color::{self, Style};

/// Rows of one answer.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Column names (the JSON keys).
    pub columns: Vec<&'static str>,
    /// One value per column per row.
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// No rows yet.
    pub fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (as many values as columns).
    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }
}

/// `Some(text)` as a JSON string, `None` as `null`.
pub fn text_or_null(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

/// A list of ids as JSON (`null` when `None`: a direct grant).
pub fn via_value(via: Option<&[String]>) -> Value {
    via.map_or(Value::Null, |ids| {
        Value::Array(ids.iter().cloned().map(Value::String).collect())
    })
}

/// A cell as plain text (tables and CSV).
pub fn cell_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Null => Cow::Borrowed(""),
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(items) => Cow::Owned(
            items
                .iter()
                .map(|v| cell_text(v).into_owned())
                .collect::<Vec<_>>()
                .join(" > "),
        ),
        other => Cow::Owned(other.to_string()),
    }
}

/// `text` with a leading `'` when a spreadsheet would take it for a formula: it begins with
/// `=`, `+`, `-`, `@`, a tab or a carriage return (OWASP, "CSV Injection").
pub fn formula_safe(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` with every control character (ESC of an ANSI sequence, CR, LF, BEL, …) written as
/// its escape (`\u{1b}`, `\r`), so upstream data cannot move the cursor, recolour or rewrite
/// a terminal (DESIGN §7.3); tables only (JSON escapes them itself, CSV quotes them).
pub fn terminal_safe(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        text
    }
}

/// Prints `rows` on stdout in `format`; a table ends with a row count on stderr. A reader
/// that went away (`| head`) is not an error.
pub fn print(rows: &Rows, format: OutputFormat) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = write(&mut out, rows, format, color::stdout()).and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    }
    if format == OutputFormat::Table {
        eprintln!("({} rows)", rows.rows.len());
    }
    Ok(())
}

/// Writes `rows` in `format` (`colour`: bold table headers).
pub fn write(
    out: &mut dyn Write,
    rows: &Rows,
    format: OutputFormat,
    colour: bool,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Json => {
            let objects: Vec<Value> = rows
                .rows
                .iter()
                .map(|row| {
                    let object: Map<String, Value> = rows
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| ((*c).to_owned(), v.clone()))
                        .collect();
                    Value::Object(object)
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &objects)?;
            writeln!(out)
        }
        OutputFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(&rows.columns)?;
            for row in &rows.rows {
                csv.write_record(row.iter().map(|v| formula_safe(&cell_text(v)).into_owned()))?;
            }
            csv.flush()
        }
        OutputFormat::Table => {
            let texts: Vec<Vec<Cow<'_, str>>> = rows
                .rows
                .iter()
                .map(|row| row.iter().map(|v| terminal_safe(cell_text(v))).collect())
                .collect();
            let mut widths: Vec<usize> = rows.columns.iter().map(|c| c.len()).collect();
            for row in &texts {
                for (w, v) in widths.iter_mut().zip(row) {
                    *w = (*w).max(v.chars().count().min(60));
                }
            }
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            let header = line(rows.columns.iter().map(|c| c.to_uppercase()).collect());
            writeln!(out, "{}", color::paint(&header, Style::Bold, colour))?;
            for row in texts {
                writeln!(
                    out,
                    "{}",
                    line(row.into_iter().map(Cow::into_owned).collect())
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_in_tables() {
        assert_eq!(
            terminal_safe(Cow::Borrowed("a\u{1b}[31mred\r\nb")),
            "a\\u{1b}[31mred\\r\\nb"
        );
        assert_eq!(terminal_safe(Cow::Borrowed("plain é")), "plain é");
    }

    #[test]
    fn formula_like_cells_get_a_leading_quote() {
        for bad in ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx"] {
            assert_eq!(formula_safe(bad), format!("'{bad}"));
        }
        assert_eq!(formula_safe("alex"), "alex");
        assert_eq!(formula_safe("a=b"), "a=b");
    }

    #[test]
    fn csv_neutralises_formulas_and_joins_via() {
        let mut rows = Rows::new(&["name", "via"]);
        rows.push(vec![
            Value::String("=HYPERLINK(\"x\")".into()),
            via_value(Some(&["group:g2".into(), "group:g1".into()])),
        ]);
        rows.push(vec![Value::String("ok".into()), Value::Null]);
        let mut out = Vec::new();
        write(&mut out, &rows, OutputFormat::Csv, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "name,via\n\"'=HYPERLINK(\"\"x\"\")\",group:g2 > group:g1\nok,\n"
        );
    }
}
