//! `intercall compat OLD NEW`: every difference between two manifests that a node
//! running one version and a peer running the other would meet, classed as safe or
//! breaking with the reason (docs/EVOLUTION.md has the rules and why).
//!
//! Direction decides most rules. Arguments travel from old clients to the new server
//! (a *request*: the new side must accept all the old side sends); results and errors
//! travel from the new server to old clients (a *response*: the old side must accept
//! all the new side sends). With JSON Schemas (intercall's `schema` feature) types are
//! compared member by member and variant by variant; without them, by Rust type name.

use std::collections::BTreeSet;
use std::fmt;

use intercall::manifest::{Manifest, MethodManifest, TypeManifest};
use serde_json::{Map, Value};

/// The schema extension an open enum declares: its value names the `#[serde(other)]`
/// unit variant that old readers decode an unknown variant as (docs/EVOLUTION.md).
pub const OPEN_ENUM: &str = "x-intercall-unknown-variant";

/// Whether a change can be deployed with peers of the other version still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Old and new peers keep working together.
    Safe,
    /// Some call between an old and a new peer fails: a major version.
    Breaking,
}

/// One difference, where it is, and why it is safe or breaking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Safe or breaking.
    pub class: Class,
    /// Where: `Catalog.get`, `Catalog.get(id)`, `Catalog.get -> result .tags[]`.
    pub at: String,
    /// What changed and what it does to the peers of the other version.
    pub reason: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            Class::Safe => "safe",
            Class::Breaking => "BREAKING",
        };
        write!(f, "{class:<8} {}: {}", self.at, self.reason)
    }
}

/// Which way a value travels between the versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Old clients write it, the new server reads it (arguments).
    Request,
    /// The new server writes it, old clients read it (results, errors).
    Response,
}

/// Every change from `old` to `new`, in manifest order.
pub fn compare(old: &Manifest, new: &Manifest) -> Vec<Change> {
    let mut changes = Vec::new();
    for old_service in &old.services {
        let Some(new_service) = new.service(&old_service.name) else {
            changes
                .push(breaking(&old_service.name, "service removed: old clients' calls to it get 404 unknown_service"));
            continue;
        };
        for old_method in &old_service.methods {
            let at = format!("{}.{}", old_service.name, old_method.name);
            match new_service.method(&old_method.name) {
                None => changes.push(breaking(&at, "method removed: old clients' calls to it get 404 unknown_method")),
                Some(new_method) => compare_method(&at, old_method, new_method, &mut changes),
            }
        }
        for new_method in &new_service.methods {
            if old_service.method(&new_method.name).is_none() {
                let at = format!("{}.{}", old_service.name, new_method.name);
                changes.push(safe(&at, "method added: old clients do not call it"));
            }
        }
    }
    for new_service in &new.services {
        if old.service(&new_service.name).is_none() {
            changes.push(safe(&new_service.name, "service added: old clients do not call it"));
        }
    }
    changes
}

/// Whether any change breaks a peer of the other version.
pub fn is_breaking(changes: &[Change]) -> bool {
    changes.iter().any(|change| change.class == Class::Breaking)
}

