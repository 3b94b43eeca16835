//! Validation of the buyer at checkout: what an order needs so that its e-invoice can be issued.
//!
//! Rules (errors are [`Error::BadInput`] with the field path `buyer.<field>` / `buyer.billing.<field>`):
//! - `email`: one `@`, something before it, a dot inside the domain, no spaces, at most 254 characters
//!   (RFC 5321's path limit).
//! - `billing`: name, street and city not blank; `country` an ISO 3166-1 alpha-2 code; Italian addresses
//!   need a 5-digit `postal_code` (CAP) and a 2-letter upper-case `province` (the e-invoice's `Provincia`).
//! - `codice_fiscale` / `partita_iva`, when given, must pass their checksums ([`super::ids`]).
//! - A **business** buying domestically needs its `partita_iva`; an `sdi_code`, when given, is the 7-character
//!   `CodiceDestinatario` (upper-case letters and digits); a `pec`, when given, must look like an ASCII e-mail.
//!   Consumers may give an `sdi_code` / `pec` too (the invoice is then delivered there), checked the same way.
//! - A **public administration** only buys domestically (split payment and FatturaPA `FPA12` are Italian),
//!   and needs its 6-character `CodiceUnivocoUfficio` as `sdi_code` and its codice fiscale or Partita IVA.

use pipelines::iso::is_country;

use super::ids::{validate_codice_fiscale, validate_partita_iva};
use crate::model::{Buyer, BuyerKind, TaxRegime};
use crate::{Error, Result};

/// Checks `buyer` for an order under `regime` (see the module doc for the rules).
pub fn validate_buyer(buyer: &Buyer, regime: TaxRegime) -> Result<()> {
    if let Err(reason) = check_email(&buyer.email) {
        return Err(Error::bad("buyer.email", reason));
    }
    let a = &buyer.billing;
    for (field, v) in [
        ("buyer.billing.name", &a.name),
        ("buyer.billing.street", &a.street),
        ("buyer.billing.city", &a.city),
    ] {
        if v.trim().is_empty() {
            return Err(Error::bad(field, "required"));
        }
    }
    if !is_country(&a.country) {
        return Err(Error::bad(
            "buyer.billing.country",
            format!("`{}` is not an ISO 3166-1 alpha-2 country code", a.country),
        ));
    }
    if a.country == "IT" {
        if a.postal_code.len() != 5 || !a.postal_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad(
                "buyer.billing.postal_code",
                "an Italian CAP is 5 digits",
            ));
        }
        match &a.province {
            Some(p) if p.len() == 2 && p.bytes().all(|b| b.is_ascii_uppercase()) => {}
            Some(_) => {
                return Err(Error::bad(
                    "buyer.billing.province",
                    "an Italian province code is 2 upper-case letters (e.g. MI)",
                ))
            }
            None => {
                return Err(Error::bad(
                    "buyer.billing.province",
                    "required for an Italian address (e.g. MI)",
                ))
            }
        }
    }
    if let Some(cf) = &buyer.codice_fiscale {
        validate_codice_fiscale(cf).map_err(|r| Error::bad("buyer.codice_fiscale", r))?;
    }
    if let Some(piva) = &buyer.partita_iva {
        validate_partita_iva(piva).map_err(|r| Error::bad("buyer.partita_iva", r))?;
    }
    if let Some(pec) = &buyer.pec {
        check_email(pec).map_err(|r| Error::bad("buyer.pec", r))?;
        if !pec.is_ascii() {
            return Err(Error::bad("buyer.pec", "a PEC address is ASCII"));
        }
    }
    match buyer.kind {
        BuyerKind::Consumer | BuyerKind::Business => {
            if let Some(code) = &buyer.sdi_code {
                if !is_code(code, 7) {
                    return Err(Error::bad(
                        "buyer.sdi_code",
                        "a Codice Destinatario is 7 upper-case letters or digits",
                    ));
                }
            }
            if buyer.kind == BuyerKind::Business
                && regime == TaxRegime::Domestic
                && buyer.partita_iva.is_none()
            {
                return Err(Error::bad(
                    "buyer.partita_iva",
                    "required for a business buying in Italy",
                ));
            }
        }
        BuyerKind::PublicAdministration => {
            if regime != TaxRegime::Domestic {
                return Err(Error::bad(
                    "buyer.kind",
                    "a public administration can only order for delivery in Italy",
                ));
            }
            match &buyer.sdi_code {
                Some(code) if is_code(code, 6) => {}
                Some(_) => {
                    return Err(Error::bad(
                        "buyer.sdi_code",
                        "a Codice Univoco Ufficio is 6 upper-case letters or digits",
                    ))
                }
                None => return Err(Error::bad(
                    "buyer.sdi_code",
                    "a public administration's Codice Univoco Ufficio (6 characters) is required",
                )),
            }
            if buyer.codice_fiscale.is_none() && buyer.partita_iva.is_none() {
                return Err(Error::bad(
                    "buyer.codice_fiscale",
                    "a public administration needs its codice fiscale or partita IVA",
                ));
            }
        }
    }
    Ok(())
}

