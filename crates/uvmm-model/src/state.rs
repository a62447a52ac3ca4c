//! VM run states, the lifecycle actions a user can ask for, and which action is allowed in
//! which state. The daemon checks this table against its cache before calling libvirt so
//! that an impossible request gets a clear 409 instead of a driver-specific error.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The state of a VM, named like `virsh domstate` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    Running,
    Paused,
    Shutoff,
    Crashed,
    Shutdown,
    Pmsuspended,
    Blocked,
    Unknown,
}

impl VmState {
    pub const ALL: [VmState; 8] = [
        VmState::Running,
        VmState::Paused,
        VmState::Shutoff,
        VmState::Crashed,
        VmState::Shutdown,
        VmState::Pmsuspended,
        VmState::Blocked,
        VmState::Unknown,
    ];

    /// Map libvirt's `virDomainState` number.
    pub fn from_libvirt(code: u32) -> VmState {
        match code {
            1 => VmState::Running,
            2 => VmState::Blocked,
            3 => VmState::Paused,
            4 => VmState::Shutdown,
            5 => VmState::Shutoff,
            6 => VmState::Crashed,
            7 => VmState::Pmsuspended,
            _ => VmState::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::Shutoff => "shutoff",
            VmState::Crashed => "crashed",
            VmState::Shutdown => "shutdown",
            VmState::Pmsuspended => "pmsuspended",
            VmState::Blocked => "blocked",
            VmState::Unknown => "unknown",
        }
    }

    /// True when the VM has a running (or frozen) process on its host.
    pub fn is_active(self) -> bool {
        !matches!(self, VmState::Shutoff | VmState::Crashed)
    }
}

/// Name libvirt's state reason number, as `virsh domstate --reason` does.
pub fn state_reason(state: VmState, code: u32) -> &'static str {
    let names: &[&str] = match state {
        VmState::Running => &[
            "unknown",
            "booted",
            "migrated",
            "restored",
            "from snapshot",
            "unpaused",
            "migration canceled",
            "save canceled",
            "wakeup",
            "crashed",
            "post-copy",
            "post-copy failed",
        ],
        VmState::Paused => &[
            "unknown",
            "user",
            "migrating",
            "saving",
            "dumping",
            "I/O error",
            "watchdog",
            "from snapshot",
            "shutting down",
            "snapshot",
            "crashed",
            "starting up",
            "post-copy",
            "post-copy failed",
            "api error",
        ],
        VmState::Shutdown => &["unknown", "user"],
        VmState::Shutoff => &[
            "unknown",
            "shutdown",
            "destroyed",
            "crashed",
            "migrated",
            "saved",
            "failed",
            "from snapshot",
            "daemon",
        ],
        VmState::Crashed => &["unknown", "panicked"],
        VmState::Pmsuspended | VmState::Blocked | VmState::Unknown => &["unknown"],
    };
    names.get(code as usize).copied().unwrap_or("unknown")
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}' (expected one of: {expected})")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

impl FromStr for VmState {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        VmState::ALL
            .into_iter()
            .find(|st| st.as_str() == lower)
            .ok_or_else(|| ParseEnumError {
                what: "state",
                value: s.to_string(),
                expected: VmState::ALL.map(|s| s.as_str()).join(", "),
            })
    }
}

