//! Case-insensitive glob matching (`*`, `?`, `[abc]`, `[a-z]`, `[!a]`) for VM name patterns
//! such as the original tool's `"*winxp*"`.

/// A compiled pattern: case-insensitive glob; without glob characters a substring match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    chars: Vec<char>,
    /// The same pattern as bytes, when it is ASCII.
    ascii: Option<Vec<u8>>,
    /// An ASCII pattern made of literals and `*` only (the usual `*web*`), split at `*`:
    /// matched by searching for each piece in turn, which is several times faster than
    /// the general matcher when filtering 10,000 names per request.
    pieces: Option<Vec<Vec<u8>>>,
    /// The longest run of literal characters (lower case): every text the pattern matches
    /// holds it, folded with [`fold`], so an index can search for it first.
    literal: String,
}

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

impl Pattern {
    pub fn new(pattern: &str) -> Pattern {
        let mut chars: Vec<char> = pattern.chars().map(lower).collect();
        if !chars.iter().any(|c| matches!(c, '*' | '?' | '[')) {
            chars.insert(0, '*');
            chars.push('*');
        }
        let ascii: Option<Vec<u8>> = chars
            .iter()
            .all(|c| c.is_ascii())
            .then(|| chars.iter().map(|c| *c as u8).collect());
        let pieces = ascii
            .as_ref()
            .filter(|p| !p.iter().any(|b| matches!(b, b'?' | b'[')))
            .map(|p| p.split(|b| *b == b'*').map(<[u8]>::to_vec).collect());
        let literal = longest_literal(&chars);
        Pattern {
            chars,
            ascii,
            pieces,
            literal,
        }
    }

    /// True when the pattern is `*LITERAL*` (what a plain word becomes): it matches exactly
    /// the texts whose [`fold`] contains [`Pattern::literal`].
    pub fn is_substring(&self) -> bool {
        match self.chars.as_slice() {
            ['*', middle @ .., '*'] => !middle.iter().any(|c| matches!(c, '*' | '?' | '[')),
            _ => false,
        }
    }

    /// The longest literal piece, in lower case: a text this pattern matches contains it
    /// once the text is folded with [`fold`]. Empty when the pattern has no literal.
    pub fn literal(&self) -> &str {
        &self.literal
    }

    /// Match without allocating: the text is walked by byte index (by bytes outright
    /// when pattern and text are ASCII, the common case for VM names).
    pub fn matches(&self, text: &str) -> bool {
        if text.is_ascii() {
            if let Some(pieces) = &self.pieces {
                return pieces_match(pieces, text.as_bytes());
            }
            if let Some(bytes) = &self.ascii {
                return glob_ascii(bytes, text.as_bytes());
            }
        }
        glob(&self.chars, text)
    }
}

/// Append `text` folded the way matching compares it: each character in lower case (its
/// first lower-case character, as the matcher takes it).
pub fn fold(text: &str, out: &mut String) {
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else {
        out.extend(text.chars().map(lower));
    }
}

/// The longest run of characters that match only themselves. `?` and a closed `[...]`
/// class end a run; an unclosed `[` (a literal `[` to the matcher) ends one too, which
/// only makes the run shorter, never wrong.
fn longest_literal(p: &[char]) -> String {
    let (mut best, mut run): (&[char], usize) = (&[], 0);
    let mut i = 0;
    while i <= p.len() {
        let end_of_run = i == p.len() || matches!(p[i], '*' | '?' | '[');
        if end_of_run {
            let piece = &p[run..i];
            if piece.len() > best.len() {
                best = piece;
            }
            let skip = match p.get(i) {
                Some('[') => class(&p[i..], '\0').map_or(1, |(_, len)| len),
                _ => 1,
            };
            i += skip;
            run = i;
        } else {
            i += 1;
        }
    }
    best.iter().collect()
}

/// Match lower-case ASCII `pieces` (a pattern split at `*`) against ASCII text, ignoring
/// case: the first piece is a prefix, the last a suffix, the others are found in order.
/// Taking the leftmost occurrence of each middle piece is correct because `*` absorbs
/// any gap.
fn pieces_match(pieces: &[Vec<u8>], t: &[u8]) -> bool {
    let (first, last) = match pieces {
        [] => return t.is_empty(),
        [only] => return t.eq_ignore_ascii_case(only),
        [first, .., last] => (first, last),
    };
    if t.len() < first.len() + last.len()
        || !t[..first.len()].eq_ignore_ascii_case(first)
        || !t[t.len() - last.len()..].eq_ignore_ascii_case(last)
    {
        return false;
    }
    let (mut pos, end) = (first.len(), t.len() - last.len());
    for piece in &pieces[1..pieces.len() - 1] {
        match find_ignore_case(&t[pos..end], piece) {
            Some(i) => pos += i + piece.len(),
            None => return false,
        }
    }
    true
}