fn compare_method(at: &str, old: &MethodManifest, new: &MethodManifest, changes: &mut Vec<Change>) {
    for new_arg in &new.arguments {
        let arg_at = format!("{at}({})", new_arg.name);
        match old.arguments.iter().find(|arg| arg.name == new_arg.name) {
            None if new_arg.required => changes.push(breaking(
                &arg_at,
                "required argument added: old clients do not send it and get 400 bad_request; make it an `Option`",
            )),
            None => {
                changes.push(safe(&arg_at, "optional argument added: old clients leave it out, the server sees `None`"))
            }
            Some(old_arg) => {
                if new_arg.required && !old_arg.required {
                    changes.push(breaking(
                        &arg_at,
                        "argument became required: old clients may leave it out and get 400 bad_request",
                    ));
                } else if !new_arg.required && old_arg.required {
                    changes.push(safe(&arg_at, "argument became optional: old clients always send it"));
                }
                compare_type(&arg_at, &old_arg.ty, &new_arg.ty, Flow::Request, changes);
            }
        }
    }
    for old_arg in &old.arguments {
        if !new.arguments.iter().any(|arg| arg.name == old_arg.name) {
            changes.push(safe(
                &format!("{at}({})", old_arg.name),
                "argument removed: old clients still send it and the server ignores unknown members",
            ));
        }
    }
    if old.stream != new.stream {
        let (was, is) = if new.stream { ("a value", "a stream") } else { ("a stream", "a value") };
        let reason = format!("the reply changed from {was} to {is} (PROTOCOL.md §4.3): old clients cannot read it");
        changes.push(breaking(at, &reason));
    }
    compare_type(&format!("{at} -> result"), &old.result, &new.result, Flow::Response, changes);
    compare_type(&format!("{at} -> error"), &old.error, &new.error, Flow::Response, changes);
}

fn compare_type(at: &str, old: &TypeManifest, new: &TypeManifest, flow: Flow, changes: &mut Vec<Change>) {
    match (&old.schema, &new.schema) {
        (Some(old_schema), Some(new_schema)) => {
            let before = changes.len();
            let old_side = Side { root: old_schema };
            let new_side = Side { root: new_schema };
            let mut seen = BTreeSet::new();
            compare_schema(at, &old_side, old_schema, &new_side, new_schema, flow, &mut seen, changes);
            if old.rust_type != new.rust_type && changes.len() == before {
                changes.push(safe(
                    at,
                    &format!("Rust type `{}` is now `{}`, with the same JSON", old.rust_type, new.rust_type),
                ));
            }
        }
        _ if old.rust_type != new.rust_type => changes.push(breaking(
            at,
            &format!(
                "type changed from `{}` to `{}` (no JSON Schemas to compare them: build both with intercall's `schema` feature for a member-by-member check)",
                old.rust_type, new.rust_type
            ),
        )),
        _ => {}
    }
}

/// One version's schema document, for resolving `$ref`s into its `$defs`.
struct Side<'a> {
    root: &'a Value,
}

impl<'a> Side<'a> {
    /// The schema behind a local `$ref` (`#/$defs/Name`), or the schema itself.
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { break };
            let Some(pointer) = reference.strip_prefix('#') else { break };
            match self.root.pointer(pointer) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }
}

/// What a schema says a value may be, in the terms the rules need.
#[derive(Debug, Default)]
struct Shape<'a> {
    /// JSON types (`"null"` included); empty: any.
    types: BTreeSet<String>,
    /// For an enum: each variant's name and its payload schema (`None`: a unit variant).
    variants: Option<Vec<(String, Option<&'a Value>)>>,
    properties: Option<&'a Map<String, Value>>,
    required: BTreeSet<String>,
    /// `additionalProperties: false` (`#[serde(deny_unknown_fields)]`).
    closed: bool,
    items: Option<&'a Value>,
    format: Option<&'a str>,
    /// The `#[serde(other)]` variant an open enum declares.
    unknown_variant: Option<&'a str>,
}

