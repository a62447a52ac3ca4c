//! The files uvmm-auth reads: the token file, the CLI's known-hosts file, fingerprints
//! typed by users, session cookies and bearer tokens from request headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uvmm_auth::tls::client::parse_known_hosts;
use uvmm_auth::tls::Fingerprint;
use uvmm_auth::tokens::parse_token_file;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = parse_token_file(text) {
        // What we accept we can write and read back.
        let again = serde_json::to_string(&file).expect("a parsed token file serialises");
        assert_eq!(
            parse_token_file(&again).expect("our own token file parses"),
            file
        );
    }
    if let Ok(entries) = parse_known_hosts(text) {
        let written: String = entries.iter().map(|(s, f)| format!("{s} {f}\n")).collect();
        assert_eq!(
            parse_known_hosts(&written).expect("our own known_hosts parses"),
            entries
        );
    }
    if let Ok(fp) = text.parse::<Fingerprint>() {
        assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
    }
    let _ = uvmm_auth::session::cookie_value(text, true);
    let _ = uvmm_auth::audit::redact_text(text);
    let _ = uvmm_auth::audit::redact_path(text);
});
