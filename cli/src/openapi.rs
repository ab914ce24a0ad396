//! `intercall openapi`: an OpenAPI 3.1 document from a manifest, for teams that
//! generate clients in other languages. It says what PROTOCOL.md says (§3 request, §4
//! response, §6 signing): every method is `POST /{service}/{method}` with a JSON object
//! of its arguments; a `200` carries the result; every error status carries the error
//! body, whose `kind` names the failure, and a `422` of kind `service` carries the
//! method's error type as `value`.

use intercall::manifest::{Manifest, MethodManifest, ServiceManifest, TypeManifest};
use intercall::protocol::ErrorKind;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The OpenAPI version written.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// The document for every service of `manifest`; `version` is the API's version
/// (`info.version`).
pub fn document(manifest: &Manifest, version: &str) -> Value {
    let mut schemas = Map::new();
    schemas.insert("ErrorBody".into(), error_body_schema());
    let mut paths = Map::new();
    for service in &manifest.services {
        for method in &service.methods {
            paths.insert(
                format!("/{}/{}", service.name, method.name),
                json!({ "post": operation(service, method, &mut schemas) }),
            );
        }
    }
    let names: Vec<&str> = manifest.services.iter().map(|s| s.name.as_str()).collect();
    let tags: Vec<Value> =
        manifest
            .services
            .iter()
            .map(|s| {
                if s.docs.is_empty() { json!({"name": s.name}) } else { json!({"name": s.name, "description": s.docs}) }
            })
            .collect();
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": format!("intercall services: {}", names.join(", ")),
            "version": version,
            "description": "Generated from the services' intercall manifest. The wire protocol: intercall's docs/PROTOCOL.md.",
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": parameters(),
            "responses": error_responses(),
        },
    })
}

fn operation(service: &ServiceManifest, method: &MethodManifest, schemas: &mut Map<String, Value>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for argument in &method.arguments {
        properties.insert(argument.name.clone(), schema_of(&service.name, &argument.ty, schemas));
        if argument.required {
            required.push(Value::String(argument.name.clone()));
        }
    }
    let service_error = json!({
        "allOf": [
            { "$ref": "#/components/schemas/ErrorBody" },
            { "properties": { "value": schema_of(&service.name, &method.error, schemas) } },
        ]
    });
    let mut responses = Map::new();
    let ok = match method.stream {
        // PROTOCOL.md §4.3: newline-delimited frames; each item frame is `{"item": T}`.
        true => json!({
            "description": format!(
                "A stream of `{}` items: newline-delimited JSON frames `{{\"item\": ..}}`, keep-alive `{{}}`, \
                 then one final frame `{{\"end\": \"ok\"}}` or `{{\"end\": \"error\", \"error\": ..}}` (PROTOCOL.md §4.3).",
                method.result.rust_type
            ),
            "content": { "application/x-ndjson": { "schema": {
                "type": "object",
                "properties": { "item": schema_of(&service.name, &method.result, schemas) },
            } } },
        }),
        false => json!({
            "description": format!("The result, `{}`.", method.result.rust_type),
            "content": { "application/json": { "schema": schema_of(&service.name, &method.result, schemas) } },
        }),
    };
    responses.insert("200".into(), ok);
    responses.insert(
        "422".into(),
        json!({
            "description": format!(
                "`service`: the method returned its error, `{}`, as `value` (with its `type` and `variant`); or `call_id_mismatch`.",
                method.error.rust_type
            ),
            "content": { "application/json": { "schema": service_error } },
        }),
    );
    for status in statuses() {
        if status != 422 {
            responses.insert(status.to_string(), json!({ "$ref": format!("#/components/responses/{status}") }));
        }
    }
    let parameters: Vec<Value> =
        PARAMETERS.iter().map(|(name, ..)| json!({ "$ref": format!("#/components/parameters/{}", name) })).collect();
    let mut operation = json!({
        "operationId": format!("{}.{}", service.name, method.name),
        "tags": [service.name],
        "parameters": parameters,
        "requestBody": {
            "required": true,
            "content": { "application/json": { "schema": {
                "type": "object",
                "properties": properties,
                "required": required,
            } } },
        },
        "responses": responses,
    });
    if !method.docs.is_empty() {
        operation["description"] = Value::String(method.docs.clone());
    }
    if method.deprecated {
        operation["deprecated"] = Value::Bool(true);
    }
    operation
}

