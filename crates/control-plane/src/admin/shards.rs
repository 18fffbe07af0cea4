//! `GET shards` (registered shards, shard map epochs, leases) and
//! `POST shards` (register one and start a new epoch over every shard).
//!
//! The new epoch starts `start_in_secs` (default 10) in the future, so
//! every gateway has learned the new map before traces route to the new
//! shard: traces that started earlier stay where they are.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use store::shard::{Epoch, ShardId};

use super::{
    error::{ApiError, Refusal, WriteAnswer, answer},
    extract::{Consistency, JsonBody},
    read,
};
use crate::raft::{Command, ControlState, node::ControlPlane};
use control_state::{Lease, Shard};

/// Default delay before a new epoch starts.
pub const DEFAULT_START_IN_SECS: u64 = 10;
/// The furthest ahead an epoch may start: a far-future epoch would hold up
/// every later shard addition until it started.
pub const MAX_START_IN_SECS: u64 = 24 * 3600;

/// `GET shards`. Passwords in shard URLs are masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardsView {
    pub shards: BTreeMap<ShardId, Shard>,
    pub epochs: Vec<Epoch>,
    pub leases: BTreeMap<ShardId, Lease>,
}

impl ShardsView {
    pub fn of(state: &ControlState) -> Self {
        Self {
            shards: state
                .shards
                .iter()
                .map(|(id, s)| {
                    let url = redact_password(&s.url);
                    (*id, Shard { url })
                })
                .collect(),
            epochs: state
                .shard_map
                .as_ref()
                .map(|m| m.epochs().to_vec())
                .unwrap_or_default(),
            leases: state.leases.clone(),
        }
    }
}

pub async fn list(
    State(plane): State<Arc<ControlPlane>>,
    consistency: Consistency,
) -> Result<Json<ShardsView>, ApiError> {
    let state = read(&plane, consistency).await?;
    Ok(Json(ShardsView::of(&state)))
}

/// `POST shards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddShard {
    pub url: String,
    /// Default: one more than the largest registered id, or 0.
    #[serde(default)]
    pub id: Option<ShardId>,
    #[serde(default)]
    pub start_in_secs: Option<u64>,
}

/// The answer to `POST shards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardAdded {
    #[serde(flatten)]
    pub answer: WriteAnswer,
    pub shard: ShardId,
    /// When the epoch including the shard starts (0 for the first shards:
    /// the first epoch covers all time).
    pub start_unix_nano: u64,
}

/// What to propose for an [`AddShard`], or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Propose {
        shard: ShardId,
        start_unix_nano: u64,
        command: Command,
    },
    /// The URL is already registered under this id (a retried request).
    AlreadyRegistered { shard: ShardId },
}

/// Checks the request against the current state (pure).
pub fn plan(state: &ControlState, req: AddShard, now_unix_nano: u64) -> Result<Plan, ApiError> {
    check_url(&req.url)?;
    let start_in_secs = req.start_in_secs.unwrap_or(DEFAULT_START_IN_SECS);
    if start_in_secs > MAX_START_IN_SECS {
        return Err(ApiError::BadRequest(format!(
            "start_in_secs must be at most {MAX_START_IN_SECS} (one day)"
        )));
    }
    if let Some((id, _)) = state.shards.iter().find(|(_, s)| s.url == req.url) {
        return match req.id {
            None => Ok(Plan::AlreadyRegistered { shard: *id }),
            Some(wanted) if wanted == *id => Ok(Plan::AlreadyRegistered { shard: *id }),
            Some(_) => Err(ApiError::Conflict(format!(
                "this url is already registered as shard {id}"
            ))),
        };
    }
    let shard = match req.id {
        Some(id) if state.shards.contains_key(&id) => {
            return Err(ApiError::Conflict(format!(
                "shard {id} is already registered (with another url)"
            )));
        }
        Some(id) => id,
        None => next_id(state)?,
    };
    let start_unix_nano = if state.shard_map.is_none() {
        0
    } else {
        now_unix_nano.saturating_add(start_in_secs.saturating_mul(1_000_000_000))
    };
    let command = Command::AddShards {
        shards: [(shard, Shard { url: req.url })].into(),
        start_unix_nano,
    };
    Ok(Plan::Propose {
        shard,
        start_unix_nano,
        command,
    })
}

/// One more than the largest registered shard id, or 0 (ids are never
/// reused: shards are not removed).
pub fn next_id(state: &ControlState) -> Result<ShardId, ApiError> {
    match state.shards.keys().next_back() {
        None => Ok(0),
        Some(max) => max
            .checked_add(1)
            .ok_or_else(|| ApiError::Conflict("no shard id left; give one with `id`".into())),
    }
}

/// Only Postgres stores shard by trace id.
pub fn check_url(url: &str) -> Result<(), ApiError> {
    let rest = url.split_once("://").and_then(|(scheme, rest)| {
        let pg =
            scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql");
        pg.then_some(rest)
    });
    match rest {
        Some(rest) if !rest.is_empty() && !rest.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(ApiError::BadRequest(format!(
            "shard url {:?}: expected postgres://[USER[:PASSWORD]@]HOST[:PORT]/DB",
            redact_password(url)
        ))),
    }
}

