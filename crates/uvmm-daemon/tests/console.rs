//! The VNC console through uvmmd against real QEMU (TCG) guests on a real libvirtd that the
//! test starts: the websocket relay `GET /api/v1/vms/{uuid}/console` (who is refused, and
//! the RFB handshake relayed both ways, over TCP and over a UNIX socket), and the web UI's
//! noVNC console in Debian's Chromium showing the guest's screen (web/tests/console.mjs).
//! The guests have no disk: SeaBIOS prints its banner and "No bootable device", which is
//! a screen of more than one colour. Needs root (libvirtd, useradd), as CI runs.

mod common;

use common::remote::*;
use common::*;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const RUNNING: &str = "6a1c7e0e-58d3-4b8e-9c57-1a2b3c4d5e01";
const SOCKET_VM: &str = "6a1c7e0e-58d3-4b8e-9c57-1a2b3c4d5e02";
const SHUTOFF: &str = "6a1c7e0e-58d3-4b8e-9c57-1a2b3c4d5e03";
const PASSWORD_VM: &str = "6a1c7e0e-58d3-4b8e-9c57-1a2b3c4d5e04";
/// The VNC password of PASSWORD_VM: typed into noVNC, never sent by uvmmd.
const VNC_PASSWORD: &str = "Vnc-Pw-7";

/// A TCG guest without disks (64 MiB is plenty for SeaBIOS).
fn domain(name: &str, uuid: &str, graphics: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>\
         <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
         <features><acpi/><apic/></features>\
         <devices>{graphics}<video><model type='vga'/></video></devices></domain>"
    )
}

/// A libvirtd with four guests (VNC on a TCP port, VNC on a UNIX socket, one shut off, VNC
/// with a password) and uvmmd with a plain-HTTP loopback listener.
struct World {
    _dir: tempfile::TempDir,
    lv: SystemLibvirtd,
    d: Daemon,
    port: u16,
    host_id: String,
}

