//! Tests of the tax computation; expectations are computed by hand in the comments.

use super::*;

fn item(class: TaxClass, unit_gross: Cents, quantity: u32) -> PricedItem {
    let rate = italian_rate_bp(class);
    PricedItem {
        sku: format!("P000001-NER-{quantity}"),
        product_id: "P000001".into(),
        description: "Cappotto in cashmere".into(),
        size: "42".into(),
        quantity,
        tax_class: class,
        unit_gross,
        unit_net: net_of_gross(unit_gross, rate),
        price_vat_rate_bp: rate,
    }
}

fn field_of<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::BadInput { field, .. }) => field,
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[test]
fn regimes() {
    assert_eq!(regime_for("IT"), TaxRegime::Domestic);
    assert_eq!(regime_for("it"), TaxRegime::Domestic);
    for eu in ["DE", "FR", "ES", "GR", "AT", "IE", "SE", "CY", "MT", "HR"] {
        assert_eq!(regime_for(eu), TaxRegime::EuDistanceSale, "{eu}");
    }
    for x in ["GB", "CH", "US", "NO", "SM", "VA", "JP", "EL", "", "XX"] {
        assert_eq!(regime_for(x), TaxRegime::Export, "{x}");
    }
    assert_eq!(EU_OTHER.len(), 26);
}

#[test]
fn italian_rates() {
    assert_eq!(italian_rate_bp(TaxClass::Standard), 2200);
    assert_eq!(italian_rate_bp(TaxClass::Reduced), 1000);
    assert_eq!(italian_rate_bp(TaxClass::SuperReduced), 400);
    assert_eq!(italian_rate_bp(TaxClass::Exempt), 0);
}

#[test]
fn one_standard_line() {
    // 1,220.00 € at 22 %: 1220 / 1.22 = 1000.00 net, 220.00 VAT.
    let b = compute(
        &[item(TaxClass::Standard, 122_000, 1)],
        TaxRegime::Domestic,
        BuyerKind::Consumer,
    )
    .unwrap();
    let l = &b.lines[0];
    assert_eq!(
        (l.line_no, l.unit_price, l.gross, l.net, l.vat),
        (1, 122_000, 122_000, 100_000, 22_000)
    );
    assert_eq!(l.vat_rate_bp, 2200);
    assert_eq!(l.natura, None);
    assert_eq!(
        b.summary,
        vec![VatSummary {
            vat_rate_bp: 2200,
            natura: None,
            taxable: 100_000,
            vat: 22_000
        }]
    );
    assert_eq!(
        b.totals,
        Totals {
            net: 100_000,
            vat: 22_000,
            gross: 122_000,
            vat_collected: 22_000,
            amount_due: 122_000
        }
    );
    assert!(!b.split_payment);
}

#[test]
fn mixed_rates() {
    let items = [
        item(TaxClass::Standard, 12_200, 2),     // gross 244.00
        item(TaxClass::Reduced, 5_500, 1),       // gross 55.00 → 50.00 + 5.00
        item(TaxClass::SuperReduced, 10_400, 3), // gross 312.00 → 300.00 + 12.00
        item(TaxClass::Standard, 999, 1),        // gross 9.99
    ];
    let b = compute(&items, TaxRegime::Domestic, BuyerKind::Business).unwrap();
    // 22 % group: G = 253.99, N = round(25399 / 1.22 = 20818.85) = 20819, VAT = 4580.
    // Shares of 20819 by gross 24400 : 999 → 20000.15 / 818.85 → floors 20000 + 818 = 20818, the one cent
    // left goes to the larger remainder (line 4): 20000 / 819.
    let got: Vec<_> = b
        .lines
        .iter()
        .map(|l| (l.line_no, l.vat_rate_bp, l.gross, l.net, l.vat))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 2200, 24_400, 20_000, 4_400),
            (2, 1000, 5_500, 5_000, 500),
            (3, 400, 31_200, 30_000, 1_200),
            (4, 2200, 999, 819, 180),
        ]
    );
    assert_eq!(
        b.summary,
        vec![
            VatSummary {
                vat_rate_bp: 2200,
                natura: None,
                taxable: 20_819,
                vat: 4_580
            },
            VatSummary {
                vat_rate_bp: 1000,
                natura: None,
                taxable: 5_000,
                vat: 500
            },
            VatSummary {
                vat_rate_bp: 400,
                natura: None,
                taxable: 30_000,
                vat: 1_200
            },
        ]
    );
    assert_eq!(
        b.totals,
        Totals {
            net: 55_819,
            vat: 6_280,
            gross: 62_099,
            vat_collected: 6_280,
            amount_due: 62_099
        }
    );
}

