//! The commerce domain's data: money, buyers, carts, orders and their states. Shared by the store, the tax
//! and invoice code, the payment providers and the API; no behaviour beyond small helpers lives here.
//!
//! Money is integer minor units of the order's currency ([`Cents`]); VAT rates are basis points
//! ([`RateBp`], 2200 = 22 %), so every sum is exact.

use chrono::{DateTime, Utc};
use pipelines::catalog::TaxClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An amount in minor units (cents) of the order's currency.
pub type Cents = i64;
/// A VAT rate in basis points: 2200 = 22 %.
pub type RateBp = u32;

/// Who is buying: decides the tax treatment and the e-invoice format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuyerKind {
    /// A private person (B2C).
    Consumer,
    /// A company or professional with a VAT number (B2B, FatturaPA `FPR12`).
    Business,
    /// An Italian public administration (FatturaPA `FPA12`, split payment).
    PublicAdministration,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Recipient: a person's full name or a company / office name.
    pub name: String,
    /// Street and number, e.g. `Via Montenapoleone 8`.
    pub street: String,
    pub city: String,
    /// Postal code (`CAP`, 5 digits in Italy).
    pub postal_code: String,
    /// Italian province code (`MI`), required for Italian addresses on e-invoices.
    #[serde(default)]
    pub province: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// The buyer of an order (cessionario / committente on the invoice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Buyer {
    pub kind: BuyerKind,
    pub email: String,
    /// Italian Codice Fiscale: 16 characters for a person, 11 digits for a company.
    #[serde(default)]
    pub codice_fiscale: Option<String>,
    /// Italian Partita IVA, 11 digits with its check digit (businesses and public administrations).
    #[serde(default)]
    pub partita_iva: Option<String>,
    /// SDI recipient code: 7 characters (`CodiceDestinatario`) for a business, the 6-character
    /// `CodiceUnivocoUfficio` for a public administration.
    #[serde(default)]
    pub sdi_code: Option<String>,
    /// Certified e-mail (PEC) a business receives invoices at when it has no SDI code.
    #[serde(default)]
    pub pec: Option<String>,
    /// Billing address; the shipping address when none is given.
    pub billing: Address,
}

/// How VAT applies to an order, from the shipping country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaxRegime {
    /// Shipped within Italy: IVA by tax class (22 / 10 / 4 %).
    Domestic,
    /// Shipped to another EU member state (distance sale): the destination's rate from the price list
    /// (One-Stop-Shop).
    EuDistanceSale,
    /// Shipped outside the EU (GB, CH, US…): no IVA, non-taxable export (art. 8 DPR 633/72, Natura `N3.1`).
    Export,
}

/// One cart line priced for checkout: the input of the tax computation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricedItem {
    pub sku: String,
    pub product_id: String,
    /// Product name for the order and the invoice line (`Descrizione`).
    pub description: String,
    pub size: String,
    pub quantity: u32,
    pub tax_class: TaxClass,
    /// Price per unit as the market displays it (VAT-inclusive where the market shows VAT), minor units.
    pub unit_gross: Cents,
    /// The same price without the VAT it includes, minor units.
    pub unit_net: Cents,
    /// The VAT rate included in `unit_gross` per the market's price list.
    pub price_vat_rate_bp: RateBp,
}

/// One order line with its VAT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    /// 1-based, the invoice's `NumeroLinea`.
    pub line_no: u32,
    pub sku: String,
    pub product_id: String,
    pub description: String,
    pub size: String,
    pub quantity: u32,
    pub tax_class: TaxClass,
    /// What the buyer pays per unit (VAT included when the regime charges VAT), minor units.
    pub unit_price: Cents,
    /// `unit_price × quantity`.
    pub gross: Cents,
    pub vat_rate_bp: RateBp,
    /// `gross` without VAT (see the tax module for the rounding).
    pub net: Cents,
    /// `gross − net`.
    pub vat: Cents,
    /// FatturaPA `Natura` when the line carries no VAT (`N3.1` export, `N4` exempt).
    pub natura: Option<String>,
}

/// VAT per rate (the invoice's `DatiRiepilogo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VatSummary {
    pub vat_rate_bp: RateBp,
    pub natura: Option<String>,
    /// Sum of the lines' `net` at this rate.
    pub taxable: Cents,
    /// Sum of the lines' `vat` at this rate.
    pub vat: Cents,
}

/// Order totals; they always reconcile: `net + vat == gross`, `amount_due == gross − (vat if split payment)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub net: Cents,
    pub vat: Cents,
    pub gross: Cents,
    /// VAT the buyer pays us: `vat`, or 0 under split payment (the PA pays it to the Treasury).
    pub vat_collected: Cents,
    /// What the payment provider charges.
    pub amount_due: Cents,
}

/// The result of the tax computation for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaxBreakdown {
    pub regime: TaxRegime,
    /// Scissione dei pagamenti (art. 17-ter DPR 633/72): VAT shown, not collected.
    pub split_payment: bool,
    pub lines: Vec<OrderLine>,
    pub summary: Vec<VatSummary>,
    pub totals: Totals,
}

/// A cart line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CartLine {
    pub sku: String,
    pub quantity: u32,
}