fn world(config: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let lv = SystemLibvirtd::start(&dir.path().join("libvirt"));
    let vnc_port = free_port();
    let pw_port = free_port();
    let sock = dir.path().join("vnc.sock");
    for (name, uuid, graphics, start) in [
        (
            "con-tcp",
            RUNNING,
            format!("<graphics type='vnc' port='{vnc_port}' autoport='no' listen='127.0.0.1'/>"),
            true,
        ),
        (
            "con-sock",
            SOCKET_VM,
            format!("<graphics type='vnc' socket='{}'/>", sock.display()),
            true,
        ),
        (
            "con-pw",
            PASSWORD_VM,
            format!(
                "<graphics type='vnc' port='{pw_port}' autoport='no' listen='127.0.0.1' passwd='{VNC_PASSWORD}'/>"
            ),
            true,
        ),
        (
            "con-off",
            SHUTOFF,
            "<graphics type='vnc' autoport='yes'/>".to_string(),
            false,
        ),
    ] {
        let f = dir.path().join(format!("{name}.xml"));
        std::fs::write(&f, domain(name, uuid, &graphics)).unwrap();
        lv.virsh(&["define", f.to_str().unwrap()]);
        if start {
            lv.virsh(&["start", name]);
        }
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(&[lv.uri()], &["-s", &listen], config);
    let host_id = d.get("/api/v1/hosts")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(Duration::from_secs(30), "the guests in uvmmd", || {
        let vms = d.vms();
        let state = |uuid: &str| {
            vms.iter()
                .find(|v| v["uuid"] == uuid)
                .map(|v| v["state"].clone())
        };
        (state(RUNNING)? == "running"
            && state(SOCKET_VM)? == "running"
            && state(PASSWORD_VM)? == "running"
            && state(SHUTOFF)? == "shutoff")
            .then_some(())
    });
    World {
        _dir: dir,
        lv,
        d,
        port,
        host_id,
    }
}

/// An API token of `role`, limited to `vms` (empty: every VM).
fn token(d: &Daemon, name: &str, role: &str, vms: &[&str]) -> String {
    let body = serde_json::json!({"name": name, "role": role, "vms": vms}).to_string();
    let (status, v) = d.http("POST", "/api/v1/tokens", Some(&body));
    assert_eq!(status, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

type Ws = WebSocket<TcpStream>;

/// Open the console of `uuid` with `headers`: the websocket, or the refusal's status and
/// body.
fn open(port: u16, uuid: &str, headers: &[(&str, String)]) -> Result<(Ws, String), (u16, String)> {
    let url = format!("ws://127.0.0.1:{port}/api/v1/vms/{uuid}/console");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            tungstenite::http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    match tungstenite::client::client(req, stream) {
        Ok((ws, resp)) => {
            let proto = resp
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            Ok((ws, proto))
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

/// Read binary frames until `n` bytes have come.
fn read_bytes(ws: &mut Ws, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match ws.read().expect("a frame from the relay") {
            Message::Binary(b) => got.extend_from_slice(&b),
            Message::Close(c) => panic!("closed after {got:?}: {c:?}"),
            _ => {}
        }
    }
    got
}

/// The RFB handshake through the relay, both ways: the server's version, ours, and the
/// server's list of security types (1 = none, 2 = VNC password).
fn rfb_handshake(ws: &mut Ws) -> (String, Vec<u8>) {
    let version = read_bytes(ws, 12);
    let text = String::from_utf8_lossy(&version).into_owned();
    assert!(
        text.starts_with("RFB 003.00") && text.ends_with('\n'),
        "{text:?}"
    );
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into()))
        .unwrap();
    let head = read_bytes(ws, 1);
    let n = usize::from(head[0]);
    assert!(n >= 1, "the server offers at least one security type");
    let mut types = head[1..].to_vec();
    if types.len() < n {
        types.extend(read_bytes(ws, n - types.len()));
    }
    (text, types)
}

fn bearer(t: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {t}"))
}

#[test]
fn console_relays_rfb_to_operators_of_the_vm_only() {
    let w = world(&demo_runtime_config());
    let (d, port) = (&w.d, w.port);
    let operator = token(d, "con-op", "operator", &[]);
    let viewer = token(d, "con-view", "viewer", &[]);
    let elsewhere = token(d, "con-else", "operator", &["other-*"]);
    // Another operator for the subprotocol case: its console must not count against the
    // first one's limit of three below.
    let by_proto = token(d, "con-proto", "operator", &[]);
    let own_origin = ("Origin", format!("http://127.0.0.1:{port}"));

    // Who is refused, before anything reaches the VNC server.
    let refused = |uuid: &str, headers: &[(&str, String)]| match open(port, uuid, headers) {
        Ok(_) => panic!("{uuid} {headers:?}: opened"),
        Err(e) => e,
    };
    let (status, _) = refused(RUNNING, &[]);
    assert_eq!(status, 401, "no credentials");
    let (status, body) = refused(RUNNING, &[bearer(&viewer)]);
    assert_eq!(status, 403, "a viewer: {body}");
    let (status, body) = refused(RUNNING, &[bearer(&elsewhere)]);
    assert_eq!(
        status, 404,
        "an operator of other VMs does not see it: {body}"
    );
    let (status, body) = refused("6a1c7e0e-58d3-4b8e-9c57-1a2b3c4d5eff", &[bearer(&operator)]);
    assert_eq!(status, 404, "an unknown VM: {body}");
    let (status, body) = refused(SHUTOFF, &[bearer(&operator)]);
    assert_eq!(status, 409, "a shut-off VM: {body}");
    assert!(body.contains("start it first"), "{body}");
    let (status, body) = refused(
        RUNNING,
        &[bearer(&operator), ("Origin", "http://evil.example".into())],
    );
    assert_eq!(status, 403, "another site's page: {body}");
    assert!(body.contains("cross-origin"), "{body}");

    // A browser logged in with an API token cannot send Authorization with a websocket:
    // the token rides as the subprotocol `uvmm.bearer.TOKEN`, checked like the header
    // (a viewer's is refused, a wrong one is 401), answered with `binary`, never echoed.
    let proto = |t: &str| ("Sec-WebSocket-Protocol", format!("binary, uvmm.bearer.{t}"));
    let (status, body) = refused(RUNNING, &[proto(&viewer)]);
    assert_eq!(status, 403, "a viewer's token as subprotocol: {body}");
    let (status, _) = refused(RUNNING, &[proto("uvmm_0000000000000000_00")]);
    assert_eq!(status, 401, "a wrong token as subprotocol");
    {
        let (mut ws, answered) = open(port, RUNNING, &[proto(&by_proto), own_origin.clone()])
            .unwrap_or_else(|e| panic!("{e:?}\n{}", d.log()));
        assert_eq!(answered, "binary", "the token is not echoed");
        rfb_handshake(&mut ws);
    }
    // Only a websocket handshake reads it: a plain GET with the header is not logged in.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Sec-WebSocket-Protocol: uvmm.bearer.{by_proto}"))
        .arg(format!("http://127.0.0.1:{port}/api/v1/vms/{RUNNING}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401", "a plain GET");

    // A plain GET is not a console, and says so (the web UI reads this after a failed
    // handshake).
    let out = Command::new("curl")
        .args(["-s", "-H"])
        .arg(format!("Authorization: Bearer {operator}"))
        .arg(format!(
            "http://127.0.0.1:{port}/api/v1/vms/{RUNNING}/console"
        ))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("websocket"), "{body}");

    // An operator, from the UI's own origin: the VNC server's RFB handshake, both ways.
    let (mut ws, proto) = open(port, RUNNING, &[bearer(&operator), own_origin.clone()])
        .unwrap_or_else(|e| panic!("{e:?}\n{}", d.log()));
    assert_eq!(proto, "binary", "noVNC's subprotocol is answered");
    let (version, types) = rfb_handshake(&mut ws);
    eprintln!("QEMU's VNC server over TCP: {version:?}, security types {types:?}");
    assert_eq!(types, [1], "no password: security type none");
    // The VM whose VNC server is a UNIX socket on the host.
    let (mut unix, _) = open(port, SOCKET_VM, &[bearer(&operator)])
        .unwrap_or_else(|e| panic!("{e:?}\n{}", d.log()));
    rfb_handshake(&mut unix);
    drop(unix);
    // With a VNC password, the VNC server asks for it through the relay (uvmmd does not
    // answer for the client), and uvmmd shows that a password is set, never the password.
    let (mut pw, _) = open(port, PASSWORD_VM, &[bearer(&operator)])
        .unwrap_or_else(|e| panic!("{e:?}\n{}", d.log()));
    let (_, types) = rfb_handshake(&mut pw);
    assert_eq!(types, [2], "VNC authentication is the client's");
    drop(pw);
    let shown = d.get(&format!("/api/v1/vms/{PASSWORD_VM}"));
    assert_eq!(shown["graphics"][0]["password_set"], true, "{shown}");
    assert!(!shown.to_string().contains(VNC_PASSWORD), "{shown}");

    // A few consoles per user and VM, then 429; a closed one frees its place.
    let mut more: Vec<Ws> = (0..2)
        .map(|_| open(port, RUNNING, &[bearer(&operator)]).unwrap().0)
        .collect();
    let (status, body) = refused(RUNNING, &[bearer(&operator)]);
    assert_eq!(status, 429, "{body}");
    let mut closing = more.pop().unwrap();
    closing.close(None).unwrap();
    while closing.read().is_ok() {}
    wait_for(Duration::from_secs(10), "a freed console place", || {
        open(port, RUNNING, &[bearer(&operator)]).ok()
    });

    // The VM stops: the relay ends the console.
    w.lv.virsh(&["destroy", "con-tcp"]);
    let ended = (0..100).find_map(|_| match ws.read() {
        Ok(Message::Close(_)) | Err(_) => Some(()),
        Ok(_) => None,
    });
    assert!(ended.is_some(), "the console ends with the VM");
    let log = d.log();
    assert!(log.contains("console opened"), "{log}");
}

#[test]
fn novnc_in_chromium_shows_the_guest_screen() {
    let web = repo_root().join("web");
    let chromium = browser::prerequisites();
    let mut accounts = Accounts::new("con");
    let admins = accounts.group("gadm");
    let operators = accounts.group("gop");
    let viewers = accounts.group("gvw");
    let op = accounts.user("uop", "Console-Op-1", &[&operators]);
    let vw = accounts.user("uvw", "Console-Vw-1", &[&viewers]);
    let w = world(&roles_config(&admins, &operators, &viewers, "", ""));
    let op_token = token(&w.d, "con-ui-op", "operator", &[]);
    let out = Command::new("node")
        .arg(web.join("tests/console.mjs"))
        .current_dir(&web)
        .env("UVMM_URL", format!("http://127.0.0.1:{}", w.port))
        .env("OPERATOR", format!("{op}:Console-Op-1"))
        .env("OPERATOR_TOKEN", &op_token)
        .env("VIEWER", format!("{vw}:Console-Vw-1"))
        .env("VM_NAME", "con-tcp")
        .env("VM_UUID", RUNNING)
        .env("VM_HOST", &w.host_id)
        .env("PW_VM_UUID", PASSWORD_VM)
        .env("VNC_PASSWORD", VNC_PASSWORD)
        .env("CHROMIUM", &chromium)
        // Set CONSOLE_SCREENSHOT=docs/screenshots/console.png to renew the README's picture.
        .env(
            "SCREENSHOT",
            std::env::var("CONSOLE_SCREENSHOT").unwrap_or_default(),
        )
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "console browser test failed:\n{stdout}\n{stderr}\n{}",
        w.d.log()
    );
    assert!(
        stdout.contains(" 0 failed, 0 skipped"),
        "every console browser check must run: {stdout}"
    );
}
