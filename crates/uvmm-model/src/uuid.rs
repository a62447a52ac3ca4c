//! UUIDs as libvirt prints them: 36 characters, lowercase, dashed. libvirt also accepts the
//! 32-digit form without dashes (the test driver's example files use it); both normalise
//! to the dashed form so that the cache, the API and backups agree on one spelling.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a UUID")]
pub struct UuidError(pub String);

pub fn normalize_uuid(input: &str) -> Result<String, UuidError> {
    let hex: String = input.trim().chars().filter(|c| *c != '-').collect();
    let dashes = input.trim().chars().filter(|c| *c == '-').count();
    if hex.len() != 32
        || !hex.chars().all(|c| c.is_ascii_hexdigit())
        || !(dashes == 0 || dashes == 4)
    {
        return Err(UuidError(input.to_string()));
    }
    let h = hex.to_ascii_lowercase();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A VM's UUID, in the one spelling uvmm uses (see the module): parsed once where it
/// enters, then passed on typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(String);

impl Uuid {
    pub fn parse(input: &str) -> Result<Uuid, UuidError> {
        normalize_uuid(input).map(Uuid)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Uuid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `s` looks like a UUID (used to tell `NAME|UUID` arguments apart).
pub fn is_uuid(s: &str) -> bool {
    normalize_uuid(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_has_one_spelling() {
        let a = Uuid::parse("4DEA22B31D52D8F32516782E98AB3FA0").unwrap();
        let b = Uuid::parse("4dea22b3-1d52-d8f3-2516-782e98ab3fa0").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
        assert!(Uuid::parse("4dea22b3").is_err());
    }

    #[test]
    fn table() {
        let ok = [
            (
                "4dea22b3-1d52-d8f3-2516-782e98ab3fa0",
                "4dea22b3-1d52-d8f3-2516-782e98ab3fa0",
            ),
            (
                "4DEA22B31D52D8F32516782E98AB3FA0",
                "4dea22b3-1d52-d8f3-2516-782e98ab3fa0",
            ),
            (
                " 4dea22b31d52d8f32516782e98ab3fa0\n",
                "4dea22b3-1d52-d8f3-2516-782e98ab3fa0",
            ),
        ];
        for (i, want) in ok {
            assert_eq!(normalize_uuid(i).as_deref(), Ok(want));
        }
        for bad in [
            "",
            "win10",
            "4dea22b3-1d52-d8f3-2516-782e98ab3fa",
            "4dea22b3-1d52-d8f3-2516-782e98ab3fag",
            "4d-ea22b31d52d8f32516782e98ab3fa0",
        ] {
            assert!(normalize_uuid(bad).is_err(), "{bad}");
            assert!(!is_uuid(bad));
        }
    }
}
