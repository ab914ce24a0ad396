//! `#[intercall::events]`: the event trait's own rule (no reply), `{Trait}Publisher`
//! and `{Trait}Consumer`. The trait, its `dyn` support, the method rules and the
//! fallback are the service macro's.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::LitStr;
use syn::spanned::Spanned;

use crate::ast::{Method, Service};
use crate::errors::{Errors, shown};
use crate::trait_def::{output, typed_args};

/// An event has no reply: every method returns `Result<(), E>`; and an event has one
/// ordering key at most.
pub(crate) fn check(events: &Service<'_>, errors: &mut Errors) {
    for method in &events.methods {
        let mut keys = method.args.iter().filter(|arg| arg.ordering_key.is_some());
        if let Some(first) = keys.next() {
            for again in keys {
                errors.at(
                    again.ordering_key,
                    format!(
                        "an event has one ordering key at most, and `{}` already is this one's; remove `#[ordering_key]` here (to order by both, make one argument of them, such as a `String` joining the two)",
                        first.ident
                    ),
                );
            }
        }
        let is_unit = matches!(method.ok, syn::Type::Tuple(tuple) if tuple.elems.is_empty());
        if !is_unit {
            errors.at_verbatim(
                method.ok,
                format!(
                    "an event method returns `Result<(), {}>`: an event has no reply (the publisher returns once Redis has stored it); send a reply as an event of its own, or make this a `#[intercall::service]` call",
                    shown(method.err)
                ),
            );
        }
    }
}

/// A service call has no ordering key: `#[ordering_key]` is for events.
pub(crate) fn reject_ordering_keys(service: &Service<'_>, errors: &mut Errors) {
    for arg in service.methods.iter().flat_map(|method| &method.args) {
        if let Some(attr) = arg.ordering_key {
            errors.at(
                attr,
                "`#[ordering_key]` orders events, and a call has no order to keep; remove it here, or declare the trait with `#[intercall::events]`",
            );
        }
    }
}