fn shape<'a>(side: &Side<'a>, schema: &'a Value) -> Shape<'a> {
    let schema = side.resolve(schema);
    let mut shape = Shape {
        unknown_variant: schema.get(OPEN_ENUM).and_then(Value::as_str),
        format: schema.get("format").and_then(Value::as_str),
        items: schema.get("items"),
        properties: schema.get("properties").and_then(Value::as_object),
        closed: schema.get("additionalProperties") == Some(&Value::Bool(false)),
        ..Shape::default()
    };
    match schema.get("type") {
        Some(Value::String(ty)) => {
            shape.types.insert(ty.clone());
        }
        Some(Value::Array(types)) => shape.types.extend(types.iter().filter_map(Value::as_str).map(str::to_owned)),
        _ => {}
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        shape.required.extend(required.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        shape.variants = Some(values.iter().map(|v| (text(v), None)).collect());
    }
    if let Some(value) = schema.get("const") {
        shape.variants = Some(vec![(text(value), None)]);
    }
    let alternatives = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array);
    if let Some(alternatives) = alternatives {
        let mut variants = Vec::new();
        let mut nullable_of = Vec::new();
        for alternative in alternatives {
            let alternative = side.resolve(alternative);
            if alternative.get("type").and_then(Value::as_str) == Some("null") {
                shape.types.insert("null".to_owned());
                continue;
            }
            nullable_of.push(alternative);
            match variant_of(side, alternative) {
                Some(found) => variants.extend(found),
                None => variants.clear(),
            }
        }
        if nullable_of.len() == 1 && shape.types.contains("null") {
            // `Option<T>`: `anyOf: [T, null]` is T's shape, plus null.
            // An inner schema with no `type` (a `$ref` to an enum) stays "any type".
            let mut inner = self::shape(side, nullable_of[0]);
            if !inner.types.is_empty() {
                inner.types.insert("null".to_owned());
            }
            return inner;
        }
        if !variants.is_empty() {
            shape.variants = Some(variants);
        }
    }
    shape
}

/// The variants one alternative of an enum's `oneOf` stands for: a unit variant
/// (`const` or `enum` strings), an externally tagged one (`{"Name": payload}`, one
/// required member), or an internally tagged one (a member holding a `const`).
fn variant_of<'a>(side: &Side<'a>, alternative: &'a Value) -> Option<Vec<(String, Option<&'a Value>)>> {
    if let Some(value) = alternative.get("const") {
        return Some(vec![(text(value), None)]);
    }
    if let Some(values) = alternative.get("enum").and_then(Value::as_array) {
        return Some(values.iter().map(|v| (text(v), None)).collect());
    }
    let properties = alternative.get("properties").and_then(Value::as_object)?;
    let tag = properties.iter().find_map(|(_, schema)| side.resolve(schema).get("const").map(text));
    if let Some(tag) = tag {
        return Some(vec![(tag, Some(alternative))]);
    }
    let required = alternative.get("required").and_then(Value::as_array)?;
    match (required.as_slice(), properties.len()) {
        ([Value::String(name)], 1) => Some(vec![(name.clone(), properties.get(name))]),
        _ => None,
    }
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

#[allow(clippy::too_many_arguments)]
fn compare_schema<'a>(
    at: &str,
    old_side: &Side<'a>,
    old: &'a Value,
    new_side: &Side<'a>,
    new: &'a Value,
    flow: Flow,
    seen: &mut BTreeSet<(String, String)>,
    changes: &mut Vec<Change>,
) {
    // A recursive type meets the same pair of definitions again: compared once.
    let key = (pointer_key(old), pointer_key(new));
    if !key.0.is_empty() && !seen.insert(key) {
        return;
    }
    let (o, n) = (shape(old_side, old), shape(new_side, new));
    compare_types(at, &o, &n, flow, changes);
    compare_format(at, &o, &n, flow, changes);
    if let (Some(old_variants), Some(new_variants)) = (&o.variants, &n.variants) {
        compare_variants(at, old_side, old_variants, &o, new_side, new_variants, flow, seen, changes);
        return;
    }
    if o.properties.is_some() || n.properties.is_some() {
        compare_members(at, old_side, &o, new_side, &n, flow, seen, changes);
    }
    if let (Some(old_items), Some(new_items)) = (o.items, n.items) {
        compare_schema(&format!("{at}[]"), old_side, old_items, new_side, new_items, flow, seen, changes);
    }
}

fn pointer_key(schema: &Value) -> String {
    schema.get("$ref").and_then(Value::as_str).unwrap_or("").to_owned()
}

