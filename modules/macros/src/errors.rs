//! `#[derive(ApiError)]`: one row per error variant (code, status, description), from which
//! the code and status of a value, its wire form and its documentation are derived.

use heck::ToSnakeCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitInt, LitStr, Type};

/// What kind of failure a variant is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The caller's mistake or a domain refusal, with its own status.
    Domain,
    /// The module (or one it depends on) cannot be reached: 503.
    Unavailable,
    /// A bug of ours: 500.
    Internal,
    /// A caller the operation does not admit: 401 or 403, by the `Refusal` it holds.
    Refused,
}

struct Field {
    ident: Ident,
    ty: Type,
    hidden: bool,
}

struct Variant {
    ident: Ident,
    code: String,
    status: u16,
    kind: Kind,
    expose: bool,
    doc: String,
    unit: bool,
    fields: Vec<Field>,
}

/// The text of the `///` lines among `attrs`, joined with spaces.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(lit) = &nv.value
            && let syn::Lit::Str(s) = &lit.lit
        {
            lines.push(s.value().trim().to_owned());
        }
    }
    // The summary: the lines up to the first blank one.
    lines
        .into_iter()
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The wire code of `variant` in `module`: `<module>.<variant in snake case>`.
pub(crate) fn code_of(module: &str, variant: &Ident) -> String {
    format!("{module}.{}", variant.to_string().to_snake_case())
}

/// The name of the hidden constant holding a variant's code, which contracts name in their
/// operations' error lists (a typo there is then a compile error).
pub(crate) fn code_const(variant: &Ident) -> Ident {
    format_ident!("__code_{}", variant)
}

/// The enum's `#[api(module = "..")]`, and whether it says `no_refusals` (an error type that
/// is no operation's, like the kernel's own: it has no variant to refuse callers with).
fn enum_module(attrs: &[Attribute]) -> syn::Result<(String, bool)> {
    let mut module = None;
    let mut no_refusals = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("api")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("module") {
                module = Some(meta.value()?.parse::<LitStr>()?.value());
                Ok(())
            } else if meta.path.is_ident("no_refusals") {
                no_refusals = true;
                Ok(())
            } else {
                Err(meta.error("expected `module = \"...\"` or `no_refusals`"))
            }
        })?;
    }
    let module = module.ok_or_else(|| {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[derive(ApiError)] needs #[api(module = \"<module>\")] on the enum",
        )
    })?;
    Ok((module, no_refusals))
}

/// The `refused` variant's name and field, the codes of its two refusals, and the
/// constructor from a `Refusal` (or, for `no_refusals` types, none of them).
struct Refused {
    variant: Option<(Ident, Ident)>,
    codes: [String; 2],
    constructor: TokenStream,
}

fn refused(variants: &[Variant], module: &str, no_refusals: bool) -> syn::Result<Refused> {
    let mut found = variants.iter().filter(|v| v.kind == Kind::Refused);
    let first = found.next();
    if let Some(extra) = found.next() {
        return Err(syn::Error::new_spanned(
            &extra.ident,
            "only one variant may be #[api(refused)]",
        ));
    }
    match (first, no_refusals) {
        (None, true) => Ok(Refused {
            variant: None,
            codes: [String::new(), String::new()],
            constructor: quote! {
                Self::internal(::std::format!("refused by an operation's access rules: {refusal}"))
            },
        }),
        (Some(v), false) => {
            let [field] = v.fields.as_slice() else {
                return Err(syn::Error::new_spanned(
                    &v.ident,
                    "a #[api(refused)] variant has one field, the Refusal",
                ));
            };
            let (ident, name) = (v.ident.clone(), field.ident.clone());
            Ok(Refused {
                constructor: quote! { Self::#ident { #name: refusal } },
                variant: Some((ident, name)),
                codes: [
                    format!("{module}.unauthenticated"),
                    format!("{module}.forbidden"),
                ],
            })
        }
        (None, false) => Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "mark one variant #[api(refused)] (`Refused { refusal: Refusal }`), or say \
             #[api(no_refusals)] on an error type that is no operation's",
        )),
        (Some(v), true) => Err(syn::Error::new_spanned(
            &v.ident,
            "no_refusals and a #[api(refused)] variant contradict each other",
        )),
    }
}

