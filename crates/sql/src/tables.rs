//! Table providers for `CREATE EXTERNAL TABLE`: DataFusion's listing table, or, when the
//! table's options enable partition projection, a [`ProjectedTable`] that computes its
//! partitions from the query instead of listing the table's prefix.
//!
//! Projection is configured as Athena's table properties are, in `OPTIONS`:
//! `'projection.enabled' 'true'`, then per partition column `'projection.<col>.type'`
//! (`integer`, `enum`, `date`, `injected`) with `.range`, `.values`, `.format`, `.interval`,
//! `.interval.unit` and `.digits`, and optionally `'storage.location.template'` with
//! `${col}` placeholders.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Months, NaiveDate, NaiveDateTime, Utc};
use cloudlet_core::SharedClock;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{and, cast};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::listing_table_factory::ListingTableFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchemaBuilder;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    BinaryExpr, CreateExternalTable, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;

/// The most partitions a projection may produce for one query, as Athena allows.
pub(crate) const MAX_PROJECTED_PARTITIONS: usize = 1_000_000;

fn plan_error(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(message.into())
}

/// Builds the provider for `cmd`.
pub(crate) async fn create(
    state: &SessionState,
    cmd: &CreateExternalTable,
    clock: &SharedClock,
) -> Result<Arc<dyn TableProvider>> {
    let projection_keys: Vec<String> = cmd
        .options
        .keys()
        .filter(|k| k.starts_with("projection.") || k.as_str() == "storage.location.template")
        .cloned()
        .collect();
    let mut cmd = cmd.clone();
    let mut projection = HashMap::new();
    for key in projection_keys {
        if let Some(value) = cmd.options.remove(&key) {
            projection.insert(key, value);
        }
    }
    let enabled = projection
        .get("projection.enabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !enabled {
        return ListingTableFactory::new().create(state, &cmd).await;
    }
    ProjectedTable::try_new(state, &cmd, &projection, clock.clone()).map(|t| Arc::new(t) as _)
}

/// How one partition column's values are computed.
#[derive(Debug, Clone)]
enum Projection {
    Integer {
        min: i64,
        max: i64,
        interval: i64,
        digits: Option<usize>,
    },
    Enum(Vec<String>),
    Date {
        start: DateBound,
        end: DateBound,
        format: String,
        interval: i64,
        unit: DateUnit,
    },
    Injected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateUnit {
    Years,
    Months,
    Weeks,
    Days,
    Hours,
    Minutes,
    Seconds,
}

impl DateUnit {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().trim_end_matches('S') {
            "YEAR" => Self::Years,
            "MONTH" => Self::Months,
            "WEEK" => Self::Weeks,
            "DAY" => Self::Days,
            "HOUR" => Self::Hours,
            "MINUTE" => Self::Minutes,
            "SECOND" => Self::Seconds,
            _ => return None,
        })
    }

    fn add(self, at: NaiveDateTime, n: i64) -> Option<NaiveDateTime> {
        match self {
            Self::Years | Self::Months => {
                let months = if self == Self::Years {
                    n.checked_mul(12)?
                } else {
                    n
                };
                if months >= 0 {
                    at.checked_add_months(Months::new(u32::try_from(months).ok()?))
                } else {
                    at.checked_sub_months(Months::new(u32::try_from(-months).ok()?))
                }
            }
            Self::Weeks => at.checked_add_signed(Duration::try_weeks(n)?),
            Self::Days => at.checked_add_signed(Duration::try_days(n)?),
            Self::Hours => at.checked_add_signed(Duration::try_hours(n)?),
            Self::Minutes => at.checked_add_signed(Duration::try_minutes(n)?),
            Self::Seconds => at.checked_add_signed(Duration::try_seconds(n)?),
        }
    }
}

/// One end of a date range: a date in the column's format, or `NOW[+-N<UNIT>]`.
#[derive(Debug, Clone)]
enum DateBound {
    Fixed(NaiveDateTime),
    Now(i64, DateUnit),
}

