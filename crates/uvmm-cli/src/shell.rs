//! Commands printed for people to copy: every argument quoted for a POSIX shell, because
//! names and URIs come from definitions and backups, which a client may have written.

/// `arg` as one word for sh: unchanged when it is made of safe characters only, otherwise
/// in single quotes (a single quote inside becomes `'\''`).
pub fn quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '+' | ',' | '=')
        });
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A command line of quoted words.
pub fn command(words: &[&str]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let table = [
            ("web-01", "web-01"),
            ("test:///default", "test:///default"),
            ("", "''"),
            ("a b", "'a b'"),
            ("evil$(id);`id`", "'evil$(id);`id`'"),
            ("it's", r"'it'\''s'"),
            ("-x", "-x"),
            ("a\nb", "'a\nb'"),
        ];
        for (input, want) in table {
            assert_eq!(quote(input), want, "{input:?}");
        }
        // What the shell makes of it is the original word.
        for input in ["evil$(id);`id`", "it's", "a b\tc", "$HOME", "\\"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(input)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), input);
        }
        assert_eq!(
            command(&["uvmm", "vm", "start", "a b", "--host", "kvm1"]),
            "uvmm vm start 'a b' --host kvm1"
        );
    }
}