fn compare_types(at: &str, o: &Shape<'_>, n: &Shape<'_>, flow: Flow, changes: &mut Vec<Change>) {
    if o.types == n.types || o.types.is_empty() || n.types.is_empty() {
        return;
    }
    // An integer is also a number.
    let covers =
        |wide: &BTreeSet<String>, ty: &String| wide.contains(ty) || (ty == "integer" && wide.contains("number"));
    let list = |types: &BTreeSet<String>| types.iter().cloned().collect::<Vec<_>>().join(" or ");
    let what = format!("JSON type changed from {} to {}", list(&o.types), list(&n.types));
    let (writer, reader, who) = match flow {
        Flow::Request => (&o.types, &n.types, "old clients may send a value the new server refuses (400)"),
        Flow::Response => (&n.types, &o.types, "the new server may send a value old clients cannot decode"),
    };
    if writer.iter().all(|ty| covers(reader, ty)) {
        changes.push(safe(at, &format!("{what}: it accepts every value it accepted")));
    } else {
        changes.push(breaking(at, &format!("{what}: {who}")));
    }
}

/// schemars' integer formats, by how many values they hold.
fn integer_range(format: &str) -> Option<(bool, u32)> {
    let (signed, bits) = match format.strip_prefix('u') {
        Some(rest) => (false, rest.strip_prefix("int")?),
        None => (true, format.strip_prefix("int")?),
    };
    Some((signed, bits.parse().ok()?))
}

