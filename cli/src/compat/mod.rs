//! `intercall compat OLD NEW`: every difference between two manifests that a node
//! running one version and a peer running the other would meet, classed as safe or
//! breaking with the reason (docs/EVOLUTION.md has the rules and why).
//!
//! Compatible means both directions (PROTOCOL.md §12): **old clients calling a new
//! server** (during a rolling deploy) and **new clients calling an old server** (until
//! it ends). A value travels one way in each: arguments from clients to the server (a
//! *request*), results and errors from the server to clients (a *response*). So every
//! type is checked twice, once with each version as the writer and the other as the
//! reader, and a breaking change names the direction it breaks. With JSON Schemas
//! (intercall's `schema` feature) types are compared member by member and variant by
//! variant; without them, by Rust type name.

use std::collections::BTreeSet;
use std::fmt;

use intercall::manifest::{Manifest, MethodManifest, TypeManifest};
use serde_json::{Map, Value};

use shape::{Shape, Side, Variant, shape};

mod shape;

/// The schema extension an open enum declares: its value names the `#[serde(other)]`
/// unit variant that old readers decode an unknown variant as (docs/EVOLUTION.md).
pub const OPEN_ENUM: &str = "x-intercall-unknown-variant";

/// Whether a change can be deployed with peers of the other version still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Old and new peers keep working together, both ways.
    Safe,
    /// Some call between an old and a new peer fails: a major version.
    Breaking,
}

/// Which calls a breaking change breaks (PROTOCOL.md §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Old clients calling a server of the new version.
    OldClientsToNewServer,
    /// New clients calling a server of the old version.
    NewClientsToOldServer,
    /// Both.
    Both,
}

impl Direction {
    fn and(self, other: Direction) -> Direction {
        if self == other { self } else { Direction::Both }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::OldClientsToNewServer => "old clients -> new server",
            Direction::NewClientsToOldServer => "new clients -> old server",
            Direction::Both => "both directions",
        })
    }
}

/// One difference, where it is, and why it is safe or breaking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Safe or breaking.
    pub class: Class,
    /// For a breaking change, which calls it breaks; `None` for a safe one.
    pub direction: Option<Direction>,
    /// Where: `Catalog.get`, `Catalog.get(id)`, `Catalog.get -> result .tags[]`.
    pub at: String,
    /// What changed and what it does to the peers of the other version.
    pub reason: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Some(direction) => write!(f, "BREAKING {} [{direction}]: {}", self.at, self.reason),
            None => write!(f, "safe     {}: {}", self.at, self.reason),
        }
    }
}

/// Which way a value travels between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Clients write it, the server reads it (arguments).
    Request,
    /// The server writes it, clients read it (results, errors).
    Response,
}

/// One of the two directions, seen from one value: who writes it and who reads it.
#[derive(Debug, Clone, Copy)]
struct Way {
    direction: Direction,
    flow: Flow,
}

impl Way {
    /// The direction in which the old version writes the value, and the one in which
    /// the new version does.
    fn both(flow: Flow) -> (Way, Way) {
        let (old_writes, new_writes) = match flow {
            Flow::Request => (Direction::OldClientsToNewServer, Direction::NewClientsToOldServer),
            Flow::Response => (Direction::NewClientsToOldServer, Direction::OldClientsToNewServer),
        };
        (Way { direction: old_writes, flow }, Way { direction: new_writes, flow })
    }

    fn writer(self) -> &'static str {
        match (self.flow, self.direction) {
            (Flow::Request, Direction::OldClientsToNewServer) => "old clients",
            (Flow::Request, _) => "new clients",
            (Flow::Response, Direction::OldClientsToNewServer) => "the new server",
            (Flow::Response, _) => "an old server",
        }
    }

    fn reader(self) -> &'static str {
        match (self.flow, self.direction) {
            (Flow::Request, Direction::OldClientsToNewServer) => "the new server",
            (Flow::Request, _) => "an old server",
            (Flow::Response, Direction::OldClientsToNewServer) => "old clients",
            (Flow::Response, _) => "new clients",
        }
    }

    /// What a value the reader cannot decode costs.
    fn cost(self) -> &'static str {
        match self.flow {
            Flow::Request => "the call gets 400 bad_request",
            Flow::Response => "the client fails to decode the reply after the method has run",
        }
    }
}

