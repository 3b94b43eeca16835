//! The card-number guard: Lusso never receives card numbers (card data goes from the browser straight
//! to the payment provider), so a request body that contains one is refused before anything parses,
//! stores or logs it. [`find_card_number`] returns *where* the number is (a JSON path), never the number.
//!
//! # What looks like a card number
//! 13–19 digits (ISO/IEC 7812 PAN lengths) passing the Luhn check (ISO/IEC 7812-1 annex B), written
//! - as one run of digits (`4242424242424242`), or
//! - in the groups card issuers print, separated by single spaces or dashes: 4-4-4-4 (Visa, Mastercard),
//!   4-4-4-4-3 (19-digit), 4-6-5 (Amex), 4-6-4 (Diners), 4-4-4-1…3 (13–15 digits).
//!
//! anywhere inside a string ("my card is 4242 4242 4242 4242"), as a JSON integer literal, or in an
//! object key.
//!
//! # What does not
//! To keep false positives (a 400 for an honest request) rare, digits are looked at in *tokens*: maximal
//! runs of letters and digits (a `.` between two of them is part of the token, so decimals such as
//! `45.46420357999999` are one token). Tokens joined by a single space or dash where both contain a digit
//! form a *chain*, e.g. `4000 0027 6000 3184`, a UUID, an IBAN written in groups. Only chains made of
//! digits only are candidates, so a run embedded in an alphanumeric token (UUID groups, SKUs like
//! `P000123-NER-42`, `15T10` in an ISO timestamp, IBANs) never matches. A candidate matches when the whole
//! chain, or a prefix or suffix of it (a card followed by its CVV, say), has one of the layouts above, or
//! when its first or last token alone is a 13–19 digit run; runs longer than 19 digits are not cards.
//! 11-digit Partita IVA, phone numbers (`+39 02 1234 5678`), dates and prices are too short or
//! mis-grouped to match.
//!
//! # Bodies
//! A body that parses as JSON is walked value by value (strings, keys, numbers), giving paths like
//! `payment.card.number` or `lines[0].note`; a key that looks like a card is reported as
//! `<parent path>.<key>` (the key itself is never echoed). The raw text is then scanned as well (JSON
//! objects with duplicate keys keep only the last value when parsed), reported as `body`. A body that
//! is not JSON (form data, text) is scanned as text (lossy UTF-8) and reported as `body`.

use serde_json::Value;

/// Card layouts: digits per group.
const LAYOUTS: [&[usize]; 7] = [
    &[4, 4, 4, 4],
    &[4, 4, 4, 4, 3],
    &[4, 6, 5],
    &[4, 6, 4],
    &[4, 4, 4, 1],
    &[4, 4, 4, 2],
    &[4, 4, 4, 3],
];

/// The JSON path (e.g. `payment.card.number`, `lines[0].note`) or `body` (non-JSON) of the first value
/// that looks like a payment card number; never returns or logs the value itself.
pub fn find_card_number(body: &[u8]) -> Option<String> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let mut path = String::new();
        if let Some(found) = scan_value(&value, &mut path) {
            return Some(if found.is_empty() {
                "body".into()
            } else {
                found
            });
        }
    }
    looks_like_card_number(&String::from_utf8_lossy(body)).then(|| "body".to_string())
}

/// Whether `text` contains something that looks like a payment card number (see the module doc).
pub fn looks_like_card_number(text: &str) -> bool {
    let tokens = tokens(text);
    let mut start = 0;
    while start < tokens.len() {
        let mut end = start + 1;
        while end < tokens.len() && joined(text, &tokens[end - 1], &tokens[end]) {
            end += 1;
        }
        if chain_has_card(text, &tokens[start..end]) {
            return true;
        }
        start = end;
    }
    false
}