/// A type's schema for the document: its `$defs` moved to `components/schemas` (a
/// `#/$defs/..` reference inside the document would resolve against its root), or,
/// without a schema, any JSON, described by its Rust type.
///
/// Types of one name are often one type, met in several methods; but two services may
/// each have their own `Error`. A definition whose name is taken by a different one is
/// stored as `{Service}.{Name}` (then `{Service}.{Name}.2`, ...), and this schema's
/// references follow it.
fn schema_of(service: &str, ty: &TypeManifest, schemas: &mut Map<String, Value>) -> Value {
    let Some(schema) = &ty.schema else {
        return json!({ "description": format!("`{}` (build with intercall's `schema` feature for its JSON Schema)", ty.rust_type) });
    };
    let mut schema = schema.clone();
    let mut names = BTreeMap::new();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        if let Some(Value::Object(defs)) = object.remove("$defs") {
            names = component_names(service, &defs, schemas);
            for (name, mut def) in defs {
                rewrite_refs(&mut def, &names);
                schemas.entry(names[&name].clone()).or_insert(def);
            }
        }
    }
    rewrite_refs(&mut schema, &names);
    schema
}

/// The component name of each of `defs`: its own where `schemas` has none of that name
/// or the same definition, else a name prefixed with the service. A definition that
/// refers to a renamed one is compared as rewritten, so the names are chosen again
/// until none changes.
fn component_names(service: &str, defs: &Map<String, Value>, schemas: &Map<String, Value>) -> BTreeMap<String, String> {
    let mut names: BTreeMap<String, String> = defs.keys().map(|name| (name.clone(), name.clone())).collect();
    // Each round only moves names from free to prefixed: at most one round per definition.
    for _ in 0..=defs.len() {
        let mut changed = false;
        for (name, def) in defs {
            let mut rewritten = def.clone();
            rewrite_refs(&mut rewritten, &names);
            let fits = |candidate: &String| schemas.get(candidate).is_none_or(|existing| *existing == rewritten);
            let chosen = std::iter::once(name.clone())
                .chain((1..).map(|n| match n {
                    1 => format!("{service}.{name}"),
                    n => format!("{service}.{name}.{n}"),
                }))
                .find(|candidate| fits(candidate))
                .expect("an endless list of names has a free one");
            if names[name] != chosen {
                names.insert(name.clone(), chosen);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    names
}

/// `#/$defs/Name` becomes `#/components/schemas/{names[Name]}`.
fn rewrite_refs(schema: &mut Value, names: &BTreeMap<String, String>) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref") {
                if let Some(name) = reference.strip_prefix("#/$defs/") {
                    let name = names.get(name).map_or(name, String::as_str);
                    *reference = format!("#/components/schemas/{name}");
                }
            }
            object.values_mut().for_each(|value| rewrite_refs(value, names));
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(item, names)),
        _ => {}
    }
}

/// PROTOCOL.md §4.2's error body.
fn error_body_schema() -> Value {
    let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|kind| kind.as_str()).collect();
    json!({
        "type": "object",
        "description": "The body of every error response (PROTOCOL.md §4.2). Clients dispatch on `kind`, never on the status alone, and ignore members they do not know.",
        "required": ["kind", "message"],
        "properties": {
            "kind": { "type": "string", "enum": kinds, "description": "Which failure; a newer server may send a kind not listed here." },
            "message": { "type": "string", "description": "Human-readable; for logs, not for parsing." },
            "argument": { "type": "string", "description": "`bad_request`: the argument that failed to decode, when known." },
            "type": { "type": "string", "description": "`service`: the error type's name." },
            "variant": { "type": "string", "description": "`service`: the enum variant." },
            "value": { "description": "`service`: the error value." },
        },
    })
}

/// The statuses of PROTOCOL.md §4.2's kinds.
fn statuses() -> Vec<u16> {
    let mut statuses: Vec<u16> = ErrorKind::ALL.iter().map(|kind| kind.status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

fn error_responses() -> Value {
    let mut responses = Map::new();
    for status in statuses() {
        let kinds: Vec<String> =
            ErrorKind::ALL.iter().filter(|kind| kind.status() == status).map(|kind| format!("`{kind}`")).collect();
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("An error body of kind {}.", kinds.join(" or ")),
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
            }),
        );
    }
    Value::Object(responses)
}

