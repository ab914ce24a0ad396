//! What a JSON Schema says a value may be, in the terms `compat`'s rules need: its JSON
//! types, an enum's variants and how it is tagged, an object's members, an array's
//! items, an integer's format, and an open enum's catch-all.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::OPEN_ENUM;

/// One version's schema document, for resolving `$ref`s into its `$defs`.
pub(super) struct Side<'a> {
    pub(super) root: &'a Value,
}

impl<'a> Side<'a> {
    /// The schema behind a local `$ref` (`#/$defs/Name`), or the schema itself.
    pub(super) fn resolve(&self, schema: &'a Value) -> &'a Value {
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

/// One variant of an enum: its name and its payload schema (`None`: a unit variant,
/// sent as a string or, internally tagged, as an object with only its tag).
pub(super) type Variant<'a> = (String, Option<&'a Value>);

/// What a schema says a value may be, in the terms the rules need.
#[derive(Debug, Default)]
pub(super) struct Shape<'a> {
    /// JSON types (`"null"` included); for an enum with no `type` of its own (a bare
    /// `oneOf`), those of its variants. Empty: any.
    pub(super) types: BTreeSet<String>,
    /// For an enum: its variants.
    pub(super) variants: Option<Vec<Variant<'a>>>,
    /// An enum whose every variant is an object naming its variant in a member, beside
    /// the variant's fields (serde's internally tagged `#[serde(tag = "..")]`), rather
    /// than a string for a unit variant and `{"Name": data}` otherwise (externally
    /// tagged, serde's default) or `{"t": "Name", "c": data}` (adjacently tagged).
    pub(super) tagged: bool,
    pub(super) properties: Option<&'a Map<String, Value>>,
    pub(super) required: BTreeSet<String>,
    /// `additionalProperties: false` (`#[serde(deny_unknown_fields)]`).
    pub(super) closed: bool,
    pub(super) items: Option<&'a Value>,
    pub(super) format: Option<&'a str>,
    /// The `#[serde(other)]` variant an open enum declares.
    pub(super) unknown_variant: Option<&'a str>,
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn types_of(schema: &Value) -> BTreeSet<String> {
    let mut types = BTreeSet::new();
    match schema.get("type") {
        Some(Value::String(ty)) => {
            types.insert(ty.clone());
        }
        Some(Value::Array(list)) => types.extend(list.iter().filter_map(Value::as_str).map(str::to_owned)),
        _ => {}
    }
    types
}

pub(super) fn shape<'a>(side: &Side<'a>, schema: &'a Value) -> Shape<'a> {
    let schema = side.resolve(schema);
    let mut shape = Shape {
        types: types_of(schema),
        unknown_variant: schema.get(OPEN_ENUM).and_then(Value::as_str),
        format: schema.get("format").and_then(Value::as_str),
        items: schema.get("items"),
        properties: schema.get("properties").and_then(Value::as_object),
        closed: schema.get("additionalProperties") == Some(&Value::Bool(false)),
        ..Shape::default()
    };
    let declares_types = !shape.types.is_empty();
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        shape.required.extend(required.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        shape.variants = Some(values.iter().map(|v| (text(v), None)).collect());
        if !declares_types {
            shape.types.extend(values.iter().map(|v| json_type(v).to_owned()));
        }
    }
    if let Some(value) = schema.get("const") {
        shape.variants = Some(vec![(text(value), None)]);
        if !declares_types {
            shape.types.insert(json_type(value).to_owned());
        }
    }
    let alternatives = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array);
    if let Some(alternatives) = alternatives {
        let mut variants = Vec::new();
        let mut nullable_of = Vec::new();
        let mut every_tagged = true;
        let mut all_variants = true;
        let mut any_type = false;
        let mut alternative_types = BTreeSet::new();
        for alternative in alternatives {
            let alternative = side.resolve(alternative);
            if alternative.get("type").and_then(Value::as_str) == Some("null") {
                shape.types.insert("null".to_owned());
                continue;
            }
            nullable_of.push(alternative);
            let types = shape_types(side, alternative);
            any_type |= types.is_empty();
            alternative_types.extend(types);
            match variant_of(side, alternative) {
                Some((found, tagged)) => {
                    every_tagged &= tagged;
                    variants.extend(found);
                }
                None => all_variants = false,
            }
        }
        if nullable_of.len() == 1 && shape.types.contains("null") {
            // `Option<T>`: `anyOf: [T, null]` is T's shape, plus null.
            let mut inner = self::shape(side, nullable_of[0]);
            if !inner.types.is_empty() {
                inner.types.insert("null".to_owned());
            }
            return inner;
        }
        if !declares_types {
            if any_type {
                // One alternative takes any value: so does the whole.
                shape.types.clear();
            } else {
                shape.types.extend(alternative_types);
            }
        }
        if all_variants && !variants.is_empty() {
            shape.variants = Some(variants);
            shape.tagged = every_tagged && !looks_adjacently_tagged(side, &nullable_of);
        }
    }
    shape
}

/// Whether an enum whose variants all name themselves in a member is adjacently tagged
/// (`#[serde(tag = "t", content = "c")]`): every variant with data has exactly one other
/// member, of one name. serde's `#[serde(other)]` catches an unknown variant with data
/// only in an internally tagged enum; an internally tagged one whose data variants each
/// have one field, of one name, has the same schema and is judged as adjacently tagged
/// (the cautious reading).
fn looks_adjacently_tagged(side: &Side<'_>, alternatives: &[&Value]) -> bool {
    let (mut tag, mut content) = (None, None);
    for alternative in alternatives {
        let Some(members) = alternative.get("properties").and_then(Value::as_object) else { return false };
        let this_tag = members.iter().find(|(_, schema)| side.resolve(schema).get("const").is_some()).map(|(n, _)| n);
        if tag.is_some() && tag != this_tag {
            return false;
        }
        tag = this_tag;
        let others: Vec<&String> = members.keys().filter(|name| Some(*name) != this_tag).collect();
        match (others.as_slice(), content) {
            ([], _) => {}
            ([one], None) => content = Some(*one),
            ([one], Some(name)) if *one == name => {}
            _ => return false,
        }
    }
    content.is_some()
}

/// The JSON types a schema allows, through `$ref` and one level of `oneOf`/`anyOf`
/// (empty: any).
fn shape_types(side: &Side<'_>, schema: &Value) -> BTreeSet<String> {
    let schema = side.resolve(schema);
    let mut types = types_of(schema);
    if types.is_empty() {
        let alternatives = schema.get("oneOf").or_else(|| schema.get("anyOf")).and_then(Value::as_array);
        for alternative in alternatives.into_iter().flatten() {
            let inner = types_of(side.resolve(alternative));
            if inner.is_empty() {
                return BTreeSet::new();
            }
            types.extend(inner);
        }
    }
    types
}

/// The variants one alternative of an enum's `oneOf` stands for, and whether it names
/// its variant in a member (internally tagged): a unit variant (`const` or `enum`
/// strings), an externally tagged one (`{"Name": payload}`, one required member), or
/// an internally tagged one (a member holding a `const`).
fn variant_of<'a>(side: &Side<'a>, alternative: &'a Value) -> Option<(Vec<Variant<'a>>, bool)> {
    if let Some(value) = alternative.get("const") {
        return Some((vec![(text(value), None)], false));
    }
    if let Some(values) = alternative.get("enum").and_then(Value::as_array) {
        return Some((values.iter().map(|v| (text(v), None)).collect(), false));
    }
    let properties = alternative.get("properties").and_then(Value::as_object)?;
    let tag = properties.iter().find_map(|(_, schema)| side.resolve(schema).get("const").map(text));
    if let Some(tag) = tag {
        // Only its tag: a unit variant.
        let payload = (properties.len() > 1).then_some(alternative);
        return Some((vec![(tag, payload)], true));
    }
    let required = alternative.get("required").and_then(Value::as_array)?;
    match (required.as_slice(), properties.len()) {
        ([Value::String(name)], 1) => Some((vec![(name.clone(), properties.get(name))], false)),
        _ => None,
    }
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}