/// Depth-first walk; returns the path of the first card-like string, key or number.
fn scan_value(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::String(s) => looks_like_card_number(s).then(|| path.clone()),
        Value::Number(n) => {
            let digits = if let Some(u) = n.as_u64() {
                u.to_string()
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs().to_string()
            } else {
                // A float: only its integer part could be a card written as `4242424242424242.0`.
                match n.as_f64() {
                    Some(f) if f.is_finite() && f.abs() < 1e19 => format!("{}", f.abs().trunc()),
                    _ => return None,
                }
            };
            looks_like_card_number(&digits).then(|| path.clone())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = scan_value(item, path);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                if looks_like_card_number(key) {
                    path.push_str("<key>");
                    return Some(path.clone());
                }
                path.push_str(key);
                let found = scan_value(item, path);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Null | Value::Bool(_) => None,
    }
}

/// A token: byte range of a maximal run of alphanumerics (with inner `.`), and what it holds.
struct Token {
    start: usize,
    end: usize,
    all_digits: bool,
    has_digit: bool,
}

fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].1.is_alphanumeric() {
            i += 1;
            continue;
        }
        let start = chars[i].0;
        let (mut all_digits, mut has_digit) = (true, false);
        while i < chars.len() {
            let c = chars[i].1;
            let inner_dot = c == '.'
                && i + 1 < chars.len()
                && chars[i + 1].1.is_alphanumeric()
                && i > 0
                && chars[i - 1].1.is_alphanumeric();
            if !(c.is_alphanumeric() || inner_dot) {
                break;
            }
            all_digits &= c.is_ascii_digit();
            has_digit |= c.is_ascii_digit();
            i += 1;
        }
        let end = chars.get(i).map_or(text.len(), |&(b, _)| b);
        out.push(Token {
            start,
            end,
            all_digits,
            has_digit,
        });
    }
    out
}

/// Two consecutive tokens belong to one chain: a single space or dash between them, digits in both.
fn joined(text: &str, a: &Token, b: &Token) -> bool {
    a.has_digit && b.has_digit && matches!(&text[a.end..b.start], " " | "-")
}

fn chain_has_card(text: &str, chain: &[Token]) -> bool {
    if chain.iter().any(|t| !t.all_digits) {
        return false;
    }
    let groups: Vec<&str> = chain.iter().map(|t| &text[t.start..t.end]).collect();
    let single = |g: &str| (13..=19).contains(&g.len()) && luhn(g);
    if groups.first().is_some_and(|g| single(g)) || groups.last().is_some_and(|g| single(g)) {
        return true;
    }
    LAYOUTS.iter().any(|layout| {
        let n = layout.len();
        if groups.len() < n {
            return false;
        }
        [&groups[..n], &groups[groups.len() - n..]]
            .iter()
            .any(|window| {
                window.iter().map(|g| g.len()).eq(layout.iter().copied()) && luhn(&window.concat())
            })
    })
}

