//! Local accounts and groups a test creates (groupadd, useradd, chpasswd) and removes on
//! drop. Shared by the PAM tests of uvmm-auth and uvmmd's remote-access tests (included by
//! path: test-only code, no crate of its own). Needs root, as CI runs the tests.

use std::process::{Command, Stdio};
use std::sync::Mutex;

/// useradd and friends lock /etc/passwd: one at a time in this process.
static ACCOUNTS: Mutex<()> = Mutex::new(());

pub fn run(cmd: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{cmd} is needed for tests with accounts (package passwd): {e}")
        });
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Accounts and groups named `PREFIX<suffix>`; all removed on drop.
pub struct LocalAccounts {
    pub prefix: String,
    users: Vec<String>,
    groups: Vec<String>,
}

impl LocalAccounts {
    pub fn new(prefix: String) -> LocalAccounts {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests create local accounts and need root (run them as CI does, as root)"
        );
        LocalAccounts {
            prefix,
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub fn group(&mut self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.prefix);
        let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        run("groupadd", &[&name], None);
        self.groups.push(name.clone());
        name
    }

    pub fn user(&mut self, suffix: &str, password: &str, groups: &[&str]) -> String {
        let name = format!("{}{suffix}", self.prefix);
        let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        let joined = groups.join(",");
        let mut args = vec!["--no-create-home", "--shell", "/usr/sbin/nologin"];
        if !groups.is_empty() {
            args.extend(["--groups", &joined]);
        }
        args.push(&name);
        run("useradd", &args, None);
        self.users.push(name.clone());
        run("chpasswd", &[], Some(&format!("{name}:{password}\n")));
        name
    }
}

impl Drop for LocalAccounts {
    fn drop(&mut self) {
        let _l = ACCOUNTS.lock().unwrap_or_else(|p| p.into_inner());
        for u in &self.users {
            let _ = Command::new("userdel").arg("-f").arg(u).output();
        }
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}
