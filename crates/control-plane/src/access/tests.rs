use axum::http::{HeaderMap, HeaderValue, header};
use control_state::{ApiToken, Command, ControlState, Role};
use model::access::Scope;

use super::*;

const ADMIN: &str = "bootstrap-admin-secret";
const READ: &str = "mrd_read";
const WIDE: &str = "mrd_wide_admin";
const NARROW: &str = "mrd_narrow_admin";

fn with(auth: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(a) = auth {
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(a).expect("header"),
        );
    }
    h
}

fn state() -> ControlState {
    let mut s = ControlState::default();
    for (secret, name, role, clusters, expires) in [
        (READ, "reader", Role::Read, vec!["a"], Some(5_000)),
        (WIDE, "ops", Role::Admin, vec!["*"], None),
        (NARROW, "team-a", Role::Admin, vec!["a"], None),
    ] {
        let token = ApiToken {
            name: name.into(),
            role,
            clusters: clusters.into_iter().map(str::to_owned).collect(),
            expires_at_ms: expires,
            created_at_ms: 1_000,
        };
        let digest = secret::digest_hex(secret);
        assert_eq!(
            s.apply(Command::CreateToken { digest, token }),
            control_state::Applied::Done
        );
    }
    s
}

#[test]
fn tokens_mode_needs_a_known_unexpired_token() {
    let policy = AccessPolicy::new(AuthMode::Tokens, Some(ADMIN));
    let s = state();
    let who = |auth: Option<&str>, now: u64| resolve(&with(auth), &policy, &s, now);

    let admin = who(Some(&format!("Bearer {ADMIN}")), 0).expect("bootstrap");
    assert_eq!(admin.kind, PrincipalKind::Bootstrap);
    assert!(admin.is_admin());

    let reader = who(Some(&format!("bearer {READ}")), 4_999).expect("read");
    assert_eq!(reader.role, Role::Read);
    assert_eq!(reader.scope, Scope::only(["a"]));
    assert_eq!(&*reader.name, "reader");
    assert!(!reader.is_admin());
    // Expired from its instant on.
    assert_eq!(
        who(Some(&format!("Bearer {READ}")), 5_000),
        Err(AccessError::Invalid)
    );

    assert!(
        who(Some(&format!("Bearer {WIDE}")), 0)
            .expect("ops")
            .is_admin()
    );
    let narrow = who(Some(&format!("Bearer {NARROW}")), 0).expect("team-a");
    assert!(
        !narrow.is_admin(),
        "an admin of one cluster is not a cluster admin"
    );

    for (auth, refusal) in [
        (None, AccessError::Missing),
        (Some("Basic YTpi".to_owned()), AccessError::Missing),
        (Some("Bearer ".to_owned()), AccessError::Invalid),
        (Some("Bearer mrd_unknown".to_owned()), AccessError::Invalid),
        (Some(format!("Bearer {READ}x")), AccessError::Invalid),
        (
            Some(format!("Bearer {}", &ADMIN[1..])),
            AccessError::Invalid,
        ),
    ] {
        assert_eq!(who(auth.as_deref(), 0), Err(refusal), "{auth:?}");
    }
}

#[test]
fn open_mode_lets_anonymous_in_but_checks_what_is_sent() {
    let s = state();
    let open = AccessPolicy::open();
    let anon = resolve(&with(None), &open, &s, 0).expect("anonymous");
    assert_eq!(
        (anon.kind, anon.scope.clone()),
        (PrincipalKind::Anonymous, Scope::All)
    );
    assert!(anon.is_admin());
    let reader = resolve(&with(Some(&format!("Bearer {READ}"))), &open, &s, 0).expect("read");
    assert_eq!(reader.scope, Scope::only(["a"]));
    assert_eq!(
        resolve(&with(Some("Bearer nope")), &open, &s, 0),
        Err(AccessError::Invalid)
    );
    // With an admin token (or beyond loopback), anonymous callers only read.
    let guarded = AccessPolicy::new(
        AuthMode::Open {
            anonymous_admin: false,
        },
        Some(ADMIN),
    );
    let anon = resolve(&with(None), &guarded, &s, 0).expect("anonymous");
    assert!(!anon.is_admin());
    assert_eq!(anon.scope, Scope::All);
    // An empty --admin-token is no admin token.
    let empty = AccessPolicy::new(AuthMode::Tokens, Some(""));
    assert_eq!(
        resolve(&with(Some("Bearer ")), &empty, &s, 0),
        Err(AccessError::Invalid)
    );
}

#[test]
fn refusals_are_json_with_a_bearer_challenge() {
    for (e, status, challenge) in [
        (AccessError::Missing, 401, "Bearer realm=\"meridian\""),
        (AccessError::Invalid, 401, "invalid_token"),
        (AccessError::Forbidden, 403, "insufficient_scope"),
    ] {
        let r = e.into_response();
        assert_eq!(r.status().as_u16(), status);
        let h = r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap_or_default();
        assert!(h.starts_with("Bearer ") && h.contains(challenge), "{h}");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap_or_default(),
            "application/json"
        );
    }
}
