//! Italian IVA on an order: which regime applies, the rate of each line, VAT extracted from tax-inclusive
//! prices, split payment; plus the Partita IVA / Codice Fiscale checks and the buyer validation
//! ([`validate_buyer`]).
//!
//! # Units
//! Money is integer minor units ([`Cents`]) of the order's currency; rates are basis points ([`RateBp`],
//! 2200 = 22 %). Nothing here uses floating point, so every sum is exact.
//!
//! # Regimes (from the shipping country, [`regime_for`])
//! - **Domestic** (`IT`): the Italian rate of the product's [`TaxClass`] ([`italian_rate_bp`]: 22 % ordinaria,
//!   10 % ridotta, 4 % minima, art. 16 and Tabella A DPR 633/72); the price charged is the catalogue's
//!   VAT-inclusive `unit_gross`. Exempt lines (gift cards…) carry rate 0 and Natura `N4` (art. 10).
//! - **EU distance sale** (the other 26 member states, art. 40/41 DL 331/93 and the One-Stop-Shop since
//!   July 2021): the destination country's rate, which is the rate the market's price list already includes
//!   (`price_vat_rate_bp`); the price charged is `unit_gross`. Exempt lines → 0 / `N4`; a line the destination
//!   zero-rates → 0 / `N7` (IVA assolta in altro Stato UE), so that no zero-rate line is without a Natura.
//! - **Export** (everything else: GB, CH, US…): no IVA, non-taxable export (art. 8 c.1 lett. a DPR 633/72,
//!   Natura `N3.1`); the price charged is the price list's `unit_net`.
//!
//! # Rounding: per rate group, like the invoice's DatiRiepilogo
//! Prices are VAT-inclusive, so VAT is *extracted*. Doing it per line and summing makes the invoice
//! summary disagree with itself: SDI checks each DatiRiepilogo's `Imposta` against `ImponibileImporto ×
//! AliquotaIVA` (error 00421, ±1 cent) and `ImponibileImporto` against the sum of the lines' `PrezzoTotale`
//! (00422). Per-line rounding errors accumulate over many lines and break the first check. So for each
//! (rate, natura) group with gross sum `G`:
//!
//! ```text
//! N   = round_half_up(G × 10000 / (10000 + rate))   (integer arithmetic)
//! VAT = G − N
//! ```
//!
//! `|VAT − N × rate| ≤ ½ cent × (1 + rate)`, i.e. at most 0.61 cents at 22 %: within SDI's tolerance by
//! construction. `N` is then shared among the group's lines in proportion to their gross with the
//! largest-remainder method (ties go to the earlier line), so `Σ line.net == N` exactly, each
//! `line.vat = line.gross − line.net`, and a line never gets more net than its gross. The totals are the
//! sums: `net + vat == gross` always.
//!
//! # Split payment
//! An Italian public administration buying domestically pays the VAT straight to the Treasury (scissione
//! dei pagamenti, art. 17-ter DPR 633/72): the VAT is computed and shown (`EsigibilitaIVA` `S` on the
//! invoice) but not collected: `vat_collected = 0`, `amount_due = gross − vat = net`.

mod buyer;
mod ids;

use std::cmp::Reverse;
use std::collections::BTreeMap;

use pipelines::catalog::TaxClass;

pub(crate) use buyer::looks_like_email;
pub use buyer::validate_buyer;
pub use ids::{validate_codice_fiscale, validate_partita_iva};

use crate::model::{
    BuyerKind, Cents, OrderLine, PricedItem, RateBp, TaxBreakdown, TaxRegime, Totals, VatSummary,
};
use crate::{Error, Result};

/// The 26 EU member states other than Italy (ISO 3166-1 alpha-2; Greece is `GR`, not its VAT prefix `EL`).
const EU_OTHER: [&str; 26] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "LT",
    "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// Most units of one line the tax computation accepts.
