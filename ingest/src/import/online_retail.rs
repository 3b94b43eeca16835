//! Importer for the UCI Online Retail dataset (UCI dataset 352, CC BY 4.0).
//!
//! Input: a CSV file (plain or gzip, detected by magic bytes) with the columns
//! `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country`
//! (columns are located by name, so their order does not matter; extra columns
//! are ignored). Every field is read as a string and then parsed.
//!
//! Output: one Lusso event (`serde_json::Value`) per invoice that produced at
//! least one valid line, in the order in which invoices are first seen:
//!
//! - an ordinary invoice becomes a `purchase` event;
//! - an invoice whose number starts with `C` (a cancellation) becomes a `return`
//!   event; its line quantities are the absolute values of the file's
//!   (negative) quantities.
//!
//! Envelope: `event_id` (UUID v5 of `"uci-online-retail:" + InvoiceNo` in
//! [`EVENT_ID_NAMESPACE`], so a re-import yields identical ids), `type`, `ts`
//! (InvoiceDate of the invoice's first used row, read as UTC, RFC 3339 with a
//! `Z`), `user_id` (CustomerID as an integer string, or null), `anonymous_id`
//! (`or-<user_id>` or `or-guest-<InvoiceNo>`), `session_id` (`or-<InvoiceNo>`),
//! `market` (see [`COUNTRY_MARKETS`]), `device` (`"other"`) and `properties`
//! (`order_id`, `currency` = `"GBP"`, `total` = Σ quantity·unit_price rounded
//! half-up to 2 decimals and computed exactly in decimal, `lines`, and the extra
//! `source` = `"uci-online-retail"`).
//!
//! Rows that cannot become a valid line are skipped and counted per
//! [`SkipReason`] in the [`ImportReport`]; nothing is dropped silently.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// Namespace for the UUID v5 event ids of this importer. Never change it:
/// downstream deduplication relies on re-imports producing the same ids.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x41b5_c960_739c_4aa8_9622_7ee6_523b_4dd2);

/// Value of the extra `source` property on every event.
pub const SOURCE: &str = "uci-online-retail";

/// Currency of every amount in the dataset.
pub const CURRENCY: &str = "GBP";

/// Prefix of the string hashed into the event id (followed by the InvoiceNo).
const EVENT_ID_PREFIX: &str = "uci-online-retail:";

/// Column names the importer needs, in the dataset's order.
pub const REQUIRED_COLUMNS: [&str; 8] = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
];

/// `Country` values of the dataset (all 38 of them) and their ISO 3166-1
/// alpha-2 market. `None` means the name is known but has no single ISO code:
///
/// - `Channel Islands`: Jersey (JE) and Guernsey (GG) have separate codes and
///   the data does not say which, so no market rather than a guess. They are
///   not part of the United Kingdom, so GB would be wrong too.
/// - `European Community`: a region, not a country.
/// - `Unspecified`: unknown.
///
/// Non-obvious names: `EIRE` → IE, `RSA` → ZA, `USA` → US, `Greece` → GR (ISO,
/// not the EU's "EL"). Names are matched ignoring ASCII case and surrounding
/// whitespace. A name absent from this table also yields a null market and is
/// counted in [`ImportReport::unmapped_countries`].
pub const COUNTRY_MARKETS: [(&str, Option<&str>); 38] = [
    ("Australia", Some("AU")),
    ("Austria", Some("AT")),
    ("Bahrain", Some("BH")),
    ("Belgium", Some("BE")),
    ("Brazil", Some("BR")),
    ("Canada", Some("CA")),
    ("Channel Islands", None),
    ("Cyprus", Some("CY")),
    ("Czech Republic", Some("CZ")),
    ("Denmark", Some("DK")),
    ("EIRE", Some("IE")),
    ("European Community", None),
    ("Finland", Some("FI")),
    ("France", Some("FR")),
    ("Germany", Some("DE")),
    ("Greece", Some("GR")),
    ("Hong Kong", Some("HK")),
    ("Iceland", Some("IS")),
    ("Israel", Some("IL")),
    ("Italy", Some("IT")),
    ("Japan", Some("JP")),
    ("Lebanon", Some("LB")),
    ("Lithuania", Some("LT")),
    ("Malta", Some("MT")),
    ("Netherlands", Some("NL")),
    ("Norway", Some("NO")),
    ("Poland", Some("PL")),
    ("Portugal", Some("PT")),
    ("RSA", Some("ZA")),
    ("Saudi Arabia", Some("SA")),
    ("Singapore", Some("SG")),
    ("Spain", Some("ES")),
    ("Sweden", Some("SE")),
    ("Switzerland", Some("CH")),
    ("USA", Some("US")),
    ("United Arab Emirates", Some("AE")),
    ("United Kingdom", Some("GB")),
    ("Unspecified", None),
];

