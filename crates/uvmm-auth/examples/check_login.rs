//! Check a login the way uvmmd will, without uvmmd: PAM service `uvmm`, the `[auth]`
//! table of a configuration file, the uniform failure path. Prints the account, its
//! groups and its grants, or why it was refused (which uvmmd only logs).
//!
//! ```sh
//! echo 'PASSWORD' | cargo run -p uvmm-auth --example check_login -- USER [/etc/uvmm/uvmmd.toml]
//! ```

use std::io::BufRead;
use std::sync::Arc;
use uvmm_auth::config::Policy;
use uvmm_auth::login::pam::PamBackend;
use uvmm_auth::login::{LoginError, LoginService};
use uvmm_auth::session::SessionStore;
use uvmm_auth::PolicyHandle;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(user) = args.get(1) else {
        eprintln!("usage: check_login USER [CONFIG] (password on standard input)");
        return 2.into();
    };
    let config = match args.get(2) {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                return 2.into();
            }
        },
        None => String::new(),
    };
    let policy = match Policy::from_toml(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2.into();
        }
    };
    let pam = PamBackend::default();
    if let Err(e) = pam.check_service() {
        eprintln!("{e}");
        return 1.into();
    }
    let mut password = String::new();
    if std::io::stdin().lock().read_line(&mut password).is_err() {
        eprintln!("no password on standard input");
        return 2.into();
    }
    let password = password.trim_end_matches(['\n', '\r']);
    let sessions = Arc::new(SessionStore::new(policy.sessions.clone()));
    let service = LoginService::new(Arc::new(pam), PolicyHandle::new(policy), sessions);
    match service.login(user, password, None) {
        Ok(ok) => {
            println!("user:   {}", ok.session.user.name);
            println!("groups: {}", ok.session.user.groups.join(", "));
            println!(
                "grants: {}",
                serde_json::to_string(&ok.grants).unwrap_or_default()
            );
            0.into()
        }
        Err(e @ LoginError::Refused { .. }) => {
            println!("refused: {} (uvmmd answers: {e})", e.log_reason());
            1.into()
        }
        Err(e) => {
            println!("{e}");
            1.into()
        }
    }
}
