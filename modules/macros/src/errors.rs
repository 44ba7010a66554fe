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

fn enum_module(attrs: &[Attribute]) -> syn::Result<String> {
    let mut module = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("api")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("module") {
                module = Some(meta.value()?.parse::<LitStr>()?.value());
                Ok(())
            } else {
                Err(meta.error("expected `module = \"...\"`"))
            }
        })?;
    }
    module.ok_or_else(|| {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[derive(ApiError)] needs #[api(module = \"<module>\")] on the enum",
        )
    })
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
            } else if meta.path.is_ident("expose") {
                expose = true;
            } else if meta.path.is_ident("code") {
                code = Some(meta.value()?.parse::<LitStr>()?.value());
            } else {
                return Err(meta.error(
                    "expected `status = N`, `unavailable`, `internal`, `expose` or `code = \"..\"`",
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
    };
    let (unit, fields) = match &v.fields {
        Fields::Unit => (true, Vec::new()),
        Fields::Named(named) => {
            let mut fields = Vec::new();
            for f in &named.named {
                let mut hidden = kind != Kind::Domain && !expose;
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
    Ok(match v.fields.as_slice() {
        [] => quote! { { let _ = reason; Self::#ident } },
        [f] => {
            let name = &f.ident;
            quote! { Self::#ident { #name: reason } }
        }
        _ => {
            return Err(syn::Error::new_spanned(
                ident,
                format!("an #[api({what})] variant has no field or one String field"),
            ));
        }
    })
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            input,
            "#[derive(ApiError)] is for enums",
        ));
    };
    let module = enum_module(&input.attrs)?;
    let variants = data
        .variants
        .iter()
        .map(|v| parse_variant(&module, v))
        .collect::<syn::Result<Vec<_>>>()?;
    let name = &input.ident;
    let k = quote!(::cleave_kernel);

    let unavailable = constructor(&variants, Kind::Unavailable, "unavailable")?;
    let internal = constructor(&variants, Kind::Internal, "internal")?;

    let docs = variants.iter().map(|v| {
        let (code, status, doc) = (&v.code, v.status, &v.doc);
        quote! { #k::error::ErrorDoc { code: #code, status: #status, description: #doc } }
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
            const ERRORS: &'static [#k::error::ErrorDoc] = &[#(#docs),*];

            fn code(&self) -> &'static str {
                match self { #(#codes,)* }
            }

            fn status_u16(&self) -> u16 {
                match self { #(#statuses,)* }
            }

            fn unavailable(reason: ::std::string::String) -> Self {
                #unavailable
            }

            fn internal(reason: ::std::string::String) -> Self {
                #internal
            }

            fn expose_detail(&self) -> bool {
                match self { #(#exposes,)* }
            }

            fn retry_after_secs(&self) -> ::core::option::Option<u64> {
                match self { #(#retry_after,)* }
            }

            fn params(&self) -> ::core::option::Option<#k::__private::serde_json::Value> {
                match self { #(#params,)* }
            }

            fn from_code(
                code: &str,
                params: ::core::option::Option<&#k::__private::serde_json::Value>,
            ) -> ::core::option::Option<Self> {
                match code {
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
