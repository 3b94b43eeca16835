//! Italian tax identifiers.
//!
//! - **Partita IVA**: 11 digits: a 7-digit number, a 3-digit office code and a check digit computed with
//!   the Luhn scheme (digits in odd positions are summed, digits in even positions are doubled and reduced
//!   by 9 when > 9; the check digit makes the total a multiple of 10), DM 23/12/1976. All zeros is
//!   rejected. The office code is not checked: codes have been added over time and SDI checks the number
//!   against the tax register anyway.
//! - **Codice Fiscale**: a company's is its 11-digit number (same check as the Partita IVA); a person's has
//!   16 characters, `SSSNNNYYMDDZZZZC`: surname and name letters, year, month letter (`ABCDEHLMPRST`), day
//!   (+40 for women), the municipality (Belfiore) code and a check letter (DM 23/12/1976, odd/even
//!   position tables, sum mod 26). Where two people would get the same code, the Agenzia replaces digits
//!   from the right with the letters `LMNPQRSTUV` (0–9), *omocodia*; such codes are valid too.
//!
//! Both are upper-case ASCII; callers normalise input (trim, upper-case) before validating if they want to.

/// Checks a Partita IVA (11 digits with a valid check digit). `Err` says why it is not one.
pub fn validate_partita_iva(value: &str) -> Result<(), String> {
    if value.len() != 11 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be exactly 11 digits".into());
    }
    if value.bytes().all(|b| b == b'0') {
        return Err("must not be all zeros".into());
    }
    let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits[..10]
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                d
            } else if d * 2 > 9 {
                d * 2 - 9
            } else {
                d * 2
            }
        })
        .sum();
    let check = (10 - sum % 10) % 10;
    if check != digits[10] {
        return Err(format!(
            "the check digit is wrong (expected {check}, found {})",
            digits[10]
        ));
    }
    Ok(())
}

/// Checks a Codice Fiscale: 16 characters for a person (omocodia allowed) or 11 digits for a company.
/// `Err` says why it is not one.
pub fn validate_codice_fiscale(value: &str) -> Result<(), String> {
    if value.len() == 11 && value.bytes().all(|b| b.is_ascii_digit()) {
        return validate_partita_iva(value);
    }
    if value.chars().count() != 16 {
        return Err("must be 16 characters (a person) or 11 digits (a company)".into());
    }
    let b = value.as_bytes();
    if b.iter().any(|c| c.is_ascii_lowercase()) {
        return Err("must be upper case".into());
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err("must contain only letters A–Z and digits".into());
    }
    let letter_at = |i: usize| b[i].is_ascii_uppercase();
    for i in (0..6).chain([8, 11, 15]) {
        if !letter_at(i) {
            return Err(format!("character {} must be a letter", i + 1));
        }
    }
    // Positions that hold digits, possibly replaced by omocodia letters.
    let mut decoded = [0u8; 7];
    for (k, i) in [6usize, 7, 9, 10, 12, 13, 14].into_iter().enumerate() {
        decoded[k] = match b[i] {
            d @ b'0'..=b'9' => d - b'0',
            c => match OMOCODIA.iter().position(|&o| o == c) {
                Some(d) => d as u8,
                None => {
                    return Err(format!(
                        "character {} must be a digit or an omocodia letter (LMNPQRSTUV)",
                        i + 1
                    ))
                }
            },
        };
    }
    if !b"ABCDEHLMPRST".contains(&b[8]) {
        return Err("character 9 must be a month letter (ABCDEHLMPRST)".into());
    }
    let day = decoded[2] * 10 + decoded[3];
    if !(1..=31).contains(&day) && !(41..=71).contains(&day) {
        return Err(format!("the day of birth {day:02} is not 01–31 or 41–71"));
    }
    let sum: u32 = b[..15]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if i % 2 == 0 {
                odd_value(c)
            } else {
                even_value(c)
            }
        })
        .sum();
    let expected = b'A' + (sum % 26) as u8;
    if b[15] != expected {
        return Err(format!(
            "the check letter is wrong (expected {}, found {})",
            expected as char, b[15] as char
        ));
    }
    Ok(())
}

/// Letters that replace the digits 0–9 in an omocodia code.
const OMOCODIA: [u8; 10] = *b"LMNPQRSTUV";

/// Value of a character in an odd (1st, 3rd…) position; digits count as the letter of the same index.
fn odd_value(c: u8) -> u32 {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let i = if c.is_ascii_digit() {
        c - b'0'
    } else {
        c - b'A'
    };
    ODD[usize::from(i)]
}

/// Value of a character in an even position: a digit its value, a letter its index.
fn even_value(c: u8) -> u32 {
    u32::from(if c.is_ascii_digit() {
        c - b'0'
    } else {
        c - b'A'
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Valid numbers were computed with the algorithm above (and cross-checked with an independent
    // implementation): 00743110157, 01234567897, 12345678903, 07643520567, 12345670157.
    #[test]
    fn partita_iva_valid() {
        for v in [
            "00743110157",
            "01234567897",
            "12345678903",
            "07643520567",
            "12345670157",
        ] {
            assert_eq!(validate_partita_iva(v), Ok(()), "{v}");
        }
    }

    #[test]
    fn partita_iva_invalid() {
        let err = validate_partita_iva("00743110158").unwrap_err();
        assert!(err.contains("check digit"), "{err}");
        assert!(validate_partita_iva("01234567890").is_err());
        assert!(validate_partita_iva("0123456789")
            .unwrap_err()
            .contains("11 digits"));
        assert!(validate_partita_iva("0123456789A").is_err());
        assert!(validate_partita_iva("IT01234567897").is_err());
        assert!(validate_partita_iva("").is_err());
        assert!(validate_partita_iva("00000000000")
            .unwrap_err()
            .contains("zeros"));
        // Multi-byte input of the right byte length must not panic.
        assert!(validate_partita_iva("0123456789è").is_err());
    }

    #[test]
    fn codice_fiscale_valid() {
        for v in [
            "RSSMRA85T10A562S", // Mario Rossi, 10/12/1985, San Sepolcro
            "BNCGVN80A01H501J", // 01/01/1980, Roma
            "VRDLGU70M41F205M", // a woman (day 41 = 1st), Milano
            "RSSMRA85T1LA562V", // omocodia: day's 0 → L
            "MRTMTT91D08F20RE", // omocodia: Belfiore's 5 → R
            "00743110157",      // a company: 11 digits
        ] {
            assert_eq!(validate_codice_fiscale(v), Ok(()), "{v}");
        }
    }

    #[test]
    fn codice_fiscale_invalid() {
        let cases = [
            ("RSSMRA85T10A562X", "check letter"),
            ("BNCGVN80A01H501U", "check letter"),
            ("rssmra85t10a562s", "upper case"),
            ("RSSMRA85T10A562", "16 characters"),
            ("RSSMRA85K10A562S", "month"),
            ("RSSMRA85T35A562S", "day"),
            ("RSSMRA85T1AA562S", "omocodia"),
            ("RSSMR185T10A562S", "letter"),
            ("RSSMRA85T10A56-S", "letters A–Z"),
            ("00743110158", "check digit"),
            ("", "16 characters"),
        ];
        for (v, why) in cases {
            let err = validate_codice_fiscale(v).expect_err(v);
            assert!(err.contains(why), "{v}: {err}");
        }
        // 16 bytes but not 16 characters, and 16 characters with non-ASCII: no panic.
        assert!(validate_codice_fiscale("RSSMRA85T10A56èS").is_err());
        assert!(validate_codice_fiscale("RSSMRA85T10A5èèS").is_err());
    }
}
