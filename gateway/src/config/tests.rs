use super::*;

/// The defaults with `--auth none` (the default `--http` listens beyond
/// loopback, where an auth mode must be chosen).
fn defaults() -> Settings {
    Settings {
        auth: Some(AuthFlag::None),
        ..Settings::default()
    }
}

#[test]
fn the_default_http_port_needs_an_auth_mode() {
    let e = Settings::default().validate().map(drop).unwrap_err();
    assert_eq!(e.key, "auth");
    assert!(e.to_string().contains("--auth tokens"), "{e}");
    let local = Settings {
        http: Some("127.0.0.1:16686".into()),
        ..Settings::default()
    };
    assert_eq!(local.validate().unwrap().auth, AuthConfig::default());
    let file: Settings = toml::from_str("auth = \"tokens\"").unwrap();
    let cfg = Settings::default().merge(file).validate().unwrap();
    assert_eq!(cfg.auth.chosen, Some(AuthFlag::Tokens));
}

#[test]
fn retention_spec() {
    let p = parse_retention("168, eu-west=24").unwrap();
    assert_eq!(p.default_hours, Some(168));
    assert_eq!(p.clusters["eu-west"], 24);
    let only = parse_retention("eu-west=24").unwrap();
    assert_eq!(only.default_hours, None);
    for bad in ["x", "1,2", "eu=0", "0", "eu=soon"] {
        assert!(parse_retention(bad).is_err(), "{bad}");
    }
}

#[test]
fn store_urls_are_checked() {
    let with = |urls: &[&str]| Settings {
        store: Some(urls.iter().map(|u| u.to_string()).collect()),
        ..defaults()
    };
    assert!(
        with(&["postgres://h/a", "postgres://h/b"])
            .validate()
            .is_ok()
    );
    assert!(with(&["cassandra://h:9042/ks"]).validate().is_ok());
    for bad in [
        &["sqlite://a.db", "sqlite://b.db"][..],
        &["postgres://h/a", "sqlite://b.db"],
        &["cassandra://h/a", "cassandra://h/b"],
    ] {
        assert_eq!(with(bad).validate().unwrap_err().key, "store", "{bad:?}");
    }
}

#[test]
fn no_flags_means_embedded_store_and_dev_ca() {
    let cfg = defaults().validate().unwrap();
    assert_eq!(cfg.stores, ["sqlite://meridian-data/meridian.db"]);
    assert_eq!(cfg.tls, TlsSource::DevCa("meridian-data/tls".into()));
    assert_eq!(cfg.http.port(), 16686);
    assert_eq!(cfg.federation.port(), 4320);
    assert_eq!(cfg.otlp_grpc.port(), 4317);
    assert_eq!(cfg.otlp_http.port(), 4318);
}

#[test]
fn errors_name_the_key() {
    let s = Settings {
        tls: TlsFlags {
            tls_ca: Some("ca.pem".into()),
            ..TlsFlags::default()
        },
        ..defaults()
    };
    assert_eq!(s.validate().unwrap_err().key, "tls-ca");
    let s = Settings {
        store: Some(vec!["mysql://x".into()]),
        ..defaults()
    };
    assert_eq!(s.validate().unwrap_err().key, "store");
    let s = Settings {
        http: Some("not an address".into()),
        ..defaults()
    };
    assert_eq!(s.validate().unwrap_err().key, "http");
    let file: Settings = toml::from_str("http = \"127.0.0.1:9\"").unwrap();
    let s = Settings {
        http: Some("127.0.0.1:8".into()),
        ..defaults()
    };
    assert_eq!(s.merge(file).validate().unwrap().http.port(), 8);
}

