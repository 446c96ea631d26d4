//! Sizes as documents write them: CPU amounts (`2`, `0.5`, `500m`) and byte
//! quantities (`512Mi`, `2G`); and byte counts as people read them.

use serde_json::Value;

use super::fields::kind_of;

/// The largest size a quantity may have (what a signed 64-bit column holds).
pub const MAX_QUANTITY: u64 = i64::MAX as u64;

/// `2`, `0.5` or `500m` (millicores).
pub(super) fn parse_cpu(value: &Value) -> Result<f64, String> {
    let hint = "write a number of cores such as 2 or 0.5, or millicores such as 500m";
    let cores = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.strip_suffix('m') {
            Some(millis) => millis.trim().parse::<f64>().ok().map(|m| m / 1000.0),
            None => text.trim().parse::<f64>().ok(),
        },
        _ => None,
    };
    match cores {
        Some(cores) if cores.is_finite() && (0.0..=1024.0).contains(&cores) => Ok(cores),
        Some(_) => Err(format!("must be between 0 and 1024 cores; {hint}")),
        None => Err(format!("not a CPU amount: {value}; {hint}")),
    }
}

/// A byte count as people read it, in binary units: `512 B`, `1.5 GiB`.
pub fn format_bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// A byte quantity: a number of bytes, or a number with a unit: `512Mi`,
/// `1.5Gi`, `2G`, `300k` (binary `Ki Mi Gi Ti`, decimal `k M G T`).
pub fn parse_quantity(value: &Value) -> Result<u64, String> {
    let hint = "write bytes or a size such as 512Mi, 2Gi or 4G";
    let text = match value {
        Value::Number(number) => {
            return number
                .as_u64()
                .filter(|bytes| *bytes <= MAX_QUANTITY)
                .ok_or_else(|| format!("must be a whole number of bytes from 0 to 8Ei; {hint}"));
        }
        Value::String(text) => text.trim(),
        other => return Err(format!("must be a size, not {}; {hint}", kind_of(other))),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        other => return Err(format!("unknown unit {other:?} in {text:?}; {hint}")),
    };
    // A whole number is exact however large; only a fraction goes through
    // floating point.
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .filter(|bytes| *bytes <= MAX_QUANTITY)
            .ok_or_else(|| format!("{text:?} is out of range; {hint}"));
    }
    let number: f64 = number
        .parse()
        .map_err(|_| format!("not a size: {text:?}; {hint}"))?;
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > MAX_QUANTITY as f64 {
        return Err(format!("{text:?} is out of range; {hint}"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(24 << 30), "24.0 GiB");
    }

    #[test]
    fn quantities_accept_binary_and_decimal_units() {
        let q = |text: &str| parse_quantity(&Value::String(text.into()));
        assert_eq!(q("512Mi"), Ok(512 << 20));
        assert_eq!(q("2G"), Ok(2_000_000_000));
        assert_eq!(q("1024"), Ok(1024));
        assert_eq!(parse_quantity(&serde_json::json!(0)), Ok(0));
        assert!(q("12 parsecs").is_err());
        assert!(parse_quantity(&serde_json::json!(-1)).is_err());
    }
}
