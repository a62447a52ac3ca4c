//! Reading search results and the content-synchronisation messages (RFC 4533) from their
//! BER form without panicking. ldap3's own helpers (`SearchEntry::construct`,
//! `parse_syncinfo`, the `SyncState`/`SyncDone` parsers) panic on input they do not
//! expect; a directory server must not be able to crash uvmmd, so these parsers return
//! errors instead.

use crate::model::RawEntry;
use ldap3::asn1::{parse_tag, StructureTag, TagClass, Types, PL};
use std::collections::BTreeMap;

pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";

type R<T> = Result<T, String>;

fn children(t: StructureTag, what: &str) -> R<Vec<StructureTag>> {
    match t.payload {
        PL::C(v) => Ok(v),
        PL::P(_) => Err(format!("{what}: expected a constructed value")),
    }
}

fn bytes(t: StructureTag, what: &str) -> R<Vec<u8>> {
    match t.payload {
        PL::P(v) => Ok(v),
        PL::C(_) => Err(format!("{what}: expected a primitive value")),
    }
}

fn string(t: StructureTag, what: &str) -> R<String> {
    String::from_utf8(bytes(t, what)?).map_err(|_| format!("{what}: not UTF-8"))
}

fn is_universal(t: &StructureTag, ty: Types) -> bool {
    t.class == TagClass::Universal && t.id == ty as u64
}

fn boolean(t: StructureTag, what: &str) -> R<bool> {
    let b = bytes(t, what)?;
    Ok(b.first().copied().unwrap_or(0) != 0)
}

