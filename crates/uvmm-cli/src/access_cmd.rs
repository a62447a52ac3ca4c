//! `uvmm login`, `logout`, `whoami` and `token create|list|revoke`.

use clap::Subcommand;
use hyper::Method;
use serde_json::json;
use uvmm_api::{NewTokenResponse, TokenInfo, WhoAmI};
use uvmm_cli::client::{enc, Client, ClientError};
use uvmm_cli::remote;
use uvmm_cli::table::Table;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make an API token (admins). It is printed once: uvmmd keeps only its hash.
    Create {
        /// 1 to 64 letters, digits, '.', '_' or '-'.
        name: String,
        /// viewer, operator or admin (never more than you hold).
        #[arg(long)]
        role: String,
        /// Only these hosts (id, URI or pattern; repeat for several). Default: all.
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// Only VMs whose names match (pattern, e.g. 'web-*'; repeat). Default: all.
        #[arg(long = "vm", value_name = "PATTERN")]
        vms: Vec<String>,
        /// Expire after this many days. Default: valid until revoked.
        #[arg(long)]
        valid_days: Option<u32>,
    },
    /// List the API tokens (never their secrets).
    List,
    /// Revoke a token: it stops working at once.
    Revoke { name: String },
}

fn scope(s: &Option<Vec<String>>) -> String {
    s.as_ref()
        .map(|v| v.join(","))
        .unwrap_or_else(|| "*".into())
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub async fn run_token(c: &Client, cmd: TokenCmd, json_out: bool) -> Result<(), ClientError> {
    match cmd {
        TokenCmd::Create {
            name,
            role,
            hosts,
            vms,
            valid_days,
        } => {
            let body = json!({"name": name, "role": role, "hosts": hosts, "vms": vms, "valid_days": valid_days});
            let new: NewTokenResponse = c.call(Method::POST, "/api/v1/tokens", Some(&body)).await?;
            if json_out {
                print_json(&new);
            } else {
                println!("{}", new.token);
                eprintln!(
                    "uvmm: token '{}' ({}) made; this is the only time it is shown: keep it (e.g. 0600 in a file for --token-file)",
                    new.info.name, new.info.role
                );
            }
        }
        TokenCmd::List => {
            let list: Vec<TokenInfo> = c.call(Method::GET, "/api/v1/tokens", None).await?;
            if json_out {
                print_json(&list);
            } else {
                let mut t = Table::new(&["NAME", "ROLE", "HOSTS", "VMS", "EXPIRES", "BY"]);
                for i in &list {
                    let expires = match (i.expires, i.expired) {
                        (_, true) => "expired".to_string(),
                        (Some(e), false) => humantime_secs(e),
                        (None, false) => "never".to_string(),
                    };
                    t.row(vec![
                        i.name.clone(),
                        i.role.clone(),
                        scope(&i.hosts),
                        scope(&i.vms),
                        expires,
                        i.created_by.clone(),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        TokenCmd::Revoke { name } => {
            let info: TokenInfo = c
                .call(
                    Method::DELETE,
                    &format!("/api/v1/tokens/{}", enc(&name)),
                    None,
                )
                .await?;
            if json_out {
                print_json(&info);
            } else {
                println!("token '{}' revoked", info.name);
            }
        }
    }
    Ok(())
}

fn humantime_secs(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `uvmm --url URL login`: PAM user and password → a session kept for this server.
pub async fn login(
    c: &Client,
    url: &str,
    user: Option<String>,
    password_stdin: bool,
    json_out: bool,
) -> Result<(), ClientError> {
    let user = match user {
        Some(u) => u,
        None => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ClientError::Usage("give the account with --user NAME".into()))?,
    };
    let password = remote::read_password(password_stdin)?;
    let body = json!({"user": user, "password": password});
    let (who, cookie): (WhoAmI, Option<String>) = c.call_for_cookie("/api/v1/login", &body).await?;
    let (Some(cookie), Some(csrf)) = (cookie, who.csrf.clone()) else {
        return Err(ClientError::Failed(
            "uvmmd accepted the login but sent no session".into(),
        ));
    };
    let server = remote::Url::parse(url)?.server();
    let path = remote::store_session(&server, &who.user, &cookie, &csrf)?;
    if json_out {
        print_json(&json!({"user": who.user, "role": who.role, "session_file": path}));
    } else {
        println!(
            "logged in to {server} as {} ({}); the session is kept in {} until it expires or `uvmm logout`",
            who.user,
            who.role.as_deref().unwrap_or("no role"),
            path.display()
        );
    }
    Ok(())
}

/// `uvmm --url URL logout`: end the session on the server and forget it here.
pub async fn logout(c: &Client, url: &str) -> Result<(), ClientError> {
    let ended = c.call_empty(Method::POST, "/api/v1/logout").await;
    remote::forget_session(&remote::Url::parse(url)?.server());
    match ended {
        // An expired session is logged out already.
        Ok(()) | Err(ClientError::Api { .. }) => {
            println!("logged out");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub async fn whoami(c: &Client, json_out: bool) -> Result<(), ClientError> {
    let who: WhoAmI = c.call(Method::GET, "/api/v1/whoami", None).await?;
    if json_out {
        print_json(&who);
        return Ok(());
    }
    println!(
        "{} (via {}): {}",
        who.user,
        who.via,
        who.role.as_deref().unwrap_or("no role")
    );
    for g in &who.grants {
        println!(
            "  {} on hosts {} VMs {}",
            g.role,
            scope(&g.hosts),
            scope(&g.vms)
        );
    }
    Ok(())
}
