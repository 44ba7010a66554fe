//! `#[contract(...)]`: a contract trait whose methods carry their route and repeat-safety,
//! expanded into the trait, its operation table, its interception point and its descriptor.

use heck::{ToShoutySnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{FnArg, Ident, ItemTrait, LitStr, Pat, Path, Token, TraitItem, TraitItemFn};

use crate::errors::{code_const, doc_text};

/// `module = "..", error = Type, client = Type, http = path`.
struct Args {
    module: String,
    error: Path,
    client: Option<Ident>,
    http: Option<Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut module = None;
        let mut error = None;
        let mut client = None;
        let mut http = None;
        let pairs = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated(input)?;
        for pair in pairs {
            let key = pair
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let value = pair.value;
            match key.as_str() {
                "module" => {
                    let syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) = value
                    else {
                        return Err(syn::Error::new_spanned(value, "module = \"<name>\""));
                    };
                    module = Some(s.value());
                }
                "error" => error = Some(expr_path(value)?),
                "client" => {
                    let path = expr_path(value)?;
                    client = Some(path.get_ident().cloned().ok_or_else(|| {
                        syn::Error::new_spanned(path, "client = <TypeName> (defined here)")
                    })?);
                }
                "http" => http = Some(expr_path(value)?),
                _ => {
                    return Err(syn::Error::new_spanned(
                        pair.path,
                        "expected module, error, client or http",
                    ));
                }
            }
        }
        Ok(Self {
            module: module.ok_or_else(|| input.error("module = \"<name>\" is required"))?,
            error: error.ok_or_else(|| input.error("error = <ErrorType> is required"))?,
            client,
            http,
        })
    }
}

fn expr_path(e: syn::Expr) -> syn::Result<Path> {
    match e {
        syn::Expr::Path(p) => Ok(p.path),
        other => Err(syn::Error::new_spanned(other, "expected a path")),
    }
}

/// One `#[op(GET "/path", read_only, cached, access(..), errors(A, B))]`.
struct Op {
    method: Ident,
    path: LitStr,
    repeat: Ident,
    /// For a `keyed` operation, the argument (or its field) holding the optional key or
    /// reference that makes a call safe to repeat: `keyed(req.reference)`.
    key: Option<syn::Expr>,
    /// Callers in other processes may keep its answers (see `Operation::cached`).
    cached: bool,
    access: Access,
    errors: Vec<Ident>,
}

/// `access(anyone | signed_in | owner(<expr>) | admin | modules(a, b) | any_module, ..)`:
/// who may call the operation over the network (any one of them).
struct Access {
    /// `Access::` variants, in the order written.
    rules: Vec<TokenStream>,
    /// The expression naming the user the call is about, for `owner(..)`.
    owner: Option<syn::Expr>,
    /// What the documentation says, in the order written.
    words: Vec<String>,
}

