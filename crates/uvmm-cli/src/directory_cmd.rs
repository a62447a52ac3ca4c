//! `uvmm directory status`: standalone, or the directory connection — online, or degraded
//! (serving from the cache) with the reason and the queued note edits.

use crate::print_json;
use clap::Subcommand;
use hyper::Method;
use uvmm_api::DirectoryStatus;
use uvmm_cli::client::{Client, ClientError};
use uvmm_cli::paths;

#[derive(Debug, Subcommand)]
pub enum DirectoryCmd {
    /// Mode, connection state, state age, queued note edits.
    Status,
}

fn since(unix: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The status as lines of text (pure, for the table test).
pub fn render(s: &DirectoryStatus) -> String {
    if s.mode != "directory" {
        return "standalone (-b \"\"): no directory\n".into();
    }
    let mut out = format!("directory: {}\n", s.uri.as_deref().unwrap_or("-"));
    if s.online {
        out.push_str("state:     online\n");
    } else {
        out.push_str(&format!(
            "state:     DEGRADED, serving from the cache{}\nreason:    {}\n",
            s.degraded_since
                .map(|t| format!(" since {}", since(t)))
                .unwrap_or_default(),
            s.degraded_reason.as_deref().unwrap_or("-"),
        ));
    }
    out.push_str(&format!(
        "data:      {}{}\nhosts:     {}\nprofiles:  {}\nqueued:    {} note edit(s)\n",
        s.state_time.map(since).unwrap_or_else(|| "none yet".into()),
        if s.from_cache {
            " (from the disk cache)"
        } else {
            ""
        },
        s.hosts,
        s.profiles,
        s.pending_writes,
    ));
    for h in &s.refused_hosts {
        out.push_str(&format!("refused:   {} ({})\n", h.uri, h.reason));
    }
    if let Some(m) = &s.method {
        out.push_str(&format!(
            "follows:   {m}, every {} s\n",
            s.refresh_interval_secs.unwrap_or_default()
        ));
    }
    out
}

pub async fn run(c: &Client, cmd: DirectoryCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        DirectoryCmd::Status => {
            let s: DirectoryStatus = c.call(Method::GET, &paths::directory(), None).await?;
            if json {
                print_json(&s);
            } else {
                print!("{}", render(&s));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering() {
        assert!(render(&DirectoryStatus::standalone()).starts_with("standalone"));
        let mut s = DirectoryStatus {
            mode: "directory".into(),
            uri: Some("ldap://dc/dc=x".into()),
            online: true,
            hosts: 2,
            profiles: 3,
            method: Some("sync".into()),
            refresh_interval_secs: Some(60),
            ..DirectoryStatus::standalone()
        };
        let t = render(&s);
        assert!(t.contains("online") && t.contains("hosts:     2"), "{t}");
        s.online = false;
        s.degraded = true;
        s.degraded_reason = Some("connection refused".into());
        s.degraded_since = Some(0);
        s.from_cache = true;
        s.pending_writes = 1;
        let t = render(&s);
        assert!(
            t.contains("DEGRADED") && t.contains("connection refused"),
            "{t}"
        );
        assert!(
            t.contains("from the disk cache") && t.contains("1 note edit"),
            "{t}"
        );
        s.refused_hosts = vec![uvmm_api::RefusedHost {
            uri: "test:///etc/x.xml".into(),
            reason: "not allowed".into(),
        }];
        assert!(
            render(&s).contains("refused:   test:///etc/x.xml (not allowed)"),
            "{}",
            render(&s)
        );
    }
}