#[test]
fn split_payment_for_a_public_administration() {
    let b = compute(
        &[item(TaxClass::Standard, 122_000, 1)],
        TaxRegime::Domestic,
        BuyerKind::PublicAdministration,
    )
    .unwrap();
    assert!(b.split_payment);
    // VAT shown (220.00) but not collected: the PA pays the net 1,000.00.
    assert_eq!(
        b.totals,
        Totals {
            net: 100_000,
            vat: 22_000,
            gross: 122_000,
            vat_collected: 0,
            amount_due: 100_000
        }
    );
    // Not under the other regimes (a PA order abroad is refused by validate_buyer anyway).
    let b = compute(
        &[item(TaxClass::Standard, 122_000, 1)],
        TaxRegime::Export,
        BuyerKind::PublicAdministration,
    )
    .unwrap();
    assert!(!b.split_payment);
}

#[test]
fn export_charges_the_net_price_without_vat() {
    let b = compute(
        &[item(TaxClass::Standard, 122_000, 2)],
        TaxRegime::Export,
        BuyerKind::Consumer,
    )
    .unwrap();
    let l = &b.lines[0];
    assert_eq!(
        (l.unit_price, l.gross, l.net, l.vat, l.vat_rate_bp),
        (100_000, 200_000, 200_000, 0, 0)
    );
    assert_eq!(l.natura.as_deref(), Some("N3.1"));
    assert_eq!(
        b.summary,
        vec![VatSummary {
            vat_rate_bp: 0,
            natura: Some("N3.1".into()),
            taxable: 200_000,
            vat: 0
        }]
    );
    assert_eq!(
        b.totals,
        Totals {
            net: 200_000,
            vat: 0,
            gross: 200_000,
            vat_collected: 0,
            amount_due: 200_000
        }
    );
}

#[test]
fn exempt_lines_have_natura_n4() {
    let items = [
        item(TaxClass::Exempt, 50_000, 1),
        item(TaxClass::Standard, 12_200, 1),
    ];
    let b = compute(&items, TaxRegime::Domestic, BuyerKind::Consumer).unwrap();
    assert_eq!(
        (b.lines[0].vat_rate_bp, b.lines[0].natura.as_deref()),
        (0, Some("N4"))
    );
    assert_eq!((b.lines[0].net, b.lines[0].vat), (50_000, 0));
    // Summary: 22 % first, then the 0 % / N4 group.
    assert_eq!(b.summary[0].vat_rate_bp, 2200);
    assert_eq!(
        b.summary[1],
        VatSummary {
            vat_rate_bp: 0,
            natura: Some("N4".into()),
            taxable: 50_000,
            vat: 0
        }
    );
    assert_eq!(b.totals.gross, 62_200);
    assert_eq!(b.totals.net + b.totals.vat, b.totals.gross);
}

#[test]
fn eu_distance_sale_uses_the_destination_rate() {
    // Germany, 19 %: 119.00 gross → 100.00 + 19.00.
    let mut de = item(TaxClass::Standard, 11_900, 1);
    de.price_vat_rate_bp = 1900;
    de.unit_net = 10_000;
    let mut zero = de.clone();
    zero.price_vat_rate_bp = 0;
    zero.unit_gross = 5_000;
    zero.unit_net = 5_000;
    let gift = item(TaxClass::Exempt, 2_500, 1);
    let b = compute(
        &[de, zero, gift],
        TaxRegime::EuDistanceSale,
        BuyerKind::Consumer,
    )
    .unwrap();
    assert_eq!(
        (b.lines[0].vat_rate_bp, b.lines[0].net, b.lines[0].vat),
        (1900, 10_000, 1_900)
    );
    assert_eq!(
        (b.lines[1].vat_rate_bp, b.lines[1].natura.as_deref()),
        (0, Some("N7"))
    );
    assert_eq!(
        (b.lines[2].vat_rate_bp, b.lines[2].natura.as_deref()),
        (0, Some("N4"))
    );
    let keys: Vec<_> = b
        .summary
        .iter()
        .map(|s| (s.vat_rate_bp, s.natura.as_deref()))
        .collect();
    assert_eq!(keys, vec![(1900, None), (0, Some("N4")), (0, Some("N7"))]);
    assert_eq!(
        b.totals,
        Totals {
            net: 17_500,
            vat: 1_900,
            gross: 19_400,
            vat_collected: 1_900,
            amount_due: 19_400
        }
    );
}

