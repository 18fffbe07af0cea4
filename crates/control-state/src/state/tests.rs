use std::collections::BTreeMap;

use model::shard::ShardId;
use model::{RetentionPolicy, sampling::SamplingConfig};

use super::*;

fn members(ids: &[NodeId]) -> BTreeMap<NodeId, Member> {
    ids.iter()
        .map(|n| {
            let m = Member {
                node_name: String::new(),
                raft_addr: format!("10.0.0.{n}:4321"),
                federation_addr: format!("10.0.0.{n}:4320"),
                http_addr: format!("10.0.0.{n}:16686"),
            };
            (*n, m)
        })
        .collect()
}

fn shards(ids: &[ShardId]) -> BTreeMap<ShardId, Shard> {
    ids.iter()
        .map(|id| {
            (
                *id,
                Shard {
                    url: format!("postgres://pg-{id}/traces"),
                },
            )
        })
        .collect()
}

fn cluster_of_three() -> ControlState {
    let mut s = ControlState::default();
    s.set_members(members(&[1, 2, 3]));
    let add = Command::AddShards {
        shards: shards(&[0, 1]),
        start_unix_nano: 0,
    };
    assert_eq!(s.apply(add), Applied::Done);
    s
}

fn acquire(shard: ShardId, node: NodeId, now_ms: u64) -> Command {
    Command::AcquireLease {
        shard,
        node,
        now_ms,
        ttl_ms: 10_000,
    }
}

#[test]
fn the_same_log_gives_the_same_state() {
    // Membership entries and commands, as the log interleaves them.
    let log: Vec<Result<Vec<NodeId>, Command>> = vec![
        Ok(vec![1]),
        Ok(vec![1, 2]),
        Err(Command::AddShards {
            shards: shards(&[0]),
            start_unix_nano: 0,
        }),
        Err(acquire(0, 1, 1_000)),
        Err(acquire(0, 2, 2_000)),
        Err(Command::SetRetention {
            policy: RetentionPolicy {
                default_hours: Some(72),
                clusters: BTreeMap::new(),
            },
        }),
        Ok(vec![2]),
        Err(acquire(0, 2, 3_000)),
    ];
    let run = || {
        let mut s = ControlState::default();
        let answers: Vec<Applied> = log
            .iter()
            .cloned()
            .map(|step| match step {
                Ok(ids) => {
                    s.set_members(members(&ids));
                    Applied::Done
                }
                Err(c) => s.apply(c),
            })
            .collect();
        (s, answers)
    };
    let (a, answers) = run();
    assert_eq!(run(), (a.clone(), answers.clone()));
    assert!(matches!(answers[4], Applied::Refused(_)), "node 2 waits");
    // Node 1 left: its lease ended, node 2 takes it with a new fence.
    assert_eq!(
        a.leases[&0],
        Lease {
            holder: 2,
            fence: 2,
            expires_at_ms: 13_000
        }
    );
    // The state survives serialisation (snapshots).
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<ControlState>(&json).unwrap(), a);
}

#[test]
fn one_holder_per_shard_and_fences_grow() {
    let mut s = cluster_of_three();
    let Applied::Lease(first) = s.apply(acquire(0, 1, 0)) else {
        panic!("free lease granted")
    };
    // Another node is refused until the lease expires.
    assert!(matches!(s.apply(acquire(0, 2, 9_999)), Applied::Refused(_)));
    // The holder renews without a new fence.
    let Applied::Lease(renewed) = s.apply(acquire(0, 1, 5_000)) else {
        panic!("renewal")
    };
    assert_eq!(
        (renewed.fence, renewed.expires_at_ms),
        (first.fence, 15_000)
    );
    // Expired: another node takes over with a larger fence.
    let Applied::Lease(taken) = s.apply(acquire(0, 2, 15_000)) else {
        panic!("expired lease taken")
    };
    assert!(taken.fence > first.fence);
    // The old holder can no longer release (or act) under its fence.
    assert!(matches!(
        s.apply(Command::ReleaseLease {
            shard: 0,
            node: 1,
            fence: first.fence
        }),
        Applied::Refused(_)
    ));
    assert_eq!(
        s.apply(Command::ReleaseLease {
            shard: 0,
            node: 2,
            fence: taken.fence
        }),
        Applied::Done
    );
    // Shards and nodes must exist.
    assert!(matches!(s.apply(acquire(9, 1, 0)), Applied::Refused(_)));
    assert!(matches!(s.apply(acquire(1, 9, 0)), Applied::Refused(_)));
}

