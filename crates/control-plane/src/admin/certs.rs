//! The replicated certificate deny list: `GET certs/revoked` lists the
//! revoked serials, `POST certs/revoked` `{"serial"}` adds one (hex, with
//! or without `:`; stored normalized). Agents and gateway nodes presenting
//! a revoked certificate are refused on every call, open connections
//! included, as soon as the revocation is applied on the node they call.

use std::{collections::BTreeSet, sync::Arc};

use axum::{Json, extract::State};
use control_state::normalize_serial;
use serde::Deserialize;

use super::{
    error::{ApiError, Refusal, WriteAnswer, answer},
    extract::{Consistency, JsonBody},
    read,
};
use crate::raft::{Command, node::ControlPlane};

pub async fn revoked(
    State(plane): State<Arc<ControlPlane>>,
    consistency: Consistency,
) -> Result<Json<BTreeSet<String>>, ApiError> {
    Ok(Json(
        read(&plane, consistency).await?.revoked_serials.clone(),
    ))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    pub serial: String,
}

pub async fn revoke(
    State(plane): State<Arc<ControlPlane>>,
    JsonBody(req): JsonBody<Revoke>,
) -> Result<Json<WriteAnswer>, ApiError> {
    let serial = normalize_serial(&req.serial).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "serial {:?}: expected hex (at most 20 bytes, `:` separators allowed)",
            req.serial.chars().take(64).collect::<String>()
        ))
    })?;
    let applied = plane.write(Command::RevokeCertificate { serial }).await?;
    answer(applied, Refusal::Invalid).map(Json)
}
