//! The one TOML document the validator reads: the file's (or inline text's), with the
//! builder's settings merged over it and the environment's overrides over both. Each
//! value keeps a span that tells where it came from, so every message names the file's
//! line, `<builder>`, or the environment variable.

use std::borrow::Cow;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Source;
use super::env::{Override, SECRET_KEYS, variable_for};

/// Where the values of a merged document came from, read off their spans: the
/// file's text is `0..=text_len`, the builder's values share one span after it, and
/// each environment variable has a span of its own after that.
#[derive(Debug, Clone)]
pub(crate) struct Origins {
    pub(crate) source: Source,
    text_len: usize,
    variables: Vec<String>,
}

/// Where one value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin<'a> {
    /// The file or inline text, at this span.
    Text,
    Builder,
    Variable(&'a str),
    /// No position known: the document as a whole.
    Unknown,
}

impl Origins {
    pub(crate) fn new(source: Source, text_len: usize) -> Self {
        Self { source, text_len, variables: Vec::new() }
    }

    /// Gives each override its span, in order.
    pub(crate) fn with_variables(mut self, overrides: &[Override]) -> Self {
        self.variables = overrides.iter().map(|o| o.variable.clone()).collect();
        self
    }

    fn builder_span(&self) -> Range<usize> {
        let start = self.text_len + 1;
        start..start + 1
    }

    fn variable_span(&self, index: usize) -> Range<usize> {
        let start = self.text_len + 2 + index;
        start..start + 1
    }

    pub(crate) fn of(&self, span: Option<&Range<usize>>) -> Origin<'_> {
        match span.map(|s| s.start) {
            None => Origin::Unknown,
            Some(start) if start <= self.text_len => match self.source {
                Source::Builder => Origin::Builder,
                _ => Origin::Text,
            },
            Some(start) if start == self.builder_span().start => Origin::Builder,
            Some(start) => {
                self.variables.get(start - self.text_len - 2).map_or(Origin::Unknown, |v| Origin::Variable(v))
            }
        }
    }

    /// `in `path` at line L, column C`, `in `<builder>``, or `in environment variable
    /// `X``, for a message about the value at `span`.
    pub(crate) fn locate(&self, text: &str, span: Option<Range<usize>>) -> String {
        match (self.of(span.as_ref()), span) {
            (Origin::Text, Some(span)) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
                format!("in `{}` at line {line}, column {column}", self.source)
            }
            (Origin::Builder, _) => format!("in `{}`", Source::Builder),
            (Origin::Variable(variable), _) => format!("in environment variable `{variable}`"),
            _ => format!("in `{}`", self.source),
        }
    }
}

/// A service's `url` and `urls` replace each other: a layer that sets one removes the
/// other from the table below it.
fn replaces(key: &str) -> Option<&'static str> {
    match key {
        "url" => Some("urls"),
        "urls" => Some("url"),
        _ => None,
    }
}

/// Merges `layer` over `base`: tables key by key, any other value replaced.
pub(crate) fn merge<'a>(base: &mut DeTable<'a>, layer: DeTable<'a>) {
    for (key, value) in layer {
        if let Some(other) = replaces(key.get_ref()) {
            base.remove(other);
        }
        let existing = base.get_mut(key.get_ref().as_ref());
        match (existing.map(|e| e.get_mut()), value) {
            (Some(DeValue::Table(base)), value) if matches!(value.get_ref(), DeValue::Table(_)) => {
                let DeValue::Table(layer) = value.into_inner() else { unreachable!("matched a table") };
                merge(base, layer);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The same value with every span in it (its own, its keys', its items') set to `span`.
pub(crate) fn respan<'a>(value: DeValue<'a>, span: &Range<usize>) -> DeValue<'a> {
    match value {
        DeValue::Table(table) => DeValue::Table(
            table
                .into_iter()
                .map(|(k, v)| {
                    (
                        Spanned::new(span.clone(), k.into_inner()),
                        Spanned::new(span.clone(), respan(v.into_inner(), span)),
                    )
                })
                .collect(),
        ),
        DeValue::Array(array) => DeValue::Array(
            array.into_iter().map(|v| Spanned::new(span.clone(), respan(v.into_inner(), span))).collect(),
        ),
        other => other,
    }
}

/// The builder's document, placed in the builder's span.
pub(crate) fn builder_layer<'a>(document: DeTable<'a>, origins: &Origins) -> DeTable<'a> {
    match respan(DeValue::Table(document), &origins.builder_span()) {
        DeValue::Table(table) => table,
        _ => unreachable!("a table stays a table"),
    }
}