/// A Java `DateTimeFormatter` pattern (`yyyy-MM-dd`, `yyyy/MM/dd/HH`) as a chrono format.
fn java_to_chrono(pattern: &str) -> std::result::Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '%' {
                    out.push('%');
                }
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let spec = match (c, run) {
            ('y', 4) | ('u', 4) => "%Y",
            ('y', 2) | ('u', 2) => "%y",
            ('M', 2) => "%m",
            ('M', 1) => "%-m",
            ('d', 2) => "%d",
            ('d', 1) => "%-d",
            ('H', 2) => "%H",
            ('H', 1) => "%-H",
            ('m', 2) => "%M",
            ('s', 2) => "%S",
            ('S', 3) => "%3f",
            (c, _) if c.is_ascii_alphabetic() => {
                return Err(format!("pattern letter {c} (x{run}) is not supported"));
            }
            _ => "",
        };
        if spec.is_empty() {
            for _ in 0..run {
                if c == '%' {
                    out.push('%');
                }
                out.push(c);
            }
        } else {
            out.push_str(spec);
        }
        i += run;
    }
    Ok(out)
}

fn parse_date(text: &str, format: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, format)
        .ok()
        .or_else(|| {
            // chrono needs a minute to make a time: an hour-only format gets `:00`.
            NaiveDateTime::parse_from_str(&format!("{text}:00"), &format!("{format}:%M")).ok()
        })
        .or_else(|| {
            NaiveDate::parse_from_str(text, format)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .or_else(|| {
            // Formats without a day (yyyy-MM, yyyy).
            let padded = format!("{text}-01-01");
            let padded_format = format!("{format}-%m-%d");
            NaiveDate::parse_from_str(&padded, &padded_format)
                .ok()
                .or_else(|| {
                    NaiveDate::parse_from_str(&format!("{text}-01"), &format!("{format}-%d")).ok()
                })
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

fn parse_bound(text: &str, format: &str, column: &str) -> Result<DateBound> {
    let text = text.trim();
    let upper = text.to_ascii_uppercase();
    if let Some(rest) = upper.strip_prefix("NOW") {
        if rest.is_empty() {
            return Ok(DateBound::Now(0, DateUnit::Days));
        }
        let (sign, rest) = match rest.as_bytes().first() {
            Some(b'+') => (1, &rest[1..]),
            Some(b'-') => (-1, &rest[1..]),
            _ => return Err(bad_range(column, text)),
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let amount: i64 = digits.parse().map_err(|_| bad_range(column, text))?;
        let unit = DateUnit::parse(&rest[digits.len()..]).ok_or_else(|| bad_range(column, text))?;
        return Ok(DateBound::Now(sign * amount, unit));
    }
    parse_date(text, format)
        .map(DateBound::Fixed)
        .ok_or_else(|| bad_range(column, text))
}

fn bad_range(column: &str, text: &str) -> DataFusionError {
    plan_error(format!(
        "projection.{column}.range: {text:?} is neither a date in projection.{column}.format nor NOW[+-N<UNIT>]"
    ))
}

impl Projection {
    fn parse(column: &str, options: &HashMap<String, String>) -> Result<Self> {
        let get = |suffix: &str| options.get(&format!("projection.{column}.{suffix}"));
        let kind = get("type").ok_or_else(|| {
            plan_error(format!(
                "projection.{column}.type is required: every partition column of a projected table needs one (integer, enum, date or injected)"
            ))
        })?;
        let interval = |default: i64| -> Result<i64> {
            match get("interval") {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        plan_error(format!(
                            "projection.{column}.interval: {v:?} is not a positive integer"
                        ))
                    }),
            }
        };
        match kind.to_ascii_lowercase().as_str() {
            "integer" => {
                let range = get("range").ok_or_else(|| {
                    plan_error(format!(
                        "projection.{column}.range is required for type integer"
                    ))
                })?;
                let (min, max) = range
                    .split_once(',')
                    .and_then(|(a, b)| {
                        Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?))
                    })
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| {
                        plan_error(format!(
                            "projection.{column}.range: {range:?} is not 'min,max' with min <= max"
                        ))
                    })?;
                let digits = match get("digits") {
                    None => None,
                    Some(d) => Some(
                        d.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|d| (1..=20).contains(d))
                            .ok_or_else(|| {
                                plan_error(format!("projection.{column}.digits: {d:?} is not 1-20"))
                            })?,
                    ),
                };
                Ok(Self::Integer {
                    min,
                    max,
                    interval: interval(1)?,
                    digits,
                })
            }
            "enum" => {
                let values = get("values").ok_or_else(|| {
                    plan_error(format!(
                        "projection.{column}.values is required for type enum"
                    ))
                })?;
                Ok(Self::Enum(
                    values.split(',').map(|v| v.trim().to_owned()).collect(),
                ))
            }
            "date" => {
                let java = get("format").ok_or_else(|| {
                    plan_error(format!(
                        "projection.{column}.format is required for type date"
                    ))
                })?;
                let format = java_to_chrono(java)
                    .map_err(|e| plan_error(format!("projection.{column}.format: {e}")))?;
                let range = get("range").ok_or_else(|| {
                    plan_error(format!(
                        "projection.{column}.range is required for type date"
                    ))
                })?;
                let (start, end) = range.split_once(',').ok_or_else(|| {
                    plan_error(format!(
                        "projection.{column}.range: {range:?} is not 'start,end'"
                    ))
                })?;
                let unit = match get("interval.unit") {
                    Some(u) => DateUnit::parse(u).ok_or_else(|| {
                        plan_error(format!(
                            "projection.{column}.interval.unit: {u:?} is not YEARS, MONTHS, WEEKS, DAYS, HOURS, MINUTES or SECONDS"
                        ))
                    })?,
                    // The pattern's smallest field.
                    None if java.contains('s') => DateUnit::Seconds,
                    None if java.contains('m') => DateUnit::Minutes,
                    None if java.contains('H') => DateUnit::Hours,
                    None if java.contains('d') => DateUnit::Days,
                    None if java.contains('M') => DateUnit::Months,
                    None => DateUnit::Years,
                };
                Ok(Self::Date {
                    start: parse_bound(start, &format, column)?,
                    end: parse_bound(end, &format, column)?,
                    format,
                    interval: interval(1)?,
                    unit,
                })
            }
            "injected" => Ok(Self::Injected),
            other => Err(plan_error(format!(
                "projection.{column}.type: {other:?} is not integer, enum, date or injected"
            ))),
        }
    }

    /// The column's values, as the strings that go into locations.
    /// The column's distinct values, in order.
    fn distinct_values(
        &self,
        column: &str,
        now: NaiveDateTime,
        injected: Option<&Vec<String>>,
    ) -> Result<Vec<String>> {
        let mut seen = std::collections::HashSet::new();
        Ok(self
            .values(column, now, injected)?
            .into_iter()
            .filter(|v| seen.insert(v.clone()))
            .collect())
    }

    fn values(
        &self,
        column: &str,
        now: NaiveDateTime,
        injected: Option<&Vec<String>>,
    ) -> Result<Vec<String>> {
        let too_many = || {
            plan_error(format!(
                "partition projection of {column} produces more than {MAX_PROJECTED_PARTITIONS} partitions"
            ))
        };
        match self {
            Self::Integer {
                min,
                max,
                interval,
                digits,
            } => {
                let count = (i128::from(*max) - i128::from(*min)) / i128::from(*interval) + 1;
                if count > MAX_PROJECTED_PARTITIONS as i128 {
                    return Err(too_many());
                }
                Ok((0..count as i64)
                    .map(|i| {
                        let v = min + i * interval;
                        match digits {
                            Some(d) => format!("{v:0d$}", d = *d),
                            None => v.to_string(),
                        }
                    })
                    .collect())
            }
            Self::Enum(values) => Ok(values.clone()),
            Self::Date {
                start,
                end,
                format,
                interval,
                unit,
            } => {
                let resolve = |bound: &DateBound| match bound {
                    DateBound::Fixed(at) => Some(*at),
                    DateBound::Now(n, unit) => unit.add(now, *n),
                };
                let (Some(start), Some(end)) = (resolve(start), resolve(end)) else {
                    return Err(plan_error(format!("projection.{column}.range is out of range")));
                };
                let mut values = Vec::new();
                let mut at = start;
                let mut step: i64 = 0;
                while at <= end {
                    if values.len() >= MAX_PROJECTED_PARTITIONS {
                        return Err(too_many());
                    }
                    values.push(at.format(format).to_string());
                    step += 1;
                    match step.checked_mul(*interval).and_then(|n| unit.add(start, n)) {
                        Some(next) => at = next,
                        None => break,
                    }
                }
                Ok(values)
            }
            Self::Injected => injected.cloned().ok_or_else(|| {
                plan_error(format!(
                    "CONSTRAINT_VIOLATION: For the injected projected partition column {column}, the WHERE clause must contain only static equality conditions, and at least one such condition must be present."
                ))
            }),
        }
    }
}