/// Looks up a dataset `Country` name. Outer `None`: the name is not in
/// [`COUNTRY_MARKETS`]; `Some(None)`: known, but no ISO market.
pub fn country_to_market(name: &str) -> Option<Option<&'static str>> {
    let name = name.trim();
    COUNTRY_MARKETS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(_, market)| market)
}

/// Errors that stop an import. Bad rows do not: they are skipped and counted.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input could not be opened or read (including corrupt gzip data).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The CSV layer failed (for example invalid UTF-8) at the given line.
    #[error("CSV error at line {line}: {message}")]
    Csv { line: u64, message: String },
    /// A required column is missing from the header line.
    #[error("bad header: expected a column named `{expected}`, found columns [{found}]")]
    Header { expected: String, found: String },
}

/// Why a row did not become an event line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The row has fewer fields than the header needs.
    WrongFieldCount,
    /// `InvoiceNo` is empty.
    EmptyInvoiceNo,
    /// `StockCode` is empty.
    EmptyStockCode,
    /// `Quantity` is not an integer.
    UnparseableQuantity,
    /// `UnitPrice` is not a finite decimal number.
    UnparseableUnitPrice,
    /// `InvoiceDate` is not `YYYY-MM-DD HH:MM[:SS]`.
    UnparseableInvoiceDate,
    /// `CustomerID` is neither empty nor an integer (optionally `.0`).
    UnparseableCustomerId,
    /// `UnitPrice` < 0 (the dataset's "Adjust bad debt" entries).
    NegativeUnitPrice,
    /// `InvoiceNo` starts with a letter other than `C` (the dataset's
    /// `A…` "Adjust bad debt" accounting entries): not a purchase.
    AdjustmentInvoice,
    /// `Quantity` ≤ 0 on an ordinary (non-cancellation) invoice.
    NonPositiveQuantityInPurchase,
    /// `Quantity` ≥ 0 on a cancellation (`C…`) invoice.
    NonNegativeQuantityInCancellation,
}

impl SkipReason {
    /// Every reason, in report order.
    pub const ALL: [SkipReason; 11] = [
        SkipReason::WrongFieldCount,
        SkipReason::EmptyInvoiceNo,
        SkipReason::EmptyStockCode,
        SkipReason::UnparseableQuantity,
        SkipReason::UnparseableUnitPrice,
        SkipReason::UnparseableInvoiceDate,
        SkipReason::UnparseableCustomerId,
        SkipReason::NegativeUnitPrice,
        SkipReason::AdjustmentInvoice,
        SkipReason::NonPositiveQuantityInPurchase,
        SkipReason::NonNegativeQuantityInCancellation,
    ];