#[test]
fn cluster_flags_are_checked() {
    let with = |f: fn(&mut Settings)| {
        let mut s = defaults();
        f(&mut s);
        s.validate()
    };
    let single = with(|_| {}).unwrap().cluster;
    assert_eq!((single.node_id, single.bootstrap), (1, Bootstrap::Single));
    assert_eq!(single.raft.port(), 4321);
    let peers = with(|s| {
        s.node_id = Some(2);
        s.raft = Some("10.0.0.2:4321".into());
        s.peers = Some("1=a:4321,2=b:4321,3=c:4321".into());
    })
    .unwrap()
    .cluster;
    assert!(matches!(peers.bootstrap, Bootstrap::Peers(p) if p.len() == 3));
    // This node must be listed; --peers and --join exclude each other;
    // peers cannot dial 0.0.0.0; ids start at 1.
    for (bad, key) in [
        (with(|s| s.peers = Some("2=b:4321".into())), "peers"),
        (
            with(|s| {
                s.peers = Some("1=a:1".into());
                s.join = Some("b:1".into());
            }),
            "join",
        ),
        (with(|s| s.join = Some("b:4321".into())), "advertise-host"),
        (with(|s| s.node_id = Some(0)), "node-id"),
        (
            with(|s| s.raft_advertise = Some("nope".into())),
            "raft-advertise",
        ),
    ] {
        assert_eq!(bad.unwrap_err().key, key);
    }
    let joined = with(|s| {
        s.join = Some("gw-0:4321".into());
        s.advertise_host = Some("gw-1".into());
        s.admin_token = Some(String::new());
    })
    .unwrap()
    .cluster;
    assert_eq!(joined.bootstrap, Bootstrap::Join("gw-0:4321".into()));
    assert_eq!(joined.admin_token, None, "an empty token is no token");
}

#[test]
fn https_does_not_replace_an_auth_mode() {
    // TLS protects the wire, not who calls: beyond loopback --auth is
    // still required.
    let tls = HttpTlsFlags {
        http_tls_cert: Some("cert.pem".into()),
        http_tls_key: Some("key.pem".into()),
    };
    let wide = Settings {
        http_tls: tls.clone(),
        ..Settings::default()
    };
    assert_eq!(wide.validate().map(drop).unwrap_err().key, "auth");
    let cfg = Settings {
        http_tls: tls,
        ..defaults()
    }
    .validate()
    .unwrap();
    assert_eq!(cfg.http_tls.map(|t| t.cert), Some("cert.pem".into()));
    let file: Settings = toml::from_str(
        "http-tls-cert = \"c.pem\"\nauth = \"proxy\"\nauth-proxy-trusted = [\"10.0.0.0/8\"]",
    )
    .unwrap();
    let e = Settings::default()
        .merge(file)
        .validate()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.key, "http-tls-key", "{e}");
}

#[test]
fn zipkin_http_follows_http_and_needs_auth_beyond_loopback() {
    let with = |http: &str, zipkin: Option<&str>, auth: Option<AuthFlag>| {
        Settings {
            http: Some(http.into()),
            zipkin_http: zipkin.map(str::to_owned),
            auth,
            ..Settings::default()
        }
        .validate()
    };
    let addr = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
    // The default is 9411 on --http's host: loopback stays loopback.
    let local = with("127.0.0.1:16686", None, None).unwrap();
    assert_eq!(local.zipkin_http, addr("127.0.0.1:9411"));
    let wide = with(":16686", None, Some(AuthFlag::Tokens)).unwrap();
    assert_eq!(wide.zipkin_http, addr("0.0.0.0:9411"));
    let off = with(":16686", Some("off"), Some(AuthFlag::Tokens)).unwrap();
    assert_eq!(off.zipkin_http, None);
    let port0 = with("127.0.0.1:0", Some("127.0.0.1:0"), None).unwrap();
    assert_eq!(port0.zipkin_http, addr("127.0.0.1:0"));
    // Beyond loopback without an --auth mode: refused, naming the key.
    let e = with("127.0.0.1:16686", Some(":9411"), None)
        .map(drop)
        .unwrap_err();
    assert_eq!(e.key, "zipkin-http", "{e}");
    assert!(with("127.0.0.1:16686", Some(":9411"), Some(AuthFlag::None)).is_ok());
    assert_eq!(
        with("127.0.0.1:1", Some("nowhere"), None)
            .map(drop)
            .unwrap_err()
            .key,
        "zipkin-http"
    );
    let file: Settings = toml::from_str("zipkin-http = \"off\"\nauth = \"tokens\"").unwrap();
    assert_eq!(
        Settings::default()
            .merge(file)
            .validate()
            .unwrap()
            .zipkin_http,
        None
    );
}