#[test]
fn group_rounding_differs_from_per_line_rounding_and_reconciles() {
    // Three 29.90 € lines at 22 %. Per line: round(2990 / 1.22 = 2450.82) = 2451 net, 539 VAT; summed:
    // 7353 net, 1617 VAT. Per group: G = 8970, N = round(7352.46) = 7352, VAT = 1618, and 7352 × 22 % =
    // 1617.44, within SDI's cent. Shares: 2450.67 each → 2450 + the 2 cents left to lines 1 and 2 (equal
    // remainders, earlier lines first).
    let items = [
        item(TaxClass::Standard, 2_990, 1),
        item(TaxClass::Standard, 2_990, 1),
        item(TaxClass::Standard, 2_990, 1),
    ];
    let per_line_net: Cents = items.iter().map(|i| net_of_gross(i.unit_gross, 2200)).sum();
    assert_eq!(per_line_net, 7_353);
    let b = compute(&items, TaxRegime::Domestic, BuyerKind::Consumer).unwrap();
    let nets: Vec<_> = b.lines.iter().map(|l| l.net).collect();
    assert_eq!(nets, vec![2_451, 2_451, 2_450]);
    let vats: Vec<_> = b.lines.iter().map(|l| l.vat).collect();
    assert_eq!(vats, vec![539, 539, 540]);
    assert_eq!(b.summary[0].taxable, 7_352);
    assert_eq!(b.summary[0].vat, 1_618);
    assert_eq!(nets.iter().sum::<Cents>(), b.summary[0].taxable);
    assert_eq!(vats.iter().sum::<Cents>(), b.summary[0].vat);
    assert_eq!(
        b.totals,
        Totals {
            net: 7_352,
            vat: 1_618,
            gross: 8_970,
            vat_collected: 1_618,
            amount_due: 8_970
        }
    );
}

#[test]
fn rounding_half_up() {
    // 61 / 1.22 = 50 exactly; 1 / 1.22 = 0.82 → 1; 183 / 1.22 = 150; 21 / 1.10 = 19.09 → 19.
    assert_eq!(net_of_gross(61, 2200), 50);
    assert_eq!(net_of_gross(1, 2200), 1);
    assert_eq!(net_of_gross(0, 2200), 0);
    assert_eq!(net_of_gross(183, 2200), 150);
    assert_eq!(net_of_gross(21, 1000), 19);
    // An exact half rounds up: 3 / 1.20 = 2.5 → 3; 5 / 1.25 = 4 exactly.
    assert_eq!(net_of_gross(3, 2000), 3);
    assert_eq!(net_of_gross(5, 2500), 4);
    assert_eq!(net_of_gross(500, 0), 500);
}

#[test]
fn allocation_properties() {
    assert_eq!(allocate(0, &[0, 0]), vec![0, 0]);
    assert_eq!(allocate(10, &[1, 1, 1]), vec![4, 3, 3]);
    assert_eq!(allocate(2, &[1, 1, 1]), vec![1, 1, 0]);
    assert_eq!(allocate(7, &[0, 7]), vec![0, 7]);
}

#[test]
fn input_errors_name_the_field() {
    assert_eq!(
        field_of(compute(&[], TaxRegime::Domestic, BuyerKind::Consumer)),
        "lines"
    );
    let ok = item(TaxClass::Standard, 1_000, 1);
    let mut zero = ok.clone();
    zero.quantity = 0;
    assert_eq!(
        field_of(compute(
            &[ok.clone(), ok.clone(), zero],
            TaxRegime::Domestic,
            BuyerKind::Consumer
        )),
        "lines[2].quantity"
    );
    let mut many = ok.clone();
    many.quantity = 1001;
    assert_eq!(
        field_of(compute(&[many], TaxRegime::Domestic, BuyerKind::Consumer)),
        "lines[0].quantity"
    );
    let mut max = ok.clone();
    max.quantity = 1000;
    assert!(compute(&[max], TaxRegime::Domestic, BuyerKind::Consumer).is_ok());
    let mut negative = ok.clone();
    negative.unit_gross = -1;
    assert_eq!(
        field_of(compute(
            &[negative],
            TaxRegime::Domestic,
            BuyerKind::Consumer
        )),
        "lines[0].unit_gross"
    );
    let mut net_above = ok.clone();
    net_above.unit_net = 1_001;
    assert_eq!(
        field_of(compute(
            &[net_above],
            TaxRegime::Export,
            BuyerKind::Consumer
        )),
        "lines[0].unit_gross"
    );
    let mut neg_net = ok.clone();
    neg_net.unit_net = -5;
    assert_eq!(
        field_of(compute(
            &[neg_net],
            TaxRegime::Domestic,
            BuyerKind::Consumer
        )),
        "lines[0].unit_net"
    );
    let mut huge = ok.clone();
    huge.unit_gross = MAX_UNIT_PRICE + 1;
    assert_eq!(
        field_of(compute(&[huge], TaxRegime::Domestic, BuyerKind::Consumer)),
        "lines[0].unit_gross"
    );
    let mut rate = ok;
    rate.price_vat_rate_bp = 10_001;
    assert_eq!(
        field_of(compute(
            &[rate],
            TaxRegime::EuDistanceSale,
            BuyerKind::Consumer
        )),
        "lines[0].price_vat_rate_bp"
    );
}