pub const MAX_LINE_QUANTITY: u32 = 1000;
/// Largest unit price accepted (minor units, 10 million in the currency): keeps every total far inside
/// FatturaPA's 11 integer digits and `i64`.
pub const MAX_UNIT_PRICE: Cents = 1_000_000_000;
/// Natura of a non-taxable export (art. 8 c.1 lett. a DPR 633/72).
pub const NATURA_EXPORT: &str = "N3.1";
/// Natura of an exempt supply (art. 10 DPR 633/72).
pub const NATURA_EXEMPT: &str = "N4";
/// Natura of a supply whose VAT is due in another member state (zero-rated there).
pub const NATURA_OTHER_EU_STATE: &str = "N7";

/// The VAT regime of a shipment to `market` (ISO 3166-1 alpha-2, case-insensitive): `IT` → domestic, the
/// other 26 EU member states → distance sale, anything else → export.
pub fn regime_for(market: &str) -> TaxRegime {
    let m = market.trim();
    if m.eq_ignore_ascii_case("IT") {
        TaxRegime::Domestic
    } else if EU_OTHER.iter().any(|c| c.eq_ignore_ascii_case(m)) {
        TaxRegime::EuDistanceSale
    } else {
        TaxRegime::Export
    }
}

/// The Italian IVA rate of a tax class: 2200 / 1000 / 400 / 0 basis points.
pub fn italian_rate_bp(class: TaxClass) -> RateBp {
    match class {
        TaxClass::Standard => 2200,
        TaxClass::Reduced => 1000,
        TaxClass::SuperReduced => 400,
        TaxClass::Exempt => 0,
    }
}

/// The order lines, VAT summary and totals of `items` under `regime` for a `buyer` (see the module doc
/// for the rules and the rounding). Errors name the offending input, e.g. `lines[2].quantity`.
pub fn compute(items: &[PricedItem], regime: TaxRegime, buyer: BuyerKind) -> Result<TaxBreakdown> {
    if items.is_empty() {
        return Err(Error::bad("lines", "the cart is empty"));
    }
    let mut lines = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        check_item(i, item)?;
        let (rate, natura, unit_price) = line_treatment(item, regime);
        let line_no = u32::try_from(i + 1).map_err(|_| Error::bad("lines", "too many lines"))?;
        lines.push(OrderLine {
            line_no,
            sku: item.sku.clone(),
            product_id: item.product_id.clone(),
            description: item.description.clone(),
            size: item.size.clone(),
            quantity: item.quantity,
            tax_class: item.tax_class,
            unit_price,
            // Bounded by MAX_UNIT_PRICE × MAX_LINE_QUANTITY (1e12): no overflow.
            gross: unit_price * Cents::from(item.quantity),
            vat_rate_bp: rate,
            net: 0,
            vat: 0,
            natura: natura.map(str::to_string),
        });
    }

    // (rate descending, natura) → indices of the group's lines, in line order.
    let mut groups: BTreeMap<(Reverse<RateBp>, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        groups
            .entry((Reverse(l.vat_rate_bp), l.natura.clone()))
            .or_default()
            .push(i);
    }
    let mut summary = Vec::with_capacity(groups.len());
    let mut totals = Totals {
        net: 0,
        vat: 0,
        gross: 0,
        vat_collected: 0,
        amount_due: 0,
    };
    for ((Reverse(rate), natura), idx) in groups {
        let grosses: Vec<Cents> = idx.iter().map(|&i| lines[i].gross).collect();
        let group_gross: Cents = grosses.iter().sum();
        let group_net = net_of_gross(group_gross, rate);
        for (&i, net) in idx.iter().zip(allocate(group_net, &grosses)) {
            lines[i].net = net;
            lines[i].vat = lines[i].gross - net;
        }
        summary.push(VatSummary {
            vat_rate_bp: rate,
            natura,
            taxable: group_net,
            vat: group_gross - group_net,
        });
        totals.net += group_net;
        totals.vat += group_gross - group_net;
        totals.gross += group_gross;
    }
    let split_payment = buyer == BuyerKind::PublicAdministration && regime == TaxRegime::Domestic;
    totals.vat_collected = if split_payment { 0 } else { totals.vat };
    totals.amount_due = totals.gross - if split_payment { totals.vat } else { 0 };
    Ok(TaxBreakdown {
        regime,
        split_payment,
        lines,
        summary,
        totals,
    })
}