/// `scheme://user:secret@host/db?password=secret` →
/// `scheme://user:***@host/db?password=***`: the userinfo password and
/// every `password` / `sslpassword` query parameter (libpq takes both).
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// Masks the values of `password` and `sslpassword` in the query part of
/// `tail` (`/db?…#…`).
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _))
                if key.eq_ignore_ascii_case("password")
                    || key.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{key}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    let mut out = format!("{path}?{}", params.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub async fn add(
    State(plane): State<Arc<ControlPlane>>,
    JsonBody(req): JsonBody<AddShard>,
) -> Result<Json<ShardAdded>, ApiError> {
    let state = plane.read_linearizable().await?;
    match plan(&state, req, now_unix_nano())? {
        Plan::AlreadyRegistered { shard } => Ok(Json(ShardAdded {
            answer: WriteAnswer::unchanged(),
            shard,
            start_unix_nano: epoch_start_of(&state, shard),
        })),
        Plan::Propose {
            shard,
            start_unix_nano,
            command,
        } => {
            let applied = plane.write(command).await?;
            Ok(Json(ShardAdded {
                answer: answer(applied, Refusal::Conflict)?,
                shard,
                start_unix_nano,
            }))
        }
    }
}

/// The start of the first epoch listing `shard`.
fn epoch_start_of(state: &ControlState, shard: ShardId) -> u64 {
    state
        .shard_map
        .as_ref()
        .and_then(|m| m.epochs().iter().find(|e| e.shards.contains(&shard)))
        .map_or(0, |e| e.start_unix_nano)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str, id: Option<ShardId>) -> AddShard {
        AddShard {
            url: url.into(),
            id,
            start_in_secs: None,
        }
    }

    fn with_shards(ids: &[ShardId]) -> ControlState {
        let mut s = ControlState::default();
        let shards = ids
            .iter()
            .map(|id| {
                let url = format!("postgres://pg-{id}/traces");
                (*id, Shard { url })
            })
            .collect();
        let add = Command::AddShards {
            shards,
            start_unix_nano: 0,
        };
        assert_eq!(s.apply(add), control_state::Applied::Done);
        s
    }

    #[test]
    fn ids_default_to_one_past_the_largest() {
        assert_eq!(next_id(&ControlState::default()).ok(), Some(0));
        assert_eq!(next_id(&with_shards(&[0, 1, 5])).ok(), Some(6));
        assert!(matches!(
            next_id(&with_shards(&[ShardId::MAX])),
            Err(ApiError::Conflict(_))
        ));
    }

    #[test]
    fn the_new_epoch_starts_in_the_future_except_the_first() {
        let now = 1_000_000_000_000;
        let Ok(Plan::Propose {
            shard,
            start_unix_nano,
            command,
        }) = plan(&with_shards(&[0, 1]), req("postgres://pg-new/t", None), now)
        else {
            panic!("planned")
        };
        assert_eq!((shard, start_unix_nano), (2, now + 10_000_000_000));
        let mut state = with_shards(&[0, 1]);
        assert_eq!(state.apply(command), control_state::Applied::Done);
        assert_eq!(state.shard_map.map(|m| m.epochs().len()), Some(2));

        let first = plan(
            &ControlState::default(),
            req("postgresql://pg/t", Some(3)),
            now,
        );
        assert!(matches!(
            first,
            Ok(Plan::Propose {
                shard: 3,
                start_unix_nano: 0,
                ..
            })
        ));
    }

    #[test]
    fn retries_are_unchanged_and_clashes_conflict() {
        let s = with_shards(&[0, 1]);
        for id in [None, Some(1)] {
            assert_eq!(
                plan(&s, req("postgres://pg-1/traces", id), 0).ok(),
                Some(Plan::AlreadyRegistered { shard: 1 })
            );
        }
        assert!(matches!(
            plan(&s, req("postgres://pg-1/traces", Some(4)), 0),
            Err(ApiError::Conflict(_))
        ));
        assert!(matches!(
            plan(&s, req("postgres://other/traces", Some(0)), 0),
            Err(ApiError::Conflict(_))
        ));
        let mut far = req("postgres://pg-9/t", None);
        far.start_in_secs = Some(MAX_START_IN_SECS + 1);
        assert!(matches!(plan(&s, far, 0), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn only_postgres_urls_and_passwords_are_masked() {
        for ok in [
            "postgres://h/db",
            "postgresql://u:p@h:5432/db?sslmode=disable",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "sqlite://x.db",
            "postgres://",
            "h/db",
            "postgres://h /db",
            "",
        ] {
            assert!(
                matches!(check_url(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
        assert_eq!(
            redact_password("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_password("postgres://h/db?x=a@b"),
            "postgres://h/db?x=a@b"
        );
        assert_eq!(
            redact_password("postgres://u@h/db?sslmode=require&password=s3cret&PassWord=x"),
            "postgres://u@h/db?sslmode=require&password=***&PassWord=***"
        );
        assert_eq!(
            redact_password("postgresql://u:a@h/db?sslpassword=k#frag"),
            "postgresql://u:***@h/db?sslpassword=***#frag"
        );
        let refused = check_url("mysql://u:s3cret@h/db")
            .err()
            .map(|e| e.to_string());
        assert!(refused.is_some_and(|m| !m.contains("s3cret")));
    }
}
