//! `uvmm task list|show|wait|cancel`, and following a task a command started (`vm
//! suspend`, `volume clone`): a progress bar on a terminal, plain lines otherwise, both
//! on standard error so that standard output keeps the command's answer (or its JSON).

use crate::print_json;
use clap::Subcommand;
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use uvmm_api::{ErrorBody, Task, TaskState};
use uvmm_cli::client::{Client, ClientError};
use uvmm_cli::paths;
use uvmm_cli::table::Table;
use uvmm_model::units::format_bytes;

/// How often a followed task is looked at.
const POLL: Duration = Duration::from_millis(300);

#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Running tasks and those that ended recently (uvmmd keeps them an hour).
    List,
    /// One task: state, progress, result or error.
    Show { id: String },
    /// Follow a task until it ends; exit 1 if it failed or was cancelled.
    Wait { id: String },
    /// Ask a task to stop. A managed save is aborted (the VM keeps running); a volume
    /// copy cannot be interrupted by libvirt, so it is deleted once it is done.
    Cancel { id: String },
}

/// State and progress in words: `running 42% (1.2 GiB of 2.9 GiB)`, `failed: why`.
pub fn progress_words(t: &Task) -> String {
    let state = serde_json::to_value(t.state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let mut s = state;
    if !t.state.ended() {
        if let Some(p) = t.percent {
            s.push_str(&format!(" {p:.0}%"));
        }
        if let (Some(d), Some(total)) = (t.bytes_done, t.bytes_total) {
            s.push_str(&format!(
                " ({} of {})",
                format_bytes(d),
                format_bytes(total)
            ));
        }
    }
    if let Some(m) = t.migration.as_ref().filter(|_| !t.state.ended()) {
        s.push_str(&format!(" {}", m.phase));
        if let Some(r) = m.data_remaining {
            s.push_str(&format!(", {} to go", format_bytes(r)));
        }
        if let Some(bps) = m.memory_bps.filter(|b| *b > 0) {
            s.push_str(&format!(", {}/s", format_bytes(bps)));
        }
    }
    if let Some(e) = &t.error {
        s.push_str(&format!(": {}", e.message));
    }
    s
}

fn task_table(tasks: &[Task]) -> String {
    let mut t = Table::new(&["ID", "KIND", "HOST", "TARGET", "USER", "STARTED", "STATE"]);
    for task in tasks {
        t.row(vec![
            task.id.clone(),
            serde_json::to_value(task.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            task.host_id.clone(),
            task.target.clone(),
            task.user.clone(),
            task.started.clone(),
            progress_words(task),
        ]);
    }
    t.render()
}

/// Where progress goes: a bar redrawn in place on a terminal, a line per change
/// otherwise (a log, a pipe), never on standard output.
struct Progress {
    tty: bool,
    last: Option<String>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, t: &Task) {
        let words = progress_words(t);
        let mut err = std::io::stderr();
        if self.tty {
            let bar = match t.percent {
                Some(p) => {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "a percentage (0-100) in twentieths"
                    )]
                    let filled = ((p / 5.0) as usize).min(20);
                    format!("[{}{}] ", "#".repeat(filled), ".".repeat(20 - filled))
                }
                None => String::new(),
            };
            let _ = write!(err, "\r\x1b[2K{} {bar}{words}", t.target);
            if t.state.ended() {
                let _ = writeln!(err);
            }
        } else if self.last.as_deref() != Some(words.as_str()) {
            let _ = writeln!(err, "task {} {}: {words}", t.id, t.target);
        }
        let _ = err.flush();
        self.last = Some(words);
    }
}

/// Follow a task until it ends, showing its progress.
pub async fn follow(c: &Client, mut task: Task) -> Result<Task, ClientError> {
    let mut progress = Progress::new();
    loop {
        progress.show(&task);
        if task.state.ended() {
            return Ok(task);
        }
        tokio::time::sleep(POLL).await;
        task = c.call(Method::GET, &paths::task(&task.id), None).await?;
    }
}

/// What a task that ended gave: its result as the operation's answer type, or its error
/// as the error the operation would have answered with (exit 1 either way).
pub fn outcome<T: DeserializeOwned>(task: Task) -> Result<T, ClientError> {
    match (task.state, task.result, task.error) {
        (TaskState::Succeeded, Some(v), _) => {
            serde_json::from_value(v).map_err(|e| ClientError::Unexpected {
                status: StatusCode::OK,
                text: format!("task {}: unreadable result: {e}", task.id),
            })
        }
        (TaskState::Cancelled, _, _) => Err(ClientError::Failed(format!(
            "task {} was cancelled",
            task.id
        ))),
        (_, _, Some(error)) => Err(ClientError::Api {
            status: StatusCode::CONFLICT,
            body: ErrorBody { error },
        }),
        (state, ..) => Err(ClientError::Failed(format!(
            "task {} ended {state:?} without a result",
            task.id
        ))),
    }
}

/// A command whose work may become a task: with `wait`, follow it and give its result;
/// without, print the task and stop there.
pub async fn start_and_follow<T: DeserializeOwned>(
    c: &Client,
    path: &str,
    body: Option<&serde_json::Value>,
    wait: bool,
    json: bool,
) -> Result<Option<T>, ClientError> {
    request_and_follow(c, Method::POST, path, body, wait, json).await
}

