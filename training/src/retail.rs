//! The Online Retail comparison protocol (the one `implicit` 0.7.3 was measured with; ARCHITECTURE lists
//! it): read the UCI Online Retail CSV, keep real purchase lines, split in time at 2011-11-09, build the
//! train matrix (weight = distinct invoices per customer × StockCode) and the ground truth.
//!
//! 1. Every field is read as a string. Rows are kept with a non-empty CustomerID, `int(Quantity) > 0`, an
//!    InvoiceNo not starting with `C`, and a StockCode fully matching `^[0-9]{5}[A-Za-z]?$`.
//! 2. user = the integer CustomerID (`17850.0` → 17850); item = the StockCode with its letter upper-cased.
//! 3. A row is test if InvoiceDate (`YYYY-MM-DD HH:MM:SS`) ≥ `2011-11-09 00:00:00`, else train.
//! 4. One train entry per (user, item) with a train row; weight = distinct InvoiceNo among them. Users
//!    ascending by integer id, items ascending by StockCode bytes.
//! 5. Truth per train user: test items in the train item set that the user has no train entry for.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::eval::Split;
use crate::matrix::{Csr, IdIndex};
use crate::{Error, Result};

/// The first test instant.
pub const TEST_FROM: &str = "2011-11-09 00:00:00";

/// The protocol's data: the split plus id maps and the test weights (distinct test invoices per pair).
#[derive(Debug, Clone)]
pub struct RetailSplit {
    pub users: IdIndex,
    pub items: IdIndex,
    pub split: Split,
    /// Per truth pair (same order as `split.test`), the number of distinct test invoices.
    pub test_weights: Vec<Vec<u32>>,
    /// Rows kept by step 1.
    pub rows_kept: usize,
}

fn valid_stock_code(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() == 5 || b.len() == 6)
        && b[..5].iter().all(u8::is_ascii_digit)
        && b.get(5).is_none_or(u8::is_ascii_alphabetic)
}

/// Reads the protocol from the (optionally gzipped) CSV at `path`.
pub fn load(path: &Path) -> Result<RetailSplit> {
    let mut csv = csv::ReaderBuilder::new().from_reader(crate::data::open_maybe_gzip(path)?);
    let headers = csv
        .headers()
        .map_err(|e| Error::BadInput(format!("{}: header: {e}", path.display())))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::BadInput(format!("{}: header: no {name} column", path.display())))
    };
    let (c_inv, c_code, c_qty, c_date, c_cust) = (
        col("InvoiceNo")?,
        col("StockCode")?,
        col("Quantity")?,
        col("InvoiceDate")?,
        col("CustomerID")?,
    );
    // (user, item) → distinct invoices, per side.
    let mut train: BTreeMap<(i64, String), BTreeSet<String>> = BTreeMap::new();
    let mut test: BTreeMap<(i64, String), BTreeSet<String>> = BTreeMap::new();
    let mut rows_kept = 0;
    for (n, rec) in csv.records().enumerate() {
        let rec =
            rec.map_err(|e| Error::BadInput(format!("{}: line {}: {e}", path.display(), n + 2)))?;
        let get = |c: usize| rec.get(c).unwrap_or("");
        let (inv, code, qty, date, cust) = (
            get(c_inv),
            get(c_code),
            get(c_qty),
            get(c_date),
            get(c_cust),
        );
        if cust.is_empty() || inv.starts_with('C') || !valid_stock_code(code) {
            continue;
        }
        if !qty.parse::<i64>().is_ok_and(|q| q > 0) {
            continue;
        }
        let user = cust
            .parse::<f64>()
            .ok()
            .filter(|u| u.fract() == 0.0)
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "{}: line {}: CustomerID {cust:?} is not an integer",
                    path.display(),
                    n + 2
                ))
            })? as i64;
        rows_kept += 1;
        let side = if date >= TEST_FROM {
            &mut test
        } else {
            &mut train
        };
        side.entry((user, code.to_ascii_uppercase()))
            .or_default()
            .insert(inv.to_string());
    }
    let user_ids: BTreeSet<i64> = train.keys().map(|(u, _)| *u).collect();
    let item_ids: BTreeSet<&String> = train.keys().map(|(_, i)| i).collect();
    let users = IdIndex::new(user_ids.iter().map(i64::to_string).collect());
    let items = IdIndex::new(item_ids.iter().map(|s| s.to_string()).collect());
    let triples: Vec<(u32, u32, f32)> = train
        .iter()
        .map(|((u, i), inv)| {
            (
                users.get(&u.to_string()).unwrap_or(0),
                items.get(i).unwrap_or(0),
                inv.len() as f32,
            )
        })
        .collect();
    let train_m = Csr::from_triples(users.len(), items.len(), &triples);
    let mut truth: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
    for ((u, i), inv) in &test {
        if let (Some(ur), Some(ir)) = (users.get(&u.to_string()), items.get(i)) {
            if !train_m.contains(ur as usize, ir) {
                truth.entry(ur).or_default().push((ir, inv.len() as u32));
            }
        }
    }
    let mut tests = Vec::with_capacity(truth.len());
    let mut test_weights = Vec::with_capacity(truth.len());
    for (u, mut v) in truth {
        v.sort_unstable();
        tests.push((u, v.iter().map(|(i, _)| *i).collect()));
        test_weights.push(v.iter().map(|(_, w)| *w).collect());
    }
    Ok(RetailSplit {
        users,
        items,
        split: Split {
            train: train_m,
            test: tests,
        },
        test_weights,
        rows_kept,
    })
}