/// A cart: a market and lines; priced at checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cart {
    pub id: Uuid,
    /// ISO 3166-1 alpha-2 market the prices come from.
    pub market: String,
    pub lines: Vec<CartLine>,
    pub created_at: DateTime<Utc>,
    /// Set when a checkout turned the cart into an order; the cart is then read-only.
    pub order_id: Option<Uuid>,
}

/// Order states. `pending_payment → (requires_action →) paid | authorized → paid`; `payment_failed` and
/// `cancelled` release the reserved stock; returns move `paid → partially_returned → returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    RequiresAction,
    Authorized,
    Paid,
    PaymentFailed,
    Cancelled,
    PartiallyReturned,
    Returned,
}

impl OrderStatus {
    /// Whether the order still holds reservations (stock neither sold nor released).
    pub fn holds_reservation(self) -> bool {
        matches!(
            self,
            OrderStatus::PendingPayment | OrderStatus::RequiresAction | OrderStatus::Authorized
        )
    }

    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::RequiresAction => "requires_action",
            OrderStatus::Authorized => "authorized",
            OrderStatus::Paid => "paid",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::PartiallyReturned => "partially_returned",
            OrderStatus::Returned => "returned",
        }
    }
}

/// A payment's state at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created, nothing decided yet.
    Pending,
    /// The shopper must act (3-D Secure challenge, redirect, Klarna widget): see [`NextAction`].
    RequiresAction,
    /// Authorized, not yet captured.
    Authorized,
    /// Money taken.
    Captured,
    /// Declined or failed; the order's stock is released.
    Failed,
    /// Cancelled before capture.
    Cancelled,
}

/// What the shopper's browser must do next to complete a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NextAction {
    /// `redirect` (open `url`), `use_stripe_sdk` (Stripe.js `handleNextAction` with `client_secret`),
    /// `klarna_widget` (load the Klarna widget with `client_token` in `data`).
    pub kind: String,
    pub url: Option<String>,
    pub client_secret: Option<String>,
    /// Provider-specific extra data (Klarna `client_token`, `session_id`).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// The payment of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Payment {
    /// `fake`, `stripe`, `klarna`, `scalapay`.
    pub provider: String,
    /// The provider's id (PaymentIntent id, Klarna order id, Scalapay token).
    pub reference: Option<String>,
    pub status: PaymentStatus,
    /// The amount asked ([`Totals::amount_due`]).
    pub amount: Cents,
    pub captured: Cents,
    pub refunded: Cents,
    pub next_action: Option<NextAction>,
    pub failure_reason: Option<String>,
}

/// Stock of one SKU reserved (then sold) at one location for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Allocation {
    pub sku: String,
    pub location: String,
    pub quantity: u32,
}

/// The SDI transmission state of an invoice. `not_sent → sent → delivered | rejected | not_deliverable`;
/// a rejected invoice is corrected and sent again under a new progressive file name (`sent` again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SdiState {
    NotSent,
    Sent {
        at: DateTime<Utc>,
    },
    /// Ricevuta di consegna (RC).
    Delivered {
        at: DateTime<Utc>,
    },
    /// Notifica di scarto (NS) with the SDI's error codes and text.
    Rejected {
        at: DateTime<Utc>,
        reason: String,
    },
    /// Mancata consegna (MC): SDI could not deliver; the invoice is in the buyer's tax drawer.
    NotDeliverable {
        at: DateTime<Utc>,
        reason: String,
    },
}

/// The e-invoice issued for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceRef {
    /// Document number, `<year>/<progressive:06>` (the invoice's `Numero`).
    pub number: String,
    pub year: i32,
    /// Progressive number within the year, from 1, with no gaps.
    pub progressive: u64,
    /// SDI file name, `IT<seller VAT>_<progressive>.xml`.
    pub file_name: String,
    pub issued_at: DateTime<Utc>,
    pub sdi: SdiState,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    pub id: Uuid,
    pub cart_id: Uuid,
    /// The shopper's storefront id (`user_id` of the behavioural events), when signed in; links the
    /// order's events to the shopper's features and the bandits' rewards.
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub market: String,
    /// ISO 4217 currency of every amount of the order.
    pub currency: String,
    pub status: OrderStatus,
    pub buyer: Buyer,
    pub shipping: Address,
    pub tax: TaxBreakdown,
    pub payment: Payment,
    pub allocations: Vec<Allocation>,
    /// Reserved stock is released if the order is not paid by then.
    pub reservation_expires_at: DateTime<Utc>,
    pub invoice: Option<InvoiceRef>,
}

/// One returned quantity of an order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReturnLine {
    pub sku: String,
    pub quantity: u32,
}

/// Return states: `requested → refunded` (stock back, `return` event) or `refund_failed` (retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    Requested,
    Refunded,
    RefundFailed,
}

/// A return of some of an order's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Return {
    pub id: Uuid,
    pub order_id: Uuid,
    pub lines: Vec<ReturnLine>,
    /// Location the goods go back to.
    pub location: String,
    pub status: ReturnStatus,
    /// Refunded amount (the lines' gross share of what was charged), minor units.
    pub refund_amount: Cents,
    pub refund_reference: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}