fn serde_crate(krate: &syn::Path) -> LitStr {
    LitStr::new(&format!("{}::__private::serde", quote!(#krate)), Span::call_site())
}

// Input:  trait OrderEvents { async fn placed(&self, order: Order) -> Result<(), E>; }
// Output: #[derive(Clone, Debug)] pub struct OrderEventsPublisher { .. }
//         impl OrderEventsPublisher { pub fn new(invoker: Invoker) -> Result<Self, intercall::Error> }
//         impl OrderEvents for OrderEventsPublisher {
//             async fn placed(&self, order: Order) -> Result<(), E> { /* XADD {"order": ..} */ }
//         }
pub(crate) fn publisher(events: &Service<'_>) -> TokenStream {
    let Service { vis, ident, krate, name, docs, .. } = events;
    let publisher = format_ident!("{}Publisher", ident);
    let serde_crate = serde_crate(krate);
    let methods = events.methods.iter().map(|method| {
        let Method { ident, attrs, cfg, name: method_name, .. } = method;
        let docs = attrs.iter().filter(|attr| attr.path().is_ident("doc"));
        let (args, output) = (typed_args(method), output(method));
        let fields = method.args.iter().map(|arg| {
            let (field, ty) = (arg.ident, arg.ty);
            quote!(#field: &'__intercall #ty)
        });
        let names: Vec<_> = method.args.iter().map(|arg| arg.ident).collect();
        let lifetime = (!names.is_empty()).then(|| quote!(<'__intercall>));
        let err = method.err;
        // Spanned at the error type: without `From<CallError>`, the error is there.
        let published = quote_spanned!(err.span()=> #krate::__private::events::published::<#err>);
        // Spanned at the key's type: a type that is not a key is reported there.
        let key = match method.args.iter().find(|arg| arg.ordering_key.is_some()) {
            Some(arg) => {
                let (key, ty) = (arg.ident, arg.ty);
                let text =
                    quote_spanned!(ty.span()=> <#ty as #krate::__private::events::OrderingKey>::ordering_key(&#key));
                quote!(::core::option::Option::Some(&*#text))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #(#docs)*
            #cfg
            async fn #ident(&self, #(#args),*) -> #output {
                #[derive(#krate::__private::serde::Serialize)]
                #[serde(crate = #serde_crate)]
                struct __IntercallArgs #lifetime { #(#fields),* }

                #published(self.publisher.publish(#method_name, &__IntercallArgs { #(#names: &#names),* }, #key).await)
            }
        }
    });
    let doc = format!(
        "Publishes [`{ident}`] events to the Redis stream `intercall:events:{name}`; it is a `{ident}` itself."
    );
    quote! {
        #[doc = #doc]
        ///
        #(#docs)*
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #publisher {
            publisher: #krate::__private::events::Publisher,
        }

        impl #publisher {
            /// A publisher on the invoker's `[events]` Redis; fails when the
            /// configuration has none (or intercall's `events` feature is off). Connects
            /// on the first publish.
            #vis fn new(invoker: #krate::Invoker) -> ::core::result::Result<Self, #krate::Error> {
                let publisher = #krate::__private::events::publisher(&invoker, #name)?;
                ::core::result::Result::Ok(Self { publisher })
            }
        }

        #[allow(deprecated)] // implements the user's methods; their callers get the warnings
        impl #ident for #publisher {
            #(#methods)*
        }
    }
}

// Input:  the trait above.
// Output: pub struct OrderEventsConsumer<T> { .. }
//         impl<T: OrderEvents + 'static> OrderEventsConsumer<T> {
//             new(invoker, group, T), from_arc, consumer_name, only_new_events, run(shutdown)
//         }
//         whose dispatcher decodes `{"order": ..}` for method `placed` and calls `T::placed`;
//         a method's match arm and its name in the list carry its `#[cfg]`.
pub(crate) fn consumer(events: &Service<'_>) -> TokenStream {
    let Service { vis, ident, krate, name, .. } = events;
    let consumer = format_ident!("{}Consumer", ident);
    let keyed = events.methods.iter().flat_map(|m| &m.args).any(|arg| arg.ordering_key.is_some());
    let serde_crate = serde_crate(krate);
    let method_names = events.methods.iter().map(|m| {
        let (cfg, name) = (&m.cfg, &m.name);
        quote!(#cfg #name,)
    });
    let arms = events.methods.iter().map(|method| {
        let (method_ident, method_name, cfg) = (method.ident, &method.name, &method.cfg);
        let fields = method.args.iter().map(|arg| {
            let (field, ty) = (arg.ident, arg.ty);
            quote!(#field: #ty)
        });
        let names = method.args.iter().map(|arg| arg.ident);
        quote! {
            #cfg
            #method_name => {
                #[derive(#krate::__private::serde::Deserialize)]
                #[serde(crate = #serde_crate)]
                struct __IntercallArgs { #(#fields),* }

                match #krate::__private::events::decode::<__IntercallArgs>(payload) {
                    ::core::result::Result::Ok(args) => {
                        let implementation = ::std::sync::Arc::clone(implementation);
                        #krate::__private::events::Dispatch::Run(::std::boxed::Box::pin(async move {
                            #krate::__private::events::outcome(
                                <__IntercallImpl as #ident>::#method_ident(&*implementation, #(args.#names),*).await,
                            )
                        }))
                    }
                    ::core::result::Result::Err(why) => #krate::__private::events::Dispatch::Undecodable(why),
                }
            }
        }
    });
    let doc = format!(
        "Runs a [`{ident}`] implementation for one subscriber group: reads the group's events from the Redis stream `intercall:events:{name}` and calls the matching method."
    );
    quote! {
        #[doc = #doc]
        ///
        /// Every group gets every event; the consumers of one group (replicas) share its
        /// events. An event is acknowledged once its handler returns `Ok`; an `Err` is
        /// redelivered up to `max_deliveries` times, then moved to the dead-letter stream.
        #vis struct #consumer<__IntercallImpl> {
            consumer: #krate::__private::events::Consumer<__IntercallImpl>,
        }

        // The dispatcher calls the user's methods; a `#[deprecated]` one warns at the
        // user's own calls, not here.
        #[allow(deprecated)]
        impl<__IntercallImpl: #ident + 'static> #consumer<__IntercallImpl> {
            /// Consumes for `group` (a subscriber group: each group gets every event) with
            /// this implementation; fails when the configuration has no `[events]` (or
            /// intercall's `events` feature is off). Connects in [`run`](Self::run).
            #vis fn new(
                invoker: #krate::Invoker,
                group: impl ::core::convert::Into<::std::string::String>,
                implementation: __IntercallImpl,
            ) -> ::core::result::Result<Self, #krate::Error> {
                Self::from_arc(invoker, group, ::std::sync::Arc::new(implementation))
            }

            /// Like [`new`](Self::new), with an implementation the node also uses elsewhere.
            #vis fn from_arc(
                invoker: #krate::Invoker,
                group: impl ::core::convert::Into<::std::string::String>,
                implementation: ::std::sync::Arc<__IntercallImpl>,
            ) -> ::core::result::Result<Self, #krate::Error> {
                fn __intercall_dispatch<__IntercallImpl: #ident + 'static>(
                    implementation: &::std::sync::Arc<__IntercallImpl>,
                    method: &str,
                    payload: &str,
                ) -> #krate::__private::events::Dispatch {
                    match method {
                        #(#arms)*
                        _ => #krate::__private::events::Dispatch::UnknownMethod,
                    }
                }
                let consumer = #krate::__private::events::consumer(
                    &invoker,
                    #name,
                    &[#(#method_names)*],
                    #keyed,
                    ::core::convert::Into::into(group),
                    implementation,
                    __intercall_dispatch::<__IntercallImpl>,
                )?;
                ::core::result::Result::Ok(Self { consumer })
            }

            /// This consumer's name within its group (default: the process id and a
            /// random suffix).
            #vis fn consumer_name(mut self, name: impl ::core::convert::Into<::std::string::String>) -> Self {
                self.consumer.set_consumer_name(::core::convert::Into::into(name));
                self
            }

            /// A group this consumer creates starts at the stream's end, not with the
            /// events the stream retains.
            #vis fn only_new_events(mut self) -> Self {
                self.consumer.set_only_new_events();
                self
            }

            /// Handles events until `shutdown` completes, then finishes the batch in
            /// hand (handlers, processed records, acknowledgements) and returns. Redis
            /// outages are waited out.
            #vis async fn run<F>(self, shutdown: F)
            where
                F: ::core::future::Future<Output = ()> + ::core::marker::Send,
            {
                self.consumer.run(shutdown).await
            }
        }
    }
}
