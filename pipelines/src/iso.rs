//! ISO code lists used by validation (ISO 3166-1 alpha-2 countries, ISO 4217 active currencies).

/// ISO 3166-1 alpha-2 officially assigned codes (249), plus `XK` (Kosovo, user-assigned but in common use).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ \
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES \
ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO \
IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK \
ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR \
PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK \
TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK";

/// ISO 4217 active currency codes (list of 2024).
const CURRENCIES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN \
BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF \
GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL \
LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG \
QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS \
UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

fn listed(list: &str, code: &str) -> bool {
    code.len() >= 2 && list.split_ascii_whitespace().any(|c| c == code)
}

/// True for an assigned ISO 3166-1 alpha-2 code (upper case).
pub fn is_country(code: &str) -> bool {
    code.len() == 2 && listed(COUNTRIES, code)
}

/// True for an active ISO 4217 code (upper case).
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && listed(CURRENCIES, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes() {
        for c in ["IT", "GB", "CH", "US", "DE"] {
            assert!(is_country(c), "{c}");
        }
        for c in ["it", "XX", "ITA", "", "UK"] {
            assert!(!is_country(c), "{c}");
        }
        for c in ["EUR", "GBP", "CHF", "USD"] {
            assert!(is_currency(c), "{c}");
        }
        for c in ["eur", "EU", "XYZ", "ITL"] {
            assert!(!is_currency(c), "{c}");
        }
    }
}
