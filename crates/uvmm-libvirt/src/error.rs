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

    /// What the host's driver lacks, in words, when libvirt said so by naming its API
    /// function ("this function is not supported by the connection driver:
    /// virStorageVolResize"): a user knows the operation, not libvirt's function names.
    /// `None` for other errors, whose messages say what is wrong in words already.
    pub fn unsupported_operation(&self) -> Option<&'static str> {
        if self.kind != ErrorKind::NotSupported {
            return None;
        }
        api_function(&self.message).map(operation_words)
    }
}

/// The first libvirt API function a message names (`virDomainBlockResize`).
pub fn api_function(message: &str) -> Option<&str> {
    message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| {
            w.strip_prefix("vir")
                .and_then(|rest| rest.chars().next())
                .is_some_and(|c| c.is_ascii_uppercase())
        })
}

/// libvirt API functions (by prefix, the more specific first) and the operation they
/// carry out, as a user would name it.
const OPERATIONS: &[(&str, &str)] = &[
    ("virStorageVolResize", "resizing a volume"),
    ("virStorageVolWipe", "wiping a volume"),
    ("virStorageVolCreateXMLFrom", "copying a volume"),
    ("virStorageVolCreate", "creating a volume"),
    ("virStorageVolDelete", "deleting a volume"),
    ("virStorageVolUpload", "uploading into a volume"),
    ("virStorageVolDownload", "downloading a volume"),
    ("virStoragePoolRefresh", "refreshing a storage pool"),
    ("virStoragePoolBuild", "building a storage pool"),
    ("virStoragePoolCreate", "starting a storage pool"),
    ("virStoragePoolDefine", "defining a storage pool"),
    ("virStoragePoolDestroy", "stopping a storage pool"),
    ("virStoragePoolDelete", "deleting a storage pool"),
    ("virStoragePoolUndefine", "removing a storage pool"),
    ("virStoragePool", "storage pools"),
    ("virStorageVol", "storage volumes"),
    ("virDomainMigrate", "migrating a VM"),
    ("virDomainBlockResize", "resizing a VM's disk"),
    ("virDomainBlockCopy", "copying a running VM's disk"),
    ("virDomainBlockRebase", "copying a running VM's disk"),
    ("virDomainBlockPull", "merging a running VM's disk images"),
    ("virDomainBlockCommit", "merging a running VM's disk images"),
    ("virDomainBlockJob", "disk jobs of a running VM"),
    ("virDomainGetBlockInfo", "reading the size of a VM's disk"),
    ("virDomainRevertToSnapshot", "reverting to a snapshot"),
    ("virDomainSnapshotCreate", "taking a snapshot"),
    ("virDomainSnapshotDelete", "deleting a snapshot"),
    ("virDomainSnapshot", "snapshots"),
    ("virDomainListAllSnapshots", "snapshots"),
    ("virDomainHasCurrentSnapshot", "snapshots"),
    ("virDomainAttachDevice", "adding a device to a VM"),
    ("virDomainDetachDevice", "removing a device from a VM"),
    (
        "virDomainUpdateDevice",
        "changing a VM's device (such as a CD-ROM medium)",
    ),
    (
        "virDomainSetMetadata",
        "changing a VM's notes while it runs",
    ),
    ("virDomainGetMetadata", "reading a VM's notes"),
    ("virDomainManagedSave", "suspending a VM to disk"),
    ("virDomainHasManagedSaveImage", "suspending a VM to disk"),
    ("virDomainSave", "saving a VM's memory to a file"),
    ("virDomainRestore", "restoring a VM's memory from a file"),
    (
        "virDomainGetJobStats",
        "progress reports of a running operation",
    ),
    (
        "virDomainGetJobInfo",
        "progress reports of a running operation",
    ),
    ("virDomainAbortJob", "cancelling a running operation"),
    ("virDomainSetVcpus", "changing a VM's vCPUs"),
    ("virDomainSetMemory", "changing a VM's memory"),
    ("virDomainSetMaxMemory", "changing a VM's memory"),
    ("virDomainRename", "renaming a VM"),
    ("virDomainOpenConsole", "opening a VM's console"),
    ("virDomainOpenGraphics", "opening a VM's console"),
    ("virDomainReboot", "rebooting a VM"),
    ("virDomainReset", "resetting a VM"),
    ("virDomainShutdown", "shutting a VM down"),
    ("virDomainSuspend", "pausing a VM"),
    ("virDomainResume", "resuming a VM"),
    ("virDomainSetAutostart", "starting a VM with its host"),
    ("virDomainInterfaceAddresses", "reading a VM's IP addresses"),
    ("virDomainGetGuestInfo", "asking the guest agent"),
    ("virDomainGetFSInfo", "asking the guest agent"),
    ("virConnectGetAllDomainStats", "VM statistics"),
    ("virDomainListGetStats", "VM statistics"),
    ("virDomainGetCPUStats", "VM statistics"),
    ("virDomainDefine", "defining a VM"),
    ("virDomainUndefine", "deleting a VM"),
    ("virSecret", "secrets"),
    ("virNWFilter", "network filters"),
    ("virNetwork", "virtual networks"),
    ("virInterface", "host network interfaces"),
    ("virNodeDevice", "host devices"),
];

