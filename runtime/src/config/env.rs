//! Environment overrides of `services.toml`: which variables are overrides, which key
//! each one sets, and the environment they are read from (the process's, pairs given
//! in code, or none). Applying them and validating the result is the document's and
//! the validator's work, so an override is checked exactly as the file's own value.
//!
//! The scheme (docs/CONFIG.md, "Environment overrides"):
//!
//! ```text
//! INTERCALL_<TABLE>__<KEY>            INTERCALL_DEFAULTS__TIMEOUT_MS=500
//! INTERCALL_SERVICES__<NAME>__<KEY>   INTERCALL_SERVICES__CATALOG__URL=http://10.0.0.7:8081/
//! ```
//!
//! Table and key names match in any case. A service name matches a service the file
//! or the builder defines, exactly or else in any case; a name that matches none adds
//! a service of exactly that name, and needs its `URL`.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::error::Error;

/// Every override's name starts with this, and has a `__` after it.
pub(crate) const PREFIX: &str = "INTERCALL_";

/// Separates the table, the service name and the key.
const SEPARATOR: &str = "__";

/// Keys whose values are strings: an override's value is taken exactly as it is
/// (a secret of digits stays a string). Every other value is read as a TOML value.
const STRING_KEYS: [&str; 8] =
    ["url", "call_store", "call_store_prefix", "on_store_error", "secret", "accepted_secret", "prefix", "done_records"];

/// Keys whose values are never echoed in a message.
pub(crate) const SECRET_KEYS: [&str; 2] = ["secret", "accepted_secret"];

/// The environment a configuration reads its overrides (and `INTERCALL_SECRET`) from.
#[derive(Clone, Default)]
pub(crate) enum Environment {
    /// The process's environment, read when the configuration is built.
    #[default]
    Process,
    /// These variables instead (tests, or a program that keeps its settings elsewhere).
    Given(Vec<(OsString, OsString)>),
    /// None at all: no overrides, no `INTERCALL_SECRET`.
    Off,
}

/// Names only: a value may be a secret.
impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Environment::Process => f.write_str("Process"),
            Environment::Given(vars) => {
                f.debug_tuple("Given").field(&vars.iter().map(|(n, _)| n).collect::<Vec<_>>()).finish()
            }
            Environment::Off => f.write_str("Off"),
        }
    }
}

impl Environment {
    /// One variable's value.
    pub(crate) fn var(&self, name: &str) -> Option<OsString> {
        match self {
            Environment::Process => std::env::var_os(name),
            Environment::Given(vars) => vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
            Environment::Off => None,
        }
    }

    fn vars(&self) -> Vec<(OsString, OsString)> {
        match self {
            Environment::Process => std::env::vars_os().collect(),
            Environment::Given(vars) => vars.clone(),
            Environment::Off => Vec::new(),
        }
    }
}

/// One override: the variable, the key it sets and the value it sets it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    pub(crate) variable: String,
    /// `["defaults", "timeout_ms"]` or `["services", "Catalog", "url"]`.
    pub(crate) path: Vec<String>,
    pub(crate) value: String,
}

impl Override {
    /// Whether the value is a string as it stands, rather than a TOML value to read.
    pub(crate) fn is_string(&self) -> bool {
        self.path.last().is_some_and(|key| STRING_KEYS.contains(&key.as_str()))
    }

    /// Whether this override adds the service `name` (with its URL).
    fn adds_url_of(&self, name: &str) -> bool {
        matches!(self.path.as_slice(), [table, service, key] if table == "services" && service == name && (key == "url" || key == "urls"))
    }
}