/// The call headers of PROTOCOL.md §3 and the signature headers of §6.
const PARAMETERS: &[(&str, &str, &str)] = &[
    ("x-call-id", "uuid", "The identity of one logical call, the same on every attempt (§5): a server runs it once."),
    ("x-call-attempt", "integer", "Which attempt this is; informational."),
    ("x-deadline-ms", "integer", "How many milliseconds the caller still waits; 0: not run (504)."),
    ("x-user-type", "string", "The end user's type: integration, admin, customer, guest, or another name."),
    ("x-user-id", "string", "The end user's id; only with x-user-type."),
    ("x-activity-id", "uuid", "The activity the call belongs to, forwarded unchanged by every nested call."),
    ("x-intercall-timestamp", "integer", "With a shared secret (§6): Unix time in milliseconds."),
    (
        "x-intercall-signature",
        "string",
        "With a shared secret (§6): `v1=` and the HMAC-SHA256 of the canonical string.",
    ),
];

fn parameters() -> Value {
    let mut parameters = Map::new();
    for (name, kind, description) in PARAMETERS {
        let schema = match *kind {
            "uuid" => json!({ "type": "string", "format": "uuid" }),
            "integer" => json!({ "type": "string", "pattern": "^[0-9]+$" }),
            _ => json!({ "type": "string" }),
        };
        parameters.insert(
            (*name).to_owned(),
            json!({ "name": name, "in": "header", "required": false, "description": description, "schema": schema }),
        );
    }
    Value::Object(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service whose one method returns `Wrapper`, which holds that service's `Error`
    /// (`error` is the schema of `Error`).
    fn service(name: &str, error: Value) -> Value {
        let wrapper =
            json!({"type": "object", "properties": {"error": {"$ref": "#/$defs/Error"}}, "required": ["error"]});
        json!({"name": name, "methods": [{"name": "get", "arguments": [],
            "result": {"rust_type": "Wrapper", "schema": {"$ref": "#/$defs/Wrapper", "$defs": {"Wrapper": wrapper, "Error": error}}},
            "error": {"rust_type": "Error", "schema": {"$ref": "#/$defs/Error", "$defs": {"Error": error}}}}]})
    }

    #[test]
    fn two_types_of_one_name_are_both_kept_and_each_reference_finds_its_own() {
        let a = json!({"type": "string"});
        let b = json!({"type": "object", "properties": {"code": {"type": "integer"}}});
        let manifest: Manifest = serde_json::from_value(
            json!({"format": 1, "services": [service("A", a.clone()), service("B", b.clone())]}),
        )
        .unwrap();
        let document = document(&manifest, "1");
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["Error"], a);
        assert_eq!(schemas["B.Error"], b, "B's `Error` differs from A's: {schemas:#}");
        // B's `Wrapper` is written as A's but refers to another `Error`: it is B's own.
        assert_eq!(schemas["Wrapper"]["properties"]["error"]["$ref"], "#/components/schemas/Error");
        assert_eq!(schemas["B.Wrapper"]["properties"]["error"]["$ref"], "#/components/schemas/B.Error");
        let ok = |service: &str| {
            document["paths"][format!("/{service}/get")]["post"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["$ref"]
                .clone()
        };
        assert_eq!(ok("A"), "#/components/schemas/Wrapper");
        assert_eq!(ok("B"), "#/components/schemas/B.Wrapper");
        let error = |service: &str| {
            document["paths"][format!("/{service}/get")]["post"]["responses"]["422"]["content"]["application/json"]
                ["schema"]["allOf"][1]["properties"]["value"]["$ref"]
                .clone()
        };
        assert_eq!(error("B"), "#/components/schemas/B.Error");
        assert_eq!(error("A"), "#/components/schemas/Error", "one type met twice is one component");
        let mut names: Vec<&String> = schemas.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["B.Error", "B.Wrapper", "Error", "ErrorBody", "Wrapper"]);
    }
}
