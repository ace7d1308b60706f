//! CSV import and export of a list's subscribers.
//!
//! An import is checked whole before anything is written: one bad row
//! refuses the file, with every bad row listed, so a list never holds half
//! of an import. The header row names the columns: `email` (required),
//! `name` (optional); any other column becomes a field of the
//! subscriber's `data`, usable in templates as `subscriber.data.<column>`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::channels::check_email;

/// One good row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub email: String,
    pub name: String,
    pub data: Map<String, Value>,
}

/// A refused row: its line in the file (the header is line 1) and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRow {
    pub line: u64,
    pub error: String,
}

/// Why a file was refused.
#[derive(Debug, PartialEq)]
pub enum ImportError {
    /// The file as a whole: no header, no `email` column, too many rows.
    File(String),
    Rows(Vec<BadRow>),
}

/// Columns an export writes that an import does not take as data.
const EXPORT_ONLY: [&str; 2] = ["status", "created_at"];

/// Rows reported at most (the rest are counted).
const MAX_REPORTED: usize = 100;

/// The rows of `csv`, at most `max_rows`, or why the file is refused.
pub fn parse(csv: &[u8], max_rows: usize) -> Result<Vec<Row>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(csv);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError::File(format!("the header row does not parse: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let email_col = headers
        .iter()
        .position(|h| h == "email")
        .ok_or_else(|| ImportError::File("the header row needs an `email` column".into()))?;
    let name_col = headers.iter().position(|h| h == "name");
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut bad_count = 0usize;
    let mut seen = BTreeSet::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let mut refuse = |error: String| {
            bad_count += 1;
            if bad.len() < MAX_REPORTED {
                bad.push(BadRow { line, error });
            }
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                refuse(format!("does not parse: {e}"));
                continue;
            }
        };
        let email = record.get(email_col).unwrap_or("").to_ascii_lowercase();
        if let Err(e) = check_email(&email) {
            refuse(e);
            continue;
        }
        if !seen.insert(email.clone()) {
            refuse(format!("{email} appears twice in the file"));
            continue;
        }
        let name = name_col
            .and_then(|c| record.get(c))
            .unwrap_or("")
            .to_owned();
        let data = headers
            .iter()
            .enumerate()
            .filter(|(c, h)| {
                *c != email_col && Some(*c) != name_col && !EXPORT_ONLY.contains(&h.as_str())
            })
            .filter_map(|(c, h)| Some((h.clone(), Value::String(record.get(c)?.to_owned()))))
            .collect();
        rows.push(Row { email, name, data });
        if rows.len() > max_rows {
            return Err(ImportError::File(format!(
                "at most {max_rows} rows per import; split the file"
            )));
        }
    }
    if bad_count > 0 {
        if bad_count > bad.len() {
            bad.push(BadRow {
                line: 0,
                error: format!("{} more bad rows", bad_count - bad.len()),
            });
        }
        return Err(ImportError::Rows(bad));
    }
    Ok(rows)
}

/// A subscriber as exported.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub email: String,
    pub name: String,
    pub status: String,
    pub created_at: i64,
    pub data: Map<String, Value>,
}

/// The CSV text of `rows`: fixed columns, then one per data field any row
/// has (so an export re-imports).
pub fn export(rows: &[ExportRow]) -> Result<String, String> {
    let extra: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.data.keys().map(String::as_str))
        .filter(|k| !["email", "name", "status", "created_at"].contains(k))
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["email", "name", "status", "created_at"];
    header.extend(extra.iter().copied());
    writer.write_record(&header).map_err(|e| e.to_string())?;
    for r in rows {
        let by_key: BTreeMap<&str, String> = r
            .data
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.as_str(), text)
            })
            .collect();
        let mut record = vec![
            r.email.clone(),
            r.name.clone(),
            r.status.clone(),
            r.created_at.to_string(),
        ];
        record.extend(
            extra
                .iter()
                .map(|k| by_key.get(k).cloned().unwrap_or_default()),
        );
        writer.write_record(&record).map_err(|e| e.to_string())?;
    }
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_with_extra_columns() {
        let rows = parse(
            b"Email,Name,City\nAda@Example.org, Ada ,Paris\nbob@example.org,,\n",
            10,
        )
        .expect("good file");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].email, "ada@example.org");
        assert_eq!(rows[0].name, "Ada");
        assert_eq!(rows[0].data["city"], "Paris");
        assert_eq!(rows[1].name, "");
    }

    #[test]
    fn every_bad_row_is_reported_and_the_file_refused() {
        let err = parse(
            b"email,name\nada@example.org,Ada\nnot-an-address,X\nada@example.org,Again\n\"unclosed,Y\n",
            10,
        )
        .expect_err("bad rows");
        let ImportError::Rows(bad) = err else {
            panic!("rows expected: {err:?}");
        };
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(&lines[..2], &[3, 4], "{bad:?}");
        assert!(bad[1].error.contains("twice"));
    }

    #[test]
    fn the_file_needs_an_email_column_and_a_size() {
        assert!(matches!(
            parse(b"name\nAda\n", 10),
            Err(ImportError::File(_))
        ));
        let many = "email\n".to_owned()
            + &(0..5)
                .map(|i| format!("u{i}@example.org\n"))
                .collect::<String>();
        assert!(matches!(
            parse(many.as_bytes(), 4),
            Err(ImportError::File(_))
        ));
        assert_eq!(parse(many.as_bytes(), 5).map(|r| r.len()), Ok(5));
    }

    #[test]
    fn an_export_reimports() {
        let mut data = Map::new();
        data.insert("city".into(), Value::String("Lyon, FR".into()));
        let csv = export(&[ExportRow {
            email: "ada@example.org".into(),
            name: "Ada".into(),
            status: "confirmed".into(),
            created_at: 5,
            data,
        }])
        .expect("csv");
        assert!(
            csv.starts_with("email,name,status,created_at,city\n"),
            "{csv}"
        );
        let back = parse(csv.as_bytes(), 10).expect("reimports");
        assert_eq!(back[0].data["city"], "Lyon, FR");
        assert_eq!(back[0].data.len(), 1, "status and created_at are not data");
    }
}