/// A lifecycle request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Boot the VM (or restore its managed-save image).
    Start,
    /// Ask the guest to power off (ACPI).
    Shutdown,
    /// Power off at once (libvirt "destroy").
    Stop,
    Pause,
    Resume,
    /// Save memory to disk and stop (libvirt managed save); `start` restores it.
    Suspend,
    /// Ask the guest to reboot.
    Reboot,
    /// Hard reset, like the reset button.
    Reset,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Start,
        Action::Shutdown,
        Action::Stop,
        Action::Pause,
        Action::Resume,
        Action::Suspend,
        Action::Reboot,
        Action::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Shutdown => "shutdown",
            Action::Stop => "stop",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Suspend => "suspend",
            Action::Reboot => "reboot",
            Action::Reset => "reset",
        }
    }

    /// Check whether this action makes sense in `state`; the error says why not.
    pub fn check(self, state: VmState) -> Result<(), TransitionError> {
        use VmState::*;
        let allowed: &[VmState] = match self {
            Action::Start => &[Shutoff, Crashed],
            Action::Shutdown => &[Running, Blocked],
            Action::Stop => &[Running, Blocked, Paused, Shutdown, Pmsuspended, Unknown],
            Action::Pause => &[Running, Blocked],
            Action::Resume => &[Paused],
            Action::Suspend => &[Running, Blocked, Paused],
            Action::Reboot => &[Running, Blocked],
            Action::Reset => &[Running, Blocked, Paused],
        };
        if allowed.contains(&state) {
            return Ok(());
        }
        let reason = match (self, state) {
            (Action::Start, Paused) => "it is paused; resume it instead".to_string(),
            (Action::Start, Shutdown) => "it is shutting down; wait until it is off".to_string(),
            (Action::Start, Pmsuspended) => {
                "it is asleep (suspended by the guest); wake it from its console or stop it"
                    .to_string()
            }
            (Action::Start, Running | Blocked) => "it is already running".to_string(),
            (Action::Start, other) => format!("it is {other}"),
            (Action::Pause, Paused) => "it is already paused".to_string(),
            (Action::Resume, Running | Blocked) => "it is not paused".to_string(),
            (Action::Shutdown | Action::Reboot, Paused) => {
                "it is paused and cannot react to ACPI; resume it first or use stop".to_string()
            }
            (_, Shutoff | Crashed) => "it is not running".to_string(),
            (_, other) => format!("it is {other}"),
        };
        Err(TransitionError {
            action: self,
            state,
            reason,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "action",
                value: s.to_string(),
                expected: Action::ALL.map(|a| a.as_str()).join(", "),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} the VM: {reason}")]
pub struct TransitionError {
    pub action: Action,
    pub state: VmState,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Pause, Reboot, Reset, Resume, Start, Stop, Suspend};
    use VmState::{Crashed, Paused, Pmsuspended, Running, Shutoff, Unknown};

    #[test]
    fn transition_table() {
        // (action, state, allowed)
        let table = [
            (Start, Shutoff, true),
            (Start, Crashed, true),
            (Start, Running, false),
            (Start, Paused, false),
            (Action::Shutdown, Running, true),
            (Action::Shutdown, Paused, false),
            (Action::Shutdown, Shutoff, false),
            (Stop, Running, true),
            (Stop, Paused, true),
            (Stop, Pmsuspended, true),
            (Stop, Shutoff, false),
            (Pause, Running, true),
            (Pause, Paused, false),
            (Pause, Shutoff, false),
            (Resume, Paused, true),
            (Resume, Running, false),
            (Resume, Shutoff, false),
            (Suspend, Running, true),
            (Suspend, Paused, true),
            (Suspend, Shutoff, false),
            (Reboot, Running, true),
            (Reboot, Paused, false),
            (Reset, Paused, true),
            (Reset, Shutoff, false),
        ];
        for (action, state, allowed) in table {
            assert_eq!(
                action.check(state).is_ok(),
                allowed,
                "{action} in state {state}"
            );
        }
    }

    #[test]
    fn refusals_explain() {
        let e = Pause.check(Shutoff).unwrap_err();
        assert_eq!(e.to_string(), "cannot pause the VM: it is not running");
        let e = Start.check(Running).unwrap_err();
        assert!(e.to_string().contains("already running"));
        let e = Pause.check(Paused).unwrap_err();
        assert!(e.to_string().contains("already paused"));
        // A paused VM is not "running" to the person who asked to start it.
        let e = Start.check(Paused).unwrap_err();
        assert!(e.to_string().contains("paused; resume it"), "{e}");
        let e = Start.check(VmState::Shutdown).unwrap_err();
        assert!(e.to_string().contains("shutting down"), "{e}");
    }

    #[test]
    fn parse_names() {
        for s in VmState::ALL {
            assert_eq!(s.as_str().parse::<VmState>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!("RUNNING".parse::<VmState>().unwrap(), Running);
        assert!("runing".parse::<VmState>().is_err());
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        assert!("destroy".parse::<Action>().is_err());
        assert_eq!(VmState::from_libvirt(5), Shutoff);
        assert_eq!(VmState::from_libvirt(99), Unknown);
        assert_eq!(state_reason(Shutoff, 2), "destroyed");
        assert_eq!(state_reason(Paused, 1), "user");
        assert_eq!(state_reason(Running, 999), "unknown");
    }
}
