//! After the sale: returns with refunds, e-invoices (FatturaPA) and their SDI receipts.
//!
//! # Returns
//! `POST /v1/orders/{id}/returns` names the units coming back and the location receiving them.
//! 1. Transaction: check the order is paid and that no SKU comes back more often than it was sold (counting
//!    earlier returns that were refunded or are in progress), record the return (`requested`).
//! 2. Refund through the order's provider, with the return id as idempotency key.
//! 3. Transaction: the return becomes `refunded`; the units go back on hand at the chosen location (a row is
//!    created if that location never held the SKU); the order becomes `partially_returned` or `returned`;
//!    `stock_level`, `return_completed` and `order_status` messages go to the outbox.
//!
//! If the refund fails the return is `refund_failed` with the provider's reason and the stock stays out.
//!
//! The refund of `k` units of a line is `due(k_total) − due(k_before)` where
//! `due(k) = ⌊line_due · k / quantity⌋` and `line_due` is what the buyer paid for the line (its gross, less
//! its IVA under split payment): partial returns never refund more than paid and the last unit returns
//! the remainder, so returning everything refunds exactly the amount charged.

use std::collections::HashMap;

use pipelines::commerce::{CommerceEvent, CommerceLine};
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use crate::checkout::status_event;
use crate::inventory::StockRow;
use crate::invoice::{self, SdiReceipt};
use crate::model::{InvoiceRef, Order, OrderStatus, Return, ReturnLine, ReturnStatus, SdiState};
use crate::service::Commerce;
use crate::{Error, Result};

/// Body of `POST /v1/orders/{id}/returns`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnInput {
    pub lines: Vec<ReturnLine>,
    /// The location receiving the goods (one of `GET /v1/locations`).
    pub location: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Units of each SKU sold in `order`.
fn sold(order: &Order) -> HashMap<&str, u32> {
    let mut m = HashMap::new();
    for l in &order.tax.lines {
        *m.entry(l.sku.as_str()).or_insert(0) += l.quantity;
    }
    m
}

/// What the buyer paid for `k` units of the order's lines of `sku` (see the module doc).
fn due(order: &Order, sku: &str, k: u32) -> i64 {
    let mut left = k;
    let mut total = 0;
    for l in order.tax.lines.iter().filter(|l| l.sku == sku) {
        let take = left.min(l.quantity);
        left -= take;
        let line_due = l.gross - if order.tax.split_payment { l.vat } else { 0 };
        total += line_due * i64::from(take) / i64::from(l.quantity.max(1));
    }
    total
}

