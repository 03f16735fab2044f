/// Formats integer minor units for display, e.g. `(129900, "EUR")` →
/// `€1,299.00`. Money never passes through floating point.
pub fn format_price(cents: i64, currency: &str) -> String {
    let symbol = match currency {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        _ => "",
    };
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let units = abs / 100;
    let minor = abs % 100;
    let digits = units.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    if symbol.is_empty() {
        format!("{sign}{grouped}.{minor:02} {currency}")
    } else {
        format!("{sign}{symbol}{grouped}.{minor:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::format_price;

    #[test]
    fn groups_thousands_and_keeps_minor_units() {
        assert_eq!(format_price(129_900, "EUR"), "€1,299.00");
        assert_eq!(format_price(5, "USD"), "$0.05");
        assert_eq!(format_price(123_456_789, "GBP"), "£1,234,567.89");
        assert_eq!(format_price(-250, "EUR"), "-€2.50");
        assert_eq!(format_price(1000, "SEK"), "10.00 SEK");
    }
}
