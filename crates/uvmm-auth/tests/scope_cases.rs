//! The table of scope cases shared with the web UI (scope_cases.json; the UI's copy of
//! these rules is web/src/scope.ts, checked against the same file by
//! web/tests/scope-cases.mjs): what the UI hides must be what uvmmd refuses.

use serde::Deserialize;
use uvmm_auth::roles::{authorize, Grant, Grants, HostRef, Permission, ScopePattern, Target};

#[derive(Deserialize)]
struct Cases {
    patterns: Vec<PatternCase>,
    authorize: Vec<AuthorizeCase>,
}

#[derive(Deserialize)]
struct PatternCase {
    pattern: String,
    name: String,
    matches: bool,
}

/// permission, host id, host URI, VM name, allowed
type Check = (
    Permission,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

#[derive(Deserialize)]
struct AuthorizeCase {
    why: String,
    grants: Vec<Grant>,
    checks: Vec<Check>,
}

fn cases() -> Cases {
    serde_json::from_str(include_str!("scope_cases.json")).expect("scope_cases.json parses")
}

#[test]
fn patterns_match_as_the_table_says() {
    let mut wrong = Vec::new();
    for c in cases().patterns {
        let p = ScopePattern::new(&c.pattern).expect("a valid pattern");
        if p.matches(&c.name) != c.matches {
            wrong.push(format!(
                "{:?} vs {:?}: expected {}",
                c.pattern, c.name, c.matches
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn authorize_decides_as_the_table_says() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for c in cases().authorize {
        let grants = Grants(c.grants.clone());
        for (permission, id, uri, vm, allowed) in &c.checks {
            let host = match (id, uri) {
                (Some(id), Some(uri)) => Some(HostRef { id, uri }),
                _ => None,
            };
            let target = Target {
                host,
                vm: vm.as_deref(),
            };
            checked += 1;
            if authorize(&grants, *permission, &target).is_ok() != *allowed {
                wrong.push(format!(
                    "{}: {permission:?} on {id:?}/{vm:?}: expected {allowed}",
                    c.why
                ));
            }
        }
    }
    assert!(checked > 30, "the table has {checked} checks");
    assert!(wrong.is_empty(), "{wrong:#?}");
}