/// A difference judged in each direction: `None` where it is harmless, else why it
/// breaks there; safe (with `safe_reason`) when neither breaks.
fn judge(at: &str, what: &str, verdicts: [(Way, Option<String>); 2], safe_reason: &str) -> Change {
    let mut direction = None;
    let mut reasons = Vec::new();
    for (way, verdict) in verdicts {
        if let Some(reason) = verdict {
            direction = Some(direction.map_or(way.direction, |d: Direction| d.and(way.direction)));
            reasons.push(reason);
        }
    }
    match direction {
        None => safe(at, &format!("{what}: {safe_reason}")),
        Some(direction) => breaking(at, direction, &format!("{what}: {}", reasons.join("; "))),
    }
}

/// Every change from `old` to `new`, in manifest order.
pub fn compare(old: &Manifest, new: &Manifest) -> Vec<Change> {
    use Direction::*;
    let mut changes = Vec::new();
    for old_service in &old.services {
        let Some(new_service) = new.service(&old_service.name) else {
            changes.push(breaking(
                &old_service.name,
                OldClientsToNewServer,
                "service removed: old clients' calls to it get 404 unknown_service",
            ));
            continue;
        };
        for old_method in &old_service.methods {
            let at = format!("{}.{}", old_service.name, old_method.name);
            match new_service.method(&old_method.name) {
                None => changes.push(breaking(
                    &at,
                    OldClientsToNewServer,
                    "method removed: old clients' calls to it get 404 unknown_method",
                )),
                Some(new_method) => compare_method(&at, old_method, new_method, &mut changes),
            }
        }
        for new_method in &new_service.methods {
            if old_service.method(&new_method.name).is_none() {
                let at = format!("{}.{}", old_service.name, new_method.name);
                changes.push(safe(&at, "method added: old clients do not call it; an old server answers new clients' calls to it with 404 unknown_method, so call it once every node has it"));
            }
        }
    }
    for new_service in &new.services {
        if old.service(&new_service.name).is_none() {
            changes.push(safe(
                &new_service.name,
                "service added: old clients do not call it; new clients call it once it is deployed",
            ));
        }
    }
    changes
}

/// Whether any change breaks a peer of the other version, in either direction.
pub fn is_breaking(changes: &[Change]) -> bool {
    changes.iter().any(|change| change.class == Class::Breaking)
}