fn parse_variant(module: &str, v: &syn::Variant) -> syn::Result<Variant> {
    let mut status: Option<u16> = None;
    let mut kind = Kind::Domain;
    let mut expose = false;
    let mut code = None;
    for attr in v.attrs.iter().filter(|a| a.path().is_ident("api")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("status") {
                let lit: LitInt = meta.value()?.parse()?;
                let n: u16 = lit.base10_parse()?;
                if !(400..=599).contains(&n) {
                    return Err(meta.error("an error's status is 400 to 599"));
                }
                status = Some(n);
            } else if meta.path.is_ident("unavailable") {
                kind = Kind::Unavailable;
            } else if meta.path.is_ident("internal") {
                kind = Kind::Internal;
            } else if meta.path.is_ident("refused") {
                kind = Kind::Refused;
            } else if meta.path.is_ident("expose") {
                expose = true;
            } else if meta.path.is_ident("code") {
                code = Some(meta.value()?.parse::<LitStr>()?.value());
            } else {
                return Err(meta.error(
                    "expected `status = N`, `unavailable`, `internal`, `refused`, `expose` or \
                     `code = \"..\"`",
                ));
            }
            Ok(())
        })?;
    }
    let status = match (kind, status) {
        (Kind::Domain, Some(s)) => s,
        (Kind::Domain, None) => {
            return Err(syn::Error::new_spanned(
                &v.ident,
                "each variant needs #[api(status = N)], #[api(unavailable)] or #[api(internal)]",
            ));
        }
        (Kind::Unavailable, s) => s.unwrap_or(503),
        (Kind::Internal, s) => s.unwrap_or(500),
        (Kind::Refused, None) => 401,
        (Kind::Refused, Some(_)) => {
            return Err(syn::Error::new_spanned(
                &v.ident,
                "a #[api(refused)] variant answers 401 or 403 by its Refusal: no status",
            ));
        }
    };
    let (unit, fields) = match &v.fields {
        Fields::Unit => (true, Vec::new()),
        Fields::Named(named) => {
            let mut fields = Vec::new();
            for f in &named.named {
                let mut hidden = (matches!(kind, Kind::Unavailable | Kind::Internal) && !expose)
                    || f.ident.as_ref().is_some_and(|i| i == UPSTREAM);
                for attr in f.attrs.iter().filter(|a| a.path().is_ident("api")) {
                    attr.parse_nested_meta(|meta| {
                        if meta.path.is_ident("hidden") {
                            hidden = true;
                            Ok(())
                        } else {
                            Err(meta.error("expected `hidden`"))
                        }
                    })?;
                }
                fields.push(Field {
                    ident: f.ident.clone().ok_or_else(|| {
                        syn::Error::new_spanned(f, "fields of error variants are named")
                    })?,
                    ty: f.ty.clone(),
                    hidden,
                });
            }
            (false, fields)
        }
        Fields::Unnamed(_) => {
            return Err(syn::Error::new_spanned(
                &v.ident,
                "error variants are unit or have named fields",
            ));
        }
    };
    Ok(Variant {
        code: code.map_or_else(|| code_of(module, &v.ident), |c| format!("{module}.{c}")),
        ident: v.ident.clone(),
        status,
        kind,
        expose,
        doc: doc_text(&v.attrs),
        unit,
        fields,
    })
}