fn check_item(i: usize, item: &PricedItem) -> Result<()> {
    let field = |f: &str| format!("lines[{i}].{f}");
    if item.quantity == 0 || item.quantity > MAX_LINE_QUANTITY {
        return Err(Error::bad(
            field("quantity"),
            format!("must be 1–{MAX_LINE_QUANTITY}, got {}", item.quantity),
        ));
    }
    if item.unit_gross < 0 {
        return Err(Error::bad(field("unit_gross"), "must not be negative"));
    }
    if item.unit_gross > MAX_UNIT_PRICE {
        return Err(Error::bad(
            field("unit_gross"),
            format!("must be at most {MAX_UNIT_PRICE} minor units"),
        ));
    }
    if item.unit_net < 0 {
        return Err(Error::bad(field("unit_net"), "must not be negative"));
    }
    if item.unit_net > item.unit_gross {
        return Err(Error::bad(
            field("unit_gross"),
            format!(
                "the net price {} exceeds the gross price {}",
                item.unit_net, item.unit_gross
            ),
        ));
    }
    if item.price_vat_rate_bp > 10_000 {
        return Err(Error::bad(
            field("price_vat_rate_bp"),
            "must be at most 10000 (100 %)",
        ));
    }
    Ok(())
}

/// (rate, natura, unit price charged) of a line under a regime.
fn line_treatment(item: &PricedItem, regime: TaxRegime) -> (RateBp, Option<&'static str>, Cents) {
    match regime {
        TaxRegime::Domestic => match item.tax_class {
            TaxClass::Exempt => (0, Some(NATURA_EXEMPT), item.unit_gross),
            class => (italian_rate_bp(class), None, item.unit_gross),
        },
        TaxRegime::EuDistanceSale => match (item.tax_class, item.price_vat_rate_bp) {
            (TaxClass::Exempt, _) => (0, Some(NATURA_EXEMPT), item.unit_gross),
            (_, 0) => (0, Some(NATURA_OTHER_EU_STATE), item.unit_gross),
            (_, rate) => (rate, None, item.unit_gross),
        },
        TaxRegime::Export => (0, Some(NATURA_EXPORT), item.unit_net),
    }
}

/// `round_half_up(gross × 10000 / (10000 + rate))` in integer arithmetic; `gross ≥ 0`.
fn net_of_gross(gross: Cents, rate: RateBp) -> Cents {
    let den = 10_000 + i128::from(rate);
    let net = (i128::from(gross) * 20_000 + den) / (2 * den);
    // net ≤ gross, so it fits.
    Cents::try_from(net).unwrap_or(gross)
}

/// Shares `total` (0 ≤ total ≤ Σ weights) in proportion to `weights` (all ≥ 0) with the largest-remainder
/// method; ties go to the earlier index. The shares sum to `total` exactly and none exceeds its weight.
fn allocate(total: Cents, weights: &[Cents]) -> Vec<Cents> {
    let sum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let total = i128::from(total);
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = total * i128::from(w);
        shares.push(exact / sum);
        remainders.push((Reverse(exact % sum), i));
    }
    let mut left = total - shares.iter().sum::<i128>();
    remainders.sort();
    for (_, i) in remainders {
        if left <= 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    // Each share is ≤ its weight, which is a Cents.
    shares
        .into_iter()
        .map(|s| Cents::try_from(s).unwrap_or(Cents::MAX))
        .collect()
}

#[cfg(test)]
mod tests;
