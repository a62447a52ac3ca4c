//! Sizes as libvirt writes them (`<memory unit='MiB'>`) and as people type them (`2GiB`).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("'{0}' is not a size (examples: 512MiB, 2GiB, 20G, 1048576)")]
    Invalid(String),
    #[error("unknown size unit '{0}'")]
    Unit(String),
    #[error("size '{0}' is too large")]
    Overflow(String),
}

/// Multiplier in bytes for a libvirt/SI/IEC unit name. libvirt treats `k`, `M`, `G` as
/// powers of 1024 and `KB`, `MB`, `GB` as powers of 1000; so do we.
pub(crate) fn unit_bytes(unit: &str) -> Option<u64> {
    const K: u64 = 1024;
    Some(match unit {
        "" | "b" | "B" | "bytes" => 1,
        "k" | "K" | "KiB" | "kib" => K,
        "KB" | "kB" => 1000,
        "M" | "m" | "MiB" | "mib" => K * K,
        "MB" => 1000 * 1000,
        "G" | "g" | "GiB" | "gib" => K * K * K,
        "GB" => 1000 * 1000 * 1000,
        "T" | "t" | "TiB" | "tib" => K * K * K * K,
        "TB" => 1000 * 1000 * 1000 * 1000,
        "P" | "PiB" => K * K * K * K * K,
        "PB" => 1000 * 1000 * 1000 * 1000 * 1000,
        _ => return None,
    })
}

/// Parse a libvirt `<memory unit=...>` value into KiB. A missing unit means KiB.
pub fn libvirt_memory_kib(value: &str, unit: Option<&str>) -> Result<u64, SizeError> {
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| SizeError::Invalid(value.to_string()))?;
    let unit = unit.unwrap_or("KiB");
    let mult = unit_bytes(unit).ok_or_else(|| SizeError::Unit(unit.to_string()))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| SizeError::Overflow(value.to_string()))?;
    Ok(bytes / 1024)
}

/// Parse a human size such as `2GiB`, `512M`, `1.5GiB` or `1073741824` into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.matches('.').count() > 1 {
        return Err(SizeError::Invalid(input.to_string()));
    }
    let mult = unit_bytes(unit.trim()).ok_or_else(|| SizeError::Unit(unit.trim().to_string()))?;
    match num.split_once('.') {
        None => {
            let n: u64 = num
                .parse()
                .map_err(|_| SizeError::Overflow(input.to_string()))?;
            n.checked_mul(mult)
                .ok_or_else(|| SizeError::Overflow(input.to_string()))
        }
        Some((int, frac)) => {
            // Exact decimal arithmetic: int * mult + frac * mult / 10^len(frac).
            if frac.is_empty() || frac.len() > 9 {
                return Err(SizeError::Invalid(input.to_string()));
            }
            let int: u64 = if int.is_empty() {
                0
            } else {
                int.parse()
                    .map_err(|_| SizeError::Overflow(input.to_string()))?
            };
            let frac_n: u128 = frac
                .parse()
                .map_err(|_| SizeError::Invalid(input.to_string()))?;
            // A fraction of more than 38 digits overflows the scale: refused as too large.
            let scale = u32::try_from(frac.len())
                .ok()
                .and_then(|n| 10u128.checked_pow(n))
                .ok_or_else(|| SizeError::Overflow(input.to_string()))?;
            let (int, mult) = (u128::from(int), u128::from(mult));
            let total = int * mult + frac_n * mult / scale;
            u64::try_from(total).map_err(|_| SizeError::Overflow(input.to_string()))
        }
    }
}

/// The largest size libvirt takes for a volume: it keeps capacities as signed 64-bit
/// numbers in places, so 2^63 bytes fails with "numerical overflow".
pub const LIBVIRT_MAX_BYTES: u64 = i64::MAX as u64;

/// The largest memory size libvirt takes, in KiB (`VIR_DOMAIN_MEMORY_PARAM_UNLIMITED`:
/// the byte count must fit a signed 64-bit number).
pub const LIBVIRT_MAX_MEMORY_KIB: u64 = (i64::MAX as u64) >> 10;

/// Format bytes for people, with binary units: `2.0 GiB`, `512 MiB`, `0 B`.
pub fn format_bytes(bytes: u64) -> String {
    format_value(bytes as f64)
}

/// Format a size given in KiB, as [`format_bytes`] does. Never overflows: `u64::MAX` KiB
/// is more bytes than a `u64` holds, and must not come out as "0 B".
pub fn format_kib(kib: u64) -> String {
    format_value(kib as f64 * 1024.0)
}

fn format_value(bytes: f64) -> String {
    const UNITS: [&str; 8] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a whole number below 1024 of its unit (or the bytes of a u64)"
        )]
        let whole = value as u64;
        format!("{whole} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_units() {
        let table = [
            ("524288", None, Ok(524288)),
            ("512", Some("MiB"), Ok(524288)),
            ("1", Some("G"), Ok(1048576)),
            ("1", Some("GB"), Ok(976562)),
            ("2048", Some("bytes"), Ok(2)),
            ("x", None, Err(SizeError::Invalid("x".into()))),
            ("1", Some("parsecs"), Err(SizeError::Unit("parsecs".into()))),
            (
                "18446744073709551615",
                Some("KiB"),
                Err(SizeError::Overflow("18446744073709551615".into())),
            ),
        ];
        for (v, u, want) in table {
            assert_eq!(libvirt_memory_kib(v, u), want, "{v} {u:?}");
        }
    }

    #[test]
    fn human_sizes() {
        let ok = [
            ("1073741824", 1 << 30),
            ("2GiB", 2 << 30),
            ("2G", 2 << 30),
            ("512MiB", 512 << 20),
            ("1.5GiB", 3 << 29),
            ("20 GiB", 20 << 30),
            ("1GB", 1_000_000_000),
            ("0", 0),
        ];
        for (s, want) in ok {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for bad in [
            "",
            "GiB",
            "1..2G",
            "-1G",
            "1.G",
            "1XB",
            "99999999999999999999",
            "20000000PiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn formatting() {
        let table = [
            (format_bytes(0), "0 B"),
            (format_bytes(1536), "1.5 KiB"),
            (format_bytes(2 << 30), "2 GiB"),
            (format_bytes(1 << 63), "8 EiB"),
            (format_bytes(u64::MAX), "16 EiB"),
            (format_kib(0), "0 B"),
            (format_kib(1), "1 KiB"),
            (format_kib(2 << 20), "2 GiB"),
            // 2^54 KiB is 2^64 bytes: wrapping arithmetic made this "0 B".
            (format_kib(1 << 54), "16 EiB"),
            (format_kib(u64::MAX), "16 ZiB"),
        ];
        for (got, want) in table {
            assert_eq!(got, want);
        }
    }
}
