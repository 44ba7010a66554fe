//! `#[module(...)]`: a module implementation's descriptor in one line on its struct, expanded
//! into `cleave_kernel::module::Module` (and its config's `ModuleConfig` unless it validates).

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ItemStruct, LitStr, Path, Token, Type};

/// `contract = .., config = .., owns = "..", requires = [..], optional = [..],
/// subscribes = [..], publishes = [..], start = <expr>, announces, validates`.
struct Args {
    contract: Path,
    config: Type,
    owns: LitStr,
    requires: Vec<LitStr>,
    optional: Vec<LitStr>,
    subscribes: Vec<LitStr>,
    publishes: Vec<Expr>,
    start: Option<Expr>,
    announces: bool,
    validates: bool,
}

fn list<T: Parse>(input: ParseStream<'_>) -> syn::Result<Vec<T>> {
    let inner;
    syn::bracketed!(inner in input);
    Ok(Punctuated::<T, Token![,]>::parse_terminated(&inner)?
        .into_iter()
        .collect())
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let (mut contract, mut config, mut owns, mut start) = (None, None, None, None);
        let (mut requires, mut subscribes, mut publishes): (Vec<LitStr>, Vec<LitStr>, Vec<Expr>) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut optional: Vec<LitStr> = Vec::new();
        let (mut validates, mut announces) = (false, None);
        while !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            if key == "validates" {
                validates = true;
            } else if key == "announces" {
                announces = Some(key);
            } else {
                input.parse::<Token![=]>()?;
                match key.to_string().as_str() {
                    "contract" => contract = Some(input.parse()?),
                    "config" => config = Some(input.parse()?),
                    "owns" => owns = Some(input.parse()?),
                    "start" => start = Some(input.parse()?),
                    "requires" => requires = list(input)?,
                    "optional" => optional = list(input)?,
                    "subscribes" => subscribes = list(input)?,
                    "publishes" => publishes = list(input)?,
                    _ => {
                        return Err(syn::Error::new_spanned(
                            key,
                            "expected contract, config, owns, requires, optional, subscribes, \
                             publishes, start, announces or validates",
                        ));
                    }
                }
            }
            if input.parse::<Token![,]>().is_err() {
                break;
            }
        }
        let missing = |what: &str| input.error(format!("#[module] needs {what} = .."));
        if let Some(stray) = optional
            .iter()
            .find(|o| !requires.iter().any(|r| r.value() == o.value()))
        {
            return Err(syn::Error::new_spanned(
                stray,
                "an optional dependency must be one of `requires`",
            ));
        }
        if let Some(key) = &announces
            && publishes.is_empty()
        {
            return Err(syn::Error::new_spanned(
                key,
                "a module that announces its changes publishes them: name the topics in \
                 `publishes`",
            ));
        }
        Ok(Self {
            contract: contract.ok_or_else(|| missing("contract"))?,
            config: config.ok_or_else(|| missing("config"))?,
            owns: owns.ok_or_else(|| missing("owns"))?,
            requires,
            optional,
            subscribes,
            publishes,
            start,
            announces: announces.is_some(),
            validates,
        })
    }
}

pub(crate) fn expand(args: TokenStream, item: ItemStruct) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let k = quote!(::cleave_kernel);
    let name = &item.ident;
    let Args {
        contract,
        config,
        owns,
        requires,
        optional,
        subscribes,
        publishes,
        start,
        announces,
        validates,
    } = args;
    let start = start.map_or_else(|| quote!(Self::from_start(start).await), |e| quote!(#e));
    let config_impl = (!validates).then(|| quote! { impl #k::module::ModuleConfig for #config {} });
    Ok(quote! {
        #item

        #config_impl

        #[#k::async_trait]
        impl #k::module::Module for #name {
            type Contract = #contract;
            type Config = #config;
            const OWNS: &'static str = #owns;
            const REQUIRES: &'static [&'static str] = &[#(#requires),*];
            const OPTIONAL: &'static [&'static str] = &[#(#optional),*];
            const SUBSCRIBES: &'static [&'static str] = &[#(#subscribes),*];
            const PUBLISHES: &'static [&'static str] = &[#(#publishes),*];
            const ANNOUNCES_CHANGES: bool = #announces;

            async fn start(
                start: #k::module::Start<'_, #config>,
            ) -> ::core::result::Result<
                ::std::sync::Arc<<#contract as #k::module::Contract>::Api>,
                #k::module::StartError,
            > {
                let module: ::std::sync::Arc<Self> = { #start }?;
                Ok(module)
            }
        }
    })
}