/// A tiny deterministic generator (Knuth's MMIX LCG), so the property test needs no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_carts_always_reconcile() {
    let mut rng = Lcg(0x1u64 << 40 | 2026);
    let classes = [
        TaxClass::Standard,
        TaxClass::Reduced,
        TaxClass::SuperReduced,
        TaxClass::Exempt,
    ];
    let regimes = [
        TaxRegime::Domestic,
        TaxRegime::EuDistanceSale,
        TaxRegime::Export,
    ];
    let buyers = [
        BuyerKind::Consumer,
        BuyerKind::Business,
        BuyerKind::PublicAdministration,
    ];
    let eu_rates = [2100, 1900, 2000, 2300, 2500, 2700, 1700, 0, 550];
    for case in 0..3000 {
        let n = 1 + rng.below(12) as usize;
        let items: Vec<PricedItem> = (0..n)
            .map(|_| {
                let class = classes[rng.below(4) as usize];
                let gross = match rng.below(3) {
                    0 => rng.below(100) as Cents,
                    1 => rng.below(50_000) as Cents,
                    _ => rng.below(MAX_UNIT_PRICE as u64 / 100) as Cents,
                };
                let max_qty = if rng.below(4) == 0 { 1000 } else { 5 };
                let mut it = item(class, gross, 1 + rng.below(max_qty) as u32);
                it.price_vat_rate_bp = eu_rates[rng.below(eu_rates.len() as u64) as usize];
                it
            })
            .collect();
        let regime = regimes[rng.below(3) as usize];
        let buyer = buyers[rng.below(3) as usize];
        let b = compute(&items, regime, buyer).unwrap();
        let ctx = format!("case {case}: {regime:?} {buyer:?}");
        assert_eq!(b.lines.len(), n, "{ctx}");
        for (i, l) in b.lines.iter().enumerate() {
            assert_eq!(l.line_no as usize, i + 1, "{ctx}");
            assert_eq!(l.gross, l.unit_price * Cents::from(l.quantity), "{ctx}");
            assert_eq!(l.net + l.vat, l.gross, "{ctx}");
            assert!(l.net >= 0 && l.vat >= 0 && l.net <= l.gross, "{ctx}: {l:?}");
            assert_eq!(l.vat_rate_bp == 0, l.natura.is_some(), "{ctx}: {l:?}");
            if l.vat_rate_bp == 0 {
                assert_eq!(l.vat, 0, "{ctx}");
            }
        }
        let mut taxable = 0;
        let mut vat = 0;
        for (k, s) in b.summary.iter().enumerate() {
            let members = b
                .lines
                .iter()
                .filter(|l| l.vat_rate_bp == s.vat_rate_bp && l.natura == s.natura);
            let (n_sum, v_sum) = members.fold((0, 0), |(n, v), l| (n + l.net, v + l.vat));
            assert_eq!((n_sum, v_sum), (s.taxable, s.vat), "{ctx}: {s:?}");
            // SDI 00421: Imposta = ImponibileImporto × AliquotaIVA within 1 cent.
            let expected =
                (i128::from(s.taxable) * i128::from(s.vat_rate_bp) * 2 + 10_000) / 20_000;
            assert!(
                (i128::from(s.vat) - expected).abs() <= 1,
                "{ctx}: {s:?} vs {expected}"
            );
            if k > 0 {
                let prev = &b.summary[k - 1];
                assert!(
                    (Reverse(prev.vat_rate_bp), &prev.natura) < (Reverse(s.vat_rate_bp), &s.natura),
                    "{ctx}: summary order"
                );
            }
            taxable += s.taxable;
            vat += s.vat;
        }
        let t = b.totals;
        assert_eq!((t.net, t.vat), (taxable, vat), "{ctx}");
        assert_eq!(t.net + t.vat, t.gross, "{ctx}");
        assert_eq!(
            t.gross,
            b.lines.iter().map(|l| l.gross).sum::<Cents>(),
            "{ctx}"
        );
        let split = buyer == BuyerKind::PublicAdministration && regime == TaxRegime::Domestic;
        assert_eq!(b.split_payment, split, "{ctx}");
        assert_eq!(t.vat_collected, if split { 0 } else { t.vat }, "{ctx}");
        assert_eq!(t.amount_due, if split { t.net } else { t.gross }, "{ctx}");
    }
}