/// A table whose partitions are computed, not listed.
pub(crate) struct ProjectedTable {
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<Field>,
    projections: Vec<(String, Projection)>,
    /// `${col}` placeholders, or None for `<location>col=value/...`.
    template: Option<String>,
    location: String,
    format: Arc<dyn FileFormat>,
    file_extension: String,
    clock: SharedClock,
}

impl fmt::Debug for ProjectedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectedTable")
            .field("location", &self.location)
            .field("template", &self.template)
            .field("projections", &self.projections)
            .finish_non_exhaustive()
    }
}

impl ProjectedTable {
    fn try_new(
        state: &SessionState,
        cmd: &CreateExternalTable,
        options: &HashMap<String, String>,
        clock: SharedClock,
    ) -> Result<Self> {
        if cmd.schema.fields().is_empty() {
            return Err(plan_error(
                "a table with partition projection must declare its columns",
            ));
        }
        if cmd.table_partition_cols.is_empty() {
            return Err(plan_error(
                "projection.enabled needs PARTITIONED BY columns to project",
            ));
        }
        let [location] = cmd.locations.as_slice() else {
            return Err(plan_error("a projected table has exactly one LOCATION"));
        };
        let format = state
            .get_file_format_factory(&cmd.file_type)
            .ok_or_else(|| plan_error(format!("unknown file format {}", cmd.file_type)))?
            .create(state, &cmd.options)?;
        let schema = cmd.schema.inner().clone();
        let mut file_fields = Vec::new();
        for field in schema.fields() {
            if !cmd.table_partition_cols.contains(field.name()) {
                file_fields.push(field.as_ref().clone());
            }
        }
        let mut partition_fields = Vec::new();
        let mut projections = Vec::new();
        for column in &cmd.table_partition_cols {
            let field = schema.field_with_name(column)?;
            partition_fields.push(Field::new(column, field.data_type().clone(), true));
            projections.push((column.clone(), Projection::parse(column, options)?));
        }
        let template = options.get("storage.location.template").cloned();
        if let Some(template) = &template {
            for (column, _) in &projections {
                if !template.contains(&format!("${{{column}}}")) {
                    return Err(plan_error(format!(
                        "storage.location.template must contain ${{{column}}}"
                    )));
                }
            }
            ListingTableUrl::parse(template.replace("${", "").replace('}', ""))?;
        }
        ListingTableUrl::parse(location)?;
        let file_schema = Arc::new(Schema::new(file_fields));
        let mut all = file_schema.fields().to_vec();
        all.extend(partition_fields.iter().map(|f| Arc::new(f.clone())));
        Ok(Self {
            schema: Arc::new(Schema::new(all)),
            file_schema,
            partition_fields,
            projections,
            template,
            location: location.clone(),
            format,
            file_extension: String::new(),
            clock,
        })
    }