#[test]
fn adding_shards_starts_an_epoch_and_keeps_old_traces_routed() {
    let mut s = cluster_of_three();
    let before = s.shard_map.clone().unwrap();
    assert_eq!(
        s.apply(Command::AddShards {
            shards: shards(&[2]),
            start_unix_nano: 5_000,
        }),
        Applied::Done
    );
    let after = s.shard_map.clone().unwrap();
    assert_eq!(after.epochs().len(), 2);
    assert_eq!(after.all_shards(), [0, 1, 2]);
    for n in 1..500u128 {
        let id = model::TraceId::from_bytes(&(n * 7_919).to_be_bytes()).unwrap();
        assert_eq!(after.route(id, 4_999), before.route(id, 4_999));
    }
    // Re-adding a shard, or an epoch not after the last, is refused and
    // changes nothing.
    let snapshot = s.clone();
    // A retried add of the same shard changes nothing and is no error.
    assert_eq!(
        s.apply(Command::AddShards {
            shards: shards(&[2]),
            start_unix_nano: 9_000,
        }),
        Applied::Unchanged
    );
    let mut moved = shards(&[1]);
    if let Some(shard) = moved.get_mut(&1) {
        shard.url = "postgres://elsewhere/traces".into();
    }
    for bad in [
        Command::AddShards {
            shards: moved,
            start_unix_nano: 9_000,
        },
        Command::AddShards {
            shards: shards(&[3]),
            start_unix_nano: 5_000,
        },
        Command::AddShards {
            shards: BTreeMap::new(),
            start_unix_nano: 9_000,
        },
    ] {
        assert!(matches!(s.apply(bad), Applied::Refused(_)));
    }
    assert_eq!(s, snapshot);
}

#[test]
fn invalid_data_is_refused_without_changing_anything() {
    let mut s = cluster_of_three();
    let snapshot = s.clone();
    let mut bad_policy = SamplingConfig::default();
    bad_policy.head.default_probability = 2.0;
    for bad in [
        Command::PutPolicy {
            cluster: "eu".into(),
            policy: bad_policy,
        },
        Command::SetRetention {
            policy: RetentionPolicy {
                default_hours: Some(0),
                clusters: BTreeMap::new(),
            },
        },
        Command::PutCluster {
            name: "not a cluster name!".into(),
            cluster: RegisteredCluster {
                identity: "spiffe://meridian/cluster/x".into(),
            },
        },
    ] {
        assert!(matches!(s.apply(bad), Applied::Refused(_)));
    }
    assert_eq!(s, snapshot);
    assert_eq!(
        s.apply(Command::DeleteCluster {
            name: "nope".into()
        }),
        Applied::Unchanged
    );
    assert_eq!(
        s.apply(Command::PutPolicy {
            cluster: "*".into(),
            policy: SamplingConfig::default(),
        }),
        Applied::Done
    );
    assert_eq!(
        s.apply(Command::DeletePolicy {
            cluster: "*".into()
        }),
        Applied::Done
    );
}