    /// The snake_case name used in the serialized report.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::WrongFieldCount => "wrong_field_count",
            SkipReason::EmptyInvoiceNo => "empty_invoice_no",
            SkipReason::EmptyStockCode => "empty_stock_code",
            SkipReason::UnparseableQuantity => "unparseable_quantity",
            SkipReason::UnparseableUnitPrice => "unparseable_unit_price",
            SkipReason::UnparseableInvoiceDate => "unparseable_invoice_date",
            SkipReason::UnparseableCustomerId => "unparseable_customer_id",
            SkipReason::NegativeUnitPrice => "negative_unit_price",
            SkipReason::AdjustmentInvoice => "adjustment_invoice",
            SkipReason::NonPositiveQuantityInPurchase => "non_positive_quantity_in_purchase",
            SkipReason::NonNegativeQuantityInCancellation => {
                "non_negative_quantity_in_cancellation"
            }
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an import did. `skipped` lists every [`SkipReason`], zero or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Data rows read (header excluded).
    pub rows_read: u64,
    /// Rows that became an event line.
    pub rows_used: u64,
    /// Rows skipped (= sum of `skipped`).
    pub rows_skipped: u64,
    /// Skipped rows per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Distinct non-empty `InvoiceNo` values among all rows.
    pub invoices: u64,
    /// Invoices none of whose rows became a line (no event emitted).
    pub invoices_without_lines: u64,
    /// `purchase` events emitted.
    pub purchase_events: u64,
    /// `return` events emitted.
    pub return_events: u64,
    /// Distinct parseable `CustomerID` values among all rows read.
    pub distinct_customers: u64,
    /// Distinct `user_id` values among the emitted events.
    pub distinct_customers_in_events: u64,
    /// Events whose `market` is null.
    pub events_without_market: u64,
    /// Used rows whose `Country` is not in [`COUNTRY_MARKETS`], by name.
    pub unmapped_countries: BTreeMap<String, u64>,
    /// Invoices whose used rows carry more than one `InvoiceDate` (the first
    /// row's date is the event's `ts`).
    pub invoices_with_multiple_timestamps: u64,
    /// Invoices whose used rows disagree on `CustomerID` (first row wins).
    pub invoices_with_conflicting_customer: u64,
    /// Invoices whose used rows disagree on `Country` (first row wins).
    pub invoices_with_conflicting_country: u64,
    /// Invoices whose rows are not contiguous in the file (grouped anyway).
    pub non_contiguous_invoices: u64,
}

impl ImportReport {
    fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_insert(0) += 1;
        self.rows_skipped += 1;
    }

    /// Number of rows skipped for `reason`.
    pub fn skipped_for(&self, reason: SkipReason) -> u64 {
        self.skipped.get(&reason).copied().unwrap_or(0)
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "UCI Online Retail import: {} rows read, {} used, {} skipped",
            self.rows_read, self.rows_used, self.rows_skipped
        )?;
        writeln!(
            f,
            "  invoices: {} ({} without lines) -> {} purchase + {} return events",
            self.invoices, self.invoices_without_lines, self.purchase_events, self.return_events
        )?;
        writeln!(
            f,
            "  customers: {} distinct in file, {} in events; {} events without market",
            self.distinct_customers, self.distinct_customers_in_events, self.events_without_market
        )?;
        for (reason, count) in self.skipped.iter().filter(|(_, &n)| n > 0) {
            writeln!(f, "  skipped {reason}: {count}")?;
        }
        for (country, count) in &self.unmapped_countries {
            writeln!(f, "  unmapped country {country:?}: {count} rows")?;
        }
        write!(
            f,
            "  anomalies: {} multi-timestamp, {} conflicting-customer, {} conflicting-country, {} non-contiguous invoices",
            self.invoices_with_multiple_timestamps,
            self.invoices_with_conflicting_customer,
            self.invoices_with_conflicting_country,
            self.non_contiguous_invoices
        )
    }
}

/// Reads a UCI Online Retail CSV file, plain or gzip-compressed (detected by
/// the gzip magic bytes, not by the file name).
pub fn read_online_retail(path: &Path) -> Result<(Vec<Value>, ImportReport), ImportError> {
    let file = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    import_any(file, path)
}

/// Same as [`read_online_retail`] for any reader (plain or gzip CSV bytes).
/// I/O errors name the pseudo-path `<reader>`.
pub fn read_online_retail_from<R: Read>(
    reader: R,
) -> Result<(Vec<Value>, ImportReport), ImportError> {
    import_any(reader, Path::new("<reader>"))
}

fn import_any<R: Read>(
    reader: R,
    origin: &Path,
) -> Result<(Vec<Value>, ImportReport), ImportError> {
    let mut buffered = BufReader::with_capacity(1 << 16, reader);
    let is_gzip = peek_is_gzip(&mut buffered).map_err(|source| ImportError::Io {
        path: origin.to_path_buf(),
        source,
    })?;
    if is_gzip {
        import_csv(flate2::bufread::MultiGzDecoder::new(buffered), origin)
    } else {
        import_csv(buffered, origin)
    }
}

