//! Unit tests of the FatturaPA writer; the documents are validated with a38 in `tests/invoices.rs`.

use chrono::{TimeZone, Utc};
use pipelines::catalog::TaxClass;
use uuid::Uuid;

use super::*;
use crate::model::{
    Address, Order, OrderStatus, Payment, PaymentStatus, PricedItem, SdiState, TaxRegime,
};
use crate::tax;

fn address(name: &str, country: &str) -> Address {
    Address {
        name: name.into(),
        street: "Via Roma 1".into(),
        city: "Torino".into(),
        postal_code: "10121".into(),
        province: (country == "IT").then(|| "TO".to_string()),
        country: country.into(),
    }
}

fn consumer() -> Buyer {
    Buyer {
        kind: BuyerKind::Consumer,
        email: "mario.rossi@example.it".into(),
        codice_fiscale: Some("RSSMRA85T10A562S".into()),
        partita_iva: None,
        sdi_code: None,
        pec: None,
        billing: address("Mario Rossi", "IT"),
    }
}

fn order(buyer: Buyer, regime: TaxRegime, items: &[(TaxClass, i64, u32, &str)]) -> Order {
    let priced: Vec<PricedItem> = items
        .iter()
        .map(|&(class, gross, qty, desc)| {
            let r = tax::italian_rate_bp(class);
            PricedItem {
                sku: "P000123-NER-42".into(),
                product_id: "P000123".into(),
                description: desc.into(),
                size: "42".into(),
                quantity: qty,
                tax_class: class,
                unit_gross: gross,
                unit_net: gross * 10_000 / (10_000 + i64::from(r)),
                price_vat_rate_bp: r,
            }
        })
        .collect();
    let breakdown = tax::compute(&priced, regime, buyer.kind).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap();
    Order {
        id: Uuid::nil(),
        cart_id: Uuid::nil(),
        user_id: None,
        created_at: at,
        updated_at: at,
        market: "IT".into(),
        currency: "EUR".into(),
        status: OrderStatus::Paid,
        shipping: buyer.billing.clone(),
        buyer,
        payment: Payment {
            provider: "fake".into(),
            reference: None,
            status: PaymentStatus::Captured,
            amount: breakdown.totals.amount_due,
            captured: breakdown.totals.amount_due,
            refunded: 0,
            next_action: None,
            failure_reason: None,
        },
        tax: breakdown,
        allocations: vec![],
        reservation_expires_at: at,
        invoice: None,
    }
}

fn invoice_ref() -> InvoiceRef {
    let seller = Seller::default();
    InvoiceRef {
        number: super::super::invoice_number(2026, 7),
        year: 2026,
        progressive: 7,
        file_name: super::super::sdi_file_name(&seller.partita_iva, 43),
        issued_at: Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap(),
        sdi: SdiState::NotSent,
    }
}

fn render(o: &Order) -> Result<String> {
    fattura_xml(o, &Seller::default(), &invoice_ref())
}

#[test]
fn consumer_invoice_structure() {
    let o = order(
        consumer(),
        TaxRegime::Domestic,
        &[(TaxClass::Standard, 122_000, 1, "Cappotto")],
    );
    let xml = render(&o).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<p:FatturaElettronica versione=\"FPR12\" xmlns:p=\"http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2\">"));
    for needle in [
        "<IdTrasmittente>\n        <IdPaese>IT</IdPaese>\n        <IdCodice>12345670157</IdCodice>",
        "<ProgressivoInvio>00017</ProgressivoInvio>",
        "<FormatoTrasmissione>FPR12</FormatoTrasmissione>",
        "<CodiceDestinatario>0000000</CodiceDestinatario>",
        "<CodiceFiscale>RSSMRA85T10A562S</CodiceFiscale>",
        "<Nome>Mario</Nome>",
        "<Cognome>Rossi</Cognome>",
        "<Provincia>TO</Provincia>",
        "<Data>2026-03-14</Data>",
        "<Numero>2026/000007</Numero>",
        "<ImportoTotaleDocumento>1220.00</ImportoTotaleDocumento>",
        "<Descrizione>Cappotto - taglia 42</Descrizione>",
        "<Quantita>1.00</Quantita>",
        "<PrezzoUnitario>1000.00</PrezzoUnitario>",
        "<PrezzoTotale>1000.00</PrezzoTotale>",
        "<AliquotaIVA>22.00</AliquotaIVA>",
        "<ImponibileImporto>1000.00</ImponibileImporto>",
        "<Imposta>220.00</Imposta>",
        "<EsigibilitaIVA>I</EsigibilitaIVA>",
        "<ModalitaPagamento>MP08</ModalitaPagamento>",
        "<ImportoPagamento>1220.00</ImportoPagamento>",
        "<StatoLiquidazione>LN</StatoLiquidazione>",
    ] {
        assert!(xml.contains(needle), "missing {needle} in\n{xml}");
    }
    assert!(!xml.contains("PECDestinatario"));
    assert!(!xml.contains("<Natura>"));
    assert!(xml.ends_with("</p:FatturaElettronica>\n"));
}

