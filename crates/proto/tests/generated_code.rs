//! The Rust code generated from Meridian's `.proto` files is committed
//! (`src/generated/`), so a build needs neither protox nor prost-build.
//! This test regenerates it and fails when the committed copy is stale.
//! `MERIDIAN_REGENERATE=1 cargo test -p proto --test generated_code`
//! rewrites the committed files.

use std::path::Path;

const FILES: [&str; 5] = [
    "proto/meridian/federation/v1/federation.proto",
    "proto/meridian/raft/v1/raft.proto",
    "proto/meridian/metrics/v1/metrics.proto",
    "proto/jaeger/api_v2/sampling.proto",
    // The official Zipkin v2 schema (openzipkin/zipkin-api), vendored.
    "proto/zipkin/zipkin.proto",
];

#[test]
fn committed_code_is_what_the_protos_generate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = root.join("src/generated");
    let out = tempfile::tempdir().unwrap();
    // The federation service decodes with `proto::codec::BoundedCodec`
    // (checked before decoding); the others with tonic's prost codec.
    for (files, codec) in [
        (&FILES[..1], Some("crate::codec::BoundedCodec")),
        (&FILES[1..], None),
    ] {
        let protos: Vec<_> = files.iter().map(|f| root.join(f)).collect();
        let fds = protox::compile(&protos, [root.join("proto")]).unwrap();
        let mut config = tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .out_dir(out.path());
        if let Some(codec) = codec {
            config = config.codec_path(codec);
        }
        config.compile_fds(fds).unwrap();
    }
    let mut generated: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    generated.sort();
    assert_eq!(generated.len(), FILES.len(), "{generated:?}");
    let regenerate = std::env::var_os("MERIDIAN_REGENERATE").is_some();
    for path in generated {
        let name = path.file_name().unwrap();
        let fresh = std::fs::read_to_string(&path).unwrap();
        let target = committed.join(name);
        if regenerate {
            std::fs::write(&target, &fresh).unwrap();
            continue;
        }
        let old = std::fs::read_to_string(&target).unwrap_or_default();
        assert!(
            old == fresh,
            "{} is stale: run MERIDIAN_REGENERATE=1 cargo test -p proto --test generated_code",
            target.display()
        );
    }
}