fn compare_method(at: &str, old: &MethodManifest, new: &MethodManifest, changes: &mut Vec<Change>) {
    use Direction::*;
    // A server ignores the members of a request body it does not know (PROTOCOL.md §3).
    for new_arg in &new.arguments {
        let arg_at = format!("{at}({})", new_arg.name);
        match old.arguments.iter().find(|arg| arg.name == new_arg.name) {
            None if new_arg.required => changes.push(breaking(
                &arg_at,
                OldClientsToNewServer,
                "required argument added: old clients do not send it and get 400 bad_request; make it an `Option`",
            )),
            None => changes.push(safe(
                &arg_at,
                "optional argument added: old clients leave it out and the new server sees `None`; an old server ignores it when new clients send it (it runs as without it)",
            )),
            Some(old_arg) => {
                if new_arg.required && !old_arg.required {
                    changes.push(breaking(
                        &arg_at,
                        OldClientsToNewServer,
                        "argument became required: old clients may leave it out and get 400 bad_request",
                    ));
                } else if !new_arg.required && old_arg.required {
                    changes.push(breaking(
                        &arg_at,
                        NewClientsToOldServer,
                        "argument became optional: new clients may leave it out, and an old server requires it (400 bad_request)",
                    ));
                }
                compare_type(&arg_at, &old_arg.ty, &new_arg.ty, Flow::Request, changes);
            }
        }
    }
    for old_arg in &old.arguments {
        if new.arguments.iter().any(|arg| arg.name == old_arg.name) {
            continue;
        }
        let arg_at = format!("{at}({})", old_arg.name);
        if old_arg.required {
            changes.push(breaking(
                &arg_at,
                NewClientsToOldServer,
                "required argument removed: old clients still send it and the new server ignores it, but new clients do not send it and an old server requires it (400 bad_request)",
            ));
        } else {
            changes.push(safe(
                &arg_at,
                "optional argument removed: old clients still send it and the new server ignores it; an old server sees `None` from new clients",
            ));
        }
    }
    if old.stream != new.stream {
        let (was, is) = if new.stream { ("a value", "a stream") } else { ("a stream", "a value") };
        let reason = format!(
            "the reply changed from {was} to {is} (PROTOCOL.md §4.3): clients of the other version cannot read it"
        );
        changes.push(breaking(at, Both, &reason));
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
            Direction::Both,
            &format!(
                "type changed from `{}` to `{}` (no JSON Schemas to compare them: build both with intercall's `schema` feature for a member-by-member check)",
                old.rust_type, new.rust_type
            ),
        )),
        _ => {}
    }
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
    if o.variants.is_some() != n.variants.is_some() {
        changes.push(compare_enum_and_plain(at, &o, &n, flow));
        return;
    }
    compare_types(at, &o, &n, flow, changes);
    compare_format(at, &o, &n, flow, changes);
    if let (Some(old_variants), Some(new_variants)) = (&o.variants, &n.variants) {
        compare_variants(at, old_side, old_variants, &o, new_side, new_variants, &n, flow, seen, changes);
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

/// Whether a reader of `reader` types accepts every value of `writer` types (empty:
/// any). An integer is also a number.
fn accepts(reader: &BTreeSet<String>, writer: &BTreeSet<String>) -> bool {
    let covers = |ty: &String| reader.contains(ty) || (ty == "integer" && reader.contains("number"));
    reader.is_empty() || (!writer.is_empty() && writer.iter().all(covers))
}

fn list(types: &BTreeSet<String>) -> String {
    if types.is_empty() { "any".to_owned() } else { types.iter().cloned().collect::<Vec<_>>().join(" or ") }
}

/// An enum on one side, a type that is not one on the other (a data enum is a bare
/// `oneOf`, `Option<Enum>` an `anyOf` with null): a reader that is an enum takes only
/// its variants, whatever the JSON types say.
fn compare_enum_and_plain(at: &str, o: &Shape<'_>, n: &Shape<'_>, flow: Flow) -> Change {
    let describe = |shape: &Shape<'_>| match &shape.variants {
        Some(variants) => {
            let names: Vec<&str> = variants.iter().map(|(name, _)| name.as_str()).collect();
            format!("an enum ({})", names.join(", "))
        }
        None => format!("a value of type {}", list(&shape.types)),
    };
    let what = format!("changed from {} to {}", describe(o), describe(n));
    let (old_writes, new_writes) = Way::both(flow);
    let verdict = |way: Way, writer: &Shape<'_>, reader: &Shape<'_>| {
        let refused = match (&writer.variants, &reader.variants) {
            (None, Some(_)) => true,
            _ => !accepts(&reader.types, &writer.types),
        };
        refused
            .then(|| format!("{} may send a value that {} cannot decode ({})", way.writer(), way.reader(), way.cost()))
    };
    judge(
        at,
        &what,
        [(old_writes, verdict(old_writes, o, n)), (new_writes, verdict(new_writes, n, o))],
        "each side accepts every value the other sends",
    )
}

