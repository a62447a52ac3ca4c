//! The VNC console: a websocket that relays binary frames to and from the VM's VNC server
//! (noVNC in the web UI speaks RFB over it). Who may open one is `auth.rs` (`console`,
//! an operator of the VM); where it connects comes only from the VM's live definition
//! (`vm::console`). uvmmd does not speak RFB itself: the VNC password, if the VM has one,
//! is typed by the user into noVNC and goes to the VNC server through the relay.

use super::extract::*;
use super::vms::HostParam;
use super::AppState;
use crate::caller::Caller;
use crate::error::Error;
use crate::http::error::RequestError;
use crate::vm::console::{ConsoleError, Endpoint, VncEndpoint};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uvmm_api::ErrorBody;

/// How many consoles one user may have open on one VM at once (a second browser tab,
/// a reconnect while the old socket is still closing).
pub const CONSOLES_PER_USER_AND_VM: usize = 3;

/// How long the VNC server has to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Open consoles by (user, VM UUID).
#[derive(Default)]
pub struct ConsoleSlots(Mutex<HashMap<(String, String), usize>>);

/// One open console; gives its slot back when dropped.
pub struct Slot {
    slots: Arc<ConsoleSlots>,
    key: (String, String),
}

impl ConsoleSlots {
    fn take(self: &Arc<Self>, user: &str, uuid: &str) -> Result<Slot, ConsoleError> {
        let key = (user.to_string(), uuid.to_string());
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key.clone()).or_default();
        if *n >= CONSOLES_PER_USER_AND_VM {
            return Err(ConsoleError::Busy {
                limit: CONSOLES_PER_USER_AND_VM,
            });
        }
        *n += 1;
        Ok(Slot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The VNC server's side of a console.
trait VncStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> VncStream for T {}

async fn connect(e: &Endpoint) -> Result<Box<dyn VncStream>, ConsoleError> {
    let failed = |why: String| ConsoleError::Connect {
        endpoint: e.to_string(),
        why,
    };
    let stream: std::io::Result<Box<dyn VncStream>> =
        match tokio::time::timeout(CONNECT_TIMEOUT, async {
            match e {
                Endpoint::Tcp { host, port } => {
                    tokio::net::TcpStream::connect((host.as_str(), *port))
                        .await
                        .map(|s| Box::new(s) as Box<dyn VncStream>)
                }
                Endpoint::Unix { path } => tokio::net::UnixStream::connect(path)
                    .await
                    .map(|s| Box::new(s) as Box<dyn VncStream>),
            }
        })
        .await
        {
            Ok(r) => r,
            Err(_) => {
                return Err(failed(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        };
    stream.map_err(|err| failed(err.to_string()))
}

/// A websocket to the VM's VNC server (RFB in binary frames), for noVNC.
#[utoipa::path(get, path = "/api/v1/vms/{uuid}/console", params(("uuid" = String, Path), HostParam),
    responses(
        (status = 101, description = "websocket (subprotocol `binary` when asked for): binary frames carry the VNC server's RFB stream both ways"),
        (status = 400, body = ErrorBody, description = "not a websocket handshake"),
        (status = 403, body = ErrorBody, description = "not an operator of this VM, or a foreign `Origin`"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the VM is not running, has no VNC console, or its VNC server cannot be reached from uvmmd"),
        (status = 429, body = ErrorBody, description = "too many consoles of this VM open by the caller"),
        (status = 502, body = ErrorBody, description = "the VNC server refused the connection")))]
pub(super) async fn console(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    let vm = p.vm(uuid.clone());
    // First what the VM allows, so that a plain GET (the web UI asks after a failed
    // handshake, whose status a browser does not show) says why a console cannot open.
    let endpoint = s.ops.run(&caller, vm, VncEndpoint).await?;
    let ws = ws.map_err(|e| {
        RequestError::Malformed(format!(
            "this path is a websocket (open it with a websocket client such as noVNC): {e}"
        ))
    })?;
    let slot = s.consoles.take(caller.user(), &uuid)?;
    let vnc = connect(&endpoint).await?;
    tracing::info!(caller = %caller, %uuid, %endpoint, "console opened");
    let shutdown = s.shutdown.clone();
    let who = caller.to_string();
    Ok(ws
        .protocols(["binary"])
        .on_upgrade(move |socket| async move {
            let why = relay(socket, vnc, shutdown).await;
            drop(slot);
            tracing::info!(caller = %who, %uuid, "console closed: {why}");
        }))
}

/// Copy both ways until one side ends or the daemon stops; says why it ended.
async fn relay(
    socket: WebSocket,
    vnc: Box<dyn VncStream>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> &'static str {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut vnc_rx, mut vnc_tx) = tokio::io::split(vnc);
    let to_vnc = async {
        while let Some(msg) = ws_rx.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if vnc_tx.write_all(&b).await.is_err() {
                        return "the VNC server closed the connection";
                    }
                }
                // RFB is binary; pings are answered by the websocket layer.
                Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)) => {}
                Ok(Message::Close(_)) | Err(_) => return "the browser closed the console",
            }
        }
        "the browser closed the console"
    };
    let to_ws = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match vnc_rx.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = ws_tx.send(Message::Close(None)).await;
                    return "the VNC server closed the connection";
                }
                Ok(n) => {
                    let frame = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if ws_tx.send(Message::Binary(frame)).await.is_err() {
                        return "the browser closed the console";
                    }
                }
            }
        }
    };
    tokio::select! {
        why = to_vnc => why,
        why = to_ws => why,
        _ = shutdown.wait_for(|stop| *stop) => "uvmmd stops",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_user_and_vm_and_come_back() {
        let slots = Arc::new(ConsoleSlots::default());
        let held: Vec<Slot> = (0..CONSOLES_PER_USER_AND_VM)
            .map(|_| slots.take("anna", "vm-1").unwrap())
            .collect();
        assert!(matches!(
            slots.take("anna", "vm-1"),
            Err(ConsoleError::Busy { .. })
        ));
        // Another VM or another user is not affected.
        let other_vm = slots.take("anna", "vm-2").unwrap();
        let other_user = slots.take("bert", "vm-1").unwrap();
        drop(held);
        assert!(slots.take("anna", "vm-1").is_ok());
        drop((other_vm, other_user));
        assert!(slots.0.lock().unwrap().is_empty());
    }
}
