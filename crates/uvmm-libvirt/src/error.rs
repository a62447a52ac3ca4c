use virt::sys;

/// What kind of failure a libvirt error is, as far as callers need to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The domain (pool, volume ...) does not exist.
    NotFound,
    /// The request is not valid in the object's current state.
    InvalidOperation,
    /// The driver cannot do this at all.
    NotSupported,
    /// The input (XML, argument) was refused.
    InvalidInput,
    /// The object already exists.
    Exists,
    /// The connection is broken or could not be opened.
    Connection,
    /// The host did not answer in time.
    Timeout,
    /// The call's job was aborted (`virDomainAbortJob`): what a cancelled task sees.
    Aborted,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LibvirtError {
    pub kind: ErrorKind,
    /// libvirt's `virErrorNumber`, or 0 for errors made up by this crate.
    pub code: i32,
    pub message: String,
}

impl LibvirtError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        LibvirtError {
            kind,
            code: 0,
            message: message.into(),
        }
    }

    pub fn is_connection(&self) -> bool {
        self.kind == ErrorKind::Connection
    }
}

impl From<virt::error::Error> for LibvirtError {
    fn from(e: virt::error::Error) -> Self {
        let code = e.code().to_raw();
        let kind = match code {
            sys::VIR_ERR_NO_DOMAIN
            | sys::VIR_ERR_NO_STORAGE_POOL
            | sys::VIR_ERR_NO_STORAGE_VOL
            | sys::VIR_ERR_NO_NETWORK
            | sys::VIR_ERR_NO_DOMAIN_SNAPSHOT
            | sys::VIR_ERR_NO_SECRET
            | sys::VIR_ERR_NO_DOMAIN_METADATA => ErrorKind::NotFound,
            sys::VIR_ERR_OPERATION_INVALID | sys::VIR_ERR_RESOURCE_BUSY => {
                ErrorKind::InvalidOperation
            }
            sys::VIR_ERR_NO_SUPPORT
            | sys::VIR_ERR_OPERATION_UNSUPPORTED
            | sys::VIR_ERR_ARGUMENT_UNSUPPORTED
            | sys::VIR_ERR_CONFIG_UNSUPPORTED => ErrorKind::NotSupported,
            sys::VIR_ERR_XML_ERROR
            | sys::VIR_ERR_XML_DETAIL
            | sys::VIR_ERR_INVALID_ARG
            | sys::VIR_ERR_XML_INVALID_SCHEMA => ErrorKind::InvalidInput,
            sys::VIR_ERR_DOM_EXIST | sys::VIR_ERR_STORAGE_VOL_EXIST => ErrorKind::Exists,
            sys::VIR_ERR_NO_CONNECT
            | sys::VIR_ERR_INVALID_CONN
            | sys::VIR_ERR_RPC
            | sys::VIR_ERR_AUTH_FAILED
            | sys::VIR_ERR_OPEN_FAILED => ErrorKind::Connection,
            sys::VIR_ERR_OPERATION_TIMEOUT | sys::VIR_ERR_AGENT_UNRESPONSIVE => ErrorKind::Timeout,
            sys::VIR_ERR_OPERATION_ABORTED => ErrorKind::Aborted,
            _ => ErrorKind::Other,
        };
        LibvirtError {
            kind,
            code: i32::try_from(code).unwrap_or(i32::MAX),
            message: e.message().to_string(),
        }
    }
}
