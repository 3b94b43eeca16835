//! A small XML writer for the FatturaPA document, and the value formats the schema wants.
//!
//! - Text is escaped (`&`, `<`, `>`, `"`, `'`) and, for the schema's `…LatinType` strings (names,
//!   addresses, descriptions), restricted to Basic Latin + Latin-1 Supplement: typographic characters
//!   outside it are replaced by their ASCII look-alike (`–` → `-`, `’` → `'`, `€` → `EUR`), anything else
//!   by `?`, control characters by a space; then trimmed and cut to the field's length in characters.
//! - Amounts: [`Cents`] as `[-]digits.dd` (Amount2DecimalType); rates: basis points as `dd.dd` (RateType);
//!   unit prices: up to 8 decimals, at least 2 (Amount8DecimalType).

use crate::model::{Cents, RateBp};

/// An indenting XML writer; tags are static, text is escaped.
pub(crate) struct Xml {
    out: String,
    stack: Vec<&'static str>,
}

impl Xml {
    pub(crate) fn new() -> Xml {
        Xml {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            stack: Vec::new(),
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.out.push_str("  ");
        }
    }

    /// Opens `<tag a="v"…>`.
    pub(crate) fn open_with(&mut self, tag: &'static str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(tag);
        for (name, value) in attrs {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_into(value, &mut self.out);
            self.out.push('"');
        }
        self.out.push_str(">\n");
        self.stack.push(tag);
    }

    pub(crate) fn open(&mut self, tag: &'static str) {
        self.open_with(tag, &[]);
    }

    /// Closes the innermost open element.
    pub(crate) fn close(&mut self) {
        if let Some(tag) = self.stack.pop() {
            self.indent();
            self.out.push_str("</");
            self.out.push_str(tag);
            self.out.push_str(">\n");
        }
    }

    /// `<tag>text</tag>` with `text` escaped.
    pub(crate) fn leaf(&mut self, tag: &'static str, text: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        escape_into(text, &mut self.out);
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push_str(">\n");
    }

    pub(crate) fn leaf_opt(&mut self, tag: &'static str, text: Option<&str>) {
        if let Some(t) = text {
            self.leaf(tag, t);
        }
    }

    /// The document, with any element still open closed.
    pub(crate) fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}

/// Appends `text` with the five XML special characters escaped.
pub(crate) fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// `text` restricted to Latin-1 printable characters (see the module doc), trimmed, at most `max` chars.
pub(crate) fn latin1(text: &str, max: usize) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ' '..='~' | '\u{A1}'..='\u{FF}' => s.push(c),
            '\u{A0}' => s.push(' '),
            c if c.is_control() || c.is_whitespace() => s.push(' '),
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{2022}' => s.push('-'),
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => s.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' => s.push('"'),
            '\u{2026}' => s.push_str("..."),
            '\u{20AC}' => s.push_str("EUR"),
            _ => s.push('?'),
        }
    }
    s.trim()
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// `text` restricted to printable ASCII (the schema's Basic Latin strings), at most `max` chars.
pub(crate) fn ascii(text: &str, max: usize) -> String {
    let s: String = text
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    s.trim()
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// An amount in minor units with exactly two decimals: `12345` → `123.45`.
pub(crate) fn amount(c: Cents) -> String {
    let sign = if c < 0 { "-" } else { "" };
    let abs = c.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// A rate in basis points as a percentage with two decimals: `2200` → `22.00`.
pub(crate) fn rate(bp: RateBp) -> String {
    format!("{}.{:02}", bp / 100, bp % 100)
}

/// A quantity with two decimals: `3` → `3.00`.
pub(crate) fn quantity(q: u32) -> String {
    format!("{q}.00")
}

/// `total / quantity` (minor units → currency units) rounded half-up to 8 decimals, trailing zeros
/// dropped down to 2 decimals: `(100000, 3)` → `333.33333333`, `(2451, 1)` → `24.51`. `total ≥ 0`.
pub(crate) fn unit_price(total: Cents, quantity: u32) -> String {
    let q = i128::from(quantity.max(1));
    // total [cents] × 10^6 = total [units] × 10^8.
    let scaled = (i128::from(total) * 2_000_000 + q) / (2 * q);
    let mut s = format!("{}.{:08}", scaled / 100_000_000, scaled % 100_000_000);
    while s.ends_with('0') && s.len() - s.find('.').map_or(0, |p| p + 1) > 2 {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_nesting() {
        let mut x = Xml::new();
        x.open_with("p:Root", &[("versione", "FPR12"), ("q", "a\"b")]);
        x.open("A");
        x.leaf("B", "Tom & Jerry <3> \"quoted\" 'single' è");
        x.close();
        let s = x.finish();
        assert!(s.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<p:Root versione=\"FPR12\" q=\"a&quot;b\">\n"));
        assert!(s.contains(
            "    <B>Tom &amp; Jerry &lt;3&gt; &quot;quoted&quot; &apos;single&apos; è</B>\n"
        ));
        assert!(s.ends_with("  </A>\n</p:Root>\n"));
    }

    #[test]
    fn latin1_restriction() {
        assert_eq!(
            latin1("Borsa – pelle “nappa” 100 €…", 100),
            "Borsa - pelle \"nappa\" 100 EUR..."
        );
        assert_eq!(latin1("Città di Forlì", 100), "Città di Forlì");
        assert_eq!(latin1("  a\tb\nc  ", 100), "a b c");
        assert_eq!(latin1("東京 shop", 100), "?? shop");
        assert_eq!(latin1("abcdef", 3), "abc");
        assert_eq!(latin1("ab  cd", 3), "ab");
        assert_eq!(ascii("P000123-NER-42è", 35), "P000123-NER-42?");
    }

    #[test]
    fn number_formats() {
        assert_eq!(amount(0), "0.00");
        assert_eq!(amount(5), "0.05");
        assert_eq!(amount(122_000), "1220.00");
        assert_eq!(amount(-1_234), "-12.34");
        assert_eq!(rate(2200), "22.00");
        assert_eq!(rate(550), "5.50");
        assert_eq!(rate(0), "0.00");
        assert_eq!(quantity(3), "3.00");
        assert_eq!(unit_price(100_000, 3), "333.33333333");
        assert_eq!(unit_price(200_000, 3), "666.66666667");
        assert_eq!(unit_price(2_451, 1), "24.51");
        assert_eq!(unit_price(20_819, 2), "104.095");
        assert_eq!(unit_price(0, 5), "0.00");
        assert_eq!(unit_price(1, 1000), "0.00001");
    }
}