/// True when the stream starts with the gzip magic `1f 8b`. Does not consume.
fn peek_is_gzip<R: Read>(reader: &mut BufReader<R>) -> io::Result<bool> {
    // fill_buf may return fewer than 2 bytes even if more follow; the 64 KiB
    // buffer is empty at this point, so one short read means a tiny input.
    loop {
        match reader.fill_buf() {
            Ok(buf) => return Ok(buf.len() >= 2 && buf[0] == 0x1f && buf[1] == 0x8b),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn csv_error(err: csv::Error, origin: &Path) -> ImportError {
    let line = err.position().map(|p| p.line()).unwrap_or(0);
    let message = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(source) => ImportError::Io {
            path: origin.to_path_buf(),
            source,
        },
        _ => ImportError::Csv { line, message },
    }
}

/// Column positions of the required fields.
struct Columns {
    invoice_no: usize,
    stock_code: usize,
    quantity: usize,
    invoice_date: usize,
    unit_price: usize,
    customer_id: usize,
    country: usize,
    /// Minimum field count a row needs.
    min_len: usize,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, ImportError> {
        let names: Vec<&str> = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.trim()
            })
            .collect();
        let find = |wanted: &str| -> Result<usize, ImportError> {
            names
                .iter()
                .position(|n| *n == wanted)
                .ok_or_else(|| ImportError::Header {
                    expected: wanted.to_string(),
                    found: names.join(","),
                })
        };
        // Description is not used, but a file without it is not this dataset.
        let mut positions = [0usize; 8];
        for (slot, name) in positions.iter_mut().zip(REQUIRED_COLUMNS) {
            *slot = find(name)?;
        }
        let [invoice_no, stock_code, _, quantity, invoice_date, unit_price, customer_id, country] =
            positions;
        let min_len = positions.iter().max().map_or(0, |m| m + 1);
        Ok(Columns {
            invoice_no,
            stock_code,
            quantity,
            invoice_date,
            unit_price,
            customer_id,
            country,
            min_len,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InvoiceKind {
    Purchase,
    Cancellation,
    Adjustment,
}

impl InvoiceKind {
    fn of(invoice_no: &str) -> Self {
        match invoice_no.chars().next() {
            Some('C') => InvoiceKind::Cancellation,
            Some(c) if c.is_alphabetic() => InvoiceKind::Adjustment,
            _ => InvoiceKind::Purchase,
        }
    }
}

struct Line {
    stock_code: String,
    quantity: u64,
    unit_price: f64,
}

struct Invoice {
    invoice_no: String,
    kind: InvoiceKind,
    /// Set from the first used row.
    head: Option<InvoiceHead>,
    lines: Vec<Line>,
    /// Σ quantity · unit_price in units of 1e-9 GBP.
    total_nanos: i128,
    multiple_timestamps: bool,
    conflicting_customer: bool,
    conflicting_country: bool,
}

struct InvoiceHead {
    ts: DateTime<Utc>,
    raw_date: String,
    customer: Option<u64>,
    country: String,
}

/// Parses an InvoiceDate, read as UTC.
fn parse_invoice_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
        .map(|naive| naive.and_utc())
}

/// Parses a CustomerID: empty → `Ok(None)`, `17850` or `17850.0` → `Ok(Some(17850))`.
fn parse_customer_id(s: &str) -> Result<Option<u64>, ()> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (int_part, frac_part) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !all_digits(int_part) || !frac_part.bytes().all(|b| b == b'0') {
        return Err(());
    }
    int_part.parse::<u64>().map(Some).map_err(|_| ())
}

/// Parses a unit price: the `f64` for the event plus the exact amount in
/// units of 1e-9 (decimal arithmetic for totals, no binary rounding drift).
fn parse_price(s: &str) -> Option<(f64, i128)> {
    let s = s.trim();
    let value: f64 = s.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let nanos = decimal_nanos(s).unwrap_or_else(|| (value * 1e9).round() as i128);
    // Normalize -0.0 so the JSON never shows "-0.0".
    let value = if value == 0.0 { 0.0 } else { value };
    Some((value, nanos))
}

/// Exact value of a plain decimal (`[+-]digits[.digits]`, ≤ 9 fractional
/// digits, ≤ 20 integer digits) in units of 1e-9; `None` for anything else.
fn decimal_nanos(s: &str) -> Option<i128> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !digits_ok(int_part)
        || !digits_ok(frac_part)
        || frac_part.len() > 9
        || int_part.len() > 20
    {
        return None;
    }
    let int_value: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let frac_value: i128 = if frac_part.is_empty() {
        0
    } else {
        let scale = 10i128.pow(9 - frac_part.len() as u32);
        frac_part.parse::<i128>().ok()? * scale
    };
    let magnitude = int_value * 1_000_000_000 + frac_value;
    Some(if negative { -magnitude } else { magnitude })
}

/// Rounds an amount in 1e-9 units to 2 decimals (half away from zero).
fn nanos_to_rounded_amount(nanos: i128) -> f64 {
    const PER_CENT: i128 = 10_000_000;
    let cents = if nanos >= 0 {
        (nanos + PER_CENT / 2) / PER_CENT
    } else {
        (nanos - PER_CENT / 2) / PER_CENT
    };
    // Integer cents divided by 100 is the closest f64 to the 2-decimal value.
    cents as f64 / 100.0
}

/// The deterministic event id of an invoice.
pub fn event_id_for_invoice(invoice_no: &str) -> Uuid {
    let name = format!("{EVENT_ID_PREFIX}{invoice_no}");
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

fn import_csv<R: Read>(
    reader: R,
    origin: &Path,
) -> Result<(Vec<Value>, ImportReport), ImportError> {
    let mut csv_reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let header = csv_reader
        .headers()
        .map_err(|e| csv_error(e, origin))?
        .clone();
    let cols = Columns::from_header(&header)?;

    let mut report = ImportReport {
        skipped: SkipReason::ALL.iter().map(|&r| (r, 0)).collect(),
        ..ImportReport::default()
    };
    let mut invoices: Vec<Invoice> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut non_contiguous: HashSet<usize> = HashSet::new();
    let mut previous_invoice: Option<usize> = None;
    let mut customers: HashSet<u64> = HashSet::new();

    let mut record = csv::StringRecord::new();
    loop {
        match csv_reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e, origin)),
        }
        report.rows_read += 1;
        if record.len() < cols.min_len {
            report.skip(SkipReason::WrongFieldCount);
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("");

        let customer = parse_customer_id(field(cols.customer_id));
        if let Ok(Some(id)) = customer {
            customers.insert(id);
        }

        let invoice_no = field(cols.invoice_no).trim();
        if invoice_no.is_empty() {
            report.skip(SkipReason::EmptyInvoiceNo);
            continue;
        }
        let idx = match index.get(invoice_no) {
            Some(&idx) => {
                if previous_invoice != Some(idx) {
                    non_contiguous.insert(idx);
                }
                idx
            }
            None => {
                invoices.push(Invoice {
                    invoice_no: invoice_no.to_string(),
                    kind: InvoiceKind::of(invoice_no),
                    head: None,
                    lines: Vec::new(),
                    total_nanos: 0,
                    multiple_timestamps: false,
                    conflicting_customer: false,
                    conflicting_country: false,
                });
                index.insert(invoice_no.to_string(), invoices.len() - 1);
                invoices.len() - 1
            }
        };
        previous_invoice = Some(idx);

        let stock_code = field(cols.stock_code).trim();
        if stock_code.is_empty() {
            report.skip(SkipReason::EmptyStockCode);
            continue;
        }
        let Ok(quantity) = field(cols.quantity).trim().parse::<i64>() else {
            report.skip(SkipReason::UnparseableQuantity);
            continue;
        };
        let Some((unit_price, price_nanos)) = parse_price(field(cols.unit_price)) else {
            report.skip(SkipReason::UnparseableUnitPrice);
            continue;
        };
        let raw_date = field(cols.invoice_date);
        let Some(ts) = parse_invoice_date(raw_date) else {
            report.skip(SkipReason::UnparseableInvoiceDate);
            continue;
        };
        let Ok(customer) = customer else {
            report.skip(SkipReason::UnparseableCustomerId);
            continue;
        };
        if price_nanos < 0 {
            report.skip(SkipReason::NegativeUnitPrice);
            continue;
        }
        let invoice = &mut invoices[idx];
        let line_quantity = match invoice.kind {
            InvoiceKind::Adjustment => {
                report.skip(SkipReason::AdjustmentInvoice);
                continue;
            }
            InvoiceKind::Purchase if quantity <= 0 => {
                report.skip(SkipReason::NonPositiveQuantityInPurchase);
                continue;
            }
            InvoiceKind::Cancellation if quantity >= 0 => {
                report.skip(SkipReason::NonNegativeQuantityInCancellation);
                continue;
            }
            InvoiceKind::Purchase | InvoiceKind::Cancellation => quantity.unsigned_abs(),
        };

        let country = field(cols.country).trim();
        if country_to_market(country).is_none() {
            *report
                .unmapped_countries
                .entry(country.to_string())
                .or_insert(0) += 1;
        }
        match &invoice.head {
            None => {
                invoice.head = Some(InvoiceHead {
                    ts,
                    raw_date: raw_date.trim().to_string(),
                    customer,
                    country: country.to_string(),
                });
            }
            Some(head) => {
                invoice.multiple_timestamps |= head.raw_date != raw_date.trim();
                invoice.conflicting_customer |= head.customer != customer;
                invoice.conflicting_country |= head.country != country;
            }
        }
        invoice.total_nanos += i128::from(line_quantity) * price_nanos;
        invoice.lines.push(Line {
            stock_code: stock_code.to_string(),
            quantity: line_quantity,
            unit_price,
        });
        report.rows_used += 1;
    }

    report.invoices = invoices.len() as u64;
    report.non_contiguous_invoices = non_contiguous.len() as u64;
    let mut event_customers: HashSet<u64> = HashSet::new();
    let mut events = Vec::with_capacity(invoices.len());
    for invoice in invoices {
        let Some(head) = &invoice.head else {
            report.invoices_without_lines += 1;
            continue;
        };
        report.invoices_with_multiple_timestamps += u64::from(invoice.multiple_timestamps);
        report.invoices_with_conflicting_customer += u64::from(invoice.conflicting_customer);
        report.invoices_with_conflicting_country += u64::from(invoice.conflicting_country);
        let event_type = match invoice.kind {
            InvoiceKind::Cancellation => {
                report.return_events += 1;
                "return"
            }
            // Adjustment invoices never get a head: all their rows are skipped.
            InvoiceKind::Purchase | InvoiceKind::Adjustment => {
                report.purchase_events += 1;
                "purchase"
            }
        };
        let market = country_to_market(&head.country).flatten();
        if market.is_none() {
            report.events_without_market += 1;
        }
        let user_id = head.customer.map(|id| {
            event_customers.insert(id);
            id.to_string()
        });
        let anonymous_id = match &user_id {
            Some(id) => format!("or-{id}"),
            None => format!("or-guest-{}", invoice.invoice_no),
        };
        let lines: Vec<Value> = invoice
            .lines
            .iter()
            .map(|l| {
                json!({
                    "product_id": l.stock_code,
                    "variant_id": l.stock_code,
                    "quantity": l.quantity,
                    "unit_price": l.unit_price,
                })
            })
            .collect();
        events.push(json!({
            "event_id": event_id_for_invoice(&invoice.invoice_no).to_string(),
            "type": event_type,
            "ts": head.ts.to_rfc3339_opts(SecondsFormat::Secs, true),
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "session_id": format!("or-{}", invoice.invoice_no),
            "market": market,
            "device": "other",
            "properties": {
                "order_id": invoice.invoice_no,
                "currency": CURRENCY,
                "total": nanos_to_rounded_amount(invoice.total_nanos),
                "lines": lines,
                "source": SOURCE,
            },
        }));
    }
    report.distinct_customers = customers.len() as u64;
    report.distinct_customers_in_events = event_customers.len() as u64;
    Ok((events, report))
}

#[cfg(test)]
#[path = "online_retail_tests.rs"]
mod tests;
