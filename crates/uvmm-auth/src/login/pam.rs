//! Local accounts through PAM (service `uvmm`, `/etc/pam.d/uvmm`), as the original UVMM
//! did: `pam_authenticate` then `pam_acct_mgmt` (expired, locked, access rules).
//!
//! A thin FFI over libpam instead of a crate: the maintained bindings generate their
//! declarations with bindgen (libclang at build time) for the six functions used here.
//!
//! **FFI safety contract.** libpam is called only from [`PamBackend::authenticate`],
//! serialised by one lock (PAM modules use non-reentrant NSS calls and keep module
//! globals, so two handles in two threads are not safe in general). Every handle is
//! ended with `pam_end` on every path (a guard). The conversation function gets a
//! pointer to a [`Conversation`] that outlives the handle; it allocates its answers with
//! `calloc`/`strdup` because libpam frees them with `free`, and never unwinds into C.

use super::{BackendError, LoginBackend, Refusal};
use crate::caller::UserIdentity;
use libc::{c_char, c_int, c_uint, c_void};
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::sync::Mutex;
use zeroize::Zeroize;

/// The PAM service name; `packaging/debian/uvmm-daemon.uvmm.pam` is installed as
/// `/etc/pam.d/uvmm`.
pub const PAM_SERVICE: &str = "uvmm";

// From Linux-PAM's <security/_pam_types.h>.
const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_PERM_DENIED: c_int = 6;
const PAM_AUTH_ERR: c_int = 7;
const PAM_CRED_INSUFFICIENT: c_int = 8;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_MAXTRIES: c_int = 11;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_CONV_ERR: c_int = 19;
const PAM_AUTHTOK_EXPIRED: c_int = 27;

const PAM_USER: c_int = 2;
const PAM_RHOST: c_int = 4;
const PAM_FAIL_DELAY: c_int = 10;

const PAM_SILENT: c_int = 0x8000;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;
type FailDelayFn = extern "C" fn(c_int, c_uint, *mut c_void);

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandle {
    _opaque: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item_type: c_int, item: *mut *const c_void) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// What the conversation answers: the password to a hidden prompt, the user name to a
/// visible one (PAM already has the name; some modules ask anyway).
struct Conversation {
    user: CString,
    password: CString,
}

impl Drop for Conversation {
    fn drop(&mut self) {
        // Overwrite our copy of the password; libpam's copies are freed (and, by pam_unix,
        // overwritten) by libpam.
        let mut bytes = std::mem::take(&mut self.password).into_bytes_with_nul();
        bytes.zeroize();
    }
}

/// The conversation function libpam calls. Never unwinds: the body cannot panic, and a
/// panic would be caught and turned into `PAM_CONV_ERR` all the same.
extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    std::panic::catch_unwind(|| {
        // SAFETY: libpam passes the `appdata_ptr` we gave to pam_start, which points to a
        // `Conversation` alive until pam_end (see `authenticate`), and `num_msg` message
        // pointers at `msg` (Linux-PAM's layout: an array of pointers), and a valid
        // `resp` out-pointer.
        unsafe { converse_inner(num_msg, msg, resp, appdata) }
    })
    .unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// As libpam guarantees for a conversation call: `msg` holds `num_msg` valid message
/// pointers, `resp` is writable, `appdata` points to a live `Conversation`.
unsafe fn converse_inner(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    if n == 0 || n > 32 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is our Conversation (contract above); we only read it.
    let conv = unsafe { &*(appdata as *const Conversation) };
    // SAFETY: calloc returns zeroed memory for n responses or NULL; libpam frees it with
    // free(), so it must come from the C allocator.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: i < n, and msg holds n pointers (contract).
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: replies holds n zeroed responses from calloc; free_replies frees
            // the strings set so far and the array.
            unsafe { free_replies(replies, n) };
            return PAM_CONV_ERR;
        }
        // SAFETY: m is a valid message pointer (contract).
        let style = unsafe { (*m).msg_style };
        let answer: Option<&CStr> = match style {
            PAM_PROMPT_ECHO_OFF => Some(&conv.password),
            PAM_PROMPT_ECHO_ON => Some(&conv.user),
            PAM_ERROR_MSG | PAM_TEXT_INFO => None,
            _ => {
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
        };
        if let Some(a) = answer {
            // SAFETY: a is a valid NUL-terminated string; strdup copies it into memory
            // libpam will free().
            let copy = unsafe { libc::strdup(a.as_ptr()) };
            if copy.is_null() {
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return PAM_BUF_ERR;
            }
            // SAFETY: i < n, replies has n elements.
            unsafe { (*replies.add(i)).resp = copy };
        }
    }
    // SAFETY: resp is writable (contract); libpam takes ownership of replies.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// # Safety