#[test]
fn consumer_without_codice_fiscale_cannot_be_invoiced() {
    let mut b = consumer();
    b.codice_fiscale = None;
    let o = order(
        b,
        TaxRegime::Domestic,
        &[(TaxClass::Standard, 1_000, 1, "x")],
    );
    match render(&o) {
        Err(Error::Conflict(m)) => assert_eq!(
            m,
            "buyer.codice_fiscale is required for a consumer's e-invoice"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn recipient_codes() {
    let mut b = consumer();
    b.kind = BuyerKind::Business;
    b.partita_iva = Some("01234567897".into());
    b.billing.name = "Boutique Rossi S.r.l.".into();
    b.sdi_code = Some("M5UXCR1".into());
    b.pec = Some("rossi@pec.example.it".into());
    let xml = render(&order(
        b.clone(),
        TaxRegime::Domestic,
        &[(TaxClass::Standard, 1_000, 1, "x")],
    ))
    .unwrap();
    assert!(xml.contains("<CodiceDestinatario>M5UXCR1</CodiceDestinatario>"));
    assert!(!xml.contains("PECDestinatario"));
    assert!(xml.contains("<Denominazione>Boutique Rossi S.r.l.</Denominazione>"));
    assert!(xml.contains("<IdCodice>01234567897</IdCodice>"));
    b.sdi_code = None;
    let xml = render(&order(
        b.clone(),
        TaxRegime::Domestic,
        &[(TaxClass::Standard, 1_000, 1, "x")],
    ))
    .unwrap();
    assert!(xml.contains("<CodiceDestinatario>0000000</CodiceDestinatario>\n      <PECDestinatario>rossi@pec.example.it</PECDestinatario>"));
    b.pec = None;
    let xml = render(&order(
        b,
        TaxRegime::Domestic,
        &[(TaxClass::Standard, 1_000, 1, "x")],
    ))
    .unwrap();
    assert!(xml.contains("<CodiceDestinatario>0000000</CodiceDestinatario>"));
    assert!(!xml.contains("PECDestinatario"));
}

#[test]
fn public_administration_split_payment() {
    let mut b = consumer();
    b.kind = BuyerKind::PublicAdministration;
    b.codice_fiscale = Some("01199250158".into());
    b.billing.name = "Comune di Milano".into();
    b.sdi_code = Some("UFABC1".into());
    let xml = render(&order(
        b.clone(),
        TaxRegime::Domestic,
        &[(TaxClass::Standard, 122_000, 1, "x")],
    ))
    .unwrap();
    assert!(xml.contains("versione=\"FPA12\""));
    assert!(xml.contains("<FormatoTrasmissione>FPA12</FormatoTrasmissione>"));
    assert!(xml.contains("<CodiceDestinatario>UFABC1</CodiceDestinatario>"));
    assert!(xml.contains("<EsigibilitaIVA>S</EsigibilitaIVA>"));
    assert!(xml.contains("<ImportoTotaleDocumento>1220.00</ImportoTotaleDocumento>"));
    assert!(xml.contains("<ImportoPagamento>1000.00</ImportoPagamento>"));
    assert!(xml.contains("<Denominazione>Comune di Milano</Denominazione>"));
    b.sdi_code = None;
    assert!(matches!(
        render(&order(
            b,
            TaxRegime::Domestic,
            &[(TaxClass::Standard, 1_000, 1, "x")]
        )),
        Err(Error::Conflict(_))
    ));
}

#[test]
fn foreign_buyer() {
    let mut b = consumer();
    b.codice_fiscale = None;
    b.billing = address("John Smith", "GB");
    b.billing.postal_code = "SW1A 1AA".into();
    b.billing.city = "London".into();
    let mut o = order(
        b,
        TaxRegime::Export,
        &[(TaxClass::Standard, 122_000, 2, "Borsa")],
    );
    o.currency = "GBP".into();
    let xml = render(&o).unwrap();
    for needle in [
        "<CodiceDestinatario>XXXXXXX</CodiceDestinatario>",
        "<IdPaese>GB</IdPaese>\n          <IdCodice>99999999999</IdCodice>",
        "<CAP>00000</CAP>",
        "<Nazione>GB</Nazione>",
        "<Divisa>GBP</Divisa>",
        "<PrezzoUnitario>1000.00</PrezzoUnitario>",
        "<PrezzoTotale>2000.00</PrezzoTotale>",
        "<AliquotaIVA>0.00</AliquotaIVA>\n        <Natura>N3.1</Natura>",
        "<RiferimentoNormativo>Non imponibile art. 8 c.1 lett. a) DPR 633/72</RiferimentoNormativo>",
        "<ImportoTotaleDocumento>2000.00</ImportoTotaleDocumento>",
    ] {
        assert!(xml.contains(needle), "missing {needle} in\n{xml}");
    }
    // The buyer's Sede has no Provincia (the seller's has MI).
    assert_eq!(xml.matches("<Provincia>").count(), 1);
    assert!(!xml.contains("EsigibilitaIVA"));
}

#[test]
fn special_characters_are_escaped_and_latin1() {
    let o = order(
        consumer(),
        TaxRegime::Domestic,
        &[(
            TaxClass::Standard,
            10_000,
            1,
            "Borsa \"Tè & Caffè\" <limited> l'originale – 東",
        )],
    );
    let xml = render(&o).unwrap();
    assert!(
        xml.contains("<Descrizione>Borsa &quot;Tè &amp; Caffè&quot; &lt;limited&gt; l&apos;originale - ? - taglia 42</Descrizione>"),
        "{xml}"
    );
}

#[test]
fn inconsistent_inputs_are_refused() {
    let o = order(
        consumer(),
        TaxRegime::Domestic,
        &[(TaxClass::Standard, 1_000, 1, "x")],
    );
    let mut inv = invoice_ref();
    inv.file_name = "IT01234567897_00001.xml".into();
    assert!(matches!(
        fattura_xml(&o, &Seller::default(), &inv),
        Err(Error::Conflict(_))
    ));
    let mut inv = invoice_ref();
    inv.number = "ABC/DEF".into();
    assert!(matches!(
        fattura_xml(&o, &Seller::default(), &inv),
        Err(Error::Conflict(_))
    ));
    let bad_seller = Seller {
        partita_iva: "12345670158".into(),
        ..Seller::default()
    };
    assert!(matches!(
        fattura_xml(&o, &bad_seller, &invoice_ref()),
        Err(Error::BadInput { .. })
    ));
    let mut tampered = o.clone();
    tampered.tax.lines[0].net -= 1;
    assert!(matches!(render(&tampered), Err(Error::Internal(_))));
    let mut tampered = o.clone();
    tampered.tax.totals.gross += 1;
    assert!(matches!(render(&tampered), Err(Error::Internal(_))));
    let mut euro = o;
    euro.currency = "EURO".into();
    assert!(matches!(render(&euro), Err(Error::Conflict(_))));
}

#[test]
fn pec_addresses_follow_the_schema() {
    assert!(is_email_type("fatture@pec.example.it"));
    assert!(is_email_type("a.b+c@x-y.it"));
    for bad in [
        "",
        "a",
        "a@",
        "@b.it",
        "a..b@c.it",
        "a@b@c.it",
        "à@b.it",
        "a b@c.it",
        ".a@b.it",
    ] {
        assert!(!is_email_type(bad), "{bad}");
    }
}