/// `Self::V { reason }` (or `Self::V` / `Self::V { field: reason }`) for the constructor of a
/// variant marked `unavailable` or `internal`.
fn constructor(variants: &[Variant], kind: Kind, what: &str) -> syn::Result<TokenStream> {
    let mut found = variants.iter().filter(|v| v.kind == kind);
    let v = found.next().ok_or_else(|| {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            format!("mark one variant #[api({what})]"),
        )
    })?;
    if found.next().is_some() {
        return Err(syn::Error::new_spanned(
            &v.ident,
            format!("only one variant may be #[api({what})]"),
        ));
    }
    let ident = &v.ident;
    let upstream = v
        .has_upstream()
        .then(|| quote! { upstream: ::core::option::Option::None });
    let own: Vec<&Field> = v.fields.iter().filter(|f| f.ident != UPSTREAM).collect();
    Ok(match own.as_slice() {
        [] if upstream.is_none() => quote! { { let _ = reason; Self::#ident } },
        [] => quote! { { let _ = reason; Self::#ident { #upstream } } },
        [f] => {
            let name = &f.ident;
            quote! { Self::#ident { #name: reason, #upstream } }
        }
        _ => {
            return Err(syn::Error::new_spanned(
                ident,
                format!(
                    "an #[api({what})] variant has no field or one String field (and, if \
                     unavailable, `upstream: Option<Upstream>`)"
                ),
            ));
        }
    })
}

/// The name of the field of an `unavailable` variant that carries a dependency's failure
/// through as itself (`Option<cleave_kernel::error::Upstream>`).
const UPSTREAM: &str = "upstream";

impl Variant {
    fn has_upstream(&self) -> bool {
        self.kind == Kind::Unavailable && self.fields.iter().any(|f| f.ident == UPSTREAM)
    }
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            input,
            "#[derive(ApiError)] is for enums",
        ));
    };
    let (module, no_refusals) = enum_module(&input.attrs)?;
    let variants = data
        .variants
        .iter()
        .map(|v| parse_variant(&module, v))
        .collect::<syn::Result<Vec<_>>>()?;
    let name = &input.ident;
    let k = quote!(::cleave_kernel);

    let unavailable = constructor(&variants, Kind::Unavailable, "unavailable")?;
    // A dependency's failure passed through as itself, where the variant can hold it.
    let passed = variants.iter().find(|v| v.has_upstream()).map_or_else(
        // No variant to hold it: the kernel error it names, if this type has it.
        || {
            quote! {
                upstream
                    .code
                    .and_then(|code| Self::from_code(code, upstream.params.as_ref()))
                    .unwrap_or_else(|| Self::unavailable(reason))
            }
        },
        |v| {
            let ident = &v.ident;
            let reason = v.fields.iter().find(|f| f.ident != UPSTREAM).map(|f| {
                let name = &f.ident;
                quote! { #name: reason, }
            });
            quote! {
                Self::#ident { #reason upstream: ::core::option::Option::Some(upstream) }
            }
        },
    );
    // Arms that come first for the variant holding an upstream failure: `f` of it.
    let upstream_arm = |f: TokenStream| {
        variants.iter().find(|v| v.has_upstream()).map(|v| {
            let ident = &v.ident;
            quote! { Self::#ident { upstream: ::core::option::Option::Some(upstream), .. } => #f, }
        })
    };
    let own_code = variants
        .iter()
        .find(|v| v.has_upstream())
        .map(|v| v.code.clone())
        .unwrap_or_default();
    let upstream_code = upstream_arm(quote! { upstream.code.unwrap_or(#own_code) });
    let upstream_status = upstream_arm(quote! { upstream.status });
    let upstream_expose = upstream_arm(quote! { upstream.code.is_some() });
    let upstream_retry = upstream_arm(quote! { upstream.retry_after_secs });
    let upstream_params = upstream_arm(quote! { upstream.params.clone() });
    let internal = constructor(&variants, Kind::Internal, "internal")?;
    let refused = refused(&variants, &module, no_refusals)?;
    let refused_constructor = &refused.constructor;
    let [unauthenticated_code, forbidden_code] = &refused.codes;
    // The refused variant's rows: its code and status follow the refusal it holds.
    let refused_arms = |f: &dyn Fn(&str, u16) -> TokenStream| {
        refused.variant.as_ref().map(|(ident, field)| {
            let (a, b) = (f(unauthenticated_code, 401), f(forbidden_code, 403));
            quote! {
                Self::#ident { #field: #k::error::Refusal::Unauthenticated(_) } => #a,
                Self::#ident { #field: #k::error::Refusal::Forbidden(_) } => #b,
            }
        })
    };
    let refused_code_arms = refused_arms(&|code, _| quote!(#code));
    let refused_status_arms = refused_arms(&|_, status| quote!(#status));
    let refused_docs = refused.variant.as_ref().map(|_| {
        quote! {
            #k::error::ErrorDoc {
                code: #unauthenticated_code,
                status: 401,
                description: "The caller proved no identity (no access token, no module certificate) and the operation admits only callers who do.",
            },
            #k::error::ErrorDoc {
                code: #forbidden_code,
                status: 403,
                description: "The caller is not among those the operation admits (`reason` says who is).",
            },
        }
    });
    let refused_decoders = refused.variant.as_ref().map(|(ident, field)| {
        quote! {
            #unauthenticated_code | #forbidden_code => {
                let reason = params
                    .and_then(|p| p.get("reason"))
                    .and_then(#k::__private::serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                ::core::option::Option::Some(Self::#ident {
                    #field: if code == #unauthenticated_code {
                        #k::error::Refusal::Unauthenticated(reason)
                    } else {
                        #k::error::Refusal::Forbidden(reason)
                    },
                })
            }
        }
    });
    let variants: Vec<Variant> = variants
        .into_iter()
        .filter(|v| v.kind != Kind::Refused)
        .collect();
    let refused_rest = refused.variant.as_ref().map(|(ident, field)| {
        quote! {
            Self::#ident { #field } => {
                let mut map = #k::__private::serde_json::Map::new();
                map.insert(
                    "reason".to_owned(),
                    #k::__private::serde_json::Value::String(#field.reason().to_owned()),
                );
                ::core::option::Option::Some(#k::__private::serde_json::Value::Object(map))
            }
        }
    });
    let refused_others = |value: TokenStream| {
        refused
            .variant
            .as_ref()
            .map(|(ident, _)| quote! { Self::#ident { .. } => #value, })
    };
    let refused_expose = refused_others(quote!(true));
    let refused_retry = refused_others(quote!(::core::option::Option::None));

    let docs = variants.iter().map(|v| {
        let (code, status, doc) = (&v.code, v.status, &v.doc);
        quote! { #k::error::ErrorDoc { code: #code, status: #status, description: #doc }, }
    });
    let code_consts = variants.iter().map(|v| {
        let (c, code) = (code_const(&v.ident), &v.code);
        quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            pub const #c: &'static str = #code;
        }
    });
    let codes = variants.iter().map(|v| {
        let (ident, code) = (&v.ident, &v.code);
        quote! { Self::#ident { .. } => #code }
    });
    let statuses = variants.iter().map(|v| {
        let (ident, status) = (&v.ident, v.status);
        quote! { Self::#ident { .. } => #status }
    });
    let exposes = variants.iter().map(|v| {
        let ident = &v.ident;
        let expose = v.expose || v.status < 500;
        quote! { Self::#ident { .. } => #expose }
    });
    let retry_after = variants.iter().map(|v| {
        let ident = &v.ident;
        if v.fields.iter().any(|f| f.ident == "retry_after_secs") {
            quote! { Self::#ident { retry_after_secs, .. } => ::core::option::Option::Some(*retry_after_secs) }
        } else {
            quote! { Self::#ident { .. } => ::core::option::Option::None }
        }
    });
    let params = variants.iter().map(|v| {
        let ident = &v.ident;
        let shown: Vec<&Field> = v.fields.iter().filter(|f| !f.hidden).collect();
        if shown.is_empty() {
            return quote! { Self::#ident { .. } => ::core::option::Option::None };
        }
        let names: Vec<&Ident> = shown.iter().map(|f| &f.ident).collect();
        let keys: Vec<String> = names.iter().map(ToString::to_string).collect();
        quote! {
            Self::#ident { #(#names,)* .. } => {
                let mut map = #k::__private::serde_json::Map::new();
                #(
                    map.insert(
                        #keys.to_owned(),
                        #k::__private::serde_json::to_value(#names)
                            .unwrap_or(#k::__private::serde_json::Value::Null),
                    );
                )*
                ::core::option::Option::Some(#k::__private::serde_json::Value::Object(map))
            }
        }
    });
    let decoders = variants.iter().map(|v| {
        let (ident, code) = (&v.ident, &v.code);
        if v.unit {
            return quote! { #code => ::core::option::Option::Some(Self::#ident) };
        }
        let shown: Vec<&Field> = v.fields.iter().filter(|f| !f.hidden).collect();
        let shown_names: Vec<&Ident> = shown.iter().map(|f| &f.ident).collect();
        let shown_types: Vec<&Type> = shown.iter().map(|f| &f.ty).collect();
        let hidden_names: Vec<&Ident> = v
            .fields
            .iter()
            .filter(|f| f.hidden)
            .map(|f| &f.ident)
            .collect();
        quote! {
            #code => {
                #[derive(#k::__private::serde::Deserialize)]
                #[serde(crate = "::cleave_kernel::__private::serde")]
                struct Params { #(#shown_names: #shown_types,)* }
                let value = params
                    .cloned()
                    .unwrap_or_else(|| #k::__private::serde_json::Value::Object(
                        #k::__private::serde_json::Map::new(),
                    ));
                let p: Params = #k::__private::serde_json::from_value(value).ok()?;
                let _ = &p;
                ::core::option::Option::Some(Self::#ident {
                    #(#shown_names: p.#shown_names,)*
                    #(#hidden_names: ::core::default::Default::default(),)*
                })
            }
        }
    });

    Ok(quote! {
        impl #name {
            #(#code_consts)*
        }

        impl #k::error::ApiError for #name {
            const ERRORS: &'static [#k::error::ErrorDoc] = &[#(#docs)* #refused_docs];
            const REFUSALS: [&'static str; 2] = [#unauthenticated_code, #forbidden_code];

            fn code(&self) -> &'static str {
                match self { #upstream_code #refused_code_arms #(#codes,)* }
            }

            fn status_u16(&self) -> u16 {
                match self { #upstream_status #refused_status_arms #(#statuses,)* }
            }

            fn unavailable(reason: ::std::string::String) -> Self {
                #unavailable
            }

            fn passed(
                reason: ::std::string::String,
                upstream: #k::error::Upstream,
            ) -> Self {
                #passed
            }

            fn internal(reason: ::std::string::String) -> Self {
                #internal
            }

            fn refused(refusal: #k::error::Refusal) -> Self {
                #refused_constructor
            }

            fn expose_detail(&self) -> bool {
                match self { #upstream_expose #refused_expose #(#exposes,)* }
            }

            fn retry_after_secs(&self) -> ::core::option::Option<u64> {
                match self { #upstream_retry #refused_retry #(#retry_after,)* }
            }

            fn params(&self) -> ::core::option::Option<#k::__private::serde_json::Value> {
                match self { #upstream_params #refused_rest #(#params,)* }
            }

            fn from_code(
                code: &str,
                params: ::core::option::Option<&#k::__private::serde_json::Value>,
            ) -> ::core::option::Option<Self> {
                match code {
                    #refused_decoders
                    #(#decoders,)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        impl #k::__private::serde::Serialize for #name {
            fn serialize<S: #k::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                #k::error::serialize_api_error(self, serializer)
            }
        }

        impl<'de> #k::__private::serde::Deserialize<'de> for #name {
            fn deserialize<D: #k::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                #k::error::deserialize_api_error(deserializer)
            }
        }
    })
}

/// `#[contract_error(module = "..")]`: the enum with the derives every contract error has and
/// the failures every contract shares (`Refused`, `Unavailable`, `Internal`) appended, unless
/// it declares its own variant of that kind. `unavailable = ".."` words the `Unavailable`
/// description where the default ("The <module> module (or its storage) cannot be reached.")
/// says too little.
pub(crate) fn contract_error(
    args: TokenStream,
    mut item: syn::ItemEnum,
) -> syn::Result<TokenStream> {
    let mut module: Option<LitStr> = None;
    let mut unavailable_doc: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("module") {
            module = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("unavailable") {
            unavailable_doc = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("expected `module = \"..\"` or `unavailable = \"..\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    let module = module.ok_or_else(|| {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[contract_error] needs `module = \"<module>\"`",
        )
    })?;
    let name = module.value();
    let declares = |kind: &str| {
        item.variants.iter().any(|v| {
            v.attrs
                .iter()
                .filter(|a| a.path().is_ident("api"))
                .any(|a| {
                    let mut found = false;
                    let _ = a.parse_nested_meta(|meta| {
                        found |= meta.path.is_ident(kind);
                        // Skip a value, if any, to keep parsing.
                        if meta.input.peek(syn::Token![=]) {
                            let _: syn::Expr = meta.value()?.parse()?;
                        }
                        Ok(())
                    });
                    found
                })
        })
    };
    let k = quote!(::cleave_kernel);
    let string = quote!(::std::string::String);
    let mut shared: Vec<syn::Variant> = Vec::new();
    if !declares("refused") {
        shared.push(syn::parse_quote! {
            /// A caller the operation does not admit (see its access rules).
            #[api(refused)]
            #[error("{refusal}")]
            Refused {
                /// Unauthenticated (401) or forbidden (403), and why.
                refusal: #k::Refusal
            }
        });
    }
    if !declares("unavailable") {
        let doc = unavailable_doc.map_or_else(
            || format!("The {name} module (or its storage) cannot be reached."),
            |d| d.value(),
        );
        let message = format!("{name} is unavailable: {{reason}}");
        shared.push(syn::parse_quote! {
            #[doc = #doc]
            #[api(unavailable)]
            #[error(#message)]
            Unavailable {
                /// Why (logged, not sent).
                reason: #string,
                /// A dependency's failure passed on as itself (a 429 or 504, or when to retry).
                upstream: ::core::option::Option<#k::Upstream>
            }
        });
    }
    if !declares("internal") {
        let doc = format!("A bug in the {name} module.");
        let message = format!("{name} internal error: {{reason}}");
        shared.push(syn::parse_quote! {
            #[doc = #doc]
            #[api(internal)]
            #[error(#message)]
            Internal {
                /// What went wrong (logged, not sent).
                reason: #string
            }
        });
    }
    item.variants.extend(shared);
    Ok(quote! {
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            ::thiserror::Error,
            #k::ApiError
        )]
        #[api(module = #module)]
        #item
    })
}
