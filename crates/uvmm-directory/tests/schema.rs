//! The shipped schema: the `.ldif` (cn=config) files say the same as the `.schema` files,
//! they load into a cn=config slapd, and the test entries validate against them.

#[path = "support/slapd.rs"]
mod slapd;

use std::process::Command;

/// The definitions of a schema file, whitespace-normalised: `(kind, text)` with kind
/// `objectidentifier`, `attributetype` or `objectclass`.
fn definitions_of_schema(text: &str) -> Vec<(String, String)> {
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in body {
        let starts = line
            .split_whitespace()
            .next()
            .map(|w| w.to_ascii_lowercase())
            .filter(|w| {
                matches!(
                    w.as_str(),
                    "objectidentifier" | "attributetype" | "objectclass"
                )
            });
        match starts {
            Some(kind) => {
                out.extend(cur.take());
                let rest = line
                    .split_once(char::is_whitespace)
                    .map(|x| x.1)
                    .unwrap_or("");
                cur = Some((kind, rest.to_string()));
            }
            None => {
                if let Some((_, t)) = cur.as_mut() {
                    t.push(' ');
                    t.push_str(line);
                }
            }
        }
    }
    out.extend(cur);
    out.into_iter()
        .map(|(k, t)| (k, t.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

fn definitions_of_ldif(text: &str) -> Vec<(String, String)> {
    // Unfold continuation lines first (a line starting with one space continues the last).
    let mut lines: Vec<String> = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(cont) = l.strip_prefix(' ') {
            if let Some(last) = lines.last_mut() {
                last.push_str(cont);
                continue;
            }
        }
        lines.push(l.to_string());
    }
    lines
        .iter()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kind = match k.to_ascii_lowercase().as_str() {
                "olcobjectidentifier" => "objectidentifier",
                "olcattributetypes" => "attributetype",
                "olcobjectclasses" => "objectclass",
                _ => return None,
            };
            Some((
                kind.to_string(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect()
}

#[test]
fn ldif_and_schema_files_agree() {
    for name in ["uvmm", "uvmm-ext", "uvmm-host-compat"] {
        let dir = slapd::schema_dir();
        let schema = std::fs::read_to_string(dir.join(format!("{name}.schema"))).unwrap();
        let ldif = std::fs::read_to_string(dir.join(format!("{name}.ldif"))).unwrap();
        let a = definitions_of_schema(&schema);
        let b = definitions_of_ldif(&ldif);
        assert!(!a.is_empty(), "{name}");
        assert_eq!(a, b, "{name}.schema and {name}.ldif differ");
        assert!(ldif.contains(&format!("dn: cn={name},cn=schema,cn=config")));
    }
}

/// The names uvmm reads and writes are all defined, with UCS's OIDs where UCS has them.
#[test]
fn schema_names_match_ucs() {
    let text = std::fs::read_to_string(slapd::schema_dir().join("uvmm.schema")).unwrap();
    let defs = definitions_of_schema(&text);
    let find = |name: &str| {
        defs.iter()
            .find(|(_, t)| t.contains(&format!("NAME '{name}'")))
            .map(|(_, t)| t.split_whitespace().nth(1).unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("{name} is not defined"))
    };
    // (name, OID macro as in UCS's univention-virtual-machine-manager.schema)
    let table = [
        ("univentionVirtualMachine", "uvmmObjectClass:10"),
        ("univentionVirtualMachineUUID", "uvmmAttributetype:10"),
        ("univentionVirtualMachineOS", "uvmmAttributetype:11"),
        ("univentionVirtualMachineContact", "uvmmAttributetype:12"),
        (
            "univentionVirtualMachineDescription",
            "uvmmAttributetype:13",
        ),
        ("univentionVirtualMachineProfileRef", "uvmmAttributetype:14"),
        (
            "univentionVirtualMachineProfile",
            "uvmmProfileObjectClass:1",
        ),
        (
            "univentionVirtualMachineProfileNamePrefix",
            "uvmmProfileAttributetype:1",
        ),
        (
            "univentionVirtualMachineProfileRAM",
            "uvmmProfileAttributetype:5",
        ),
        (
            "univentionVirtualMachineProfileBootDevices",
            "uvmmProfileAttributetype:12",
        ),
        (
            "univentionVirtualMachineAdvancedKernelConfig",
            "uvmmProfileAttributetype:13",
        ),
        (
            "univentionVirtualMachineProfileRTCOffset",
            "uvmmProfileAttributetype:19",
        ),
        (
            "univentionVirtualMachineProfileDriverCache",
            "uvmmProfileAttributetype:20",
        ),
        (
            "univentionVirtualMachineProfileCPUModel",
            "uvmmProfileAttributetype:21",
        ),
        (
            "univentionVirtualMachineManageableBy",
            "uvmmHostAttributetype:1",
        ),
        ("univentionVirtualMachineHostOC", "uvmmHostObjectClass:1"),
    ];
    for (name, oid) in table {
        assert_eq!(find(name), oid, "{name}");
    }
    assert!(text.contains("objectIdentifier univentionVMM 1.3.6.1.4.1.10176.4101"));
    for attr in uvmm_directory::model::PROFILE_ATTRIBUTES {
        if attr.starts_with("univention") {
            find(attr);
        }
    }
}

/// Load the `.ldif` files into a cn=config configuration (as `ldapadd -Y EXTERNAL` would
/// into a running one) and the test entries into a database checked against it.
#[test]
fn ldif_schema_loads_into_cn_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = slapd::schema_dir();
    std::fs::create_dir_all(d.join("slapd.d")).unwrap();
    std::fs::create_dir_all(d.join("db")).unwrap();
    let config = format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {d}/slapd.pid\n\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
         olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
         include: file:///etc/ldap/schema/core.ldif\n\n\
         include: file:///etc/ldap/schema/cosine.ldif\n\n\
         include: file:///etc/ldap/schema/inetorgperson.ldif\n\n\
         include: file:///etc/ldap/schema/nis.ldif\n\n\
         include: file://{s}/uvmm.ldif\n\n\
         include: file://{s}/uvmm-ext.ldif\n\n\
         include: file://{s}/uvmm-host-compat.ldif\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
         objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcSuffix: {base}\n\
         olcDbDirectory: {d}/db\nolcRootDN: {root}\nolcRootPW: x\n",
        d = d.display(),
        s = s.display(),
        base = slapd::BASE,
        root = slapd::ROOT_DN,
    );
    std::fs::write(d.join("config.ldif"), config).unwrap();
    std::fs::write(d.join("data.ldif"), slapd::TEST_LDIF).unwrap();
    let slapadd = ["/usr/sbin/slapadd", "/usr/bin/slapadd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("slapadd is installed (scripts/lib.sh install_test_deps)");
    let run = |args: &[&str]| {
        let out = Command::new(slapadd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "slapadd {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let conf_dir = d.join("slapd.d");
    let conf_dir = conf_dir.to_str().unwrap();
    run(&[
        "-n",
        "0",
        "-F",
        conf_dir,
        "-l",
        d.join("config.ldif").to_str().unwrap(),
    ]);
    run(&[
        "-n",
        "1",
        "-F",
        conf_dir,
        "-l",
        d.join("data.ldif").to_str().unwrap(),
    ]);
    // And a profile that breaks the schema is refused, so the check is real.
    std::fs::write(
        d.join("bad.ldif"),
        format!(
            "dn: cn=bad,{base}\nobjectClass: univentionVirtualMachineProfile\ncn: bad\n\
             univentionVirtualMachineUUID: not-allowed-here\n",
            base = slapd::BASE
        ),
    )
    .unwrap();
    let out = Command::new(slapadd)
        .args([
            "-n",
            "1",
            "-F",
            conf_dir,
            "-l",
            d.join("bad.ldif").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a schema violation was accepted");
}
