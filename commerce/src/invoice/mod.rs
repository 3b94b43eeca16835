//! E-invoices: FatturaPA 1.2 XML for the Sistema di Interscambio (SDI), the SDI file names and the
//! transmission state machine.
//!
//! - [`Seller`]: the house issuing the invoices (cedente / prestatore), from the configuration.
//! - [`invoice_number`] / [`sdi_file_name`] / [`issue_date`]: the document's number, file name and date.
//! - [`fattura_xml`] ([`xml`]): the invoice of an order, `FPR12` for consumers and businesses, `FPA12` for
//!   public administrations. The rules it follows and the SDI checks it is built to pass are in that
//!   module's doc; every document is validated with `a38` in `tests/invoices.rs`.
//! - [`next_sdi_state`] ([`sdi`]): how SDI's receipts move an invoice's [`SdiState`](crate::model::SdiState).
//!
//! Sources: "Specifiche tecniche operative del formato della FatturaPA" and the schema
//! `Schema_VFPR12` 1.2.x (Agenzia delle Entrate / fatturapa.gov.it), SDI's "Elenco controlli" for the
//! error codes quoted (00400…00443), and the AdE guide "Guida alla compilazione delle fatture
//! elettroniche" for Natura codes and foreign buyers.

pub mod sdi;
mod writer;
pub mod xml;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

pub use sdi::{next_sdi_state, SdiReceipt, SdiReceiptKind};
pub use xml::fattura_xml;

use crate::model::{Address, Cents};
use crate::tax::{looks_like_email, validate_codice_fiscale, validate_partita_iva};
use crate::{Error, Result};

/// Regime fiscale codes of the schema (RF03 was withdrawn).
const REGIMI_FISCALI: [&str; 18] = [
    "RF01", "RF02", "RF04", "RF05", "RF06", "RF07", "RF08", "RF09", "RF10", "RF11", "RF12", "RF13",
    "RF14", "RF15", "RF16", "RF17", "RF18", "RF19",
];

/// The seller (cedente / prestatore) printed on every invoice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seller {
    /// Company name (`Denominazione`), at most 80 characters.
    pub denominazione: String,
    /// Italian Partita IVA, 11 digits; also the transmitter's id and the SDI file name's prefix.
    pub partita_iva: String,
    /// Codice fiscale when it differs from the Partita IVA or should be printed (companies: 11 digits).
    #[serde(default)]
    pub codice_fiscale: Option<String>,
    /// `RegimeFiscale`: `RF01` ordinario for a company like the house.
    pub regime_fiscale: String,
    /// Registered office (`Sede`): must be Italian, with CAP and province.
    pub address: Address,
    /// Company register (REA) office: the province code of the Camera di Commercio, e.g. `MI`.
    #[serde(default)]
    pub rea_ufficio: Option<String>,
    /// REA number, e.g. `1234567`. Set together with `rea_ufficio`.
    #[serde(default)]
    pub rea_numero: Option<String>,
    /// Share capital (`CapitaleSociale`) in cents of euro, printed with the REA data.
    #[serde(default)]
    pub capitale_sociale: Option<Cents>,
    /// `true`: one shareholder (`SU`), `false`: several (`SM`); printed with the REA data.
    #[serde(default)]
    pub socio_unico: Option<bool>,
    /// Administrative contact e-mail printed on the invoice.
    #[serde(default)]
    pub email: Option<String>,
    /// Contact phone, 5–12 characters.
    #[serde(default)]
    pub telefono: Option<String>,
}

impl Default for Seller {
    /// The demo house. Its Partita IVA `12345670157` is fictitious (office code 015, Milano) but passes
    /// the checksum, as SDI's syntax checks require.
    fn default() -> Self {
        Seller {
            denominazione: "Lusso Moda S.p.A.".into(),
            partita_iva: "12345670157".into(),
            codice_fiscale: Some("12345670157".into()),
            regime_fiscale: "RF01".into(),
            address: Address {
                name: "Lusso Moda S.p.A.".into(),
                street: "Via Montenapoleone 8".into(),
                city: "Milano".into(),
                postal_code: "20121".into(),
                province: Some("MI".into()),
                country: "IT".into(),
            },
            rea_ufficio: Some("MI".into()),
            rea_numero: Some("1234567".into()),
            capitale_sociale: Some(1_000_000_000),
            socio_unico: Some(false),
            email: Some("amministrazione@lussomoda.example".into()),
            telefono: None,
        }
    }
}