fn compare_types(at: &str, o: &Shape<'_>, n: &Shape<'_>, flow: Flow, changes: &mut Vec<Change>) {
    if o.types == n.types {
        return;
    }
    let what = format!("JSON type changed from {} to {}", list(&o.types), list(&n.types));
    let (old_writes, new_writes) = Way::both(flow);
    let verdict = |way: Way, writer: &BTreeSet<String>, reader: &BTreeSet<String>| {
        (!accepts(reader, writer))
            .then(|| format!("{} may send a value that {} cannot decode ({})", way.writer(), way.reader(), way.cost()))
    };
    changes.push(judge(
        at,
        &what,
        [(old_writes, verdict(old_writes, &o.types, &n.types)), (new_writes, verdict(new_writes, &n.types, &o.types))],
        "each side accepts every value the other sends",
    ));
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
    // Whether a reader of format `wide` holds every value of format `narrow`.
    let holds = |narrow: &str, wide: &str| match (integer_range(narrow), integer_range(wide)) {
        (Some((ns, nb)), Some((ws, wb))) => (ns == ws && wb >= nb) || (!ns && ws && wb > nb),
        _ => false,
    };
    let what = format!("format changed from {old_format} to {new_format}");
    let (old_writes, new_writes) = Way::both(flow);
    let verdict = |way: Way, writer: &str, reader: &str| {
        (!holds(writer, reader))
            .then(|| format!("{} may send values that {} cannot hold ({})", way.writer(), way.reader(), way.cost()))
    };
    changes.push(judge(
        at,
        &what,
        [
            (old_writes, verdict(old_writes, old_format, new_format)),
            (new_writes, verdict(new_writes, new_format, old_format)),
        ],
        "each side's range holds every value the other sends",
    ));
}

