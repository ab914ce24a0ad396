//! Generates the tonic peer's gRPC service and client (`bench.Bench`) with tonic-build's
//! manual builder: the messages are hand-written `prost::Message`s in
//! `src/peers/tonic.rs`, so there is no .proto and no protoc.

fn main() {
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(format!("crate::peers::tonic::{input}"))
            .output_type(format!("crate::peers::tonic::{output}"))
            .codec_path("tonic_prost::ProstCodec")
            .build()
    };
    let streamed = |name: &str, route: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type("crate::peers::tonic::StreamRequest")
            .output_type(format!("crate::peers::tonic::{output}"))
            .codec_path("tonic_prost::ProstCodec")
            .server_streaming()
            .build()
    };
    let service = tonic_build::manual::Service::builder()
        .name("Bench")
        .package("bench")
        .method(method("echo", "Echo", "EchoMessage", "EchoMessage"))
        .method(method("large", "Large", "BlobMessage", "BlobMessage"))
        .method(method("fail", "Fail", "FailRequest", "EchoMessage"))
        .method(streamed("stream_small", "StreamSmall", "EchoMessage"))
        .method(streamed("stream_large", "StreamLarge", "BlobMessage"))
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
    println!("cargo::rerun-if-changed=build.rs");
}