/// The Luhn (mod 10) check of an all-digit string.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_numbers() {
        for n in [
            "4242424242424242",
            "4000002760003184",
            "378282246310005",
            "5555555555554444",
            "79927398713",
        ] {
            assert!(luhn(n), "{n}");
        }
        assert!(!luhn("4242424242424241"));
    }

    #[test]
    fn card_numbers_in_text() {
        for t in [
            "4242424242424242",
            "4000 0027 6000 3184",
            "3782 822463 10005",
            "5555-5555-5555-4444",
            "my card is 4242 4242 4242 4242, thanks",
            "my card is 4242 4242 4242 4242 123",
            "cvv 123 4242-4242-4242-4242",
            "card:4242424242424242;",
            "Karte 4242424242424242.",
            "30569309025904",   // Diners, 14 digits
            "3056 930902 5904", // Diners 4-6-4
            "4222222222222",    // 13-digit Visa
            "4222 2222 2222 2", // 4-4-4-1
            "6011111111111117 exp 12/30",
            "4242424242424242 12 30",
            "(4242-4242-4242-4242)",
        ] {
            assert!(looks_like_card_number(t), "{t}");
        }
    }

    #[test]
    fn not_card_numbers() {
        for t in [
            "",
            "4242424242424241",                     // Luhn fails
            "4242 4242 4242 4241",                  // Luhn fails
            "42424242424242424242",                 // 20 digits
            "424242424242424242420",                // 21 digits
            "4242  4242  4242  4242",               // double spaces are not a card layout
            "42 42 42 42 42 42 42 42",              // not a card layout
            "4242424-242424242",                    // not a card layout
            "550e8400-e29b-41d4-a716-446655440000", // UUID
            "12345678-1234-1234-1234-123456789012", // all-digit UUID-shaped
            "a4242424242424242",                    // embedded in a token
            "4242424242424242b",
            "P000123-NER-42",
            "P4242424242424242-NER-42",
            "01234567897", // Partita IVA
            "IT01234567897",
            "+39 02 1234 5678",
            "+39 347 123 4567",
            "+1 415-555-0132",
            "3471234567",
            "2026-01-15T10:00:00.123456789Z",
            "2026-01-15T10:00:00+01:00",
            "1220.00",
            "1.220,00 €",
            "45.46420357999999",
            "9.4242424242424242",
            "IT60 X054 2811 1010 0000 0123 456", // IBAN in groups
            "IT60X0542811101000000123456",
            "order 2026/000123",
            "RSSMRA85T10A562S",
        ] {
            assert!(!looks_like_card_number(t), "{t}");
        }
    }

    #[test]
    fn json_paths() {
        let cases: [(&str, &str); 8] = [
            (
                r#"{"payment":{"card":{"number":"4242424242424242"}}}"#,
                "payment.card.number",
            ),
            (
                r#"{"lines":[{"sku":"P000123-NER-42","note":"4000 0027 6000 3184"}]}"#,
                "lines[0].note",
            ),
            (r#"{"payment":{"card":4242424242424242}}"#, "payment.card"),
            (r#"{"a":[[1,2],[3,[5555555555554444]]]}"#, "a[1][1][0]"),
            (r#"{"meta":{"4242424242424242":true}}"#, "meta.<key>"),
            (r#"{"4242424242424242":true}"#, "<key>"),
            (r#""my card is 3782 822463 10005""#, "body"),
            (r#"{"n":4242424242424242.0}"#, "n"),
        ];
        for (body, path) in cases {
            assert_eq!(
                find_card_number(body.as_bytes()).as_deref(),
                Some(path),
                "{body}"
            );
        }
    }

    #[test]
    fn json_without_cards() {
        let body = r#"{
            "cart_id": "550e8400-e29b-41d4-a716-446655440000",
            "email": "mario.rossi@example.it",
            "buyer": {"kind": "business", "partita_iva": "01234567897", "sdi_code": "M5UXCR1"},
            "shipping": {"street": "Via Montenapoleone 8", "postal_code": "20121", "phone": "+39 02 1234 5678"},
            "lines": [{"sku": "P000123-NER-42", "quantity": 2, "price": 1220.00}],
            "lat": 45.46420357999999,
            "big": 12345678901234567890123,
            "at": "2026-01-15T10:00:00Z",
            "id": 4242424242424241
        }"#;
        assert_eq!(find_card_number(body.as_bytes()), None);
    }

    #[test]
    fn duplicate_keys_and_non_json_bodies() {
        // serde_json keeps the last duplicate; the raw scan still sees the first.
        let dup = r#"{"note":"4242424242424242","note":"ok"}"#;
        assert_eq!(find_card_number(dup.as_bytes()).as_deref(), Some("body"));
        let form = b"email=a%40b.it&card=4242424242424242&cvc=123";
        assert_eq!(find_card_number(form).as_deref(), Some("body"));
        let text = b"hello 5555-5555-5555-4444";
        assert_eq!(find_card_number(text).as_deref(), Some("body"));
        assert_eq!(
            find_card_number(b"\xff\xfe 4242 4242 4242 4242").as_deref(),
            Some("body")
        );
        assert_eq!(find_card_number(b"email=a%40b.it&qty=2"), None);
        assert_eq!(find_card_number(b""), None);
    }

    #[test]
    fn the_path_never_contains_the_number() {
        let body = r#"{"x":{"4242 4242 4242 4242":{"y":"4000002760003184"}}}"#;
        let path = find_card_number(body.as_bytes()).unwrap_or_default();
        assert!(!path.contains("4242"), "{path}");
        assert!(!path.contains("4000"), "{path}");
    }
}