/// Whether a reader whose enum is `reader` decodes a variant it does not have, with
/// `payload` (`None`: a unit variant), and as which variant; else why not.
fn caught<'a>(reader: &Shape<'a>, variants: &[Variant<'a>], payload: Option<&Value>) -> Result<&'a str, String> {
    let Some(declared) = reader.unknown_variant else {
        return Err("declare the enum open (docs/EVOLUTION.md) or add a new method".to_owned());
    };
    if !variants.iter().any(|(name, payload)| name == declared && is_unit(*payload)) {
        return Err(format!(
            "its declared catch-all `{declared}` is not a unit variant of the reader's version, so it fails with `unknown variant`"
        ));
    }
    if reader.tagged || is_unit(payload) {
        return Ok(declared);
    }
    Err(format!(
        "the enum is not internally tagged (its schema reads as `{{\"Name\": data}}` or `{{\"t\": \"Name\", \"c\": data}}`), and serde cannot skip an unknown variant's data to decode it as `{declared}`: tag the enum, `#[serde(tag = \"..\")]` without `content` (docs/EVOLUTION.md)"
    ))
}

#[allow(clippy::too_many_arguments)]
fn compare_variants<'a>(
    at: &str,
    old_side: &Side<'a>,
    old: &[Variant<'a>],
    o: &Shape<'a>,
    new_side: &Side<'a>,
    new: &[Variant<'a>],
    n: &Shape<'a>,
    flow: Flow,
    seen: &mut BTreeSet<(String, String)>,
    changes: &mut Vec<Change>,
) {
    let (old_writes, new_writes) = Way::both(flow);
    // A variant one version has and the other lacks: harmless where the version that
    // lacks it writes, and read by the one that lacks it in the other direction.
    let one_sided = |at: &str, what: &str, writes: Way, reader: &Shape<'a>, variants: &[Variant<'a>], payload| {
        let (verdict, safe_reason) = match caught(reader, variants, payload) {
            Ok(other) => (None, format!("{} will decode it as its `{other}` variant (an open enum)", writes.reader())),
            Err(why) => (
                Some(format!(
                    "{} may send it and {} cannot decode it ({}); {why}",
                    writes.writer(),
                    writes.reader(),
                    writes.cost()
                )),
                String::new(),
            ),
        };
        let never = if writes.direction == old_writes.direction { new_writes } else { old_writes };
        judge(
            at,
            what,
            [(writes, verdict), (never, None)],
            &format!("{} will never send it, and {safe_reason}", never.writer()),
        )
    };
    for (name, new_payload) in new {
        let variant_at = format!("{at} ::{name}");
        match old.iter().find(|(old_name, _)| old_name == name) {
            None => changes.push(one_sided(&variant_at, "variant added", new_writes, o, old, *new_payload)),
            Some((_, old_payload)) => {
                if let (Some(old_payload), Some(new_payload)) = (old_payload, new_payload) {
                    compare_schema(&variant_at, old_side, old_payload, new_side, new_payload, flow, seen, changes);
                } else if old_payload.is_some() != new_payload.is_some() {
                    changes.push(breaking(
                        &variant_at,
                        Direction::Both,
                        "variant changed between a unit variant and one with data: neither side decodes the other's",
                    ));
                }
            }
        }
    }
    for (name, old_payload) in old {
        if !new.iter().any(|(new_name, _)| new_name == name) {
            let variant_at = format!("{at} ::{name}");
            changes.push(one_sided(&variant_at, "variant removed", old_writes, n, new, *old_payload));
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
    let (old_writes, new_writes) = Way::both(flow);
    // A member one version has and the other lacks: the version that has it sends it to
    // a reader that may refuse unknown members; the one that lacks it never sends it to
    // a reader that may require it.
    let one_sided = |name: &str, writes: Way, has: &Shape<'a>, lacks: &Shape<'a>| {
        let never = if writes.direction == old_writes.direction { new_writes } else { old_writes };
        let refused = lacks.closed.then(|| {
            format!(
                "{} may send it and {} cannot decode it: the type has `deny_unknown_fields` ({})",
                writes.writer(),
                writes.reader(),
                writes.cost()
            )
        });
        let missing = has.required.contains(name).then(|| {
            format!(
                "{} will never send it and {} cannot do without it ({})",
                never.writer(),
                never.reader(),
                never.cost()
            )
        });
        (
            [(writes, refused), (never, missing)],
            format!("{} will ignore it, and {} can do without it", writes.reader(), never.reader()),
        )
    };
    let empty = Map::new();
    let (old_members, new_members) = (o.properties.unwrap_or(&empty), n.properties.unwrap_or(&empty));
    for (name, new_schema) in new_members {
        let member_at = format!("{at} .{name}");
        match old_members.get(name) {
            None => {
                let what = if n.required.contains(name) { "required field added" } else { "optional field added" };
                let (verdicts, safe_reason) = one_sided(name, new_writes, n, o);
                let mut change = judge(&member_at, what, verdicts, &safe_reason);
                if change.class == Class::Breaking && flow == Flow::Request && n.required.contains(name) {
                    change.reason.push_str("; give it `#[serde(default)]` or make it an `Option`");
                }
                changes.push(change);
            }
            Some(old_schema) => {
                let (was, now) = (o.required.contains(name), n.required.contains(name));
                if was != now {
                    // Breaking where the writer may leave it out and the reader needs it.
                    let way = if now { old_writes } else { new_writes };
                    let what = if now { "field became required" } else { "field became optional" };
                    let reason = format!(
                        "{what}: {} may leave it out and {} cannot do without it ({})",
                        way.writer(),
                        way.reader(),
                        way.cost()
                    );
                    changes.push(breaking(&member_at, way.direction, &reason));
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
        let what = if o.required.contains(name) { "required field removed" } else { "optional field removed" };
        let (verdicts, safe_reason) = one_sided(name, old_writes, o, n);
        changes.push(judge(&member_at, what, verdicts, &safe_reason));
    }
}

/// A unit variant: no payload (a string, or an internally tagged object with only its
/// tag).
fn is_unit(payload: Option<&Value>) -> bool {
    payload.is_none()
}

fn safe(at: &str, reason: &str) -> Change {
    Change { class: Class::Safe, direction: None, at: at.to_owned(), reason: reason.to_owned() }
}

fn breaking(at: &str, direction: Direction, reason: &str) -> Change {
    Change { class: Class::Breaking, direction: Some(direction), at: at.to_owned(), reason: reason.to_owned() }
}
