//! TPC-H data as Parquet, generated with tpchgen (dbgen's exact output), and the 22 queries.
//! Shared by the sql crate's tests and the root `sql` benchmark.

use std::path::Path;

use cloudlet_objectstore::{Buckets, ObjectService, PutObject};

use cloudlet_sql::datafusion::arrow::array::RecordBatch;
use cloudlet_sql::datafusion::arrow::error::ArrowError;
use cloudlet_sql::datafusion::parquet::arrow::ArrowWriter;
use cloudlet_sql::datafusion::parquet::basic::{Compression, ZstdLevel};
use cloudlet_sql::datafusion::parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// The eight tables.
pub const TABLES: [&str; 8] = [
    "nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem",
];

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

fn batches(table: &str, scale: f64) -> Batches {
    match table {
        "nation" => Box::new(NationArrow::new(NationGenerator::new(scale, 1, 1))),
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(scale, 1, 1))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(scale, 1, 1))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(scale, 1, 1))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(scale, 1, 1))),
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(scale, 1, 1))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(scale, 1, 1))),
        "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(scale, 1, 1))),
        other => panic!("no TPC-H table {other}"),
    }
}

/// `table` at `scale` as one Parquet file (zstd, row groups of 1M rows, page statistics).
pub fn parquet(table: &str, scale: f64) -> Vec<u8> {
    let mut batches = batches(table, scale)
        .map(|b| b.expect("tpchgen makes valid batches"))
        .peekable();
    let schema = batches.peek().expect("a TPC-H table has rows").schema();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).expect("writer");
    for batch in batches {
        writer.write(&batch).expect("write");
    }
    writer.close().expect("close");
    out
}

/// The query texts, q01.sql ... q22.sql, with Q11's fraction scaled as the spec says
/// (0.0001 / SF).
pub fn queries(scale: f64) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tpch");
    let dir = if dir.exists() {
        dir
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/sql/tests/tpch")
    };
    (1..=22)
        .map(|n| {
            let name = format!("q{n:02}");
            let mut sql = std::fs::read_to_string(dir.join(format!("{name}.sql"))).expect("query");
            if n == 11 {
                sql = sql.replace("0.0001", &format!("{}", 0.0001 / scale));
            }
            (name, sql)
        })
        .collect()
}

/// A CSV line as DuckDB writes it: fields quoted only when they need it.
pub fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Whether two printed values are the same answer: equal text, NULL against an empty CSV
/// field, or numbers within a cent (TPC-H's own tolerance for money) or a part in 10^9.
pub fn same(actual: &str, expected: &str) -> bool {
    if actual == expected || (actual == "NULL" && expected.is_empty()) {
        return true;
    }
    match (actual.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(a), Ok(e)) => (a - e).abs() <= 0.01_f64.max(e.abs() * 1e-9),
        _ => false,
    }
}

/// The batches' rows as printed cells, NULL as `NULL`.
pub fn printed(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    use cloudlet_sql::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::new().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    rows
}

/// Compares `actual` with a DuckDB CSV answer (header first); the first difference, if any.
pub fn differs(actual: &[Vec<String>], csv: &str) -> Option<String> {
    let expected: Vec<Vec<String>> = csv.lines().skip(1).map(split_csv).collect();
    if actual.len() != expected.len() {
        return Some(format!(
            "{} rows, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        if a.len() != e.len() || a.iter().zip(e).any(|(x, y)| !same(x, y)) {
            return Some(format!("row {i}: {a:?}, expected {e:?}"));
        }
    }
    None
}

/// Generates every table at `scale` as Parquet into `<bucket>/<table>/data.parquet`, and
/// into `<files>/<table>/data.parquet` too when `files` is given.
pub async fn load(objects: &ObjectService, bucket: &str, scale: f64, files: Option<&Path>) {
    for table in TABLES {
        let body = parquet(table, scale);
        if let Some(files) = files {
            let dir = files.join(table);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("data.parquet"), &body).unwrap();
        }
        objects
            .put_object(PutObject::new(
                bucket,
                format!("{table}/data.parquet"),
                body,
            ))
            .await
            .unwrap();
    }
}
