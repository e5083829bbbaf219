//! Query results as Athena gives them: rows of strings (`VarCharValue`), columns with Athena's
//! type names, and the CSV file written to the output location.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};

/// A result column, as `ResultSetMetadata.ColumnInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// The column's name.
    pub name: String,
    /// Athena's name of its type (`varchar`, `bigint`, `double`, `timestamp`, ...).
    pub type_name: String,
    /// Whether it may hold NULL.
    pub nullable: bool,
}

/// A value as Athena prints it; `None` is SQL NULL.
pub type Cell = Option<String>;

/// Athena's (Trino's) name for an Arrow type.
pub(crate) fn athena_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval day to second".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("array({})", athena_type(f.data_type()))
        }
        DataType::Map(..) => "map".into(),
        DataType::Struct(_) => "row".into(),
        DataType::Dictionary(_, value) => athena_type(value),
        DataType::Null => "unknown".into(),
        other => other.to_string().to_lowercase(),
    }
}

pub(crate) fn columns(schema: &Schema) -> Vec<ColumnInfo> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            type_name: athena_type(f.data_type()),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// The batches' rows as Athena prints them.
pub(crate) fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<Cell>>> {
    let options = FormatOptions::new()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f %Z"))
        .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.3f"));
    let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Query(format!("results cannot be printed: {e}")))?;
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, f)| (!column.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

fn quote(value: &str, out: &mut String) {
    out.push('"');
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// The CSV Athena writes: a header, every value quoted, NULL as nothing.
pub(crate) fn csv(columns: &[ColumnInfo], rows: &[Vec<Cell>], header: bool) -> String {
    let mut out = String::new();
    if header {
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            quote(&c.name, &mut out);
        }
        out.push('\n');
    }
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if let Some(value) = cell {
                quote(value, &mut out);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_every_value_and_leaves_null_empty() {
        let columns = vec![
            ColumnInfo {
                name: "a".into(),
                type_name: "varchar".into(),
                nullable: true,
            },
            ColumnInfo {
                name: "b".into(),
                type_name: "bigint".into(),
                nullable: true,
            },
        ];
        let rows = vec![
            vec![Some("x\"y".into()), None],
            vec![None, Some("2".into())],
        ];
        assert_eq!(
            csv(&columns, &rows, true),
            "\"a\",\"b\"\n\"x\"\"y\",\n,\"2\"\n"
        );
    }

    #[test]
    fn athena_type_names() {
        assert_eq!(athena_type(&DataType::Int64), "bigint");
        assert_eq!(athena_type(&DataType::Decimal128(15, 2)), "decimal(15,2)");
        assert_eq!(athena_type(&DataType::Utf8View), "varchar");
    }
}