impl RetailSplit {
    /// Writes `train.csv` and `test.csv` (`user,item,weight`, sorted by (user, item) in index order, LF,
    /// integer weights) into `dir`.
    pub fn write_csv(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let open = |name: &str| -> Result<BufWriter<std::fs::File>> {
            let p = dir.join(name);
            let f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
            let mut w = BufWriter::new(f);
            w.write_all(b"user,item,weight\n")
                .map_err(|e| Error::io(&p, e))?;
            Ok(w)
        };
        let io = |e: std::io::Error| Error::Internal(format!("{}: {e}", dir.display()));
        let mut w = open("train.csv")?;
        let m = &self.split.train;
        for u in 0..m.rows {
            let (cols, vals) = m.row(u);
            for (c, v) in cols.iter().zip(vals) {
                writeln!(
                    w,
                    "{},{},{}",
                    self.users.id(u as u32),
                    self.items.id(*c),
                    *v as u32
                )
                .map_err(io)?;
            }
        }
        w.flush().map_err(io)?;
        let mut w = open("test.csv")?;
        for ((u, items), weights) in self.split.test.iter().zip(&self.test_weights) {
            for (i, wt) in items.iter().zip(weights) {
                writeln!(w, "{},{},{}", self.users.id(*u), self.items.id(*i), wt).map_err(io)?;
            }
        }
        w.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_codes_are_five_digits_and_an_optional_letter() {
        for ok in ["85123", "85123A", "85123a"] {
            assert!(valid_stock_code(ok), "{ok}");
        }
        for bad in ["POST", "8512", "85123AB", "85123-", "DCGS0003", ""] {
            assert!(!valid_stock_code(bad), "{bad}");
        }
    }

    #[test]
    fn a_small_file_follows_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        std::fs::write(
            &p,
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
             1,10001,x,1,2011-01-01 10:00:00,1,20.0,UK\n\
             2,10001,x,2,2011-02-01 10:00:00,1,20.0,UK\n\
             2,10001,x,2,2011-02-01 10:00:00,1,20.0,UK\n\
             3,10002a,x,1,2011-02-01 10:00:00,1,3.0,UK\n\
             C4,10002A,x,1,2011-02-01 10:00:00,1,20.0,UK\n\
             5,POST,x,1,2011-02-01 10:00:00,1,20.0,UK\n\
             6,10003,x,0,2011-02-01 10:00:00,1,20.0,UK\n\
             7,10003,x,1,2011-02-01 10:00:00,1,,UK\n\
             8,10002A,x,1,2011-11-09 00:00:00,1,20.0,UK\n\
             9,10009,x,1,2011-11-10 00:00:00,1,20.0,UK\n\
             10,10001,x,1,2011-11-10 00:00:00,1,3.0,UK\n",
        )
        .unwrap();
        let r = load(&p).unwrap();
        assert_eq!(r.rows_kept, 7);
        assert_eq!(r.users.ids(), ["3", "20"]);
        assert_eq!(r.items.ids(), ["10001", "10002A"]);
        // User 20: 10001 in invoices 1 and 2 → weight 2. User 3: 10002A once.
        assert_eq!(r.split.train.row(1), (&[0u32][..], &[2.0f32][..]));
        // Truth: user 20 gets 10002A (10009 is not a train item); user 3 gets 10001.
        assert_eq!(r.split.test, vec![(0, vec![0]), (1, vec![1])]);
        r.write_csv(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("train.csv")).unwrap(),
            "user,item,weight\n3,10002A,1\n20,10001,2\n"
        );
    }
}
