//! Secrets in libvirt definitions, and their redaction for everything a client reads.
//!
//! A definition read with libvirt's `SECURE` flag (as backups are, so that a restore brings
//! a VNC password back) carries secrets: `passwd` of `<graphics>`, cookie values of network
//! disks. Clients see a placeholder instead; the backup files keep the real values (0600).

use crate::xml::{self, Element, Node};

/// What a client sees instead of a secret.
pub const HIDDEN: &str = "(hidden)";

fn is_secret_attr(element: &str, attr: &str) -> bool {
    matches!(attr, "passwd" | "password") || (element == "cookie" && attr == "value")
}

fn redact_element(e: &mut Element) {
    let local = e.local_name().to_string();
    for (k, v) in e.attrs.iter_mut() {
        if is_secret_attr(&local, k) {
            *v = HIDDEN.to_string();
        }
    }
    // `<cookie name='session'>VALUE</cookie>` holds the value as text.
    if local == "cookie" {
        let had_text = e
            .children
            .iter()
            .any(|n| matches!(n, Node::Text(_) | Node::CData(_)));
        if had_text {
            e.children
                .retain(|n| !matches!(n, Node::Text(_) | Node::CData(_)));
            e.children.push(Node::Text(HIDDEN.to_string()));
        }
    }
    for child in e.elements_mut() {
        redact_element(child);
    }
}

/// The definition with every secret replaced by `HIDDEN`. Text that is not XML is scrubbed
/// by a plain scan for `passwd=` attributes, so nothing is let through because it failed
/// to parse.
pub fn redact(text: &str) -> String {
    match xml::parse(text) {
        Ok(mut root) => {
            let before = root.clone();
            redact_element(&mut root);
            // Without secrets the text stays exactly as it was (diffs and comparisons of
            // versions see libvirt's formatting).
            if root == before {
                return text.to_string();
            }
            // With secrets, replace the values in place where that removes all of them,
            // so that a diff of two versions shows the change and not a reformatted file.
            let scrubbed = scrub(text);
            match xml::parse(&scrubbed) {
                Ok(mut again) => {
                    let parsed = again.clone();
                    redact_element(&mut again);
                    if again == parsed {
                        scrubbed
                    } else {
                        root.to_xml()
                    }
                }
                Err(_) => root.to_xml(),
            }
        }
        Err(_) => scrub(text),
    }
}

fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(at) = ["passwd=", "password="]
            .iter()
            .filter_map(|k| lower.find(k).map(|i| (i, k.len())))
            .min()
        else {
            out.push_str(rest);
            return out;
        };
        let (i, klen) = at;
        out.push_str(&rest[..i + klen]);
        let after = &rest[i + klen..];
        match after.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let end = after[1..].find(q).map(|e| e + 2).unwrap_or(after.len());
                out.push(q);
                out.push_str(HIDDEN);
                out.push(q);
                rest = &after[end..];
            }
            _ => rest = after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden() {
        let table = [
            (
                "<domain><devices><graphics type='vnc' port='-1' passwd='s3cret'/></devices></domain>",
                "s3cret",
            ),
            (
                "<domain><devices><graphics type='spice' passwd=\"p&amp;w\"/></devices></domain>",
                "p&amp;w",
            ),
            (
                "<domain><devices><disk type='network'><source protocol='https' name='x'><cookies><cookie name='sid'>c00kie</cookie></cookies></source></disk></devices></domain>",
                "c00kie",
            ),
            ("<domain><graphics passwd='unterminated", "unterminated"),
            ("garbage PASSWD=\"abc\" more", "abc"),
        ];
        for (input, secret) in table {
            let out = redact(input);
            assert!(!out.contains(secret), "{input} -> {out}");
            assert!(out.contains(HIDDEN), "{input} -> {out}");
        }
        // A password is hidden in place: quotes, layout and the final newline stay.
        let vnc = "<domain type='kvm'>\n  <devices>\n    <graphics type='vnc' port='-1' passwd='s3cret'/>\n  </devices>\n</domain>\n";
        assert_eq!(
            redact(vnc),
            "<domain type='kvm'>\n  <devices>\n    <graphics type='vnc' port='-1' passwd='(hidden)'/>\n  </devices>\n</domain>\n"
        );
        // Without secrets nothing changes, not even the quotes.
        let plain = "<domain type='kvm'><name>a</name><devices><graphics type='vnc' port='5900'/></devices></domain>";
        assert_eq!(redact(plain), plain);
    }
}