/// `len` upper-case ASCII letters or digits.
fn is_code(code: &str, len: usize) -> bool {
    code.len() == len
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether `s` passes the e-mail shape check of [`validate_buyer`].
pub(crate) fn looks_like_email(s: &str) -> bool {
    check_email(s).is_ok()
}

fn check_email(s: &str) -> std::result::Result<(), &'static str> {
    if s.is_empty() {
        return Err("required");
    }
    if s.chars().count() > 254 {
        return Err("at most 254 characters");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("must contain exactly one @");
    };
    if local.is_empty() {
        return Err("nothing before the @");
    }
    if !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err("the domain after the @ must contain a dot (e.g. example.com)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;

    fn address(country: &str) -> Address {
        Address {
            name: "Mario Rossi".into(),
            street: "Via Roma 1".into(),
            city: "Milano".into(),
            postal_code: "20121".into(),
            province: Some("MI".into()),
            country: country.into(),
        }
    }

    fn consumer() -> Buyer {
        Buyer {
            kind: BuyerKind::Consumer,
            email: "mario.rossi@example.it".into(),
            codice_fiscale: None,
            partita_iva: None,
            sdi_code: None,
            pec: None,
            billing: address("IT"),
        }
    }

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::BadInput { field, .. }) => field,
            other => panic!("expected BadInput, got {other:?}"),
        }
    }

    #[test]
    fn consumer_needs_nothing_else() {
        assert!(validate_buyer(&consumer(), TaxRegime::Domestic).is_ok());
        let mut b = consumer();
        b.billing = address("GB");
        b.billing.province = None;
        b.billing.postal_code = "SW1A 1AA".into();
        assert!(validate_buyer(&b, TaxRegime::Export).is_ok());
    }

    #[test]
    fn email_rules() {
        for bad in [
            "", "a", "a@b", "@b.it", "a@@b.it", "a@b@c.it", "a b@c.it", "a@.it", "a@b.", "a@b..it",
        ] {
            let mut b = consumer();
            b.email = bad.into();
            assert_eq!(
                field_of(validate_buyer(&b, TaxRegime::Domestic)),
                "buyer.email",
                "{bad}"
            );
        }
        let mut b = consumer();
        b.email = format!("{}@example.it", "a".repeat(250));
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.email"
        );
    }

    #[test]
    fn italian_address_rules() {
        let mut b = consumer();
        b.billing.postal_code = "2012".into();
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.billing.postal_code"
        );
        let mut b = consumer();
        b.billing.province = None;
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.billing.province"
        );
        b.billing.province = Some("mi".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.billing.province"
        );
        let mut b = consumer();
        b.billing.country = "UK".into();
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Export)),
            "buyer.billing.country"
        );
        let mut b = consumer();
        b.billing.street = " ".into();
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.billing.street"
        );
    }

    #[test]
    fn identifiers_are_checked_when_present() {
        let mut b = consumer();
        b.codice_fiscale = Some("RSSMRA85T10A562X".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.codice_fiscale"
        );
        b.codice_fiscale = Some("RSSMRA85T10A562S".into());
        assert!(validate_buyer(&b, TaxRegime::Domestic).is_ok());
        b.partita_iva = Some("01234567890".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.partita_iva"
        );
    }

    #[test]
    fn business_rules() {
        let mut b = consumer();
        b.kind = BuyerKind::Business;
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.partita_iva"
        );
        // Abroad the Italian Partita IVA is not required.
        let mut abroad = b.clone();
        abroad.billing = address("DE");
        assert!(validate_buyer(&abroad, TaxRegime::EuDistanceSale).is_ok());
        b.partita_iva = Some("01234567897".into());
        assert!(validate_buyer(&b, TaxRegime::Domestic).is_ok());
        b.sdi_code = Some("ABC123".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.sdi_code"
        );
        b.sdi_code = Some("abc1234".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.sdi_code"
        );
        b.sdi_code = Some("M5UXCR1".into());
        assert!(validate_buyer(&b, TaxRegime::Domestic).is_ok());
        b.pec = Some("fatture@pèc.example.it".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.pec"
        );
        b.pec = Some("not-a-pec".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.pec"
        );
        b.pec = Some("fatture@pec.example.it".into());
        assert!(validate_buyer(&b, TaxRegime::Domestic).is_ok());
    }

    #[test]
    fn public_administration_rules() {
        let mut b = consumer();
        b.kind = BuyerKind::PublicAdministration;
        b.billing.name = "Comune di Milano".into();
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.sdi_code"
        );
        b.sdi_code = Some("UFABC12".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.sdi_code"
        );
        b.sdi_code = Some("UFAB12".into());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Domestic)),
            "buyer.codice_fiscale"
        );
        b.codice_fiscale = Some("01199250158".into());
        assert!(validate_buyer(&b, TaxRegime::Domestic).is_ok());
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::Export)),
            "buyer.kind"
        );
        assert_eq!(
            field_of(validate_buyer(&b, TaxRegime::EuDistanceSale)),
            "buyer.kind"
        );
    }

    #[test]
    fn email_shape_helper() {
        assert!(looks_like_email("fatture@pec.lussomoda.it"));
        assert!(!looks_like_email("fatture.pec.lussomoda.it"));
    }
}
