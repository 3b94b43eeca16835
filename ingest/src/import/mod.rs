//! Importers that turn public datasets into Lusso events.
//!
//! - [`online_retail`]: the UCI Online Retail dataset (UK gift-ware retailer,
//!   2010-12-01 to 2011-12-09) as `purchase` and `return` events.

pub mod online_retail;