/// Leftmost position of lower-case ASCII `needle` in `hay`, ignoring ASCII case.
fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some(&first) = needle.first() else {
        return Some(0);
    };
    let upper = first.to_ascii_uppercase();
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from + memchr::memchr2(first, upper, &hay[from..=hay.len() - needle.len()])?;
        if hay[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Match `text` against `pattern`, ignoring case. A pattern without any glob character
/// matches as a substring, which is what people mean when they type `vm list web`.
pub fn matches(pattern: &str, text: &str) -> bool {
    Pattern::new(pattern).matches(text)
}

fn char_at(t: &str, i: usize) -> (char, usize) {
    let c = t[i..]
        .chars()
        .next()
        .expect("index is a char boundary inside the text");
    (lower(c), c.len_utf8())
}

/// Iterative glob with a single backtrack point: linear for `*`-only patterns.
fn glob(p: &[char], t: &str) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (c, clen) = char_at(t, ti);
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += clen;
                    continue;
                }
                '[' => {
                    if let Some((ok, next)) = class(&p[pi..], c) {
                        if ok {
                            pi += next;
                            ti += clen;
                            continue;
                        }
                    } else if c == '[' {
                        // Unclosed bracket: literal '['.
                        pi += 1;
                        ti += clen;
                        continue;
                    }
                }
                pc if pc == c => {
                    pi += 1;
                    ti += clen;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                let (_, slen) = char_at(t, st);
                pi = sp + 1;
                ti = st + slen;
                star = Some((sp, st + slen));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// [`glob`] for ASCII pattern and text: byte steps, ASCII case folding.
fn glob_ascii(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let c = t[ti].to_ascii_lowercase();
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => {
                    let chars: Vec<char> = p[pi..].iter().map(|b| *b as char).collect();
                    if let Some((ok, next)) = class(&chars, c as char) {
                        if ok {
                            pi += next;
                            ti += 1;
                            continue;
                        }
                    } else if c == b'[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                pc if pc == c => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Evaluate a bracket class at the start of `p`; returns (matched, length of the class).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn table() {
        let cases = [
            ("*winxp*", "Old-WinXP-Client", true),
            ("*winxp*", "win7", false),
            ("web", "my-web-01", true),
            ("WEB", "my-web-01", true),
            ("web-??", "web-01", true),
            ("web-??", "web-1", false),
            ("web-[0-9]*", "web-1x", true),
            ("web-[!0-9]*", "web-1x", false),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("[", "[", true),
            ("x[", "x[", true),
            ("", "anything", true),
            ("ÄRGER", "viel ärger hier", true),
            ("*ä?", "xäy", true),
            // Literal-and-star patterns (the fast path) must agree with the general one.
            ("*vm3*", "h000-vm30", true),
            ("*vm3*", "bench VM 30 of host 0", false),
            ("*vm 3*", "bench VM 30 of host 0", true),
            ("*vm3*", "h000-vm23", false),
            ("vm*", "VM-1", true),
            ("vm*", "a-vm", false),
            ("*-01", "web-01", true),
            ("*-01", "web-011", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("ab*ba", "aba", false),
            ("*a*b*a*", "xxaxxbxxa", true),
            ("*a*b*a*", "xxaxxbxx", false),
            ("**", "", true),
            ("*aab*", "aaab", true),
            ("exact", "EXACT", true),
            ("exact*", "exac", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_general_matcher() {
        let patterns = [
            "*a*", "a*", "*a", "a*b", "*ab*ba*", "b*a*b", "**a", "*", "aa*aa",
        ];
        let texts = [
            "", "a", "b", "ab", "ba", "aba", "abba", "aabbaa", "bab", "AbBa", "aaaa",
        ];
        for p in patterns {
            let fast = super::Pattern::new(p);
            assert!(fast.pieces.is_some(), "{p} takes the fast path");
            for t in texts {
                assert_eq!(
                    fast.matches(t),
                    super::glob_ascii(fast.ascii.as_deref().unwrap(), t.as_bytes()),
                    "{p} vs {t}"
                );
            }
        }
    }

    #[test]
    fn literal_is_the_longest_run_that_matches_only_itself() {
        let cases = [
            ("web", "web"),
            ("WEB", "web"),
            ("*vm-1*", "vm-1"),
            ("*", ""),
            ("", ""),
            ("???", ""),
            ("a?bcd*ef", "bcd"),
            ("[abc]xy*", "xy"),
            ("[]x]yz", "yz"),
            ("[!a-z]long*s", "long"),
            ("x[", "x"),
            ("ab[cd", "ab"),
            ("*ÄRGER?", "ärger"),
            ("a*bb*ccc", "ccc"),
        ];
        for (p, want) in cases {
            assert_eq!(super::Pattern::new(p).literal(), want, "{p}");
        }
        for (p, substring) in [
            ("web", true),
            ("*web*", true),
            ("**", true),
            ("web*", false),
            ("*w?b*", false),
            ("*w*b*", false),
            ("*[ab]*", false),
            ("*", false),
        ] {
            assert_eq!(super::Pattern::new(p).is_substring(), substring, "{p}");
        }
    }

    /// The promise an index relies on: whatever a pattern matches holds its literal once
    /// folded. Texts with the characters whose lower case is not one ASCII letter
    /// (Kelvin sign, dotted capital I, sharp s) included.
    #[test]
    fn a_match_always_holds_the_literal() {
        let patterns = [
            "k",
            "*k*",
            "i*",
            "*İ*",
            "ß",
            "web-[0-9]?",
            "[",
            "x[y",
            "*a?b*",
            "Σ",
            "σ*",
            "ab",
            "*-0?",
            "vm-1",
            "[k]z",
            "ǅ",
        ];
        let texts = [
            "\u{212a}elvin",
            "KELVIN",
            "İstanbul",
            "istanbul",
            "Straße",
            "STRASSE",
            "web-01",
            "WEB-0x",
            "[",
            "x[y",
            "xayb",
            "ΣΑΣ",
            "σας",
            "AB",
            "vm-10",
            "VM-1",
            "kz",
            "ǅ",
            "ǆ",
            "",
        ];
        for p in patterns {
            let pat = super::Pattern::new(p);
            for t in texts {
                let mut folded = String::new();
                super::fold(t, &mut folded);
                if pat.matches(t) {
                    assert!(folded.contains(pat.literal()), "{p} vs {t}");
                }
                if pat.is_substring() {
                    assert_eq!(pat.matches(t), folded.contains(pat.literal()), "{p} vs {t}");
                }
            }
        }
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(10_000);
        let pattern = "*a".repeat(50) + "b";
        assert!(!matches(&pattern, &text));
    }
}
