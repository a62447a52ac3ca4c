//! `uvmm_model::glob` (VM name patterns, also the scopes of roles): pattern and name
//! separated by a NUL byte. Properties: no panic; the fast paths (pieces, ASCII) agree
//! with a plain backtracking matcher written from the documented rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uvmm_model::glob::Pattern;

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// A bracket class at the start of `p`: (matched, length); None when unclosed.
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
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    None
}

fn reference(p: &[char], t: &[char], pi: usize, ti: usize, memo: &mut Vec<Option<bool>>) -> bool {
    let key = pi * (t.len() + 1) + ti;
    if let Some(r) = memo[key] {
        return r;
    }
    let r = if pi == p.len() {
        ti == t.len()
    } else {
        match p[pi] {
            '*' => {
                reference(p, t, pi + 1, ti, memo)
                    || (ti < t.len() && reference(p, t, pi, ti + 1, memo))
            }
            '?' => ti < t.len() && reference(p, t, pi + 1, ti + 1, memo),
            '[' => {
                ti < t.len()
                    && match class(&p[pi..], t[ti]) {
                        Some((true, n)) => reference(p, t, pi + n, ti + 1, memo),
                        Some((false, _)) => false,
                        None => t[ti] == '[' && reference(p, t, pi + 1, ti + 1, memo),
                    }
            }
            c => ti < t.len() && c == t[ti] && reference(p, t, pi + 1, ti + 1, memo),
        }
    };
    memo[key] = Some(r);
    r
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, name) = text.split_once('\0').unwrap_or((text, "web-01"));
    let got = Pattern::new(pattern).matches(name);
    let _ = uvmm_model::glob::matches(name, pattern);
    if pattern.chars().count() > 64 || name.chars().count() > 64 {
        return;
    }
    let mut p: Vec<char> = pattern.chars().map(lower).collect();
    if !p.iter().any(|c| matches!(c, '*' | '?' | '[')) {
        p.insert(0, '*');
        p.push('*');
    }
    let t: Vec<char> = name.chars().map(lower).collect();
    let mut memo = vec![None; (p.len() + 1) * (t.len() + 1)];
    let want = reference(&p, &t, 0, 0, &mut memo);
    assert_eq!(got, want, "pattern {pattern:?} on {name:?}");
    // Scopes of roles use the same matcher, exact for plain names.
    if let Ok(sp) = uvmm_auth::roles::ScopePattern::new(pattern) {
        let _ = sp.matches(name);
    }
});
