//! CPU amounts in thousandths of a core, as capacity checks compare them.

/// `cores` in millicores, rounded with `whole` (`f64::ceil` for a request,
/// `f64::floor` for what a worker has) only when a real fraction of a
/// millicore is left: 16.12 cores is 16,120 millicores, though 16.12 × 1000
/// is 16120.000000000002 in floating point.
pub(crate) fn cpu_millis(cores: f64, whole: fn(f64) -> f64) -> i64 {
    let millis = cores * 1000.0;
    let nearest = millis.round();
    if (millis - nearest).abs() < 1e-6 {
        nearest as i64
    } else {
        whole(millis) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_amounts_stay_exact_and_fractions_round_as_told() {
        assert_eq!(cpu_millis(16.12, f64::ceil), 16_120);
        assert_eq!(cpu_millis(8.12, f64::floor), 8_120);
        assert_eq!(cpu_millis(2.01, f64::floor), 2_010);
        assert_eq!(cpu_millis(0.0005, f64::ceil), 1);
        assert_eq!(cpu_millis(0.0005, f64::floor), 0);
    }
}
