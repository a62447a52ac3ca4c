//! VM profiles.

use super::extract::*;
use super::AppState;
use crate::error::Error;
use axum::extract::State;
use axum::Json;
use uvmm_api::*;

#[utoipa::path(get, path = "/api/v1/profiles", responses((status = 200, body = [Profile])))]
pub(super) async fn list_profiles(State(s): State<AppState>) -> Json<Vec<Profile>> {
    Json(s.ops.profiles().to_vec())
}

#[utoipa::path(get, path = "/api/v1/profiles/{name}", params(("name" = String, Path)),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
pub(super) async fn show_profile(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Profile>, Error> {
    s.ops.profile(&name).map(Json)
}
