//! Lusso bandits: hero-banner decisions learned from rewards, and their off-policy evaluation.
//!
//! # Layout
//! - [`ope`]: logged bandit feedback (our decision log or an Open Bandit Dataset CSV), evaluation policies
//!   (`action,position,prob` CSV), and the IPW, SNIPW, DM and DR estimators with bootstrap intervals, equal to
//!   Open Bandit Pipeline 0.5.7's (tested against `tools/obp/golden`).
//! - [`mt`]: the MT19937 generator and bounded draws exactly as NumPy's legacy `RandomState`, so bootstrap
//!   intervals are reproducible against obp.
//!
//! Slots, arms, policies, decisions and reward joining come with the rest of the bandits issue.

pub mod error;
pub mod mt;
pub mod ope;

pub use error::{Error, Result};
