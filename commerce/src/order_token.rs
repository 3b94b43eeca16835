//! Order access tokens: what lets a shopper's browser (a publishable key) read its own order, confirm its
//! payment and open returns, and no one else's.
//!
//! The checkout answers `access_token`: `ot_` + hex HMAC-SHA256 of the order id under the shop's secret
//! (`LUSSO_ORDER_TOKEN_SECRET`, shared by every commerce replica). Nothing is stored: a replayed checkout
//! answers the same token, any replica verifies it, and rotating the secret revokes every token at once. The
//! caller sends it in [`ORDER_TOKEN_HEADER`]; a secret key with `orders:manage` needs none.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The header an order's access token is sent in.
pub const ORDER_TOKEN_HEADER: &str = "x-order-token";
/// Shortest secret accepted (bytes).
pub const MIN_SECRET_BYTES: usize = 32;

/// Issues and checks order access tokens under one secret.
#[derive(Clone)]
pub struct OrderTokens {
    secret: Vec<u8>,
}

impl std::fmt::Debug for OrderTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderTokens(***)")
    }
}

impl OrderTokens {
    /// Tokens under `secret` (at least [`MIN_SECRET_BYTES`]); the error names the variable.
    pub fn new(secret: &[u8]) -> crate::Result<OrderTokens> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(crate::Error::bad(
                "LUSSO_ORDER_TOKEN_SECRET",
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            ));
        }
        Ok(OrderTokens {
            secret: secret.to_vec(),
        })
    }

    /// Tokens under a fresh random secret (one process; tests and the library default).
    pub fn random() -> OrderTokens {
        let mut secret = vec![0u8; MIN_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        OrderTokens { secret }
    }

    fn mac(&self, order_id: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(b"lusso-order-token\0");
        mac.update(order_id.as_bytes());
        mac
    }

    /// The access token of the order `order_id` (its id as the API prints it).
    pub fn issue(&self, order_id: &str) -> String {
        let bytes = self.mac(order_id).finalize().into_bytes();
        format!("ot_{}", pipelines::access::hex(&bytes))
    }

    /// Whether `token` is the access token of `order_id` (compared in constant time).
    pub fn verify(&self, order_id: &str, token: &str) -> bool {
        let Some(hex) = token.strip_prefix("ot_") else {
            return false;
        };
        if hex.len() != 64 {
            return false;
        }
        let mut bytes = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let Ok(s) = std::str::from_utf8(chunk) else {
                return false;
            };
            let Ok(b) = u8::from_str_radix(s, 16) else {
                return false;
            };
            bytes[i] = b;
        }
        self.mac(order_id).verify_slice(&bytes).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_own_order_only() {
        let tokens = OrderTokens::new(&[7u8; 32]).unwrap();
        let a = "0b6f5c1e-8a38-4c1b-9d7e-3f2a1b0c9d8e";
        let b = "1b6f5c1e-8a38-4c1b-9d7e-3f2a1b0c9d8e";
        let t = tokens.issue(a);
        assert!(t.starts_with("ot_") && t.len() == 67, "{t}");
        assert_eq!(
            t,
            tokens.issue(a),
            "deterministic: a replayed checkout answers the same"
        );
        assert!(tokens.verify(a, &t));
        assert!(!tokens.verify(b, &t));
        assert!(!tokens.verify(a, &t.replace("ot_", "xx_")));
        assert!(!tokens.verify(a, &t[..40]));
        assert!(!tokens.verify(a, &format!("ot_{}", "zz".repeat(32))));
        let other = OrderTokens::new(&[8u8; 32]).unwrap();
        assert!(!other.verify(a, &t), "another secret (rotation) revokes it");
        assert!(OrderTokens::new(b"short").is_err());
        assert_eq!(format!("{tokens:?}"), "OrderTokens(***)");
    }
}
