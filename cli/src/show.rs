//! `intercall list` and `intercall describe`: a manifest as a person reads it.

use std::fmt::Write;

use intercall::manifest::{Manifest, MethodManifest, ServiceManifest};

/// One line per service: its name and its methods, a stream method marked `(stream)`.
pub fn list(manifest: &Manifest) -> String {
    let mut out = String::new();
    for service in &manifest.services {
        let methods: Vec<String> = service
            .methods
            .iter()
            .map(|m| if m.stream { format!("{} (stream)", m.name) } else { m.name.clone() })
            .collect();
        let _ = writeln!(out, "{}: {}", service.name, methods.join(", "));
    }
    out
}

/// `get(id: String) -> Result<Product, CatalogError>`, or for a stream method, as the
/// trait writes it: `fulfil(..) -> Result<Streaming<Fulfilment, CheckoutError>, CheckoutError>`.
pub fn signature(method: &MethodManifest) -> String {
    let args: Vec<String> = method
        .arguments
        .iter()
        .map(|arg| {
            let optional = if arg.required { "" } else { " (optional)" };
            format!("{}: {}{optional}", arg.name, arg.ty.rust_type)
        })
        .collect();
    let (result, error) = (&method.result.rust_type, &method.error.rust_type);
    let ok = if method.stream { format!("Streaming<{result}, {error}>") } else { result.clone() };
    format!("{}({}) -> Result<{ok}, {error}>", method.name, args.join(", "))
}

/// What `describe` says of a stream method.
const STREAM_NOTE: &str = "// A stream: a `200` is newline-delimited frames, `{\"item\": ..}` each, then a final frame (PROTOCOL.md §4.3); `intercall call` prints each item as it arrives, one JSON line each.\n";

/// A service: its docs and each method's signature and docs.
pub fn service(service: &ServiceManifest) -> String {
    let mut out = format!("service {}\n", service.name);
    for line in service.docs.lines() {
        let _ = writeln!(out, "  // {line}");
    }
    for method in &service.methods {
        let deprecated = if method.deprecated { " [deprecated]" } else { "" };
        let stream = if method.stream { " [stream]" } else { "" };
        let _ = writeln!(out, "  POST /{}/{}{stream}{deprecated}", service.name, method.name);
        let _ = writeln!(out, "    {}", signature(method));
        for line in method.docs.lines() {
            let _ = writeln!(out, "    // {line}");
        }
    }
    out
}

/// One method in full: its signature, docs, and the schema of every type when the
/// manifest has them.
pub fn method(service: &ServiceManifest, method: &MethodManifest) -> String {
    let mut out = format!("POST /{}/{}\n{}\n", service.name, method.name, signature(method));
    if method.stream {
        out.push_str(STREAM_NOTE);
    }
    for line in method.docs.lines() {
        let _ = writeln!(out, "// {line}");
    }
    let pretty = |value: &serde_json::Value| serde_json::to_string_pretty(value).unwrap_or_default();
    for arg in &method.arguments {
        if let Some(schema) = &arg.ty.schema {
            let _ = writeln!(out, "\nargument `{}` ({}):\n{}", arg.name, arg.ty.rust_type, pretty(schema));
        }
    }
    let result = if method.stream { "each item" } else { "result" };
    for (what, ty) in [(result, &method.result), ("error", &method.error)] {
        if let Some(schema) = &ty.schema {
            let _ = writeln!(out, "\n{what} ({}):\n{}", ty.rust_type, pretty(schema));
        }
    }
    if method.arguments.iter().all(|a| a.ty.schema.is_none()) && method.result.schema.is_none() {
        out.push_str("\n(no JSON Schemas: the node was built without intercall's `schema` feature)\n");
    }
    out
}
