//! Loading VM profiles: the built-in ones, overlaid by TOML files in the profiles
//! directory (default /etc/uvmm/profiles.d).

use std::path::Path;
use std::sync::RwLock;
use uvmm_model::profile::{overlay, Profile};

/// The profiles VMs are created from: the local ones, and in directory mode the
/// directory's merged over them (`uvmm_directory::merge_profiles`: a directory profile
/// wins on an equal name), replaced at every refresh that changed a profile.
pub struct ProfileSet {
    local: Vec<Profile>,
    all: RwLock<Vec<Profile>>,
}

impl ProfileSet {
    pub fn new(local: Vec<Profile>) -> ProfileSet {
        ProfileSet {
            all: RwLock::new(local.clone()),
            local,
        }
    }

    pub fn all(&self) -> Vec<Profile> {
        self.all.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A profile by name (any capitalisation).
    pub fn find(&self, name: &str) -> Option<Profile> {
        self.all
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Merge the directory's profiles (as in `snapshot`) over the local ones. A directory
    /// profile uvmm cannot use is logged and left out.
    pub fn merge_directory(&self, snapshot: &uvmm_directory::Snapshot) {
        let (merged, unusable) = uvmm_directory::merge_profiles(self.local.clone(), snapshot);
        for e in unusable {
            tracing::warn!("directory profile not usable: {e:?}");
        }
        *self.all.write().unwrap_or_else(|p| p.into_inner()) = merged
            .into_iter()
            .map(|(mut p, origin)| {
                if let uvmm_directory::ProfileOrigin::Directory { dn, .. } = origin {
                    p.origin = Some(format!("directory:{dn}"));
                }
                p
            })
            .collect();
    }
}

/// Load the profiles; a broken file is reported and skipped, so one typo does not take
/// VM creation down with it.
pub fn load(dir: &Path) -> (Vec<Profile>, Vec<String>) {
    let mut local = Vec::new();
    let mut errors = Vec::new();
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            errors.push(format!(
                "cannot read profile directory {}: {e}",
                dir.display()
            ));
            Vec::new()
        }
    };
    files.sort();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => match Profile::parse(&f.display().to_string(), &text) {
                Ok(p) => local.push(p),
                Err(e) => errors.push(e.to_string()),
            },
            Err(e) => errors.push(format!("{}: {e}", f.display())),
        }
    }
    (overlay(local), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_files_overlay_and_broken_ones_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "name = \"Linux\"\nvcpus = 6\n").unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "name = \"Broken\"\nvcpus = \"many\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let (profiles, errors) = load(dir.path());
        assert_eq!(profiles.len(), 4);
        assert_eq!(
            profiles.iter().find(|p| p.name == "Linux").unwrap().vcpus,
            6
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("b.toml"), "{errors:?}");
        let (profiles, errors) = load(&dir.path().join("missing"));
        assert_eq!((profiles.len(), errors.len()), (4, 0));
    }
}