impl Parse for Access {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let k = quote!(::cleave_kernel::call::Access);
        let mut access = Self {
            rules: Vec::new(),
            owner: None,
            words: Vec::new(),
        };
        while !input.is_empty() {
            let word: Ident = input.parse()?;
            match word.to_string().as_str() {
                "anyone" => {
                    access.rules.push(quote!(#k::Anyone));
                    access.words.push("anyone".into());
                }
                "signed_in" => {
                    access.rules.push(quote!(#k::SignedIn));
                    access
                        .words
                        .push("any signed-in caller (user or guest)".into());
                }
                "admin" => {
                    access.rules.push(quote!(#k::Admin));
                    access.words.push("admins".into());
                }
                "any_module" => {
                    access.rules.push(quote!(#k::AnyModule));
                    access.words.push("any module of the deployment".into());
                }
                "owner" => {
                    let inner;
                    syn::parenthesized!(inner in input);
                    let expr: syn::Expr = inner.parse()?;
                    access.words.push(format!(
                        "the owner (the token's subject is `{}`)",
                        quote!(#expr).to_string().replace(' ', "")
                    ));
                    access.owner = Some(expr);
                    access.rules.push(quote!(#k::Owner));
                }
                "modules" => {
                    let inner;
                    syn::parenthesized!(inner in input);
                    let names = Punctuated::<Ident, Token![,]>::parse_terminated(&inner)?;
                    for name in names {
                        let module = name.to_string();
                        access.words.push(format!("the {module} module"));
                        access.rules.push(quote!(#k::Module(#module)));
                    }
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        word,
                        "expected anyone, signed_in, owner(<user id>), admin, modules(..) or \
                         any_module",
                    ));
                }
            }
            if input.parse::<Token![,]>().is_err() {
                break;
            }
        }
        if access.rules.is_empty() {
            return Err(input.error("access(..) names at least one kind of caller"));
        }
        Ok(access)
    }
}

impl Parse for Op {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let method: Ident = input.parse()?;
        if !["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method.to_string().as_str()) {
            return Err(syn::Error::new_spanned(
                &method,
                "expected GET, POST, PUT, DELETE or PATCH",
            ));
        }
        let path: LitStr = input.parse()?;
        if !path.value().starts_with('/') {
            return Err(syn::Error::new_spanned(&path, "the path starts with /"));
        }
        let mut repeat = None;
        let mut key = None;
        let mut cached = None;
        let mut access = None;
        let mut errors = Vec::new();
        while input.parse::<Token![,]>().is_ok() {
            if input.is_empty() {
                break;
            }
            let word: Ident = input.parse()?;
            match word.to_string().as_str() {
                "keyed" => {
                    let inner;
                    syn::parenthesized!(inner in input);
                    key = Some(inner.parse::<syn::Expr>()?);
                    repeat = Some(word);
                }
                "read_only" | "idempotent" | "once" => repeat = Some(word),
                "cached" => cached = Some(word),
                "access" => {
                    let inner;
                    syn::parenthesized!(inner in input);
                    access = Some(inner.parse::<Access>()?);
                }
                "errors" => {
                    let inner;
                    syn::parenthesized!(inner in input);
                    errors = Punctuated::<Ident, Token![,]>::parse_terminated(&inner)?
                        .into_iter()
                        .collect();
                }
                _ => {
                    return Err(syn::Error::new_spanned(
                        word,
                        "expected read_only, idempotent, keyed(<key>), once, cached, access(..) or \
                         errors(..)",
                    ));
                }
            }
        }
        let repeat = repeat.ok_or_else(|| {
            input.error(
                "say how safe the operation is to repeat: read_only, idempotent, keyed or once",
            )
        })?;
        let access = access.ok_or_else(|| {
            input.error(
                "say who may call the operation: access(anyone | signed_in | owner(<user id>) \
                 | admin | modules(..) | any_module)",
            )
        })?;
        // Kept answers are shared by every caller of a process: only answers that are the
        // same for everyone, and reads.
        if let Some(word) = &cached
            && (repeat != "read_only" || access.words != ["anyone"])
        {
            return Err(syn::Error::new_spanned(
                word,
                "only a read_only operation that anyone may call can be cached (its answers \
                 are shared by every caller of a process)",
            ));
        }
        Ok(Self {
            method,
            path,
            repeat,
            key,
            cached: cached.is_some(),
            access,
            errors,
        })
    }
}

struct Method {
    item: TraitItemFn,
    op: Op,
    full_path: String,
    constant: Ident,
    /// The `#[rest(..)]` document of the route: params, request body, success responses.
    rest: Option<TokenStream>,
    /// The operation's documentation as written.
    docs: Vec<syn::Attribute>,
}

pub(crate) fn expand(args: TokenStream, mut item: ItemTrait) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let k = quote!(::cleave_kernel);
    let module = &args.module;
    let prefix = format!("/api/{module}/v1");
    let error = &args.error;
    let trait_ident = item.ident.clone();

    let mut methods = Vec::new();
    for entry in &mut item.items {
        let TraitItem::Fn(f) = entry else {
            return Err(syn::Error::new_spanned(
                entry,
                "a contract holds operations (async fns) only",
            ));
        };
        if f.sig.asyncness.is_none() {
            return Err(syn::Error::new_spanned(&f.sig, "operations are async fns"));
        }
        let pos = f
            .attrs
            .iter()
            .position(|a| a.path().is_ident("op"))
            .ok_or_else(|| {
                syn::Error::new_spanned(&f.sig.ident, "each operation needs #[op(..)]")
            })?;
        let op: Op = f.attrs.remove(pos).parse_args()?;
        let rest = match f.attrs.iter().position(|a| a.path().is_ident("rest")) {
            Some(at) => Some(f.attrs.remove(at).parse_args::<TokenStream>()?),
            None => None,
        };
        // The route's own documentation, before the generated lines below.
        let docs: Vec<syn::Attribute> = f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect();
        let full_path = format!("{prefix}{}", op.path.value());
        let errors = op
            .errors
            .iter()
            .map(|e| format!("[`{}::{e}`]", quote!(#error)))
            .collect::<Vec<_>>();
        let cached_doc = if op.cached {
            " Callers in other processes keep its answers until the module publishes a change \
             (or the module's `cache_ttl_ms`, else `remote.cache_ttl_ms`)."
        } else {
            ""
        };
        let route_doc = format!(
            " `{} {full_path}` ({}). Who may call it: {}.{cached_doc}",
            op.method,
            op.repeat,
            op.access.words.join(", ")
        );
        let mut errors = errors;
        if !op.access.words.iter().any(|w| w == "anyone") {
            errors.push(format!(
                "the refusals of callers it does not admit (`{module}.unauthenticated`, 401; \
                 `{module}.forbidden`, 403)"
            ));
        }
        let errors_doc = if errors.is_empty() {
            format!(" The module's `unavailable` error ({module}.unavailable, 503).")
        } else {
            format!(
                " {}, or the module's `unavailable` error ({module}.unavailable, 503).",
                errors.join(", ")
            )
        };
        f.attrs.push(syn::parse_quote!(#[doc = ""]));
        f.attrs.push(syn::parse_quote!(#[doc = #route_doc]));
        f.attrs.push(syn::parse_quote!(#[doc = ""]));
        f.attrs.push(syn::parse_quote!(#[doc = " # Errors"]));
        f.attrs.push(syn::parse_quote!(#[doc = #errors_doc]));
        let constant = format_ident!("{}", f.sig.ident.to_string().to_shouty_snake_case());
        methods.push(Method {
            item: f.clone(),
            op,
            full_path,
            constant,
            rest,
            docs,
        });
    }

    // The operation table.
    let op_consts = methods.iter().map(|m| {
        let (constant, name, path) = (&m.constant, m.item.sig.ident.to_string(), &m.full_path);
        let method = format_ident!("{}", m.op.method.to_string().to_upper_camel_case());
        let repeat = format_ident!("{}", m.op.repeat.to_string().to_upper_camel_case());
        let summary = doc_text(&m.docs);
        let codes = m.op.errors.iter().map(|e| {
            let c = code_const(e);
            quote!(#error::#c)
        });
        let doc = format!(" `{name}`: {summary}");
        let id = format!("{module}.{name}");
        let access = &m.op.access.rules;
        let cached = m.op.cached;
        let owner = m.op.access.owner.as_ref().map_or_else(
            || quote!(::core::option::Option::None),
            |e| {
                // The field or argument named: `user_id` for `req.user_id`.
                let text = quote!(#e).to_string().replace(' ', "");
                let field = text.rsplit('.').next().unwrap_or(&text).to_owned();
                quote!(::core::option::Option::Some(#field))
            },
        );
        quote! {
            #[doc = #doc]
            pub const #constant: #k::call::Operation = #k::call::Operation {
                module: #module,
                name: #name,
                id: #id,
                method: #k::call::HttpMethod::#method,
                path: #path,
                repeat: #k::call::Repeat::#repeat,
                cached: #cached,
                access: &[#(#access),*],
                owner: #owner,
                errors: &[#(#codes),*],
                summary: #summary,
            };
        }
    });
    let all = methods.iter().map(|m| &m.constant);

    // The API document: one `utoipa::path` per documented route, from the operation's route
    // and its `#[rest(..)]`; errors are added from the error table when documents merge.
    let documented: Vec<&Method> = methods.iter().filter(|m| m.rest.is_some()).collect();
    let shims = documented.iter().map(|m| {
        let name = &m.item.sig.ident;
        let method = format_ident!("{}", m.op.method.to_string().to_lowercase());
        let path = &m.full_path;
        let op_name = name.to_string();
        let rest = m.rest.as_ref();
        let docs = &m.docs;
        quote! {
            #(#docs)*
            #[#k::__private::utoipa::path(
                #method,
                path = #path,
                tag = #module,
                operation_id = #op_name,
                #rest
            )]
            #[allow(dead_code)]
            fn #name() {}
        }
    });
    let shim_names = documented.iter().map(|m| &m.item.sig.ident);
    let tag_doc = doc_text(&item.attrs);
    let ops_doc = format!(" The operations of the `{module}` contract, in declaration order.");

    // The gRPC service (see `cleave_kernel::grpc`): one method per operation, its message
    // the arguments as a JSON object.
    let grpc_service = format!("cleave.{module}.v1.{}", module.to_upper_camel_case());
    let mut grpc_calls = Vec::new();
    let mut grpc_arms = Vec::new();
    for m in &methods {
        let sig = &m.item.sig;
        let name = &sig.ident;
        let constant = &m.constant;
        let grpc_method = name.to_string().to_upper_camel_case();
        let grpc_path = format!("/{grpc_service}/{grpc_method}");
        let args: Vec<Ident> = sig
            .inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => match &*t.pat {
                    Pat::Ident(id) => Some(id.ident.clone()),
                    _ => None,
                },
                FnArg::Receiver(_) => None,
            })
            .collect();
        let Some((ctx, rest)) = args.split_first() else {
            return Err(syn::Error::new_spanned(
                sig,
                "operations take the call context (`ctx: &CallContext`) after &self",
            ));
        };
        let keys: Vec<String> = rest.iter().map(ToString::to_string).collect();
        // A keyed call carrying its key is safe to repeat, as over REST.
        let keyed = m.op.key.as_ref().map(|key| quote!(.keyed(#key.is_some())));
        // The REST resource it is about, when its path parameters are all arguments: kept
        // answers are then dropped by resource, as over REST.
        let params: Vec<&str> = m
            .full_path
            .split('{')
            .skip(1)
            .filter_map(|part| part.split_once('}').map(|(name, _)| name))
            .collect();
        let resource = (!params.is_empty() && params.iter().all(|p| keys.iter().any(|k| k == p)))
            .then(|| {
                let params = params.iter().map(|p| format_ident!("{p}"));
                quote!(.resource(&[#(::std::string::ToString::to_string(&#params).as_str()),*]))
            });
        grpc_calls.push(quote! {
            #sig {
                self.remote
                    .op(&ops::#constant, #ctx)
                    #keyed
                    #resource
                    .grpc(#grpc_path, #k::grpc::Args::new()#(.arg(#keys, &#rest))*)
                    .fetch()
                    .await
            }
        });
        grpc_arms.push(quote! {
            #grpc_method => ::core::option::Option::Some(::std::boxed::Box::pin(async move {
                #[allow(unused_mut, unused_variables)]
                let mut args = #k::grpc::Args::decode(&args)?;
                #(let #rest = args.take(#keys)?;)*
                let answer = api
                    .#name(&ctx, #(#rest),*)
                    .await
                    .map_err(#k::Failure::from)?;
                #k::grpc::answer(&answer)
            })),
        });
    }

    // The interception point: every call of the contract, local or remote, passes here.
    let forwarders = methods.iter().map(|m| -> syn::Result<TokenStream> {
        let sig = &m.item.sig;
        let name = &sig.ident;
        let constant = &m.constant;
        let mut inputs = sig.inputs.iter();
        match inputs.next() {
            Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
            _ => return Err(syn::Error::new_spanned(sig, "operations take &self first")),
        }
        let mut names = Vec::new();
        for arg in inputs {
            let FnArg::Typed(t) = arg else {
                return Err(syn::Error::new_spanned(arg, "unexpected receiver"));
            };
            let Pat::Ident(id) = &*t.pat else {
                return Err(syn::Error::new_spanned(&t.pat, "name each argument"));
            };
            names.push(id.ident.clone());
        }
        let Some(ctx) = names.first() else {
            return Err(syn::Error::new_spanned(
                sig,
                "operations take the call context (`ctx: &CallContext`) after &self",
            ));
        };
        let owner = m.op.access.owner.as_ref().map_or_else(
            || quote!(::core::option::Option::None),
            |e| quote!(::core::option::Option::Some(::core::convert::AsRef::<str>::as_ref(&#e))),
        );
        Ok(quote! {
            #sig {
                if self.path.checks_access() {
                    #k::call::admit(&ops::#constant, #ctx, #owner)
                        .map_err(<#error as #k::ApiError>::refused)?;
                }
                self.path.run(&ops::#constant, #ctx, self.inner.#name(#(#names),*)).await
            }
        })
    });
    let forwarders = forwarders.collect::<syn::Result<Vec<_>>>()?;

    let descriptor = format_ident!("{}Contract", module.to_upper_camel_case());
    let descriptor_doc = format!(
        " The `{module}` contract as the kernel sees it: its operations, interception point, \
         client, routes and API document."
    );
    let grpc_client = format_ident!("__{}Grpc", trait_ident);
    let client = args.client.as_ref().map_or_else(
        || quote!(::core::option::Option::None),
        |c| {
            quote! {
                ::core::option::Option::Some(match remote.transport() {
                    #k::client::Transport::Rest => ::std::sync::Arc::new(#c::new(remote)),
                    #k::client::Transport::Grpc => ::std::sync::Arc::new(#grpc_client { remote }),
                })
            }
        },
    );
    let grpc_client_impl = args.client.as_ref().map(|_| {
        let doc = format!(" The `{module}` module in another process, reached over gRPC.");
        quote! {
            #[doc = #doc]
            #[doc(hidden)]
            #[derive(Debug, Clone)]
            pub struct #grpc_client {
                remote: #k::client::RemoteClient,
            }

            #[#k::async_trait]
            impl #trait_ident for #grpc_client {
                #(#grpc_calls)*
            }
        }
    });
    let configure = match &args.http {
        Some(http) => quote! {
            let mut routes = #k::http::Routes::new(#module);
            #http::routes(&mut routes);
            routes.register(cfg, api);
        },
        None => quote! { let _ = (cfg, api); },
    };
    let openapi = quote! {
        ::core::option::Option::Some(
            <ops::doc::ApiDoc as #k::__private::utoipa::OpenApi>::openapi(),
        )
    };
    let client_struct = args.client.as_ref().map(|c| {
        let doc = format!(" The `{module}` module in another process, reached over its REST API.");
        quote! {
            #[doc = #doc]
            #[derive(Debug, Clone)]
            pub struct #c {
                remote: #k::client::RemoteClient,
            }

            impl #c {
                /// A client calling through `remote`.
                pub fn new(remote: #k::client::RemoteClient) -> Self {
                    Self { remote }
                }
            }
        }
    });
    let intercepted = format_ident!("__{}Calls", trait_ident);

    Ok(quote! {
        #[#k::async_trait]
        #item

        #[doc = #ops_doc]
        pub mod ops {
            #[allow(unused_imports)]
            use super::*;
            #(#op_consts)*
            /// Every operation of the contract.
            pub const ALL: &[&#k::call::Operation] = &[#(&#all),*];

            /// The routes' API document (shims carrying `utoipa::path`).
            pub(crate) mod doc {
                #[allow(unused_imports)]
                use super::super::*;
                #(#shims)*

                #[derive(#k::__private::utoipa::OpenApi)]
                #[openapi(
                    paths(#(#shim_names),*),
                    tags((name = #module, description = #tag_doc))
                )]
                pub(crate) struct ApiDoc;
            }
        }

        #client_struct

        #grpc_client_impl

        #[doc(hidden)]
        pub struct #intercepted {
            inner: ::std::sync::Arc<dyn #trait_ident>,
            path: #k::call::CallPath,
        }

        #[#k::async_trait]
        impl #trait_ident for #intercepted {
            #(#forwarders)*
        }

        #[doc = #descriptor_doc]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct #descriptor;

        impl #k::module::Contract for #descriptor {
            type Api = dyn #trait_ident;
            type Error = #error;
            const MODULE: &'static str = #module;
            const OPERATIONS: &'static [&'static #k::call::Operation] = ops::ALL;
            const GRPC_SERVICE: &'static str = #grpc_service;

            fn intercept(
                api: ::std::sync::Arc<dyn #trait_ident>,
                path: #k::call::CallPath,
            ) -> ::std::sync::Arc<dyn #trait_ident> {
                ::std::sync::Arc::new(#intercepted { inner: api, path })
            }

            fn client(
                remote: #k::client::RemoteClient,
            ) -> ::core::option::Option<::std::sync::Arc<dyn #trait_ident>> {
                #client
            }

            fn dispatch(
                api: ::std::sync::Arc<dyn #trait_ident>,
                method: &str,
                ctx: #k::CallContext,
                args: #k::__private::actix_web::web::Bytes,
            ) -> ::core::option::Option<
                #k::call::BoxFuture<
                    'static,
                    ::core::result::Result<#k::__private::actix_web::web::Bytes, #k::Failure>,
                >,
            > {
                match method {
                    #(#grpc_arms)*
                    _ => {
                        let _ = (api, ctx, args);
                        ::core::option::Option::None
                    }
                }
            }

            fn configure(
                cfg: &mut #k::__private::actix_web::web::ServiceConfig,
                api: ::std::sync::Arc<dyn #trait_ident>,
            ) {
                #configure
            }

            fn openapi() -> ::core::option::Option<#k::__private::utoipa::openapi::OpenApi> {
                #openapi
            }
        }
    })
}