#[test]
fn serials_are_normalized_and_revoked_once() {
    assert_eq!(normalize_serial("0A:1b:FF").as_deref(), Some("a1bff"));
    assert_eq!(normalize_serial(" 0x00a1bff ").as_deref(), Some("a1bff"));
    assert_eq!(normalize_serial("00").as_deref(), Some("0"));
    for bad in ["", "0x", "zz", "a1 b2", &"a".repeat(41)] {
        assert_eq!(normalize_serial(bad), None, "{bad:?}");
    }
    let mut s = ControlState::default();
    let revoke = |serial: &str| Command::RevokeCertificate {
        serial: serial.into(),
    };
    assert_eq!(s.apply(revoke("0A:1B:FF")), Applied::Done);
    assert_eq!(s.apply(revoke("a1bff")), Applied::Unchanged);
    assert!(matches!(s.apply(revoke("not hex")), Applied::Refused(_)));
    assert_eq!(s.revoked_serials.len(), 1);
    assert!(s.revoked_serials.contains("a1bff"));
}

fn token(name: &str, clusters: &[&str]) -> tokens::ApiToken {
    tokens::ApiToken {
        name: name.into(),
        role: tokens::Role::Read,
        clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
        expires_at_ms: Some(2_000),
        created_at_ms: 1_000,
    }
}

fn digest(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

#[test]
fn tokens_are_keyed_by_digest_and_unique_by_name() {
    let mut s = ControlState::default();
    let create = |d: String, t: tokens::ApiToken| Command::CreateToken {
        digest: d,
        token: t,
    };
    assert_eq!(
        s.apply(create(digest(1), token("ci", &["a"]))),
        Applied::Done
    );
    // A retried write is unchanged; the same name under another secret is not.
    assert_eq!(
        s.apply(create(digest(1), token("ci", &["a"]))),
        Applied::Unchanged
    );
    assert!(matches!(
        s.apply(create(digest(2), token("ci", &["b"]))),
        Applied::Refused(m) if m.contains("\"ci\"")
    ));
    assert!(matches!(
        s.apply(create(digest(1), token("other", &["a"]))),
        Applied::Refused(_)
    ));
    for (d, t) in [
        ("ABC".to_owned(), token("x", &["a"])),
        (digest(0xab).to_uppercase(), token("x", &["a"])),
        (digest(3), token("", &["a"])),
        (digest(3), token("a b", &["a"])),
        (digest(3), token("x", &[])),
        (digest(3), token("x", &["*", "a"])),
        (digest(3), token("x", &["Not-A-Cluster"])),
    ] {
        assert!(
            matches!(s.apply(create(d.clone(), t.clone())), Applied::Refused(_)),
            "{d} {t:?}"
        );
    }
    assert_eq!(
        s.apply(create(digest(3), token("all", &["*"]))),
        Applied::Done
    );
    assert!(s.tokens[&digest(3)].all_clusters());
    assert_eq!(s.tokens.len(), 2);
    assert_eq!(
        s.apply(Command::RevokeToken { name: "ci".into() }),
        Applied::Done
    );
    assert!(!s.tokens.contains_key(&digest(1)));
    assert_eq!(
        s.apply(Command::RevokeToken { name: "ci".into() }),
        Applied::Unchanged
    );
    // A revoked name can be used again.
    assert_eq!(
        s.apply(create(digest(4), token("ci", &["a"]))),
        Applied::Done
    );
}

#[test]
fn a_token_expires_at_its_instant_and_state_without_tokens_still_loads() {
    let t = token("ci", &["a"]);
    assert!(t.valid_at(1_999) && !t.valid_at(2_000) && !t.valid_at(u64::MAX));
    let forever = tokens::ApiToken {
        expires_at_ms: None,
        ..t
    };
    assert!(forever.valid_at(u64::MAX));
    // Snapshots written before tokens existed have no `tokens` key.
    let mut json = serde_json::to_value(ControlState::default()).expect("json");
    if let Some(o) = json.as_object_mut() {
        o.remove("tokens");
    }
    let back: ControlState = serde_json::from_value(json).expect("old snapshot");
    assert!(back.tokens.is_empty());
}
