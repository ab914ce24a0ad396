//! Rules that look at the service as a whole rather than at one item.

use quote::format_ident;

use crate::ast::Service;
use crate::errors::Errors;

/// Names a trait method cannot have, because `{Trait}Proxy` (or `{Trait}Publisher`)
/// already has them: its inherent constructor and the methods of the traits it derives
/// (`Clone`).
const PROXY_NAMES: &[(&str, &str)] = &[
    ("new", "the constructor `{proxy}::new`"),
    ("clone", "`Clone::clone`, which `{proxy}` implements"),
    ("clone_from", "`Clone::clone_from`, which `{proxy}` implements"),
];

/// `generated` is the suffix of the type that implements the trait: `Proxy` or `Publisher`.
pub(crate) fn check(service: &Service<'_>, generated: &str, errors: &mut Errors) {
    let proxy = format_ident!("{}{generated}", service.ident).to_string();
    for method in &service.methods {
        let name = method.ident.to_string();
        if let Some((_, generated)) = PROXY_NAMES.iter().find(|(taken, _)| *taken == name) {
            let generated = generated.replace("{proxy}", &proxy);
            errors.at(method.ident, format!("method name `{name}` conflicts with {generated}; rename the method"));
        } else if name.starts_with("__intercall") {
            errors.at(
                method.ident,
                "names starting with `__intercall` are reserved for generated code; rename the method",
            );
        }
    }
}
