use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
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
    let who = |auth: Option<&str>, now: u64| resolve(&with(auth), None, &policy, &s, now);

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
    let anon = resolve(&with(None), None, &open, &s, 0).expect("anonymous");
    assert_eq!(
        (anon.kind, anon.scope.clone()),
        (PrincipalKind::Anonymous, Scope::All)
    );
    assert!(anon.is_admin());
    let reader = resolve(&with(Some(&format!("Bearer {READ}"))), None, &open, &s, 0).expect("read");
    assert_eq!(reader.scope, Scope::only(["a"]));
    assert_eq!(
        resolve(&with(Some("Bearer nope")), None, &open, &s, 0),
        Err(AccessError::Invalid)
    );
    // With an admin token (or beyond loopback), anonymous callers only read.
    let guarded = AccessPolicy::new(
        AuthMode::Open {
            anonymous_admin: false,
        },
        Some(ADMIN),
    );
    let anon = resolve(&with(None), None, &guarded, &s, 0).expect("anonymous");
    assert!(!anon.is_admin());
    assert_eq!(anon.scope, Scope::All);
    // An empty --admin-token is no admin token.
    let empty = AccessPolicy::new(AuthMode::Tokens, Some(""));
    assert_eq!(
        resolve(&with(Some("Bearer ")), None, &empty, &s, 0),
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

fn proxy_policy() -> AccessPolicy {
    let proxy = ProxyAuth {
        user_header: HeaderName::from_static(proxy::DEFAULT_USER_HEADER),
        groups_header: HeaderName::from_static(proxy::DEFAULT_GROUPS_HEADER),
        trusted: vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "::1/128".parse().expect("cidr"),
        ],
    };
    AccessPolicy::new(AuthMode::Proxy(proxy), Some(ADMIN))
}

fn proxied(user: Option<&str>, groups: &[&str], auth: Option<&str>) -> HeaderMap {
    let mut h = with(auth);
    if let Some(u) = user {
        h.insert(
            "x-forwarded-user",
            HeaderValue::from_str(u).expect("header"),
        );
    }
    for g in groups {
        h.append(
            "x-forwarded-groups",
            HeaderValue::from_str(g).expect("header"),
        );
    }
    h
}

fn with_groups() -> ControlState {
    let mut s = state();
    for (name, role, clusters) in [
        ("readers-a", Role::Read, vec!["a"]),
        ("readers-b", Role::Read, vec!["b"]),
        ("ops", Role::Admin, vec!["*"]),
    ] {
        let mapping = control_state::GroupMapping {
            role,
            clusters: clusters.into_iter().map(str::to_owned).collect(),
        };
        assert_eq!(
            s.apply(Command::SetGroup {
                name: name.into(),
                mapping
            }),
            control_state::Applied::Done
        );
    }
    s
}

#[test]
fn proxy_mode_maps_groups_to_the_highest_role_and_the_union_of_clusters() {
    let policy = proxy_policy();
    let s = with_groups();
    let proxy_ip: IpAddr = [10, 1, 2, 3].into();
    let who = |h: &HeaderMap, peer: Option<IpAddr>| resolve(h, peer, &policy, &s, 0);

    let alice = who(
        &proxied(Some("alice"), &["readers-a, unknown", "readers-b"], None),
        Some(proxy_ip),
    )
    .expect("mapped");
    assert_eq!(alice.kind, PrincipalKind::Proxy);
    assert_eq!(&*alice.name, "alice");
    assert_eq!(alice.role, Role::Read);
    assert_eq!(alice.scope, Scope::only(["a", "b"]));
    assert!(!alice.is_admin());

    let ops = who(
        &proxied(Some("bob"), &["readers-a,ops"], None),
        Some(proxy_ip),
    )
    .expect("ops");
    assert_eq!((ops.role, ops.scope.clone()), (Role::Admin, Scope::All));
    assert!(ops.is_admin());
    // An IPv4-mapped IPv6 peer is judged as IPv4; ::1 is trusted too.
    let mapped: IpAddr = "::ffff:10.9.9.9".parse().expect("ip");
    assert!(who(&proxied(Some("bob"), &["ops"], None), Some(mapped)).is_ok());
    assert!(
        who(
            &proxied(Some("bob"), &["ops"], None),
            Some("::1".parse().expect("ip"))
        )
        .is_ok()
    );

    // The proxy's user header wins over the bearer it passes along.
    let passed = who(
        &proxied(Some("bob"), &["ops"], Some("Bearer some-id-token")),
        Some(proxy_ip),
    );
    assert_eq!(passed.map(|p| p.kind), Ok(PrincipalKind::Proxy));

    for (headers, peer, refusal) in [
        // From an untrusted peer the headers are refused, even with a token.
        (
            proxied(Some("bob"), &["ops"], None),
            Some([127, 0, 0, 1].into()),
            AccessError::UntrustedProxy,
        ),
        (
            proxied(Some("bob"), &["ops"], None),
            None,
            AccessError::UntrustedProxy,
        ),
        (
            proxied(None, &["ops"], Some(&format!("Bearer {ADMIN}"))),
            Some([192, 168, 0, 1].into()),
            AccessError::UntrustedProxy,
        ),
        // Authenticated, but no group maps to a role: 403.
        (
            proxied(Some("carol"), &["unknown"], None),
            Some(proxy_ip),
            AccessError::NoMappedGroup,
        ),
        (
            proxied(Some("carol"), &[], None),
            Some(proxy_ip),
            AccessError::NoMappedGroup,
        ),
        (
            proxied(Some(" "), &["ops"], None),
            Some(proxy_ip),
            AccessError::ProxyUser,
        ),
        (
            proxied(Some(&"u".repeat(proxy::MAX_USER_LEN + 1)), &["ops"], None),
            Some(proxy_ip),
            AccessError::ProxyUser,
        ),
        // No credential at all.
        (
            proxied(None, &[], None),
            Some(proxy_ip),
            AccessError::Missing,
        ),
        (
            proxied(None, &["ops"], None),
            Some(proxy_ip),
            AccessError::Missing,
        ),
    ] {
        assert_eq!(who(&headers, peer), Err(refusal), "{headers:?} {peer:?}");
    }
    assert_eq!(AccessError::NoMappedGroup.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        AccessError::UntrustedProxy.status(),
        StatusCode::UNAUTHORIZED
    );

    // Tokens and the --admin-token still work, from any peer.
    let local = Some([127, 0, 0, 1].into());
    assert!(
        who(&with(Some(&format!("Bearer {ADMIN}"))), local)
            .expect("admin")
            .is_admin()
    );
    assert_eq!(
        who(&with(Some(&format!("Bearer {READ}"))), local).map(|p| p.scope),
        Ok(Scope::only(["a"]))
    );
}