impl Seller {
    /// Checks what the invoice needs; errors name `seller.<field>`.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, r: &str| Err(Error::bad(format!("seller.{f}"), r));
        let name = self.denominazione.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return bad("denominazione", "required, at most 80 characters");
        }
        validate_partita_iva(&self.partita_iva).map_err(|r| Error::bad("seller.partita_iva", r))?;
        if let Some(cf) = &self.codice_fiscale {
            validate_codice_fiscale(cf).map_err(|r| Error::bad("seller.codice_fiscale", r))?;
        }
        if !REGIMI_FISCALI.contains(&self.regime_fiscale.as_str()) {
            return bad("regime_fiscale", "must be one of RF01, RF02, RF04…RF19");
        }
        let a = &self.address;
        if a.street.trim().is_empty() || a.city.trim().is_empty() {
            return bad("address", "street and city are required");
        }
        if a.country != "IT" {
            return bad(
                "address.country",
                "the seller's registered office must be in Italy (IT)",
            );
        }
        if a.postal_code.len() != 5 || !a.postal_code.bytes().all(|b| b.is_ascii_digit()) {
            return bad("address.postal_code", "an Italian CAP is 5 digits");
        }
        if !a.province.as_deref().is_some_and(is_province) {
            return bad(
                "address.province",
                "an Italian province code is 2 upper-case letters",
            );
        }
        match (&self.rea_ufficio, &self.rea_numero) {
            (None, None) => {
                if self.capitale_sociale.is_some() || self.socio_unico.is_some() {
                    return bad(
                        "rea_numero",
                        "capitale_sociale and socio_unico are printed with the REA data",
                    );
                }
            }
            (Some(u), Some(n)) => {
                if !is_province(u) {
                    return bad("rea_ufficio", "a province code, 2 upper-case letters");
                }
                if n.trim().is_empty() || n.len() > 20 || !n.is_ascii() {
                    return bad("rea_numero", "1–20 ASCII characters");
                }
            }
            _ => return bad("rea_numero", "rea_ufficio and rea_numero go together"),
        }
        if self
            .capitale_sociale
            .is_some_and(|c| !(0..10_000_000_000_000).contains(&c))
        {
            return bad("capitale_sociale", "must be 0 or more and fit 11 digits");
        }
        if let Some(e) = &self.email {
            if !looks_like_email(e) {
                return bad("email", "not an e-mail address");
            }
        }
        if let Some(t) = &self.telefono {
            if !(5..=12).contains(&t.len()) || !t.is_ascii() {
                return bad("telefono", "5–12 characters");
            }
        }
        Ok(())
    }
}

fn is_province(p: &str) -> bool {
    p.len() == 2 && p.bytes().all(|b| b.is_ascii_uppercase())
}

/// The SDI file name of a transmission: `IT` + the seller's Partita IVA + `_` + `progressive` in base 36
/// (upper case) zero-padded to 5 characters + `.xml`, e.g. `IT01234567897_0000A.xml`.
///
/// SDI refuses a file name it has already received (error 00002), so `progressive` must be unique for the
/// sender over all years *and* over re-submissions: a rejected invoice is sent again under a new file
/// name. It is therefore a sender-wide transmission counter, not the invoice's yearly progressive. Five
/// base-36 characters hold 60,466,175 files; beyond that the name grows (SDI allows 5 characters only).
pub fn sdi_file_name(seller_partita_iva: &str, progressive: u64) -> String {
    format!("IT{seller_partita_iva}_{:0>5}.xml", base36(progressive))
}

/// `progressive` in base 36, digits `0-9A-Z`.
pub(crate) fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().map(|&b| b as char).collect()
}

/// The document number: `<year>/<progressive, at least 6 digits>`, e.g. `2026/000123`. The schema's
/// `Numero` holds 20 characters: progressives below 10^15 with a 4-digit year.
pub fn invoice_number(year: i32, progressive: u64) -> String {
    format!("{year}/{progressive:06}")
}

