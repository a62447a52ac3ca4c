//! Tasks: long operations running in the background, their progress and end, and
//! cancelling them.

use super::extract::*;
use super::{AppState, NoParams};
use crate::caller::Caller;
use crate::error::Error;
use crate::jobs::{Job, Target};
use crate::ops::Started;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use uvmm_api::*;

/// `?wait=` of the routes that may start a task.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitParam {
    /// `true` (the default, what clients that do not know tasks get): answer when the
    /// work is done, as always. `false`: answer at once with `202 Accepted`, the task and
    /// `Location: /api/v1/tasks/{id}`; follow it there or on the event stream.
    pub wait: Option<bool>,
}

/// Run a job that may become a task, and answer as `?wait=` asks: when it is done
/// (`answer` makes the answer from its output), or at once with 202 and the task.
pub(super) async fn start<J: Job>(
    s: &AppState,
    caller: &Caller,
    target: impl Into<Target>,
    job: J,
    wait: Option<bool>,
    answer: impl FnOnce(J::Output) -> Response,
) -> Result<Response, Error> {
    if wait.unwrap_or(true) {
        return Ok(answer(s.ops.run(caller, target, job).await?));
    }
    Ok(match s.ops.start(caller, target, job).await? {
        Started::Done(out) => answer(out),
        Started::Task(task, _) => accepted(*task),
    })
}

/// `202 Accepted` with the task and where to follow it.
fn accepted(task: Task) -> Response {
    let location = format!("{}/tasks/{}", API_PREFIX, task.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(task),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/tasks", responses((status = 200, body = [Task], description = "running tasks and those that ended recently, oldest first")))]
pub(super) async fn list_tasks(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(_): ApiQuery<NoParams>,
) -> Json<Vec<Task>> {
    let mut tasks = s.ops.tasks.list();
    if !caller.unrestricted(uvmm_auth::Permission::Read) {
        let cache = s.ops.shared.read();
        tasks.retain(|t| task_visible(&caller, &cache, t));
    }
    Json(tasks)
}

/// Whether a scoped caller sees a task (the list and the event stream): a VM task by its
/// VM, another by its host. A VM task whose VM is gone (deleted, or moved away) is only
/// for callers who see everything: the name that scopes match is no longer known.
pub(super) fn task_visible(caller: &Caller, cache: &crate::cache::Cache, t: &Task) -> bool {
    let Some(uuid) = t.uuid.as_deref() else {
        return caller.sees(&t.host_id, &t.host, None);
    };
    cache
        .host(&t.host)
        .and_then(|h| h.vms().get(uuid))
        .is_some_and(|v| caller.sees(&t.host_id, &t.host, Some(&v.name)))
}

#[utoipa::path(get, path = "/api/v1/tasks/{task}", params(("task" = String, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody, description = "no such task, or it ended too long ago")))]
pub(super) async fn show_task(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>, Error> {
    Ok(Json(s.ops.tasks.get(&id)?))
}

#[utoipa::path(delete, path = "/api/v1/tasks/{task}", params(("task" = String, Path)),
    responses((status = 202, body = Task, description = "asked to stop: see the task's `cancel` for what that does; the task ends `cancelled` (or `succeeded` if it was done first)"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the task has ended, or it cannot be cancelled (`cancel: none`)")))]
pub(super) async fn cancel_task(
    State(s): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, Error> {
    Ok((StatusCode::ACCEPTED, Json(s.ops.tasks.cancel(&id)?)))
}