/// The operation of a libvirt API function in words; one this table does not know is
/// "this operation" (its name stays in the daemon log).
pub fn operation_words(function: &str) -> &'static str {
    OPERATIONS
        .iter()
        .find(|(prefix, _)| function.starts_with(prefix))
        .map_or("this operation", |(_, words)| words)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, message: &str) -> LibvirtError {
        LibvirtError::new(kind, message)
    }

    #[test]
    fn unsupported_operations_in_words() {
        let no_support = "this function is not supported by the connection driver: ";
        // (kind, libvirt's message, the operation in words)
        let table: [(ErrorKind, String, Option<&str>); 9] = [
            (
                ErrorKind::NotSupported,
                format!("{no_support}virStorageVolResize"),
                Some("resizing a volume"),
            ),
            (
                ErrorKind::NotSupported,
                format!("{no_support}virDomainMigratePerform3Params"),
                Some("migrating a VM"),
            ),
            (
                ErrorKind::NotSupported,
                format!("{no_support}virDomainBlockCopy"),
                Some("copying a running VM's disk"),
            ),
            (
                ErrorKind::NotSupported,
                format!("{no_support}virDomainSnapshotCreateXML"),
                Some("taking a snapshot"),
            ),
            (
                ErrorKind::NotSupported,
                format!("{no_support}virStorageVolCreateXMLFrom"),
                Some("copying a volume"),
            ),
            // A function the table does not know: no name, still words.
            (
                ErrorKind::NotSupported,
                format!("{no_support}virDomainFrobnicate"),
                Some("this operation"),
            ),
            // libvirt explained in words (no function name): its words stay.
            (
                ErrorKind::NotSupported,
                "Operation not supported: live disk copy needs a running VM".into(),
                None,
            ),
            // Not a "not supported" error.
            (
                ErrorKind::Other,
                "internal error: virStorageVolResize failed".into(),
                None,
            ),
            (ErrorKind::NotSupported, String::new(), None),
        ];
        for (kind, message, want) in table {
            assert_eq!(
                err(kind, &message).unsupported_operation(),
                want,
                "{message}"
            );
        }
    }

    #[test]
    fn api_function_names() {
        let table = [
            ("... connection driver: virDomainXyz", Some("virDomainXyz")),
            ("virtual, virtio and virDomainA", Some("virDomainA")),
            ("no names here; virtual machines", None),
            ("(virConnectOpen)", Some("virConnectOpen")),
            ("", None),
        ];
        for (message, want) in table {
            assert_eq!(api_function(message), want, "{message}");
        }
    }
}
