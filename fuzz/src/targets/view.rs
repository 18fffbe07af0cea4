//! The agent's zero-copy view of OTLP protobuf (`proto::view`), against
//! prost on the same bytes.

use proto::bounds::{self, DecodeLimits, Schema};

use super::{BASE, Target};

pub const VIEW: Target = Target {
    name: "otlp-view",
    about: "OTLP protobuf through the zero-copy view and the encoded cluster stamp, checked field by field against prost",
    bound: "2 × the scan's estimate + 160 × input + 256 KiB (the view's span and resource vectors, prost's tree, the stamped copy)",
    dict: super::otlp::PROTOBUF.dict,
    seeds: super::otlp::PROTOBUF.seeds,
    run,
};

fn run(input: &[u8]) -> usize {
    // The receivers parse only what the bounds scan let through.
    let Ok(found) = bounds::check_protobuf(input, &Schema::EXPORT_TRACE, &DecodeLimits::RECEIVER)
    else {
        return BASE;
    };
    if let Err(e) = proto::view::check::against_prost(input) {
        panic!("the view disagrees with prost: {e}");
    }
    super::otlp::scanned_bound(&found, input.len()) + 160 * input.len()
}
