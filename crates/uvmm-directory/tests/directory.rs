//! The directory mode against a real slapd (started by each test): hosts, profiles,
//! notes, logins, outages with cache and journal, replication, injection.

#[path = "support/slapd.rs"]
mod slapd;

use slapd::{Options, Slapd, SERVICE_DN, SERVICE_PW};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};
use uvmm_directory::{
    ChangeDetection, Directory, DirectoryConfig, Error, NoteEdit, NoteWrite, Opened, Winner,
};

const U1: &str = "11111111-1111-4111-8111-111111111111";
const U2: &str = "22222222-2222-4222-8222-222222222222";
const NOTES: &str = "cn=Information,cn=Virtual Machine Manager,dc=example,dc=com";

fn config(uri: &str, cache: &Path) -> DirectoryConfig {
    std::fs::create_dir_all(cache).unwrap();
    let pw = cache.join("../bind.secret");
    std::fs::write(&pw, format!("{SERVICE_PW}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = DirectoryConfig::new(uri);
    c.bind_dn = Some(SERVICE_DN.into());
    c.password_file = Some(pw);
    c.cache_dir = cache.to_path_buf();
    c.connect_timeout_secs = 2;
    c.timeout_secs = 5;
    c.hosts.base = "cn=computers".into();
    c.users.base = "cn=users".into();
    c.users.group_base = "cn=groups".into();
    c
}

fn uris(d: &Directory) -> Vec<String> {
    d.snapshot().host_uris().into_iter().collect()
}

async fn open_online(c: DirectoryConfig) -> Directory {
    let (d, opened) = Directory::open(c).await.expect("open");
    assert!(matches!(opened, Opened::Online(_)), "{opened:?}");
    d
}

fn edit_desc(v: &str) -> NoteEdit {
    NoteEdit {
        description: Some(v.into()),
        ..Default::default()
    }
}

/// Hosts found by filter and template, followed through additions and removals, in both
/// change-detection methods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_discovered_and_followed() {
    // Sync with a server that lists unchanged entries (present phase) and with one that
    // names deletions (delete phase, syncprov session log); and polling.
    let plain = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let logged = Slapd::start(Options {
        syncprov: true,
        sessionlog: true,
        ..Default::default()
    });
    let runs = [
        (&plain, ChangeDetection::Sync),
        (&logged, ChangeDetection::Sync),
        (&plain, ChangeDetection::Poll),
    ];
    for (s, method) in runs {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = config(&s.uri(), &tmp.path().join("cache"));
        c.change_detection = method;
        let mut d = open_online(c).await;
        assert_eq!(d.status().method, Some(method));
        assert_eq!(
            uris(&d),
            [
                "qemu://kvm1.example.com/system",
                "qemu://kvm2.example.com/system",
                "xen://xen1.example.com/"
            ],
            "{method:?}"
        );
        let same = d.refresh().await.unwrap();
        assert!(same.changes.is_empty(), "{method:?}: {:?}", same.changes);

        s.ldapmodify(
            "dn: cn=kvm3,cn=computers,dc=example,dc=com\nchangetype: add\n\
             objectClass: device\nobjectClass: domainRelatedObject\nobjectClass: uvmmHostServices\n\
             cn: kvm3\nassociatedDomain: lab.example.com\nuniventionService: KVM Host\n",
        );
        let added = d.refresh().await.unwrap();
        assert_eq!(
            added.changes.hosts_added,
            ["qemu://kvm3.lab.example.com/system"],
            "{method:?}"
        );
        assert!(added.changes.hosts_removed.is_empty());

        s.ldapdelete("cn=kvm3,cn=computers,dc=example,dc=com");
        // A host that stops offering KVM is dropped as well.
        s.ldapmodify(
            "dn: cn=kvm1,cn=computers,dc=example,dc=com\nchangetype: modify\n\
             replace: univentionService\nuniventionService: Samba 4\n",
        );
        let removed = d.refresh().await.unwrap();
        let mut gone = removed.changes.hosts_removed.clone();
        gone.sort();
        assert_eq!(
            gone,
            [
                "qemu://kvm1.example.com/system",
                "qemu://kvm3.lab.example.com/system"
            ],
            "{method:?}"
        );
        s.ldapmodify(
            "dn: cn=kvm1,cn=computers,dc=example,dc=com\nchangetype: modify\n\
             replace: univentionService\nuniventionService: KVM Host\n",
        );
        let back = d.refresh().await.unwrap();
        assert_eq!(back.changes.hosts_added, ["qemu://kvm1.example.com/system"]);
    }

    // Limited to the hosts this uvmmd may manage (univentionVirtualMachineManageableBy).
    let s = plain;
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(&s.uri(), &tmp.path().join("cache"));
    c.hosts.managed_by = Some("uvmm-a.example.com".into());
    let d = open_online(c).await;
    assert_eq!(
        uris(&d),
        ["qemu://kvm1.example.com/system", "xen://xen1.example.com/"]
    );
    let mut c = config(&s.uri(), &tmp.path().join("cache-b"));
    c.hosts.managed_by = Some("uvmm-b.example.com".into());
    assert_eq!(uris(&open_online(c).await).len(), 3);
}

/// Without syncprov the root DSE offers no sync control: `auto` polls, `sync` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_syncprov_changes_are_polled() {
    let s = Slapd::start(Options::default());
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&s.uri(), &tmp.path().join("cache"));
    let mut d = open_online(c.clone()).await;
    assert_eq!(d.status().method, Some(ChangeDetection::Poll));
    s.ldapmodify(&format!(
        "dn: univentionVirtualMachineUUID={U2},{NOTES}\nchangetype: modify\n\
         replace: univentionVirtualMachineDescription\nuniventionVirtualMachineDescription: db (polled)\n"
    ));
    let r = d.refresh().await.unwrap();
    assert_eq!(r.changes.notes.len(), 1);
    assert_eq!(
        d.note(U2).unwrap().description.as_deref(),
        Some("db (polled)")
    );

    let mut forced = c;
    forced.change_detection = ChangeDetection::Sync;
    forced.cache_dir = tmp.path().join("cache2");
    let e = Directory::open(forced).await.err().expect("sync refused");
    assert!(e.to_string().contains("content synchronisation"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_read_and_converted() {
    let s = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut d = open_online(config(&s.uri(), &tmp.path().join("cache"))).await;
    let snap = d.snapshot();
    assert_eq!(snap.profiles.len(), 4, "{:?}", snap.profiles.keys());

    let ucs = snap
        .profile("ucs 4 (64 bit)")
        .unwrap()
        .to_profile()
        .unwrap();
    let p = &ucs.profile;
    assert_eq!(p.name, "UCS 4 (64 Bit)");
    assert_eq!((p.domain_type.as_str(), p.os_type.as_str()), ("kvm", "hvm"));
    assert_eq!(
        (p.memory.as_str(), p.disk_size.as_deref()),
        ("1GiB", Some("20GiB"))
    );
    assert_eq!(
        (p.disk_bus.as_str(), p.nic_model.as_deref()),
        ("virtio", Some("virtio"))
    );
    assert_eq!(p.network.as_deref(), Some("bridge=br0"));
    assert_eq!(p.boot, ["hd", "cdrom"]);
    assert_eq!(p.name_prefix.as_deref(), Some("ucs4-64-"));
    assert_eq!(p.vcpus, 1);

    let win = snap
        .profile("Microsoft Windows 2016 (64 Bit)")
        .unwrap()
        .to_profile()
        .unwrap();
    assert_eq!(win.profile.rtc, "localtime");
    assert_eq!(win.profile.cpu_model.as_deref(), Some("host-model"));
    assert_eq!(win.profile.disk_bus, "ide");
    assert_eq!(win.profile.nic_model.as_deref(), Some("rtl8139"));
    assert_eq!(
        win.ignored.len(),
        1,
        "driver cache is reported: {:?}",
        win.ignored
    );

    let xen = snap.profile("Debian Xen PV").unwrap().to_profile().unwrap();
    assert_eq!(xen.profile.os_type, "xen");
    assert_eq!(xen.profile.bootloader.as_deref(), Some("/usr/bin/pygrub"));
    assert_eq!(xen.profile.disk_format, "raw");
    assert_eq!(xen.profile.memory, "512MiB");
    assert_eq!(
        xen.profile.description.as_deref(),
        Some("Debian, paravirtualised, booted by pygrub")
    );

    let kernel = snap.profile("Xen PV kernel").unwrap();
    assert_eq!(kernel.kernel_parameter.as_deref(), Some("console=hvc0"));
    assert!(kernel
        .to_profile()
        .unwrap_err()
        .to_string()
        .contains("not supported"));

    s.ldapmodify(
        "dn: cn=UCS 4 (64 Bit),cn=kvm,cn=Profiles,cn=Virtual Machine Manager,dc=example,dc=com\n\
         changetype: modify\nreplace: univentionVirtualMachineProfileRAM\n\
         univentionVirtualMachineProfileRAM: 4 GB\n",
    );
    let r = d.refresh().await.unwrap();
    assert_eq!(r.changes.profiles_changed, ["UCS 4 (64 Bit)"]);
    let p = d
        .snapshot()
        .profile("UCS 4 (64 Bit)")
        .unwrap()
        .to_profile()
        .unwrap();
    assert_eq!(p.profile.memory, "4GiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_are_written_read_back_and_followed() {
    let s = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut d = open_online(config(&s.uri(), &tmp.path().join("cache"))).await;
    let n1 = d.note(U1).unwrap();
    assert_eq!(n1.description.as_deref(), Some("web server"));
    assert_eq!(n1.contact.as_deref(), Some("ops@example.com"));
    assert_eq!(n1.os.as_deref(), Some("Debian 12"));
    assert!(n1.profile_ref.unwrap().starts_with("cn=UCS 4 (64 Bit)"));

    // Modify one field, clear another.
    let w = d
        .set_note(
            U1,
            NoteEdit {
                description: Some("web server (frontend)".into()),
                contact: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(w, NoteWrite::Applied { .. }), "{w:?}");
    let out = s.ldapsearch(&format!("(univentionVirtualMachineUUID={U1})"), &["*"]);
    assert!(
        out.contains("univentionVirtualMachineDescription: web server (frontend)"),
        "{out}"
    );
    assert!(!out.contains("univentionVirtualMachineContact"), "{out}");
    assert!(
        out.contains("univentionVirtualMachineOS: Debian 12"),
        "{out}"
    );

    // Create a note for a VM that has none.
    let u3 = "33333333-3333-4333-8333-333333333333";
    d.set_note(
        u3,
        NoteEdit {
            description: Some("new VM".into()),
            os: Some("Windows Server 2022".into()),
            profile_ref: Some("cn=Microsoft Windows 2016 (64 Bit),cn=kvm,cn=Profiles,cn=Virtual Machine Manager,dc=example,dc=com".into()),
            contact: Some("Jürgen <j@example.com>".into()),
        },
    )
    .await
    .unwrap();
    let n3 = d.note(u3).unwrap();
    assert_eq!(n3.os.as_deref(), Some("Windows Server 2022"));
    assert_eq!(n3.contact.as_deref(), Some("Jürgen <j@example.com>"));
    assert_eq!(s.count(&format!("(univentionVirtualMachineUUID={u3})")), 1);

    // Another client edits a note: the next refresh sees it.
    s.ldapmodify(&format!(
        "dn: univentionVirtualMachineUUID={U2},{NOTES}\nchangetype: modify\n\
         replace: univentionVirtualMachineContact\nuniventionVirtualMachineContact: dba@example.com\n"
    ));
    let r = d.refresh().await.unwrap();
    assert_eq!(r.changes.notes.len(), 1, "{:?}", r.changes.notes);
    assert_eq!(r.changes.notes[0].uuid, U2);
    assert_eq!(
        d.note(U2).unwrap().contact.as_deref(),
        Some("dba@example.com")
    );
    s.ldapdelete(&format!("univentionVirtualMachineUUID={U2},{NOTES}"));
    let r = d.refresh().await.unwrap();
    assert!(r.changes.notes[0].after.is_none());
    assert!(d.note(U2).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_and_get_their_groups() {
    let s = Slapd::start(Options::default());
    let tmp = tempfile::tempdir().unwrap();
    let d = open_online(config(&s.uri(), &tmp.path().join("cache"))).await;

    let alice = d.authenticate("alice", "alice-pw").await.unwrap();
    assert_eq!(alice.dn, "uid=alice,cn=users,dc=example,dc=com");
    assert_eq!(alice.groups.iter().collect::<Vec<_>>(), ["uvmm-admins"]);
    let bob = d.authenticate("bob", "bob-pw").await.unwrap();
    assert_eq!(
        bob.groups.iter().collect::<Vec<_>>(),
        ["staff", "uvmm-operators"]
    );
    let carol = d.authenticate("carol", "carol-pw").await.unwrap();
    assert!(carol.groups.is_empty());
    // The cached groups say the same, for when the directory is down.
    assert_eq!(
        d.cached_groups_of("bob", Some(&bob.dn))
            .into_iter()
            .collect::<Vec<_>>(),
        ["staff", "uvmm-operators"]
    );

    let refused = [
        ("alice", "wrong"),
        ("alice", ""),
        ("nobody", "x"),
        ("*", "alice-pw"),
        ("alice)(uid=*", "alice-pw"),
        ("uvmm-svc", SERVICE_PW),
        ("", "x"),
    ];
    for (uid, pw) in refused {
        let e = d.authenticate(uid, pw).await.unwrap_err();
        assert!(
            matches!(e, Error::InvalidCredentials | Error::UnknownUser),
            "{uid:?}/{pw:?}: {e}"
        );
    }
}

/// slapd stopped: the client starts from the cache and says degraded; a note edit is
/// queued in the journal and survives a restart of the client; slapd back: the queue is
/// replayed, the conflict rule applied and reported, the state consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_cache_queue_and_replay() {
    let mut s = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let c = config(&s.uri(), &cache);
    let d = open_online(c.clone()).await;
    let hosts_before = uris(&d);
    let groups_before = d.cached_groups_of("bob", Some("uid=bob,cn=users,dc=example,dc=com"));
    // Another client changes U2 while this one is not looking: its base stays "database".
    s.ldapmodify(&format!(
        "dn: univentionVirtualMachineUUID={U2},{NOTES}\nchangetype: modify\n\
         replace: univentionVirtualMachineDescription\nuniventionVirtualMachineDescription: db (early)\n"
    ));
    drop(d);
    let cached = std::fs::read_to_string(cache.join("directory-cache.json")).unwrap();
    for secret in ["kvm1-host-secret", "userpassword", "alice-pw", SERVICE_PW] {
        assert!(
            !cached.to_lowercase().contains(&secret.to_lowercase()),
            "{secret} is cached"
        );
    }
    assert!(cached.contains("uvmm-operators"), "groups are cached");
    let mode = std::fs::metadata(cache.join("directory-cache.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The local edit of U2 must be later than that change by the clock (seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;

    s.stop();
    let (mut d, opened) = Directory::open(c.clone()).await.unwrap();
    match &opened {
        Opened::Degraded { from_cache, error } => {
            assert!(from_cache, "{error}");
            assert!(error.contains("127.0.0.1"), "{error}");
        }
        other => panic!("expected degraded, got {other:?}"),
    }
    let st = d.status();
    assert!(
        !st.online && st.from_cache && st.degraded_reason.is_some(),
        "{st:?}"
    );
    assert_eq!(uris(&d), hosts_before);
    assert_eq!(
        d.cached_groups_of("bob", Some("uid=bob,cn=users,dc=example,dc=com")),
        groups_before
    );
    assert_eq!(d.snapshot().profiles.len(), 4);

    let w = d
        .set_note(
            U1,
            NoteEdit {
                description: Some("local".into()),
                contact: Some("local-contact@example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(w, NoteWrite::Queued { pending: 1 });
    d.set_note(U2, edit_desc("db (local, later)"))
        .await
        .unwrap();
    assert_eq!(d.status().pending_writes, 2);
    assert_eq!(d.note(U1).unwrap().description.as_deref(), Some("local"));
    let r = d.refresh().await.unwrap_err();
    assert!(r.is_unavailable(), "{r}");
    drop(d);

    // The client process restarts while the directory is still down: the queue is on disk.
    let journal = std::fs::read_to_string(cache.join("notes-journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2, "{journal}");
    let (d, opened) = Directory::open(c.clone()).await.unwrap();
    assert!(matches!(opened, Opened::Degraded { .. }));
    assert_eq!(d.status().pending_writes, 2);
    assert_eq!(
        d.note(U1).unwrap().contact.as_deref(),
        Some("local-contact@example.com")
    );
    drop(d);

    // The directory comes back; before this client notices, someone changes U1's
    // description (later than the local edit): the directory wins that field; the contact
    // nobody else touched is written; U2's older directory change loses to the local edit.
    s.restart();
    s.ldapmodify(&format!(
        "dn: univentionVirtualMachineUUID={U1},{NOTES}\nchangetype: modify\n\
         replace: univentionVirtualMachineDescription\nuniventionVirtualMachineDescription: theirs\n"
    ));
    let (d, opened) = Directory::open(c.clone()).await.unwrap();
    let Opened::Online(out) = opened else {
        panic!("expected online, got {opened:?}")
    };
    let rep = &out.replay;
    assert_eq!(rep.applied.len(), 2, "{rep:?}");
    assert!(rep.rejected.is_empty(), "{rep:?}");
    assert_eq!(rep.conflicts.len(), 2, "{rep:?}");
    let c1 = rep.conflicts.iter().find(|c| c.uuid == U1).unwrap();
    assert_eq!(
        (c1.winner, c1.directory.as_deref()),
        (Winner::Directory, Some("theirs"))
    );
    let c2 = rep.conflicts.iter().find(|c| c.uuid == U2).unwrap();
    assert_eq!(
        (c2.winner, c2.directory.as_deref()),
        (Winner::Local, Some("db (early)"))
    );

    let st = d.status();
    assert!(
        st.online && !st.from_cache && st.pending_writes == 0,
        "{st:?}"
    );
    assert!(!cache.join("notes-journal.jsonl").exists());
    let n1 = d.note(U1).unwrap();
    assert_eq!(n1.description.as_deref(), Some("theirs"));
    assert_eq!(n1.contact.as_deref(), Some("local-contact@example.com"));
    assert_eq!(
        d.note(U2).unwrap().description.as_deref(),
        Some("db (local, later)")
    );
    let out = s.ldapsearch(&format!("(univentionVirtualMachineUUID={U1})"), &["*"]);
    assert!(
        out.contains("univentionVirtualMachineDescription: theirs"),
        "{out}"
    );
    assert!(
        out.contains("univentionVirtualMachineContact: local-contact@example.com"),
        "{out}"
    );
}

/// Two slapd in syncrepl replication: a change made on the provider is seen by a client
/// of the consumer, and a note written through the provider reaches it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_directory() {
    let (provider, consumer) = Slapd::pair();
    let tmp = tempfile::tempdir().unwrap();
    let mut on_provider = open_online(config(&provider.uri(), &tmp.path().join("p"))).await;
    let mut on_consumer = open_online(config(&consumer.uri(), &tmp.path().join("c"))).await;
    assert_eq!(on_consumer.status().method, Some(ChangeDetection::Sync));
    assert_eq!(uris(&on_provider), uris(&on_consumer));
    assert_eq!(
        on_provider.snapshot().profiles,
        on_consumer.snapshot().profiles
    );

    provider.ldapmodify(
        "dn: cn=kvm9,cn=computers,dc=example,dc=com\nchangetype: add\n\
         objectClass: device\nobjectClass: domainRelatedObject\nobjectClass: uvmmHostServices\n\
         cn: kvm9\nassociatedDomain: example.com\nuniventionService: KVM Host\n",
    );
    on_provider
        .set_note(U1, edit_desc("seen everywhere"))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut added = Vec::new();
    loop {
        let r = on_consumer.refresh().await.unwrap();
        added.extend(r.changes.hosts_added);
        let note = on_consumer.note(U1).and_then(|n| n.description);
        if added.contains(&"qemu://kvm9.example.com/system".to_string())
            && note.as_deref() == Some("seen everywhere")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "consumer did not see the change: {added:?} {note:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    on_provider.refresh().await.unwrap();
    assert_eq!(uris(&on_provider), uris(&on_consumer));
}

/// Values with LDAP metacharacters are escaped everywhere: as note keys (DN and filter),
/// as note values, as login names; nothing else in the directory is touched or matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_strings_are_escaped() {
    let s = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut d = open_online(config(&s.uri(), &tmp.path().join("cache"))).await;
    let before = s.ldapsearch(&format!("(univentionVirtualMachineUUID={U1})"), &["*"]);
    let keys = [
        "*",
        "11111111-1111-4111-8111-*",
        "x)(univentionVirtualMachineUUID=*",
        "a\\2a",
        "a,cn=Information",
        "a+b=c",
        "#hash ",
        " lead",
        "\"quoted\" <angle>;",
    ];
    for key in keys {
        let w = d
            .set_note(key, edit_desc(&format!("note of {key}")))
            .await
            .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert!(matches!(w, NoteWrite::Applied { .. }), "{key:?}: {w:?}");
        assert_eq!(
            d.note(key).and_then(|n| n.description),
            Some(format!("note of {key}")),
            "{key:?}"
        );
    }
    // Each key got its own entry, directly below cn=Information; U1 is untouched.
    assert_eq!(
        s.ldapsearch(&format!("(univentionVirtualMachineUUID={U1})"), &["*"]),
        before
    );
    let n = s.count("(objectClass=univentionVirtualMachine)");
    assert_eq!(n, 2 + keys.len());
    d.refresh().await.unwrap();
    assert_eq!(d.snapshot().notes.len(), 2 + keys.len());
    for key in keys {
        let note = d.snapshot().note(key).unwrap_or_else(|| panic!("{key:?}"));
        assert!(note.dn.ends_with(&format!(",{NOTES}")), "{}", note.dn);
        assert_eq!(note.uuid, key);
    }
    // A NUL or other control character is refused before it reaches the directory.
    for key in ["nul\0", "line\nbreak"] {
        let e = d.set_note(key, edit_desc("x")).await.unwrap_err();
        assert!(matches!(e, Error::NoteKey { .. }), "{e}");
    }
    // Values are data, never syntax.
    let evil = "*)(objectClass=*))(|(cn=*\\00,+=";
    d.set_note(U1, edit_desc(evil)).await.unwrap();
    assert_eq!(d.note(U1).unwrap().description.as_deref(), Some(evil));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_starttls() {
    let s = Slapd::start(Options {
        tls: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(&s.ldaps_uri(), &tmp.path().join("a"));
    c.ca_file = Some(s.ca_file());
    let d = open_online(c).await;
    assert_eq!(uris(&d).len(), 3);
    assert!(d.authenticate("alice", "alice-pw").await.is_ok());

    let mut c = config(&s.uri(), &tmp.path().join("b"));
    c.starttls = true;
    c.ca_file = Some(s.ca_file());
    assert_eq!(uris(&open_online(c).await).len(), 3);

    // A certificate from another CA is refused: not degraded, an error.
    let other = Slapd::start(Options {
        tls: true,
        ..Default::default()
    });
    let mut c = config(&s.ldaps_uri(), &tmp.path().join("c"));
    c.ca_file = Some(other.ca_file());
    match Directory::open(c).await {
        Ok((_, Opened::Degraded { error, .. })) => {
            assert!(error.to_lowercase().contains("certificate"), "{error}")
        }
        Err(e) => assert!(
            uvmm_directory::error_chain(&e)
                .to_lowercase()
                .contains("certificate"),
            "{e}"
        ),
        Ok((_, o)) => panic!("a foreign CA was accepted: {o:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_are_not_outages() {
    let s = Slapd::start(Options::default());
    let tmp = tempfile::tempdir().unwrap();
    let c = config(&s.uri(), &tmp.path().join("cache"));
    // Wrong service password: an error that says so, not "degraded".
    std::fs::write(c.password_file.as_ref().unwrap(), "wrong\n").unwrap();
    let e = Directory::open(c.clone())
        .await
        .err()
        .expect("bind refused");
    assert!(!e.is_unavailable(), "{e}");
    assert!(e.to_string().contains(SERVICE_DN), "{e}");
    // A password file others can read is refused before any connection.
    std::fs::set_permissions(
        c.password_file.as_ref().unwrap(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let e = Directory::open(c.clone()).await.err().expect("unsafe file");
    assert!(e.to_string().contains("chmod 600"), "{e}");
    // An account that may read but not write notes: the write is refused for good, an
    // error for the caller, and nothing stays queued.
    let mut reader = config(&s.uri(), &tmp.path().join("reader"));
    reader.bind_dn = Some("uid=alice,cn=users,dc=example,dc=com".into());
    std::fs::write(reader.password_file.as_ref().unwrap(), "alice-pw\n").unwrap();
    std::fs::set_permissions(
        reader.password_file.as_ref().unwrap(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let mut d = open_online(reader).await;
    let e = d.set_note(U1, edit_desc("not allowed")).await.unwrap_err();
    assert!(matches!(e, Error::NoteRejected { .. }), "{e}");
    assert!(uvmm_directory::error_chain(&e).contains("50"), "{e}");
    assert_eq!(d.status().pending_writes, 0);
    assert!(!tmp.path().join("reader/notes-journal.jsonl").exists());
    assert_eq!(
        d.note(U1).unwrap().description.as_deref(),
        Some("web server")
    );

    // Nobody listening: degraded, with nothing cached.
    let mut down = config(
        "ldap://127.0.0.1:1/dc=example,dc=com",
        &tmp.path().join("down"),
    );
    down.connect_timeout_secs = 1;
    let (d, opened) = Directory::open(down).await.unwrap();
    assert!(
        matches!(
            opened,
            Opened::Degraded {
                from_cache: false,
                ..
            }
        ),
        "{opened:?}"
    );
    assert!(d.snapshot().hosts.is_empty());
}

/// A server that accepts connections but never answers (SIGSTOP): every operation ends at
/// its timeout, the client turns degraded and queues; once it answers again, all is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_server_times_out_and_recovers() {
    let s = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(&s.uri(), &tmp.path().join("cache"));
    c.timeout_secs = 1;
    c.connect_timeout_secs = 1;
    let mut d = open_online(c).await;
    s.pause();
    let t = Instant::now();
    let e = d.refresh().await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    assert!(!d.status().online);
    let w = d
        .set_note(U2, edit_desc("written after the hang"))
        .await
        .unwrap();
    assert_eq!(w, NoteWrite::Queued { pending: 1 });
    s.resume();
    let r = d.refresh().await.unwrap();
    assert_eq!(r.replay.applied.len(), 1);
    assert!(d.status().online);
    assert_eq!(
        s.count("(univentionVirtualMachineDescription=written after the hang)"),
        1
    );
}

/// The daemon runs refreshes on tokio tasks: the futures must be `Send`.
#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let run = |mut d: Directory| async move {
        let r = d.refresh();
        send(&r);
        drop(r);
        let w = d.set_note(U1, NoteEdit::default());
        send(&w);
        drop(w);
        let a = d.authenticate("a", "b");
        send(&a);
    };
    let _ = run;
}

/// The journal across a real process boundary: a child process (this test binary, run
/// for the helper below) queues a note edit while slapd is down and then dies abruptly
/// (abort, no destructors, no clean shutdown). The parent, a new process as far as the
/// library is concerned, finds the edit and writes it when slapd is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_edit_survives_a_crashed_process() {
    let mut s = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let c = config(&s.uri(), &cache);
    drop(open_online(c.clone()).await);
    s.stop();
    std::fs::write(tmp.path().join("child.toml"), toml::to_string(&c).unwrap()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_queues_a_note_and_crashes",
            "--include-ignored",
            "--nocapture",
        ])
        .env("UVMM_DIRECTORY_CHILD_CONFIG", tmp.path().join("child.toml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "the child should have aborted: {text}"
    );
    assert!(text.contains("queued, now crashing"), "{text}");

    s.restart();
    let (d, opened) = Directory::open(c).await.unwrap();
    let Opened::Online(o) = opened else {
        panic!("{opened:?}")
    };
    assert_eq!(o.replay.applied, [(U2.to_string(), 1)]);
    assert_eq!(
        d.note(U2).unwrap().description.as_deref(),
        Some("from a process that crashed")
    );
}

/// Helper for the test above; does nothing unless that test starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of queued_edit_survives_a_crashed_process"]
async fn child_queues_a_note_and_crashes() {
    let Ok(path) = std::env::var("UVMM_DIRECTORY_CHILD_CONFIG") else {
        return;
    };
    let c: DirectoryConfig = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut d, opened) = Directory::open(c).await.unwrap();
    assert!(matches!(
        opened,
        Opened::Degraded {
            from_cache: true,
            ..
        }
    ));
    let w = d
        .set_note(U2, edit_desc("from a process that crashed"))
        .await
        .unwrap();
    assert_eq!(w, NoteWrite::Queued { pending: 1 });
    println!("queued, now crashing");
    std::process::abort();
}

async fn next(
    rx: &mut tokio::sync::mpsc::Receiver<uvmm_directory::DirectoryEvent>,
) -> uvmm_directory::DirectoryEvent {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an event within 20 s")
        .expect("the loop runs")
}

/// The daemon's refresh loop: changes arrive as events without anyone asking; an outage is
/// reported once, the recovery too, and a note queued meanwhile is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_loop_reports_changes_and_outages() {
    use std::sync::Arc;
    use uvmm_directory::{spawn_refresh_loop, DirectoryEvent};
    let mut s = Slapd::start(Options {
        syncprov: true,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(&s.uri(), &tmp.path().join("cache"));
    c.poll_interval_secs = 1;
    c.timeout_secs = 2;
    c.connect_timeout_secs = 1;
    let dir = Arc::new(tokio::sync::Mutex::new(open_online(c).await));
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let task = spawn_refresh_loop(dir.clone(), tx);
    s.ldapdelete("cn=xen1,cn=computers,dc=example,dc=com");
    match next(&mut rx).await {
        DirectoryEvent::Changed(o) => {
            assert_eq!(o.changes.hosts_removed, ["xen://xen1.example.com/"])
        }
        other => panic!("{other:?}"),
    }
    s.stop();
    assert!(matches!(
        next(&mut rx).await,
        DirectoryEvent::Degraded { .. }
    ));
    let w = dir
        .lock()
        .await
        .set_note(U2, edit_desc("during the outage"))
        .await
        .unwrap();
    assert!(matches!(w, NoteWrite::Queued { .. }));
    s.restart();
    assert_eq!(next(&mut rx).await, DirectoryEvent::Recovered);
    match next(&mut rx).await {
        DirectoryEvent::Changed(o) => assert_eq!(o.replay.applied.len(), 1),
        other => panic!("{other:?}"),
    }
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop ends when nobody listens")
        .unwrap();
}
