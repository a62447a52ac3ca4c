//! Random identifiers: UUIDs and MAC addresses. The bytes come from the kernel
//! (`getrandom`); when it has none, that is an error, never an identifier of zeros (two
//! VMs with one UUID or MAC would clash).

/// The kernel gave no random bytes.
#[derive(Debug, thiserror::Error)]
#[error("no random numbers from the kernel: {0}")]
pub struct NoRandom(getrandom::Error);

/// Random bytes from the kernel.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], NoRandom> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(NoRandom)?;
    Ok(buf)
}

/// A random (version 4) UUID.
pub fn random_uuid() -> Result<String, NoRandom> {
    let mut b: [u8; 16] = random_bytes()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A locally administered-looking MAC in the hypervisor's usual range.
pub fn random_mac(domain_type: &str) -> Result<String, NoRandom> {
    let b: [u8; 3] = random_bytes()?;
    let prefix = if domain_type == "xen" {
        "00:16:3e"
    } else {
        "52:54:00"
    };
    Ok(format!(
        "{prefix}:{:02x}:{:02x}:{:02x}",
        b[0] & 0x7f,
        b[1],
        b[2]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvmm_model::validate;

    #[test]
    fn random_ids_have_the_right_shape() {
        let u = random_uuid().unwrap();
        assert!(uvmm_model::uuid::is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert_ne!(random_uuid().unwrap(), random_uuid().unwrap());
        let m = random_mac("kvm").unwrap();
        assert!(m.starts_with("52:54:00:"));
        assert!(validate::mac(&m).is_ok());
        assert!(random_mac("xen").unwrap().starts_with("00:16:3e:"));
    }
}