/// The overrides among `environment`'s variables, in the order of their names.
/// `services` are the services the file and the builder define, which a variable's
/// service name is matched against; `source` names them in messages.
pub(crate) fn overrides(environment: &Environment, services: &[String], source: &str) -> Result<Vec<Override>, Error> {
    let mut found = Vec::new();
    for (name, value) in environment.vars() {
        let Some(name) = name.to_str() else {
            let lossy = name.to_string_lossy();
            if lossy.starts_with(PREFIX) && lossy.contains(SEPARATOR) {
                return Err(invalid(&lossy, "its name is not UTF-8"));
            }
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX).filter(|rest| rest.contains(SEPARATOR)) else { continue };
        let value = value.into_string().map_err(|_| invalid(name, "its value is not UTF-8"))?;
        let path = path(name, rest, services, source)?;
        found.push(Override { variable: name.to_owned(), path, value });
    }
    found.sort_by(|a, b| a.variable.cmp(&b.variable));
    let mut by_key: BTreeMap<&[String], &str> = BTreeMap::new();
    for o in &found {
        if let Some(other) = by_key.insert(&o.path, &o.variable) {
            let message = format!("it sets `{}` as `{other}` does; unset one of them", o.path.join("."));
            return Err(invalid(&o.variable, &message));
        }
    }
    // A service the file does not define is added by its URL; any other key alone
    // is a misspelt name.
    for o in &found {
        if let [table, service, _] = o.path.as_slice() {
            let known = services.iter().any(|s| s == service);
            if table == "services" && !known && !found.iter().any(|u| u.adds_url_of(service)) {
                let names = if services.is_empty() { "none".to_owned() } else { services.join(", ") };
                let message = format!(
                    "there is no service `{service}` in `{source}` (it has: {names}); set {} to add it, written in the service's exact case",
                    variable_for(&["services", service, "url"]),
                );
                return Err(invalid(&o.variable, &message));
            }
        }
    }
    Ok(found)
}

/// The key a variable names: the table and key in lower case, the service resolved.
fn path(variable: &str, rest: &str, services: &[String], source: &str) -> Result<Vec<String>, Error> {
    let segments: Vec<&str> = rest.split(SEPARATOR).collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(invalid(
            variable,
            "it has an empty part; write INTERCALL_<TABLE>__<KEY> or INTERCALL_SERVICES__<NAME>__<KEY>",
        ));
    }
    let table = segments[0].to_ascii_lowercase();
    if table != "services" {
        return Ok(vec![table, segments[1..].join(SEPARATOR).to_ascii_lowercase()]);
    }
    let [_, name @ .., key] = segments.as_slice() else { unreachable!("a separator was found") };
    if name.is_empty() {
        return Err(invalid(variable, &format!("name a service and a key: {PREFIX}SERVICES__<NAME>__{key}")));
    }
    let name = name.join(SEPARATOR);
    let service = match services.iter().find(|s| **s == name) {
        Some(exact) => exact.clone(),
        None => {
            let matches: Vec<&String> = services.iter().filter(|s| s.eq_ignore_ascii_case(&name)).collect();
            match matches.as_slice() {
                [] => name,
                [one] => (*one).clone(),
                many => {
                    let listed = many.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" and ");
                    let message = format!(
                        "`{name}` matches the services {listed} of `{source}`; write the name in its exact case, as in {}",
                        variable_for(&["services", many[0], &key.to_ascii_lowercase()]),
                    );
                    return Err(invalid(variable, &message));
                }
            }
        }
    };
    Ok(vec![table, service, key.to_ascii_lowercase()])
}

/// The variable that overrides the key at `path`, as a message suggests it: upper
/// case, except a service's name, which an override matches in any case.
pub(crate) fn variable_for(path: &[&str]) -> String {
    match path {
        [table, service, key] if *table == "services" => {
            format!("{PREFIX}SERVICES{SEPARATOR}{service}{SEPARATOR}{}", key.to_ascii_uppercase())
        }
        _ => format!("{PREFIX}{}", path.iter().map(|p| p.to_ascii_uppercase()).collect::<Vec<_>>().join(SEPARATOR)),
    }
}