/// The invoice date of an instant: its calendar date in Italy (Europe/Rome: CET, CEST from the last
/// Sunday of March to the last Sunday of October, switching at 01:00 UTC). An order paid at 23:30 UTC on
/// 31 December is invoiced on 1 January, in the new year's numbering: use this date's year for
/// [`invoice_number`].
pub fn issue_date(at: DateTime<Utc>) -> NaiveDate {
    let year = at.year();
    let switch = |month: u32| {
        last_sunday(year, month)
            .and_then(|d| d.and_hms_opt(1, 0, 0))
            .map(|t| t.and_utc())
    };
    let summer = match (switch(3), switch(10)) {
        (Some(start), Some(end)) => at >= start && at < end,
        _ => false,
    };
    (at + Duration::hours(if summer { 2 } else { 1 })).date_naive()
}

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let mut d = NaiveDate::from_ymd_opt(year, month + 1, 1)?.pred_opt()?;
    while d.weekday() != Weekday::Sun {
        d = d.pred_opt()?;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn default_seller_is_valid() {
        let s = Seller::default();
        s.validate().unwrap();
        assert_eq!(validate_partita_iva(&s.partita_iva), Ok(()));
    }

    #[test]
    fn seller_errors_name_the_field() {
        let field = |change: fn(&mut Seller)| {
            let mut s = Seller::default();
            change(&mut s);
            match s.validate() {
                Err(Error::BadInput { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            field(|s| s.partita_iva = "12345670158".into()),
            "seller.partita_iva"
        );
        assert_eq!(
            field(|s| s.regime_fiscale = "RF03".into()),
            "seller.regime_fiscale"
        );
        assert_eq!(field(|s| s.rea_numero = None), "seller.rea_numero");
        assert_eq!(
            field(|s| s.rea_ufficio = Some("Milano".into())),
            "seller.rea_ufficio"
        );
        assert_eq!(
            field(|s| s.address.province = None),
            "seller.address.province"
        );
        assert_eq!(
            field(|s| s.address.country = "FR".into()),
            "seller.address.country"
        );
        assert_eq!(
            field(|s| s.denominazione = "x".repeat(81)),
            "seller.denominazione"
        );
        assert_eq!(field(|s| s.email = Some("nope".into())), "seller.email");
        assert_eq!(
            field(|s| s.codice_fiscale = Some("123".into())),
            "seller.codice_fiscale"
        );
    }

    #[test]
    fn seller_round_trips_through_json() {
        let s = Seller::default();
        let json = serde_json::to_string(&s).unwrap();
        let back: Seller = serde_json::from_str(&json).unwrap();
        assert_eq!(back.partita_iva, s.partita_iva);
        assert!(serde_json::from_str::<Seller>(&json.replace("\"email\"", "\"mail\"")).is_err());
    }

    #[test]
    fn file_names_and_numbers() {
        assert_eq!(sdi_file_name("01234567897", 10), "IT01234567897_0000A.xml");
        assert_eq!(sdi_file_name("01234567897", 0), "IT01234567897_00000.xml");
        assert_eq!(sdi_file_name("01234567897", 36), "IT01234567897_00010.xml");
        assert_eq!(
            sdi_file_name("01234567897", 60_466_175),
            "IT01234567897_ZZZZZ.xml"
        );
        assert_eq!(
            sdi_file_name("01234567897", 60_466_176),
            "IT01234567897_100000.xml"
        );
        assert_eq!(invoice_number(2026, 123), "2026/000123");
        assert_eq!(invoice_number(2026, 1_234_567), "2026/1234567");
        assert_eq!(invoice_number(2026, 999_999_999_999_999).len(), 20);
    }

    #[test]
    fn issue_dates_are_italian() {
        let utc = |y, mo, d, h, mi| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // Winter, CET (+1): 23:30 UTC on 31 December is 00:30 on 1 January.
        assert_eq!(issue_date(utc(2025, 12, 31, 23, 30)), date(2026, 1, 1));
        assert_eq!(issue_date(utc(2025, 12, 31, 22, 59)), date(2025, 12, 31));
        // Summer, CEST (+2): 22:30 UTC on 15 July is 00:30 on 16 July.
        assert_eq!(issue_date(utc(2026, 7, 15, 22, 30)), date(2026, 7, 16));
        // 2026 switches on 29 March and 25 October at 01:00 UTC.
        assert_eq!(issue_date(utc(2026, 3, 29, 0, 59)), date(2026, 3, 29));
        assert_eq!(issue_date(utc(2026, 3, 28, 22, 30)), date(2026, 3, 28));
        assert_eq!(issue_date(utc(2026, 3, 29, 22, 30)), date(2026, 3, 30));
        assert_eq!(issue_date(utc(2026, 10, 25, 22, 30)), date(2026, 10, 25));
        assert_eq!(issue_date(utc(2026, 10, 24, 22, 30)), date(2026, 10, 25));
    }
}
