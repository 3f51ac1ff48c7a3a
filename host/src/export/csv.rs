//! The CSV export: an Oomnitza-style people table as one UTF-8 CSV file.
//!
//! The file is the state: each commit reads it, merges the sync into its rows (see
//! [`super`]) and writes the whole table to a temporary file beside it, which is synced
//! and renamed over the target, so readers see the previous or the new table, never a torn
//! one, and a failed sync or a crash leaves the previous table. Columns: the mapped ones in
//! the mapping's (name) order, then `active`, `source`, `synced_at`. Quoting is the csv crate's
//! (only fields that need it: separators, quotes, line breaks), records end in `\n`, and an
//! empty field is an absent value. A new file is created readable by its owner only (people
//! data); an existing file keeps its permissions.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::engine::Report;
use super::error::ExportError;
use super::store::{ExportStore, Merge, blocking};
use super::table::{Layout, TargetTable};
use crate::config::SinkConfig;
use crate::sinks::SinkError;

/// A CSV file holding an export.
pub(super) struct CsvStore {
    path: PathBuf,
}

impl CsvStore {
    /// The store of the CSV sink `config`.
    pub(super) fn new(config: &SinkConfig) -> Result<Self, SinkError> {
        let Some(path) = config.path.clone().filter(|p| p.as_os_str() != "-") else {
            return Err(SinkError::Other {
                sink: config.name.clone(),
                message: "a csv export needs a file `path` (it reads the file back on the next sync, so `-` cannot work)".into(),
            });
        };
        Ok(Self { path })
    }
}

#[async_trait]
impl ExportStore for CsvStore {
    fn target(&self) -> String {
        self.path.display().to_string()
    }

    async fn transact(&self, columns: &[String], merge: Merge) -> Result<Report, ExportError> {
        let (path, columns) = (self.path.clone(), columns.to_vec());
        blocking(move || {
            let mut table = read(&path, &columns)?;
            let report = merge(&mut table);
            write_atomically(&path, &table)?;
            Ok(report)
        })
        .await
    }
}

/// The table stored at `path` (empty when there is no file yet).
fn read(path: &Path, columns: &[String]) -> Result<TargetTable, ExportError> {
    let csv_err = |source| ExportError::Csv {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TargetTable::empty(columns));
        }
        Err(source) => {
            return Err(ExportError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(std::io::BufReader::new(file));
    let stored: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut table = TargetTable::empty(columns);
    if stored.iter().all(String::is_empty) {
        return Ok(table);
    }
    let layout = Layout::new(&stored, columns);
    super::store::check_layout(&path.display().to_string(), &stored, &layout, columns)?;
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let fields: Vec<Option<String>> = record
            .iter()
            .map(|f| Some(formula_unsafe(f).to_owned()))
            .collect();
        table.rows.push(layout.row(&fields));
    }
    Ok(table)
}

/// Whether `text`, past its leading `'`s, begins like a formula (DESIGN §7.3).
fn formula_like(text: &str) -> bool {
    text.trim_start_matches('\'')
        .starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// `text` as a cell: a leading `'` when a spreadsheet would take it for a formula (a value that
/// already starts with `'`s before one gets one more, so reading it back is exact).
fn formula_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if formula_like(text) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A cell read back: the `'` [`formula_safe`] added, removed.
fn formula_unsafe(text: &str) -> &str {
    match text.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => text,
    }
}

/// Writes `table` to a temporary file beside `path`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, table: &TargetTable) -> Result<(), ExportError> {
    let io = |p: &Path, source| ExportError::Io {
        path: p.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export.csv".into());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| io(&dir, e))?;
    {
        let mut writer = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(std::io::BufWriter::new(temp.as_file()));
        let csv_err = |source| ExportError::Csv {
            path: temp.path().to_owned(),
            source,
        };
        writer.write_record(table.header()).map_err(csv_err)?;
        for row in &table.rows {
            let fields = row
                .values
                .iter()
                .map(|v| v.as_deref().unwrap_or(""))
                .chain([
                    super::table::bool_text(row.active),
                    row.source.as_str(),
                    row.synced_at.as_str(),
                ]);
            writer
                .write_record(fields.map(|f| formula_safe(f).into_owned()))
                .map_err(csv_err)?;
        }
        let mut inner = writer
            .into_inner()
            .map_err(|e| io(temp.path(), e.into_error()))?;
        inner.flush().map_err(|e| io(temp.path(), e))?;
    }
    temp.as_file().sync_all().map_err(|e| io(temp.path(), e))?;
    if let Ok(meta) = std::fs::metadata(path) {
        // Keep whatever access the operator gave the existing file.
        let _ = std::fs::set_permissions(temp.path(), meta.permissions());
    }
    temp.persist(path).map_err(|e| io(path, e.error))?;
    // Make the rename itself durable (best effort: not every platform can sync a directory).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_quoted_on_write_and_read_back_exactly() {
        for value in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "'=x",
            "''+y",
            "plain",
            "'plain",
            "",
        ] {
            let cell = formula_safe(value);
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell}"
            );
            assert_eq!(formula_unsafe(&cell), value);
        }
    }
    use crate::export::table::Row;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_table_round_trips_with_quoting_and_utf8() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/people.csv");
        let columns = names(&["Email", "Name"]);
        let mut table = TargetTable::empty(&columns);
        table.rows.push(Row {
            values: vec![
                Some("zoë@example.com".into()),
                Some("Doe, \"Jo\"\nJr.".into()),
            ],
            active: false,
            source: "clickwrap".into(),
            synced_at: "2024-05-01T02:00:00Z".into(),
        });
        table.rows.push(Row {
            values: vec![Some("a@example.com".into()), None],
            active: true,
            source: "clickwrap".into(),
            synced_at: "2024-05-01T02:00:00Z".into(),
        });
        write_atomically(&path, &table).expect("written");
        let text = std::fs::read_to_string(&path).expect("utf-8");
        assert_eq!(
            text,
            "Email,Name,active,source,synced_at\n\
             zoë@example.com,\"Doe, \"\"Jo\"\"\nJr.\",false,clickwrap,2024-05-01T02:00:00Z\n\
             a@example.com,,true,clickwrap,2024-05-01T02:00:00Z\n"
        );
        assert_eq!(read(&path, &columns).expect("read"), table);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temp file is left behind");
    }

    #[test]
    fn a_byte_order_mark_and_a_reordered_header_still_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.csv");
        std::fs::write(
            &path,
            "\u{feff}Name,active,Email,source,synced_at\r\nAlex,false,a@x,corp,T\r\n",
        )
        .expect("write");
        let table = read(&path, &names(&["Email", "Name"])).expect("read");
        assert_eq!(table.rows.len(), 1);
        assert_eq!(
            table.rows[0].values,
            vec![Some("a@x".into()), Some("Alex".into())]
        );
        assert!(!table.rows[0].active);
    }

    #[test]
    fn an_unrelated_file_is_not_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.csv");
        std::fs::write(&path, "x,y\n1,2\n").expect("write");
        let err = read(&path, &names(&["Email"])).expect_err("refused");
        assert!(
            err.to_string().contains("none of this export's columns"),
            "{err}"
        );
    }
}