fn invalid(variable: &str, problem: &str) -> Error {
    Error::config(format!("invalid services config in environment variable `{variable}`: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(vars: &[(&str, &str)]) -> Environment {
        Environment::Given(vars.iter().map(|(n, v)| (OsString::from(n), OsString::from(v))).collect())
    }

    fn paths(vars: &[(&str, &str)], services: &[&str]) -> Result<Vec<(String, String)>, String> {
        let services: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
        overrides(&given(vars), &services, "services.toml")
            .map(|found| found.into_iter().map(|o| (o.path.join("."), o.value)).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn tables_and_keys_match_in_any_case_and_other_variables_are_not_overrides() {
        let found = paths(
            &[
                ("INTERCALL_DEFAULTS__TIMEOUT_MS", "500"),
                ("INTERCALL_retry_budget__Ratio", "0.5"),
                ("INTERCALL_SERVICES", "other.toml"),
                ("INTERCALL_SECRET", "not an override"),
                ("PATH", "/bin"),
                ("OTHER_DEFAULTS__TIMEOUT_MS", "1"),
            ],
            &[],
        );
        assert_eq!(
            found.unwrap(),
            [("defaults.timeout_ms".into(), "500".into()), ("retry_budget.ratio".into(), "0.5".into())]
        );
    }

    #[test]
    fn a_service_matches_exactly_then_in_any_case() {
        let found = paths(&[("INTERCALL_SERVICES__CATALOG__URL", "http://a/")], &["Catalog", "Checkout"]);
        assert_eq!(found.unwrap(), [("services.Catalog.url".into(), "http://a/".into())]);
        let found = paths(&[("INTERCALL_SERVICES__catalog__TRIES", "2")], &["Catalog", "catalog"]);
        assert_eq!(found.unwrap(), [("services.catalog.tries".into(), "2".into())], "the exact name wins");
        let message = paths(&[("INTERCALL_SERVICES__CATALOG__TRIES", "2")], &["Catalog", "catalog"]).unwrap_err();
        assert!(message.contains("INTERCALL_SERVICES__CATALOG__TRIES") && message.contains("exact case"), "{message}");
        let found = paths(&[("INTERCALL_SERVICES__MY__SVC__URL", "http://a/")], &["MY__SVC"]);
        assert_eq!(found.unwrap(), [("services.MY__SVC.url".into(), "http://a/".into())], "a `__` inside a name");
    }

    #[test]
    fn a_new_service_is_added_by_its_url_under_the_name_as_written() {
        let found =
            paths(&[("INTERCALL_SERVICES__Search__URL", "http://s/"), ("INTERCALL_SERVICES__Search__TRIES", "1")], &[]);
        assert_eq!(
            found.unwrap(),
            [("services.Search.tries".into(), "1".into()), ("services.Search.url".into(), "http://s/".into())]
        );
        let message = paths(&[("INTERCALL_SERVICES__CATALGO__TRIES", "1")], &["Catalog"]).unwrap_err();
        for needle in [
            "INTERCALL_SERVICES__CATALGO__TRIES",
            "no service `CATALGO`",
            "Catalog",
            "INTERCALL_SERVICES__CATALGO__URL",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
    }

    #[test]
    fn malformed_and_conflicting_names_are_errors_naming_the_variable() {
        for (name, needle) in
            [("INTERCALL_DEFAULTS____TRIES", "empty part"), ("INTERCALL_SERVICES__URL", "name a service and a key")]
        {
            let message = paths(&[(name, "1")], &[]).unwrap_err();
            assert!(message.contains(name) && message.contains(needle), "{message}");
        }
        let message = paths(
            &[("INTERCALL_SERVICES__CATALOG__URL", "http://a/"), ("INTERCALL_SERVICES__Catalog__URL", "http://b/")],
            &["Catalog"],
        )
        .unwrap_err();
        assert!(message.contains("unset one"), "{message}");
    }

    #[test]
    fn variables_are_suggested_in_upper_case_with_the_service_as_written() {
        assert_eq!(variable_for(&["defaults", "timeout_ms"]), "INTERCALL_DEFAULTS__TIMEOUT_MS");
        assert_eq!(variable_for(&["services", "Catalog", "url"]), "INTERCALL_SERVICES__Catalog__URL");
    }

    #[test]
    fn debug_shows_names_never_values() {
        let debug = format!("{:?}", given(&[("INTERCALL_SECURITY__SECRET", "hunter2-hunter2-hunter2")]));
        assert!(debug.contains("INTERCALL_SECURITY__SECRET") && !debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn given_variables_are_read_and_off_reads_none() {
        assert_eq!(given(&[("A", "1"), ("A", "2")]).var("A"), Some("2".into()), "the last one");
        assert_eq!(Environment::Off.var("PATH"), None);
        assert!(overrides(&Environment::Off, &[], "x").unwrap().is_empty());
    }
}
