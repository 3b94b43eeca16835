//! Lusso training: collaborative-filtering models from the event stream, their evaluation and the model
//! registry serving loads from.
//!
//! # Layout
//! - [`data`]: interactions from the event log / simulator / CSV (event weights, window, as-of cut, minimum
//!   counts, confidence scaling) and the training-data hash.
//! - [`matrix`]: CSR matrices (counting-sort build and transpose) and id ↔ index maps.
//! - [`linalg`]: `f32` factor matrices and the dense kernels (dot, axpy, Gram, Cholesky, top-k).
//! - [`simd`]: dense kernels in a portable and an AVX2 + FMA build chosen at run time (ALS solves, the
//!   full-catalogue scan of a recommendation).
//! - [`approx`]: bfloat16 item factors with an error bound, for the approximate first pass of an exact
//!   top-k scan (serving).
//! - [`als`]: implicit ALS with CG or Cholesky solves, training loss, fold-in.
//! - [`bpr`]: BPR by Hogwild SGD.
//! - [`model`]: a trained model (recommend, similar items, fold-in) and its file format.
//! - [`eval`]: time and leave-last-out splits, ranking metrics (definitions in its docs).
//! - [`retail`]: the Online Retail comparison protocol.
//! - [`job`]: a training run end to end (source → split → fit → evaluate → metadata).
//! - [`registry`]: versions on disk, promotion, rollback, audit log.
//! - [`api`]: the registry over HTTP (`/v1/models`).

pub mod als;
pub mod api;
pub mod approx;
pub mod bpr;
pub mod data;
pub mod error;
pub mod eval;
pub mod job;
pub mod linalg;
pub mod matrix;
pub mod model;
pub mod registry;
pub mod retail;
pub mod simd;

pub use error::{Error, Result};