    fn partition_names(&self) -> Vec<&str> {
        self.projections.iter().map(|(c, _)| c.as_str()).collect()
    }

    /// Values an injected column is pinned to by `col = 'v'`, `col IN (...)` or a
    /// disjunction of those (the optimizer turns short IN lists into ORs).
    fn injected_values(column: &str, filters: &[Expr]) -> Option<Vec<String>> {
        fn literal(e: &Expr) -> Option<String> {
            match e {
                Expr::Literal(v, _) if !v.is_null() => Some(match v {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s.clone(),
                    other => other.to_string(),
                }),
                Expr::Cast(cast) => literal(&cast.expr),
                _ => None,
            }
        }
        fn is_column(e: &Expr, column: &str) -> bool {
            match e {
                Expr::Column(c) => c.name == column,
                Expr::Cast(cast) => is_column(&cast.expr, column),
                _ => false,
            }
        }
        fn equalities(e: &Expr, column: &str) -> Option<Vec<String>> {
            match e {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) => {
                    if is_column(left, column) {
                        literal(right).map(|v| vec![v])
                    } else if is_column(right, column) {
                        literal(left).map(|v| vec![v])
                    } else {
                        None
                    }
                }
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Or,
                    right,
                }) => {
                    let mut values = equalities(left, column)?;
                    values.extend(equalities(right, column)?);
                    Some(values)
                }
                Expr::InList(list) if !list.negated && is_column(&list.expr, column) => {
                    list.list.iter().map(literal).collect()
                }
                _ => None,
            }
        }
        filters
            .iter()
            .flat_map(datafusion::logical_expr::utils::split_conjunction)
            .find_map(|conjunct| equalities(conjunct, column))
            .map(|mut values| {
                values.sort();
                values.dedup();
                values
            })
    }

    /// Refuses an injected value that would name a location outside its partition's place
    /// once put into a URL: a `/`, `\\`, a percent escape (`%2e%2e` is `..`), `?` or `#`
    /// (which end the path), a control character, or a `.` or `..` segment.
    fn check_injected(column: &str, values: &[String]) -> Result<()> {
        for value in values {
            let unsafe_char = |c: char| matches!(c, '/' | '\\' | '%' | '?' | '#') || c.is_control();
            if value.is_empty() || value == "." || value == ".." || value.contains(unsafe_char) {
                return Err(plan_error(format!(
                    "the injected value {value:?} of partition column {column} cannot be part of a location: it is empty, is '.' or '..', or contains '/', '\\', '%', '?', '#' or a control character"
                )));
            }
        }
        Ok(())
    }

    /// The partitions the query can touch: every combination of the columns' values, less
    /// those the filters on partition columns rule out.
    fn partitions(&self, filters: &[Expr], state: &dyn Session) -> Result<Vec<Vec<String>>> {
        let now = DateTime::<Utc>::from_timestamp_nanos(
            i64::try_from(self.clock.now().as_nanos()).unwrap_or(i64::MAX),
        )
        .naive_utc();
        let mut columns = Vec::new();
        for (column, projection) in &self.projections {
            let injected = Self::injected_values(column, filters);
            if let (Projection::Injected, Some(values)) = (projection, &injected) {
                Self::check_injected(column, values)?;
            }
            columns.push(projection.distinct_values(column, now, injected.as_ref())?);
        }
        let total = columns
            .iter()
            .try_fold(1usize, |acc, c| acc.checked_mul(c.len()))
            .filter(|t| *t <= MAX_PROJECTED_PARTITIONS)
            .ok_or_else(|| {
                plan_error(format!(
                    "partition projection produces more than {MAX_PROJECTED_PARTITIONS} partitions"
                ))
            })?;
        if total == 0 {
            return Ok(Vec::new());
        }
        // The cartesian product, column by column.
        let mut arrays: Vec<Vec<&str>> = vec![Vec::with_capacity(total); columns.len()];
        let mut repeat = total;
        for (i, values) in columns.iter().enumerate() {
            repeat /= values.len();
            let cycles = total / (values.len() * repeat);
            for _ in 0..cycles {
                for v in values {
                    for _ in 0..repeat {
                        arrays[i].push(v.as_str());
                    }
                }
            }
        }
        let names = self.partition_names();
        let applicable: Vec<&Expr> = filters
            .iter()
            .filter(|f| {
                let refs = f.column_refs();
                !refs.is_empty() && refs.iter().all(|c| names.contains(&c.name.as_str()))
            })
            .collect();
        let mut keep: Option<BooleanArray> = None;
        if !applicable.is_empty() {
            let typed: Vec<ArrayRef> = arrays
                .iter()
                .zip(&self.partition_fields)
                .map(|(values, field)| {
                    let strings: ArrayRef = Arc::new(StringArray::from(values.clone()));
                    cast(&strings, field.data_type()).map_err(DataFusionError::from)
                })
                .collect::<Result<_>>()?;
            let schema = Arc::new(Schema::new(self.partition_fields.clone()));
            let batch = RecordBatch::try_new(schema.clone(), typed)?;
            let df_schema = DFSchema::try_from(schema)?;
            for filter in applicable {
                let expr = state.create_physical_expr(filter.clone(), &df_schema)?;
                let result = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
                let mask = result
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .cloned()
                    .ok_or_else(|| plan_error("a partition filter is not boolean"))?;
                keep = Some(match keep {
                    None => mask,
                    Some(k) => and(&k, &mask)?,
                });
            }
        }
        Ok((0..total)
            .filter(|row| {
                keep.as_ref()
                    .is_none_or(|k| k.is_valid(*row) && k.value(*row))
            })
            .map(|row| arrays.iter().map(|a| a[row].to_owned()).collect())
            .collect())
    }

    fn partition_location(&self, values: &[String]) -> String {
        match &self.template {
            Some(template) => {
                // One pass: a value that contains `${...}` is not substituted into again.
                let mut location = String::with_capacity(template.len());
                let mut rest = template.as_str();
                while let Some(start) = rest.find("${") {
                    location.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let Some(end) = after.find('}') else {
                        location.push_str(&rest[start..]);
                        rest = "";
                        break;
                    };
                    let name = &after[..end];
                    match self
                        .projections
                        .iter()
                        .position(|(column, _)| column == name)
                    {
                        Some(i) => location.push_str(&values[i]),
                        None => location.push_str(&rest[start..start + 2 + end + 1]),
                    }
                    rest = &after[end + 1..];
                }
                location.push_str(rest);
                location
            }
            None => {
                let mut location = format!("{}/", self.location.trim_end_matches('/'));
                for ((column, _), value) in self.projections.iter().zip(values) {
                    location.push_str(&format!("{column}={value}/"));
                }
                location
            }
        }
    }
}