/// Sets each override's key, creating the tables on its path; the value is a string
/// as it stands for string keys, else read as a TOML value (a value that does not
/// read as one stays a string, for the validator to name its type).
pub(crate) fn apply<'a>(
    document: &mut DeTable<'a>,
    overrides: &'a [Override],
    origins: &Origins,
) -> Result<(), String> {
    for (index, o) in overrides.iter().enumerate() {
        let span = origins.variable_span(index);
        let value = match o.is_string() {
            true => DeValue::String(Cow::Borrowed(o.value.as_str())),
            // `urls` also reads as a comma-separated list, easier to write in a manifest.
            false if o.path.last().is_some_and(|k| k == "urls") && !o.value.trim_start().starts_with('[') => {
                let items = o.value.split(',').map(str::trim).filter(|url| !url.is_empty());
                DeValue::Array(
                    items.map(|url| Spanned::new(span.clone(), DeValue::String(Cow::Borrowed(url)))).collect(),
                )
            }
            false => match DeValue::parse(o.value.trim()) {
                Ok(parsed) => respan(parsed.into_inner(), &span),
                Err(_) => DeValue::String(Cow::Borrowed(o.value.as_str())),
            },
        };
        let (key, tables) = o.path.split_last().expect("an override names a key");
        let mut table = &mut *document;
        for name in tables {
            let entry = table
                .entry(Spanned::new(span.clone(), Cow::Owned(name.clone())))
                .or_insert_with(|| Spanned::new(span.clone(), DeValue::Table(DeTable::default())));
            table = match entry.get_mut() {
                DeValue::Table(inner) => inner,
                other => {
                    return Err(format!(
                        "`{}` sets a key in `{name}`, which is a {} in the file, not a table",
                        o.variable,
                        other.type_str()
                    ));
                }
            };
        }
        if let Some(other) = replaces(key) {
            table.remove(other);
        }
        table.insert(Spanned::new(span.clone(), Cow::Owned(key.clone())), Spanned::new(span.clone(), value));
    }
    Ok(())
}

/// The names of the services the document defines.
pub(crate) fn service_names(document: &DeTable<'_>) -> Vec<String> {
    match document.get("services").map(Spanned::get_ref) {
        Some(DeValue::Table(services)) => services.keys().map(|k| k.get_ref().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The first string that holds a `${...}` placeholder, which intercall does not
/// expand: its span and a message naming its key and the variable that overrides it.
pub(crate) fn placeholder(document: &DeTable<'_>) -> Option<(Range<usize>, String)> {
    fn walk(table: &DeTable<'_>, path: &mut Vec<String>) -> Option<(Range<usize>, String)> {
        for (key, value) in table {
            path.push(key.get_ref().to_string());
            let found = match value.get_ref() {
                DeValue::Table(inner) => walk(inner, path),
                DeValue::String(text) => text.find("${").map(|start| {
                    let shown = match SECRET_KEYS.contains(&path[path.len() - 1].as_str()) {
                        true => "a `${...}` placeholder".to_owned(),
                        false => {
                            let end = text[start..].find('}').map_or(text.len(), |e| start + e + 1);
                            format!("`{}`", &text[start..end])
                        }
                    };
                    let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                    let message = format!(
                        "`{}` holds {shown}, which intercall does not expand; write the value itself, or set it in the environment variable {}",
                        path.join("."),
                        variable_for(&keys),
                    );
                    (value.span(), message)
                }),
                _ => None,
            };
            path.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
    walk(document, &mut Vec::new())
}

/// The first service table of the builder's that has no `url`: a setting for a
/// service neither the builder nor the file gives a URL.
pub(crate) fn builder_service_without_url(document: &DeTable<'_>, origins: &Origins) -> Option<String> {
    let Some(DeValue::Table(services)) = document.get("services").map(Spanned::get_ref) else {
        return None;
    };
    services.iter().find_map(|(name, table)| {
        let from_builder = origins.of(Some(&table.span())) == Origin::Builder;
        let has_url = matches!(table.get_ref(), DeValue::Table(t) if t.contains_key("url") || t.contains_key("urls"));
        (from_builder && !has_url).then(|| name.get_ref().to_string())
    })
}