/// A SearchResultEntry (application tag 4) as a [`RawEntry`]. Values that are not UTF-8
/// (binary attributes) are skipped: uvmm reads no binary attribute.
pub fn entry_from_tag(t: StructureTag) -> R<RawEntry> {
    if t.class != TagClass::Application || t.id != 4 {
        return Err(format!("search result: unexpected tag {}", t.id));
    }
    let mut parts = children(t, "search entry")?.into_iter();
    let dn = string(
        parts.next().ok_or("search entry: no DN")?,
        "search entry DN",
    )?;
    let mut attrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(list) = parts.next() {
        for pa in children(list, "attribute list")? {
            let mut p = children(pa, "attribute")?.into_iter();
            let name = string(p.next().ok_or("attribute: no type")?, "attribute type")?;
            let mut values = Vec::new();
            if let Some(set) = p.next() {
                for v in children(set, "attribute values")? {
                    if let Ok(s) = String::from_utf8(bytes(v, "attribute value")?) {
                        values.push(s);
                    }
                }
            }
            attrs
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(values);
        }
    }
    Ok(RawEntry { dn, attrs })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStateKind {
    Present,
    Add,
    Modify,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub state: SyncStateKind,
    pub entry_uuid: Vec<u8>,
    pub cookie: Option<Vec<u8>>,
}

pub fn parse_sync_state(val: &[u8]) -> R<SyncState> {
    let (_, t) = parse_tag(val).map_err(|_| "syncState: not BER".to_string())?;
    let mut it = children(t, "syncState")?.into_iter();
    let st = bytes(it.next().ok_or("syncState: no state")?, "syncState state")?;
    let state = match st.as_slice() {
        [0] => SyncStateKind::Present,
        [1] => SyncStateKind::Add,
        [2] => SyncStateKind::Modify,
        [3] => SyncStateKind::Delete,
        other => return Err(format!("syncState: unknown state {other:?}")),
    };
    let entry_uuid = bytes(
        it.next().ok_or("syncState: no entryUUID")?,
        "syncState entryUUID",
    )?;
    let cookie = match it.next() {
        Some(c) => Some(bytes(c, "syncState cookie")?),
        None => None,
    };
    Ok(SyncState {
        state,
        entry_uuid,
        cookie,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncDone {
    pub cookie: Option<Vec<u8>>,
    pub refresh_deletes: bool,
}

pub fn parse_sync_done(val: &[u8]) -> R<SyncDone> {
    let (_, t) = parse_tag(val).map_err(|_| "syncDone: not BER".to_string())?;
    let mut out = SyncDone::default();
    for c in children(t, "syncDone")? {
        if is_universal(&c, Types::OctetString) {
            out.cookie = Some(bytes(c, "syncDone cookie")?);
        } else if is_universal(&c, Types::Boolean) {
            out.refresh_deletes = boolean(c, "syncDone refreshDeletes")?;
        } else {
            return Err(format!("syncDone: unexpected element {}", c.id));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    RefreshDelete {
        cookie: Option<Vec<u8>>,
        done: bool,
    },
    RefreshPresent {
        cookie: Option<Vec<u8>>,
        done: bool,
    },
    SyncIdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<Vec<u8>>,
    },
}

/// An IntermediateResponse (application tag 25) carrying a syncInfo value; `Ok(None)` for
/// an intermediate response of another kind.
pub fn parse_sync_info(t: StructureTag) -> R<Option<SyncInfo>> {
    if t.class != TagClass::Application || t.id != 25 {
        return Err(format!("intermediate response: unexpected tag {}", t.id));
    }
    let mut oid = None;
    let mut value = None;
    for c in children(t, "intermediate response")? {
        match (c.class, c.id) {
            (TagClass::Context, 0) => oid = Some(string(c, "intermediate response name")?),
            (TagClass::Context, 1) => value = Some(bytes(c, "intermediate response value")?),
            _ => {}
        }
    }
    if oid.as_deref() != Some(SYNC_INFO_OID) {
        return Ok(None);
    }
    let value = value.ok_or("syncInfo: no value")?;
    let (_, v) = parse_tag(&value).map_err(|_| "syncInfo: not BER".to_string())?;
    if v.class != TagClass::Context {
        return Err("syncInfo: unexpected tag class".into());
    }
    let info = match v.id {
        0 => SyncInfo::NewCookie(bytes(v, "syncInfo newcookie")?),
        id @ 1..=3 => {
            let mut cookie = None;
            // refreshDone defaults to TRUE, refreshDeletes (syncIdSet) to FALSE.
            let mut flag = id != 3;
            let mut uuids = Vec::new();
            for c in children(v, "syncInfo")? {
                if is_universal(&c, Types::OctetString) {
                    cookie = Some(bytes(c, "syncInfo cookie")?);
                } else if is_universal(&c, Types::Boolean) {
                    flag = boolean(c, "syncInfo flag")?;
                } else if is_universal(&c, Types::Set) {
                    for u in children(c, "syncUUIDs")? {
                        uuids.push(bytes(u, "syncUUID")?);
                    }
                } else {
                    return Err(format!("syncInfo: unexpected element {}", c.id));
                }
            }
            match id {
                1 => SyncInfo::RefreshDelete { cookie, done: flag },
                2 => SyncInfo::RefreshPresent { cookie, done: flag },
                _ => SyncInfo::SyncIdSet {
                    cookie,
                    refresh_deletes: flag,
                    uuids,
                },
            }
        }
        other => return Err(format!("syncInfo: unknown choice {other}")),
    };
    Ok(Some(info))
}

/// The sync request control value: `SEQUENCE { mode ENUMERATED, cookie OCTET STRING
/// OPTIONAL, reloadHint BOOLEAN DEFAULT FALSE }`, refreshOnly mode.
pub fn sync_request_control(cookie: Option<&[u8]>) -> ldap3::controls::RawControl {
    let req = ldap3::controls::SyncRequest {
        mode: ldap3::controls::RefreshMode::RefreshOnly,
        cookie: cookie.map(<[u8]>::to_vec),
        reload_hint: false,
    };
    let mut raw: ldap3::controls::RawControl = req.into();
    // Critical: a server that does not understand it must refuse, not silently ignore it
    // and hand back a plain search whose absence of deletions would be misread.
    raw.crit = true;
    raw
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{ASNTag, Boolean, Enumerated, OctetString, Sequence, Set, Tag};

    fn encode(t: Tag) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        ldap3::asn1::write::encode_into(&mut buf, t.into_structure()).unwrap();
        buf.to_vec()
    }
    fn os(b: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: b.to_vec(),
            ..Default::default()
        })
    }

    #[test]
    fn sync_state_values() {
        let v = encode(Tag::Sequence(Sequence {
            inner: vec![
                Tag::Enumerated(Enumerated {
                    inner: 2,
                    ..Default::default()
                }),
                os(&[0xab; 16]),
                os(b"rid=001,csn=x"),
            ],
            ..Default::default()
        }));
        let s = parse_sync_state(&v).unwrap();
        assert_eq!(s.state, SyncStateKind::Modify);
        assert_eq!(s.entry_uuid, vec![0xab; 16]);
        assert_eq!(s.cookie.as_deref(), Some(&b"rid=001,csn=x"[..]));
        for bad in [&b""[..], &[0x30, 0x05, 0x0a][..], &[0x04, 0x00][..]] {
            assert!(parse_sync_state(bad).is_err(), "{bad:?}");
        }
        let unknown = encode(Tag::Sequence(Sequence {
            inner: vec![
                Tag::Enumerated(Enumerated {
                    inner: 9,
                    ..Default::default()
                }),
                os(&[1; 16]),
            ],
            ..Default::default()
        }));
        assert!(parse_sync_state(&unknown)
            .unwrap_err()
            .contains("unknown state"));
    }

    #[test]
    fn sync_done_values() {
        let v = encode(Tag::Sequence(Sequence {
            inner: vec![
                os(b"cookie"),
                Tag::Boolean(Boolean {
                    inner: true,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        }));
        assert_eq!(
            parse_sync_done(&v).unwrap(),
            SyncDone {
                cookie: Some(b"cookie".to_vec()),
                refresh_deletes: true
            }
        );
        let empty = encode(Tag::Sequence(Sequence::default()));
        assert_eq!(parse_sync_done(&empty).unwrap(), SyncDone::default());
        let bad = encode(Tag::Sequence(Sequence {
            inner: vec![Tag::Set(Set::default())],
            ..Default::default()
        }));
        assert!(parse_sync_done(&bad).is_err());
    }

    fn intermediate(value: Vec<u8>) -> StructureTag {
        StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::C(vec![
                StructureTag {
                    class: TagClass::Context,
                    id: 0,
                    payload: PL::P(SYNC_INFO_OID.as_bytes().to_vec()),
                },
                StructureTag {
                    class: TagClass::Context,
                    id: 1,
                    payload: PL::P(value),
                },
            ]),
        }
    }

    fn ctx(id: u64, inner: Vec<Tag>) -> Vec<u8> {
        encode(Tag::Sequence(Sequence {
            id,
            class: TagClass::Context,
            inner,
        }))
    }

    #[test]
    fn sync_info_values() {
        let id_set = ctx(
            3,
            vec![
                os(b"c1"),
                Tag::Boolean(Boolean {
                    inner: true,
                    ..Default::default()
                }),
                Tag::Set(Set {
                    inner: vec![os(&[1; 16]), os(&[2; 16])],
                    ..Default::default()
                }),
            ],
        );
        assert_eq!(
            parse_sync_info(intermediate(id_set)).unwrap(),
            Some(SyncInfo::SyncIdSet {
                cookie: Some(b"c1".to_vec()),
                refresh_deletes: true,
                uuids: vec![vec![1; 16], vec![2; 16]]
            })
        );
        assert_eq!(
            parse_sync_info(intermediate(ctx(2, vec![]))).unwrap(),
            Some(SyncInfo::RefreshPresent {
                cookie: None,
                done: true
            })
        );
        let newcookie = encode(Tag::OctetString(OctetString {
            id: 0,
            class: TagClass::Context,
            inner: b"c2".to_vec(),
        }));
        assert_eq!(
            parse_sync_info(intermediate(newcookie)).unwrap(),
            Some(SyncInfo::NewCookie(b"c2".to_vec()))
        );
        assert!(parse_sync_info(intermediate(vec![0xff, 0xff])).is_err());
        assert!(parse_sync_info(intermediate(ctx(7, vec![]))).is_err());
    }

    #[test]
    fn malformed_entries_are_errors() {
        let not_entry = StructureTag {
            class: TagClass::Application,
            id: 5,
            payload: PL::C(vec![]),
        };
        assert!(entry_from_tag(not_entry).is_err());
        let no_dn = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![]),
        };
        assert!(entry_from_tag(no_dn).is_err());
        let primitive = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::P(vec![1, 2]),
        };
        assert!(entry_from_tag(primitive).is_err());
    }

    #[test]
    fn hex_roundtrip() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
