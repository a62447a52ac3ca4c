//! Random identifiers: UUIDs and MAC addresses.

/// Random bytes from the kernel (MACs, UUIDs).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut buf = [0u8; N];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    buf
}

pub fn random_uuid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A locally administered-looking MAC in the hypervisor's usual range.
pub fn random_mac(domain_type: &str) -> String {
    let b: [u8; 3] = random_bytes();
    let prefix = if domain_type == "xen" {
        "00:16:3e"
    } else {
        "52:54:00"
    };
    format!("{prefix}:{:02x}:{:02x}:{:02x}", b[0] & 0x7f, b[1], b[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvmm_model::validate;

    #[test]
    fn random_ids_have_the_right_shape() {
        let u = random_uuid();
        assert!(uvmm_model::uuid::is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert_ne!(random_uuid(), random_uuid());
        let m = random_mac("kvm");
        assert!(m.starts_with("52:54:00:"));
        assert!(validate::mac(&m).is_ok());
        assert!(random_mac("xen").starts_with("00:16:3e:"));
    }
}
