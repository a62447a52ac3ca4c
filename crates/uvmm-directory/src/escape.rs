//! Escaping of values put into LDAP filters (RFC 4515) and DNs (RFC 4514), and the small
//! template language of the configured filters and URIs. Every value that comes from a user,
//! a VM or the directory goes through these functions before it becomes part of a filter or
//! a DN: that is the whole defence against LDAP injection.

/// Escape a value for use inside a search filter, e.g. `(uid=<here>)`.
///
/// RFC 4515 requires `*`, `(`, `)`, `\` and NUL to be written as `\XX`. Other control
/// characters are escaped too, so a filter never carries raw bytes a log line or a server
/// might treat specially.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0'..='\u{1f}' | '\u{7f}' => {
                out.push_str(&format!("\\{:02x}", c as u32));
            }
            _ => out.push(c),
        }
    }
    out
}

/// Escape a value for use as an attribute value in a DN, e.g. `uid=<here>,cn=users,...`.
///
/// RFC 4514: `"`, `+`, `,`, `;`, `<`, `>`, `\` anywhere; `#` and space at the start; space
/// at the end; NUL as `\00`. `=` is escaped as well: it is legal unescaped, but some servers
/// and tools mis-split on it. Control characters are written in hex.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\{:02x}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

/// Fill `{name}` placeholders of a template. `escape` is applied to every value (e.g.
/// [`filter_value`] for filters); `{{` and `}}` stand for literal braces. An unknown
/// placeholder is an error, so a typo in the configuration is reported instead of silently
/// producing a filter that matches nothing.
pub fn fill_template(
    template: &str,
    values: &[(&str, &str)],
    escape: fn(&str) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in template {template:?}"))?;
            let name = &after[..end];
            let value = values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let known: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
                    format!(
                        "unknown placeholder {{{name}}} in template {template:?} (known: {})",
                        known.join(", ")
                    )
                })?;
            out.push_str(&escape(value));
            rest = &after[end + 1..];
        } else {
            return Err(format!("lone '}}' in template {template:?}"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// No escaping: for templates whose result is not LDAP syntax (libvirt URIs).
pub fn verbatim(value: &str) -> String {
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped() {
        let table = [
            ("alice", "alice"),
            ("*", "\\2a"),
            ("a*)(uid=*", "a\\2a\\29\\28uid=\\2a"),
            ("x)(|(objectClass=*)", "x\\29\\28|\\28objectClass=\\2a\\29"),
            ("back\\slash", "back\\5cslash"),
            ("nul\0byte", "nul\\00byte"),
            ("tab\there", "tab\\09here"),
            ("comma,plus+eq=", "comma,plus+eq="),
            ("Jürgen (ops)", "Jürgen \\28ops\\29"),
            ("", ""),
        ];
        for (input, want) in table {
            assert_eq!(filter_value(input), want, "{input:?}");
        }
    }

    #[test]
    fn dn_values_are_escaped() {
        let table = [
            ("alice", "alice"),
            ("a,b", "a\\,b"),
            ("a+b", "a\\+b"),
            ("a=b", "a\\=b"),
            ("\"q\"", "\\\"q\\\""),
            ("<x>;", "\\<x\\>\\;"),
            ("back\\slash", "back\\\\slash"),
            ("#lead", "\\#lead"),
            ("mid#dle", "mid#dle"),
            (" lead and trail ", "\\ lead and trail\\ "),
            ("nul\0byte", "nul\\00byte"),
            ("*()", "*()"),
            (
                "x,cn=admin,dc=example,dc=com",
                "x\\,cn\\=admin\\,dc\\=example\\,dc\\=com",
            ),
            ("Jürgen", "Jürgen"),
        ];
        for (input, want) in table {
            assert_eq!(dn_value(input), want, "{input:?}");
        }
    }

    #[test]
    fn templates() {
        let v = [("uid", "a*)("), ("dn", "uid=a,dc=x")];
        let table: [(&str, Result<&str, &str>); 6] = [
            ("(uid={uid})", Ok("(uid=a\\2a\\29\\28)")),
            ("(member={dn})", Ok("(member=uid=a,dc=x)")),
            ("{{literal}}", Ok("{literal}")),
            ("(x={nope})", Err("unknown placeholder {nope}")),
            ("(x={uid", Err("unclosed")),
            ("(x=})", Err("lone")),
        ];
        for (t, want) in table {
            match (fill_template(t, &v, filter_value), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{t}"),
                (Err(got), Err(w)) => assert!(got.contains(w), "{t}: {got}"),
                (got, w) => panic!("{t}: got {got:?}, want {w:?}"),
            }
        }
        assert_eq!(
            fill_template(
                "qemu://{fqdn}/system",
                &[("fqdn", "kvm1.example.com")],
                verbatim
            )
            .unwrap(),
            "qemu://kvm1.example.com/system"
        );
    }
}