impl Commerce {
    /// `POST /v1/orders/{id}/returns`.
    pub async fn create_return(&self, order_id: Uuid, input: ReturnInput) -> Result<Return> {
        if input.lines.is_empty() {
            return Err(Error::bad("lines", "name at least one returned SKU"));
        }
        if !self.catalog.has_location(&input.location) {
            return Err(Error::bad(
                "location",
                format!(
                    "`{}` is not a location; one of {}",
                    input.location,
                    self.catalog.location_ids()
                ),
            ));
        }
        if input.reason.as_ref().is_some_and(|r| r.len() > 500) {
            return Err(Error::bad("reason", "at most 500 characters"));
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let order = tx
            .order_for_update(order_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order `{order_id}` does not exist")))?;
        if !matches!(
            order.status,
            OrderStatus::Paid | OrderStatus::PartiallyReturned
        ) {
            return Err(Error::Conflict(format!(
                "order `{order_id}` is {}; only paid orders take returns",
                order.status.as_str()
            )));
        }
        let sold = sold(&order);
        let earlier = tx.returns_of(order_id).await?;
        let mut back: HashMap<String, u32> = HashMap::new();
        for r in earlier
            .iter()
            .filter(|r| r.status != ReturnStatus::RefundFailed)
        {
            for l in &r.lines {
                *back.entry(l.sku.clone()).or_insert(0) += l.quantity;
            }
        }
        let mut refund = 0;
        let mut asked: HashMap<String, u32> = HashMap::new();
        for (i, l) in input.lines.iter().enumerate() {
            let Some(&n) = sold.get(l.sku.as_str()) else {
                return Err(Error::bad(
                    format!("lines[{i}].sku"),
                    format!("`{}` is not in order `{order_id}`", l.sku),
                ));
            };
            if l.quantity == 0 {
                return Err(Error::bad(format!("lines[{i}].quantity"), "must be ≥ 1"));
            }
            let before =
                back.get(&l.sku).copied().unwrap_or(0) + asked.get(&l.sku).copied().unwrap_or(0);
            if before + l.quantity > n {
                return Err(Error::Conflict(format!(
                    "lines[{i}]: {} of `{}` sold, {before} already returned; {} more cannot come back",
                    n, l.sku, l.quantity
                )));
            }
            refund += due(&order, &l.sku, before + l.quantity) - due(&order, &l.sku, before);
            *asked.entry(l.sku.clone()).or_insert(0) += l.quantity;
        }
        let ret = Return {
            id: Uuid::new_v4(),
            order_id,
            lines: input.lines,
            location: input.location,
            status: ReturnStatus::Requested,
            refund_amount: refund,
            refund_reference: None,
            reason: input.reason,
            created_at: now,
        };
        tx.put_return(&ret).await?;
        tx.commit().await?;

        let provider = self.providers.get(&order.payment.provider)?;
        let reference = order.payment.reference.clone().unwrap_or_default();
        match provider
            .refund(
                &reference,
                refund,
                &order.currency,
                &format!("lusso-return-{}", ret.id),
            )
            .await
        {
            Ok(done) => self.complete_return(ret, done.reference).await,
            Err(e) => {
                let mut tx = self.store.begin().await?;
                let mut failed = ret;
                failed.status = ReturnStatus::RefundFailed;
                failed.reason = Some(format!("refund failed: {e}"));
                tx.put_return(&failed).await?;
                tx.commit().await?;
                Err(e)
            }
        }
    }

    async fn complete_return(&self, mut ret: Return, refund_reference: String) -> Result<Return> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut order = tx
            .order_for_update(ret.order_id)
            .await?
            .ok_or_else(|| Error::Internal("order vanished".into()))?;
        let mut skus: Vec<String> = ret.lines.iter().map(|l| l.sku.clone()).collect();
        skus.sort();
        skus.dedup();
        let mut rows = tx.lock_stock(&skus).await?;
        let mut lines = Vec::new();
        for l in &ret.lines {
            let (p, v) = self
                .catalog
                .variant(&l.sku)
                .ok_or_else(|| Error::Internal(format!("`{}` left the catalogue", l.sku)))?;
            let i = match rows
                .iter()
                .position(|r| r.sku == l.sku && r.location == ret.location)
            {
                Some(i) => i,
                None => {
                    rows.push(StockRow {
                        sku: l.sku.clone(),
                        product_id: p.id.clone(),
                        size: v.size.clone(),
                        location: ret.location.clone(),
                        on_hand: 0,
                        reserved: 0,
                        seq: 0,
                    });
                    rows.len() - 1
                }
            };
            rows[i].on_hand += i64::from(l.quantity);
            rows[i].seq += 1;
            tx.put_stock(&rows[i]).await?;
            tx.push_outbox(&rows[i].product_id, &rows[i].event(now))
                .await?;
            let unit = order
                .tax
                .lines
                .iter()
                .find(|ol| ol.sku == l.sku)
                .map(|ol| ol.unit_price)
                .unwrap_or(0);
            lines.push(CommerceLine {
                product_id: p.id.clone(),
                variant_id: l.sku.clone(),
                quantity: l.quantity,
                unit_price: unit,
            });
        }
        ret.status = ReturnStatus::Refunded;
        ret.refund_reference = Some(refund_reference);
        tx.put_return(&ret).await?;
        order.payment.refunded += ret.refund_amount;
        let all = tx.returns_of(order.id).await?;
        let returned: u32 = all
            .iter()
            .filter(|r| r.status == ReturnStatus::Refunded)
            .flat_map(|r| r.lines.iter().map(|l| l.quantity))
            .sum();
        let sold: u32 = order.tax.lines.iter().map(|l| l.quantity).sum();
        order.status = if returned >= sold {
            OrderStatus::Returned
        } else {
            OrderStatus::PartiallyReturned
        };
        order.updated_at = now;
        tx.put_order(&order).await?;
        tx.push_outbox(
            &order.id.to_string(),
            &CommerceEvent::ReturnCompleted {
                event_id: Uuid::new_v4(),
                ts: now,
                order_id: order.id,
                return_id: ret.id,
                user_id: order.user_id.clone(),
                lines,
                location: ret.location.clone(),
                currency: order.currency.clone(),
                refund: ret.refund_amount,
            },
        )
        .await?;
        tx.push_outbox(&order.id.to_string(), &status_event(&order, now))
            .await?;
        tx.commit().await?;
        self.metrics.returns.inc();
        Ok(ret)
    }

    /// `GET /v1/orders/{id}/returns`.
    pub async fn returns(&self, order_id: Uuid) -> Result<Vec<Return>> {
        self.order(order_id).await?;
        self.store.returns_of(order_id).await
    }

    /// `GET /v1/orders/{id}/invoice.xml`: issues the invoice on first request (next progressive number of
    /// the year, no gaps) and renders it; returns the SDI file name and the XML.
    pub async fn invoice_xml(&self, order_id: Uuid) -> Result<(String, String)> {
        let mut order = self.order(order_id).await?;
        if !matches!(
            order.status,
            OrderStatus::Paid | OrderStatus::PartiallyReturned | OrderStatus::Returned
        ) {
            return Err(Error::Conflict(format!(
                "order `{order_id}` is {}; invoices are issued for paid orders",
                order.status.as_str()
            )));
        }
        if order.invoice.is_none() {
            // Render once before numbering, so an order that cannot be invoiced (e.g. a consumer without a
            // codice fiscale) never consumes a number.
            let probe = InvoiceRef {
                number: invoice::invoice_number(0, 1),
                year: 0,
                progressive: 1,
                file_name: invoice::sdi_file_name(&self.config.seller.partita_iva, 1),
                issued_at: self.now(),
                sdi: SdiState::NotSent,
            };
            invoice::fattura_xml(&order, &self.config.seller, &probe)?;
            order = self.issue_invoice(order_id).await?;
        }
        let inv = order
            .invoice
            .as_ref()
            .ok_or_else(|| Error::Internal("invoice not issued".into()))?;
        let xml = invoice::fattura_xml(&order, &self.config.seller, inv)?;
        Ok((inv.file_name.clone(), xml))
    }

    async fn issue_invoice(&self, order_id: Uuid) -> Result<Order> {
        use chrono::Datelike;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut order = tx
            .order_for_update(order_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order `{order_id}` does not exist")))?;
        if order.invoice.is_some() {
            return Ok(order);
        }
        // The invoice's date (and so its year) is the Italian calendar day, not UTC's.
        let year = invoice::issue_date(now).year();
        let progressive = tx.next_invoice_progressive(year).await?;
        // File names must never repeat for a sender: their progressive is one counter for all years (0).
        let file = tx.next_invoice_progressive(0).await?;
        order.invoice = Some(InvoiceRef {
            number: invoice::invoice_number(year, progressive),
            year,
            progressive,
            file_name: invoice::sdi_file_name(&self.config.seller.partita_iva, file),
            issued_at: now,
            sdi: SdiState::NotSent,
        });
        order.updated_at = now;
        tx.put_order(&order).await?;
        tx.commit().await?;
        self.metrics.invoices.inc();
        Ok(order)
    }

    /// `POST /v1/orders/{id}/invoice/sdi`: records an SDI receipt (sent, delivered, rejected, not
    /// deliverable). A re-submission after a rejection gets a new file name.
    pub async fn record_sdi(&self, order_id: Uuid, receipt: SdiReceipt) -> Result<InvoiceRef> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut order = tx
            .order_for_update(order_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("order `{order_id}` does not exist")))?;
        let Some(inv) = order.invoice.as_mut() else {
            return Err(Error::Conflict(format!(
                "order `{order_id}` has no invoice yet; GET its invoice.xml first"
            )));
        };
        let next = invoice::next_sdi_state(&inv.sdi, &receipt, now)?;
        if matches!(inv.sdi, SdiState::Rejected { .. }) && matches!(next, SdiState::Sent { .. }) {
            let file = tx.next_invoice_progressive(0).await?;
            inv.file_name = invoice::sdi_file_name(&self.config.seller.partita_iva, file);
        }
        inv.sdi = next;
        let out = inv.clone();
        order.updated_at = now;
        tx.put_order(&order).await?;
        tx.commit().await?;
        Ok(out)
    }
}
