//! Figures, not assertions on time: how long slapd takes to start and a refresh takes for
//! a directory with many entries, by sync and by polling. Prints a table; see it with
//! `cargo test -p uvmm-directory --test figures -- --nocapture`. It asserts only that the
//! results are right.

#[path = "support/slapd.rs"]
mod slapd;

use slapd::{Options, Slapd, SERVICE_DN, SERVICE_PW};
use std::fmt::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;
use uvmm_directory::{ChangeDetection, Directory, DirectoryConfig, Opened};

const HOSTS: usize = 200;
const NOTES: usize = 2000;

fn big_ldif() -> String {
    let mut l = slapd::TEST_LDIF.to_string();
    for i in 0..HOSTS {
        let _ = write!(
            l,
            "\ndn: cn=bulk{i},cn=computers,dc=example,dc=com\nobjectClass: device\n\
             objectClass: domainRelatedObject\nobjectClass: uvmmHostServices\ncn: bulk{i}\n\
             associatedDomain: example.com\nuniventionService: KVM Host\n"
        );
    }
    for i in 0..NOTES {
        let _ = write!(
            l,
            "\ndn: univentionVirtualMachineUUID=aaaaaaaa-0000-4000-8000-{i:012},cn=Information,\
             cn=Virtual Machine Manager,dc=example,dc=com\nobjectClass: univentionVirtualMachine\n\
             univentionVirtualMachineUUID: aaaaaaaa-0000-4000-8000-{i:012}\n\
             univentionVirtualMachineDescription: bulk VM {i}\n\
             univentionVirtualMachineContact: team{}@example.com\n",
            i % 17
        );
    }
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_figures() {
    let s = Slapd::start(Options {
        syncprov: true,
        ldif: Some(big_ldif()),
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, SERVICE_PW).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut report = format!(
        "slapd start (until the port answers): {:.0} ms\n\
         directory: {} hosts, {} notes, 4 profiles, 3 groups\n",
        s.start_secs * 1000.0,
        HOSTS + 4,
        NOTES + 2
    );
    for method in [ChangeDetection::Sync, ChangeDetection::Poll] {
        let mut c = DirectoryConfig::new(s.uri());
        c.bind_dn = Some(SERVICE_DN.into());
        c.password_file = Some(pw.clone());
        c.cache_dir = tmp.path().join(format!("{method:?}"));
        c.hosts.base = "cn=computers".into();
        c.change_detection = method;
        let t = Instant::now();
        let (mut d, opened) = Directory::open(c).await.unwrap();
        let first = t.elapsed();
        assert!(matches!(opened, Opened::Online(_)));
        assert_eq!(d.snapshot().hosts.len(), HOSTS + 3);
        assert_eq!(d.snapshot().notes.len(), NOTES + 2);

        let t = Instant::now();
        let same = d.refresh().await.unwrap();
        let unchanged = t.elapsed();
        assert!(same.changes.is_empty());

        s.ldapmodify(&format!(
            "dn: univentionVirtualMachineUUID=aaaaaaaa-0000-4000-8000-000000000007,cn=Information,\
             cn=Virtual Machine Manager,dc=example,dc=com\nchangetype: modify\n\
             replace: univentionVirtualMachineDescription\n\
             univentionVirtualMachineDescription: changed while {method:?}\n",
        ));
        let t = Instant::now();
        let one = d.refresh().await.unwrap();
        let changed = t.elapsed();
        assert_eq!(one.changes.notes.len(), 1, "{method:?}: {:?}", one.changes);

        let t = Instant::now();
        let (d2, _) = Directory::open({
            let mut c = d.config().clone();
            c.uri = "ldap://127.0.0.1:1/dc=example,dc=com".into();
            c.connect_timeout_secs = 1;
            c
        })
        .await
        .unwrap();
        let from_cache = t.elapsed();
        assert_eq!(d2.snapshot().notes.len(), NOTES + 2);
        let _ = writeln!(
            report,
            "{method:?}: first refresh {:.0} ms, no change {:.0} ms, one change {:.0} ms; \
             start from cache with the directory down {:.0} ms",
            first.as_secs_f64() * 1000.0,
            unchanged.as_secs_f64() * 1000.0,
            changed.as_secs_f64() * 1000.0,
            from_cache.as_secs_f64() * 1000.0,
        );
    }
    println!("{report}");
}