#[async_trait]
impl TableProvider for ProjectedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitions = self.partitions(filters, state)?;
        let mut files = Vec::new();
        let mut store_url = None;
        for values in &partitions {
            let location = ListingTableUrl::parse(self.partition_location(values))?;
            let store = state.runtime_env().object_store(&location)?;
            store_url.get_or_insert_with(|| location.object_store());
            let prefix = ObjectPath::from(location.prefix().as_ref());
            let listed: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
            for meta in listed {
                let name = meta.location.filename().unwrap_or_default();
                if name.starts_with('_')
                    || name.starts_with('.')
                    || !name.ends_with(&self.file_extension)
                {
                    continue;
                }
                let partition_values = values
                    .iter()
                    .zip(&self.partition_fields)
                    .map(|(v, field)| ScalarValue::Utf8(Some(v.clone())).cast_to(field.data_type()))
                    .collect::<Result<Vec<_>>>()?;
                let mut file = PartitionedFile::new_from_meta(meta);
                file.partition_values = partition_values;
                files.push(file);
            }
        }
        let Some(store_url) = store_url.filter(|_| !files.is_empty()) else {
            let schema = datafusion::physical_plan::project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(schema)));
        };
        let target = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); target.min(files.len())];
        let count = groups.len();
        for (i, file) in files.into_iter().enumerate() {
            groups[i % count].push(file);
        }
        let table_schema = TableSchemaBuilder::from(&self.file_schema)
            .with_table_partition_cols(
                self.partition_fields
                    .iter()
                    .map(|f| Arc::new(f.clone()))
                    .collect::<Vec<_>>(),
            )
            .build();
        let source = self.format.file_source(table_schema);
        let config = FileScanConfigBuilder::new(store_url, source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        self.format.create_physical_plan(state, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_become_chrono_formats() {
        assert_eq!(java_to_chrono("yyyy-MM-dd").as_deref(), Ok("%Y-%m-%d"));
        assert_eq!(
            java_to_chrono("yyyy/MM/dd/HH").as_deref(),
            Ok("%Y/%m/%d/%H")
        );
        assert_eq!(java_to_chrono("yyyyMMdd'T'HH").as_deref(), Ok("%Y%m%dT%H"));
        assert!(java_to_chrono("EEE").is_err());
    }

    #[test]
    fn date_values_step_by_interval() {
        let format = java_to_chrono("yyyy-MM-dd").unwrap_or_default();
        let projection = Projection::Date {
            start: parse_bound("2024-02-27", &format, "dt")
                .unwrap_or(DateBound::Now(0, DateUnit::Days)),
            end: parse_bound("2024-03-02", &format, "dt")
                .unwrap_or(DateBound::Now(0, DateUnit::Days)),
            format,
            interval: 1,
            unit: DateUnit::Days,
        };
        let now = NaiveDate::from_ymd_opt(2024, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        let values = projection.values("dt", now, None).unwrap_or_default();
        assert_eq!(
            values,
            [
                "2024-02-27",
                "2024-02-28",
                "2024-02-29",
                "2024-03-01",
                "2024-03-02"
            ]
        );
    }

    #[test]
    fn relative_bounds_follow_now() {
        let format = java_to_chrono("yyyy-MM").unwrap_or_default();
        let projection = Projection::Date {
            start: parse_bound("NOW-2MONTHS", &format, "m")
                .unwrap_or(DateBound::Now(0, DateUnit::Days)),
            end: parse_bound("NOW", &format, "m").unwrap_or(DateBound::Now(0, DateUnit::Days)),
            format,
            interval: 1,
            unit: DateUnit::Months,
        };
        let now = NaiveDate::from_ymd_opt(2026, 1, 15)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        assert_eq!(
            projection.values("m", now, None).unwrap_or_default(),
            ["2025-11", "2025-12", "2026-01"]
        );
        assert!(parse_bound("2025-13", "%Y-%m", "m").is_err());
    }

    #[test]
    fn hour_formats_keep_the_hour_and_months_are_distinct() {
        let format = java_to_chrono("yyyy/MM/dd/HH").unwrap_or_default();
        let Ok(DateBound::Fixed(at)) = parse_bound("2024/01/05/23", &format, "h") else {
            panic!("an hour bound parses");
        };
        assert_eq!(at.format("%H").to_string(), "23");
        let mut options = HashMap::new();
        options.insert("projection.m.type".to_owned(), "date".to_owned());
        options.insert("projection.m.format".to_owned(), "yyyy-MM".to_owned());
        options.insert(
            "projection.m.range".to_owned(),
            "2024-01,2024-03".to_owned(),
        );
        let projection = Projection::parse("m", &options).unwrap_or(Projection::Injected);
        let now = NaiveDateTime::default();
        assert_eq!(
            projection
                .distinct_values("m", now, None)
                .unwrap_or_default(),
            ["2024-01", "2024-02", "2024-03"]
        );
    }

    #[test]
    fn extreme_integer_ranges_are_refused_not_wrapped() {
        let projection = Projection::Integer {
            min: i64::MIN,
            max: i64::MAX,
            interval: 1,
            digits: None,
        };
        assert!(
            projection
                .values("n", NaiveDateTime::default(), None)
                .is_err()
        );
    }

    #[test]
    fn integers_pad_to_digits() {
        let projection = Projection::Integer {
            min: 1,
            max: 10,
            interval: 4,
            digits: Some(3),
        };
        let now = NaiveDateTime::default();
        assert_eq!(
            projection.values("n", now, None).unwrap_or_default(),
            ["001", "005", "009"]
        );
    }
}