/// `start_and_follow` with another method (a `DELETE` that runs as a task).
pub async fn request_and_follow<T: DeserializeOwned>(
    c: &Client,
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    wait: bool,
    json: bool,
) -> Result<Option<T>, ClientError> {
    let answer: serde_json::Value = c.call(method, path, body).await?;
    match started(answer, wait, json) {
        Begun::Answer(v) => {
            serde_json::from_value(v)
                .map(Some)
                .map_err(|e| ClientError::Unexpected {
                    status: StatusCode::OK,
                    text: e.to_string(),
                })
        }
        Begun::Left => Ok(None),
        Begun::Task(task) => outcome(follow(c, *task).await?).map(Some),
    }
}

/// A `POST` that always starts a task: the task once it has ended (`None` without
/// `wait`), for commands that read more than its result (a cancelled evacuation's
/// report).
pub async fn start_and_follow_task(
    c: &Client,
    path: &str,
    body: Option<&serde_json::Value>,
    wait: bool,
    json: bool,
) -> Result<Option<Task>, ClientError> {
    let answer: serde_json::Value = c.call(Method::POST, path, body).await?;
    match started(answer, wait, json) {
        Begun::Task(task) => follow(c, *task).await.map(Some),
        Begun::Left => Ok(None),
        Begun::Answer(_) => Err(ClientError::Failed("expected a task".into())),
    }
}

/// What a request that may start a task answered.
enum Begun {
    /// The operation's own answer (it was quick).
    Answer(serde_json::Value),
    /// A task, to follow.
    Task(Box<Task>),
    /// A task not followed (`--no-wait`): printed.
    Left,
}

fn started(answer: serde_json::Value, wait: bool, json: bool) -> Begun {
    // A task (202) has an id and a state; any other answer is the operation's own.
    let task: Option<Task> = answer
        .get("state")
        .filter(|_| answer.get("id").is_some() && answer.get("kind").is_some())
        .and_then(|_| serde_json::from_value(answer.clone()).ok());
    let Some(task) = task else {
        return Begun::Answer(answer);
    };
    if !wait {
        if json {
            print_json(&task);
        } else {
            println!(
                "task {} started ({}); follow it with `uvmm task wait {}`",
                task.id, task.target, task.id
            );
        }
        return Begun::Left;
    }
    Begun::Task(Box::new(task))
}

pub async fn run(c: &Client, cmd: TaskCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        TaskCmd::List => {
            let tasks: Vec<Task> = c.call(Method::GET, &paths::tasks(), None).await?;
            if json {
                print_json(&tasks);
            } else {
                print!("{}", task_table(&tasks));
            }
        }
        TaskCmd::Show { id } => {
            let task: Task = c.call(Method::GET, &paths::task(&id), None).await?;
            if json {
                print_json(&task);
            } else {
                print!("{}", task_table(std::slice::from_ref(&task)));
            }
        }
        TaskCmd::Wait { id } => {
            let task: Task = c.call(Method::GET, &paths::task(&id), None).await?;
            let task = follow(c, task).await?;
            if json {
                print_json(&task);
            }
            if task.state != TaskState::Succeeded {
                return Err(ClientError::Failed(format!(
                    "task {}: {}",
                    task.id,
                    progress_words(&task)
                )));
            }
        }
        TaskCmd::Cancel { id } => {
            let task: Task = c.call(Method::DELETE, &paths::task(&id), None).await?;
            if json {
                print_json(&task);
            } else {
                println!(
                    "task {} is asked to stop ({})",
                    task.id,
                    progress_words(&task)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvmm_api::{CancelMode, TaskKind};

    fn task(state: TaskState) -> Task {
        Task {
            id: "t1".into(),
            kind: TaskKind::VolumeClone,
            state,
            host: "test:///default".into(),
            host_id: "default".into(),
            target: "default/a.img -> b.img".into(),
            uuid: None,
            user: "root".into(),
            started: "T".into(),
            ended: None,
            percent: Some(42.0),
            bytes_done: Some(3 << 30),
            bytes_total: Some(7 << 30),
            cancel: CancelMode::Undo,
            result: None,
            error: None,
            migration: None,
            parent: None,
        }
    }

    #[test]
    fn words_and_outcomes() {
        assert_eq!(
            progress_words(&task(TaskState::Running)),
            "running 42% (3 GiB of 7 GiB)"
        );
        assert_eq!(progress_words(&task(TaskState::Cancelled)), "cancelled");
        let mut done = task(TaskState::Succeeded);
        done.result = Some(serde_json::json!(5));
        assert_eq!(outcome::<u32>(done).unwrap(), 5);
        let mut failed = task(TaskState::Failed);
        failed.error = Some(uvmm_api::ErrorInfo {
            code: "conflict".into(),
            message: "no room".into(),
            details: None,
        });
        assert_eq!(progress_words(&failed), "failed: no room");
        assert!(matches!(
            outcome::<u32>(failed),
            Err(ClientError::Api { .. })
        ));
        assert!(matches!(
            outcome::<u32>(task(TaskState::Cancelled)),
            Err(ClientError::Failed(_))
        ));
    }
}