/// `replies` is a calloc'ed array of `n` responses whose non-null `resp` came from strdup.
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n (contract).
        let r = unsafe { (*replies.add(i)).resp };
        if !r.is_null() {
            // SAFETY: r came from strdup; overwrite the secret before freeing.
            unsafe {
                let len = libc::strlen(r);
                std::ptr::write_bytes(r, 0, len);
                libc::free(r.cast::<c_void>());
            }
        }
    }
    // SAFETY: replies came from calloc.
    unsafe { libc::free(replies.cast::<c_void>()) };
}

/// Replaces libpam's own failure delay (pam_unix asks for about 2 s, with jitter): the
/// [`super::LoginService`] answers every failure after one fixed delay instead, outside
/// the PAM lock, so one wrong password does not hold up every other login.
extern "C" fn no_fail_delay(_status: c_int, _usec: c_uint, _appdata: *mut c_void) {}

/// Ends the PAM handle on every path.
struct Handle {
    pamh: *mut PamHandle,
    status: c_int,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: pamh came from a successful pam_start and is ended exactly once, here.
        unsafe { pam_end(self.pamh, self.status) };
    }
}

impl Handle {
    fn error_text(&self, code: c_int) -> String {
        // SAFETY: pamh is live; pam_strerror returns a static string or NULL.
        let p = unsafe { pam_strerror(self.pamh, code) };
        if p.is_null() {
            return format!("PAM error {code}");
        }
        // SAFETY: p is a NUL-terminated string owned by libpam, copied at once.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// The user name after authentication: modules may map what was typed (case, aliases).
    fn user(&self) -> Option<String> {
        let mut item: *const c_void = std::ptr::null();
        // SAFETY: pamh is live; item receives a pointer to libpam's own string.
        let rc = unsafe { pam_get_item(self.pamh, PAM_USER, &mut item) };
        if rc != PAM_SUCCESS || item.is_null() {
            return None;
        }
        // SAFETY: PAM_USER is a NUL-terminated string owned by the handle, copied at once.
        let s = unsafe { CStr::from_ptr(item.cast::<c_char>()) };
        s.to_str().ok().map(str::to_string)
    }
}

static PAM_LOCK: Mutex<()> = Mutex::new(());

/// The PAM login backend.
#[derive(Debug, Clone)]
pub struct PamBackend {
    service: String,
}

impl Default for PamBackend {
    fn default() -> Self {
        PamBackend::new(PAM_SERVICE)
    }
}

impl PamBackend {
    /// A backend for a PAM service (tests use a service of their own).
    pub fn new(service: &str) -> PamBackend {
        PamBackend {
            service: service.to_string(),
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Check that the service has its own PAM file. Without one libpam silently uses
    /// `/etc/pam.d/other` (on Debian the common-* stacks), not the rules an administrator
    /// put into `/etc/pam.d/uvmm`: the daemon calls this at start (and on SIGHUP) and
    /// refuses PAM logins with this error until the file exists.
    pub fn check_service(&self) -> Result<(), BackendError> {
        let path = std::path::Path::new("/etc/pam.d").join(&self.service);
        if self.service.contains('/') || !path.is_file() {
            return Err(BackendError::Unavailable(format!(
                "{} does not exist (it comes with the uvmm-daemon package; without it PAM would use /etc/pam.d/other)",
                path.display()
            )));
        }
        Ok(())
    }

    /// Run the PAM stacks; the account name as PAM left it on success.
    fn pam_check(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<String, BackendError> {
        let unavailable = |m: String| BackendError::Unavailable(m);
        let service = CString::new(self.service.as_str())
            .map_err(|_| unavailable("the PAM service name contains a NUL byte".into()))?;
        let (Ok(cuser), Ok(cpass)) = (CString::new(user), CString::new(password)) else {
            return Err(BackendError::Refused(Refusal::ByPolicy));
        };
        let conv_data = Box::new(Conversation {
            user: cuser.clone(),
            password: cpass,
        });
        let conv = PamConv {
            conv: Some(converse),
            appdata_ptr: &*conv_data as *const Conversation as *mut c_void,
        };
        let _guard = PAM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut pamh: *mut PamHandle = std::ptr::null_mut();
        // SAFETY: service and user are NUL-terminated; conv (and conv_data, which it
        // points to) live until after pam_end, which `Handle`'s drop calls before they
        // are dropped (declared later, dropped first).
        let rc = unsafe { pam_start(service.as_ptr(), cuser.as_ptr(), &conv, &mut pamh) };
        if rc != PAM_SUCCESS || pamh.is_null() {
            return Err(unavailable(format!(
                "pam_start for service '{}' failed ({rc})",
                self.service
            )));
        }
        let mut h = Handle { pamh, status: rc };
        let delay: FailDelayFn = no_fail_delay;
        // SAFETY: Linux-PAM takes the function pointer itself as the PAM_FAIL_DELAY item.
        let rc = unsafe { pam_set_item(h.pamh, PAM_FAIL_DELAY, delay as *const c_void) };
        if rc != PAM_SUCCESS {
            h.status = rc;
            return Err(unavailable(format!("PAM_FAIL_DELAY: {}", h.error_text(rc))));
        }
        if let Some(addr) = peer {
            let rhost = CString::new(addr.to_string()).unwrap_or_default();
            // SAFETY: libpam copies the string; rhost is NUL-terminated.
            let rc = unsafe { pam_set_item(h.pamh, PAM_RHOST, rhost.as_ptr().cast::<c_void>()) };
            if rc != PAM_SUCCESS {
                h.status = rc;
                return Err(unavailable(format!("PAM_RHOST: {}", h.error_text(rc))));
            }
        }
        // Empty passwords are refused even where the stack says `nullok`.
        let flags = PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK;
        // SAFETY: h.pamh is live.
        let rc = unsafe { pam_authenticate(h.pamh, flags) };
        h.status = rc;
        match rc {
            PAM_SUCCESS => {}
            PAM_AUTH_ERR | PAM_USER_UNKNOWN | PAM_CRED_INSUFFICIENT | PAM_MAXTRIES => {
                return Err(BackendError::Refused(Refusal::BadCredentials))
            }
            PAM_PERM_DENIED => return Err(BackendError::Refused(Refusal::NotPermitted)),
            other => {
                let text = h.error_text(other);
                return Err(unavailable(format!("pam_authenticate: {text} ({other})")));
            }
        }
        // SAFETY: h.pamh is live.
        let rc = unsafe { pam_acct_mgmt(h.pamh, flags) };
        h.status = rc;
        let refused = |r| Err(BackendError::Refused(r));
        match rc {
            PAM_SUCCESS => Ok(h.user().unwrap_or_else(|| user.to_string())),
            PAM_ACCT_EXPIRED => refused(Refusal::AccountExpired),
            PAM_NEW_AUTHTOK_REQD | PAM_AUTHTOK_EXPIRED => refused(Refusal::PasswordExpired),
            PAM_PERM_DENIED | PAM_AUTH_ERR => refused(Refusal::NotPermitted),
            PAM_USER_UNKNOWN => refused(Refusal::BadCredentials),
            other => {
                let text = h.error_text(other);
                Err(unavailable(format!("pam_acct_mgmt: {text} ({other})")))
            }
        }
        // `h` ends the handle here, then `conv` and `conv_data` (zeroing the password)
        // are dropped, then the lock is released.
    }
}

impl LoginBackend for PamBackend {
    fn name(&self) -> &'static str {
        "pam"
    }

    fn off(&self) -> Option<String> {
        match self.check_service() {
            Ok(()) => None,
            Err(BackendError::Unavailable(why)) => Some(why),
            Err(other) => Some(other.to_string()),
        }
    }

    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<UserIdentity, BackendError> {
        let name = self.pam_check(user, password, peer)?;
        match crate::peer::local_user(&name, "pam") {
            Ok(Some(identity)) => Ok(identity),
            // PAM said yes for an account NSS does not know (a PAM-only account): no uid,
            // no local groups; only [[auth.grant]] entries naming the user can apply.
            Ok(None) => Ok(UserIdentity {
                name,
                uid: None,
                groups: Vec::new(),
                source: "pam".into(),
            }),
            Err(e) => Err(BackendError::Unavailable(e.to_string())),
        }
    }
}