fn compare_format(at: &str, o: &Shape<'_>, n: &Shape<'_>, flow: Flow, changes: &mut Vec<Change>) {
    let (Some(old_format), Some(new_format)) = (o.format, n.format) else { return };
    if old_format == new_format {
        return;
    }
    let widens = |narrow: &str, wide: &str| match (integer_range(narrow), integer_range(wide)) {
        (Some((ns, nb)), Some((ws, wb))) => (ns == ws && wb >= nb) || (!ns && ws && wb > nb),
        _ => false,
    };
    let what = format!("format changed from {old_format} to {new_format}");
    let (writer, reader) = match flow {
        Flow::Request => (old_format, new_format),
        Flow::Response => (new_format, old_format),
    };
    if widens(writer, reader) {
        changes.push(safe(at, &format!("{what}: the reader's range still holds every value the writer sends")));
    } else {
        let who = match flow {
            Flow::Request => "old clients may send values the new server refuses",
            Flow::Response => "the new server may send values old clients cannot decode",
        };
        changes.push(breaking(at, &format!("{what}: {who}")));
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_variants<'a>(
    at: &str,
    old_side: &Side<'a>,
    old: &[(String, Option<&'a Value>)],
    o: &Shape<'a>,
    new_side: &Side<'a>,
    new: &[(String, Option<&'a Value>)],
    flow: Flow,
    seen: &mut BTreeSet<(String, String)>,
    changes: &mut Vec<Change>,
) {
    // The declared catch-all counts only if old readers have it, as a unit variant.
    let catch_all =
        o.unknown_variant.filter(|other| old.iter().any(|(name, payload)| name == other && is_unit(*payload)));
    for (name, new_payload) in new {
        let variant_at = format!("{at} ::{name}");
        match old.iter().find(|(old_name, _)| old_name == name) {
            None => match (flow, catch_all) {
                (Flow::Request, _) => changes.push(safe(&variant_at, "variant added: old clients never send it")),
                (Flow::Response, Some(other)) => changes.push(safe(
                    &variant_at,
                    &format!("variant added to an open enum: old clients decode it as its `{other}` variant"),
                )),
                (Flow::Response, None) => match o.unknown_variant {
                    Some(declared) => changes.push(breaking(
                        &variant_at,
                        &format!("variant added to a type old clients decode: its declared catch-all `{declared}` is not a unit variant of the old version, so old clients fail with `unknown variant`"),
                    )),
                    None => changes.push(breaking(
                        &variant_at,
                        "variant added to a type old clients decode: when the new server sends it, an old client fails with `unknown variant` after the method has run; declare the enum open (docs/EVOLUTION.md) or add a new method",
                    )),
                },
            },
            Some((_, old_payload)) => {
                if let (Some(old_payload), Some(new_payload)) = (old_payload, new_payload) {
                    compare_schema(&variant_at, old_side, old_payload, new_side, new_payload, flow, seen, changes);
                } else if old_payload.is_some() != new_payload.is_some() {
                    changes.push(breaking(&variant_at, "variant changed between a unit variant and one with data"));
                }
            }
        }
    }
    for (name, _) in old {
        if !new.iter().any(|(new_name, _)| new_name == name) {
            let variant_at = format!("{at} ::{name}");
            match flow {
                Flow::Request => changes.push(breaking(
                    &variant_at,
                    "variant removed from a type old clients send: an old client that sends it gets 400 bad_request",
                )),
                Flow::Response => changes.push(safe(&variant_at, "variant removed: the new server never sends it")),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_members<'a>(
    at: &str,
    old_side: &Side<'a>,
    o: &Shape<'a>,
    new_side: &Side<'a>,
    n: &Shape<'a>,
    flow: Flow,
    seen: &mut BTreeSet<(String, String)>,
    changes: &mut Vec<Change>,
) {
    let empty = Map::new();
    let (old_members, new_members) = (o.properties.unwrap_or(&empty), n.properties.unwrap_or(&empty));
    for (name, new_schema) in new_members {
        let member_at = format!("{at} .{name}");
        let now_required = n.required.contains(name);
        match old_members.get(name) {
            None => match (flow, now_required) {
                (Flow::Request, true) => changes.push(breaking(
                    &member_at,
                    "required field added: old clients do not send it and get 400 bad_request; give it `#[serde(default)]` or make it an `Option`",
                )),
                (Flow::Request, false) => changes.push(safe(&member_at, "optional field added: old clients leave it out")),
                (Flow::Response, _) if o.closed => changes.push(breaking(
                    &member_at,
                    "field added to a type old clients decode with `deny_unknown_fields`: they refuse it",
                )),
                (Flow::Response, _) => {
                    changes.push(safe(&member_at, "field added: old clients ignore unknown fields"))
                }
            },
            Some(old_schema) => {
                let was_required = o.required.contains(name);
                match (flow, was_required, now_required) {
                    (Flow::Request, false, true) => changes.push(breaking(
                        &member_at,
                        "field became required: old clients may leave it out and get 400 bad_request",
                    )),
                    (Flow::Response, true, false) => changes.push(breaking(
                        &member_at,
                        "field became optional: the new server may leave it out, and old clients require it",
                    )),
                    (_, false, true) | (_, true, false) => {
                        changes.push(safe(&member_at, "field's optionality changed in the direction the reader accepts"))
                    }
                    _ => {}
                }
                compare_schema(&member_at, old_side, old_schema, new_side, new_schema, flow, seen, changes);
            }
        }
    }
    for name in old_members.keys() {
        if new_members.contains_key(name) {
            continue;
        }
        let member_at = format!("{at} .{name}");
        match flow {
            Flow::Request if n.closed => changes.push(breaking(
                &member_at,
                "field removed from a type the new server decodes with `deny_unknown_fields`: old clients still send it",
            )),
            Flow::Request => changes.push(safe(&member_at, "field removed: old clients still send it and it is ignored")),
            Flow::Response if o.required.contains(name) => changes.push(breaking(
                &member_at,
                "required field removed: old clients fail to decode the reply without it",
            )),
            Flow::Response => changes.push(safe(&member_at, "optional field removed: old clients read it as absent")),
        }
    }
}

/// A unit variant: no payload, or an internally tagged one with only its tag.
fn is_unit(payload: Option<&Value>) -> bool {
    let members = payload.and_then(|p| p.get("properties")).and_then(Value::as_object);
    payload.is_none() || members.is_some_and(|members| members.len() == 1)
}

fn safe(at: &str, reason: &str) -> Change {
    Change { class: Class::Safe, at: at.to_owned(), reason: reason.to_owned() }
}

fn breaking(at: &str, reason: &str) -> Change {
    Change { class: Class::Breaking, at: at.to_owned(), reason: reason.to_owned() }
}
