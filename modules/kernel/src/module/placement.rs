//! Where each module runs for this process: a [`PlacementPlan`] decides, from `--modules` and
//! the configured urls, which modules this process hosts, which it calls over HTTP, and which
//! it cannot reach at all; it refuses plans that cannot work.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

use url::Url;

/// What placement needs to know of a module (derived from its descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleSpec {
    /// The module's name: its config section, its route prefix `/api/<name>/v1`.
    pub name: &'static str,
    /// What data it owns.
    pub owns: &'static str,
    /// Modules it calls (must be hosted or have a url wherever it is hosted).
    pub requires: &'static [&'static str],
    /// Those of `requires` it serves without, degraded.
    pub optional: &'static [&'static str],
}

/// Where one module runs, seen from this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// In this process: calls are plain async calls.
    Hosted,
    /// In another process at this url: calls go over HTTP.
    Remote(Url),
    /// Nowhere this process knows of: its routes answer 503 `cleave.module_not_placed`.
    Absent,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Hosted => f.write_str("hosted here"),
            Placement::Remote(url) => {
                write!(
                    f,
                    "remote at {}",
                    crate::config::redact_url_password(url.as_str())
                )
            }
            Placement::Absent => f.write_str("not available (not hosted, no url)"),
        }
    }
}

/// A placement that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A module name nobody knows.
    #[error("unknown module {name:?} in {origin}; known modules: {known}")]
    UnknownModule {
        /// The name given.
        name: String,
        /// Where it was given (`--modules`, `modules.<name>`).
        origin: String,
        /// The known names.
        known: String,
    },
    /// `--modules` was given but empty.
    #[error("--modules (server.modules) names no module; known modules: {known}")]
    NothingHosted {
        /// The known names.
        known: String,
    },
    /// A hosted module requires one this process can neither run nor reach.
    #[error(
        "module {module} requires {requires}, which is neither hosted by this process (add it to \
         --modules) nor given a url (set modules.{requires}.url or CLEAVE_MODULES__{upper}__URL)"
    )]
    MissingDependency {
        /// The hosted module.
        module: &'static str,
        /// What it requires.
        requires: &'static str,
        /// `requires` in upper case, for the env var name.
        upper: String,
    },
    /// Neither hosted nor reachable, identity cannot vouch for tokens: every signed-in user
    /// and admin would be refused.
    #[error(
        "this process hosts {hosted} but identity is neither hosted here nor given a url: it \
         could not verify access tokens. Set modules.identity.url (CLEAVE_MODULES__IDENTITY__URL) \
         or add identity to --modules"
    )]
    NoTokenVerifier {
        /// The hosted modules.
        hosted: String,
    },
    /// A hosted module calls operations of a remote one reserved to modules of the
    /// deployment, without a way to prove who it is.
    #[error(
        "module {module} calls {callee} operations reserved to modules of the deployment \
         ({operations}), so this process must prove it is {module}: {missing}"
    )]
    NeedsModuleCertificate {
        /// The hosted caller.
        module: &'static str,
        /// The remote callee.
        callee: &'static str,
        /// The operations, e.g. `payment.charge`.
        operations: String,
        /// What to set.
        missing: String,
    },
    /// A module that is not hosted points back at this process: every call would loop.
    #[error(
        "modules.{module}.url ({url}) points at this process's own listen address {listen}, but \
         this process does not host {module}: calls would loop forever"
    )]
    SelfForward {
        /// The module.
        module: &'static str,
        /// Its url.
        url: String,
        /// Our listen address.
        listen: SocketAddr,
    },
}

/// The placement of every module for this process.
#[derive(Debug, Clone)]
pub struct PlacementPlan {
    entries: Vec<(ModuleSpec, Placement)>,
}

impl PlacementPlan {
    /// Decides placements.
    ///
    /// - `hosted = None`: host every module that has no url; the others are remote.
    /// - `hosted = Some(list)`: host exactly those (a url configured for a hosted module is how
    ///   *other* processes reach it, so one config can serve every process); others are remote
    ///   when they have a url, otherwise absent.
    ///
    /// # Errors
    /// [`PlacementError`] for unknown names, an empty list, a hosted module whose requirement
    /// is unreachable, or a url that points back at this process.
    pub fn resolve(
        specs: &[ModuleSpec],
        hosted: Option<&[String]>,
        urls: &BTreeMap<String, Url>,
        listen: SocketAddr,
    ) -> Result<Self, PlacementError> {
        let known = specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
        let find = |name: &str, origin: &str| {
            specs
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.name)
                .ok_or_else(|| PlacementError::UnknownModule {
                    name: name.to_owned(),
                    origin: origin.to_owned(),
                    known: known.clone(),
                })
        };
        for name in urls.keys() {
            find(name, &format!("modules.{name}.url"))?;
        }
        let hosted: BTreeSet<&'static str> = match hosted {
            None => specs
                .iter()
                .filter(|s| !urls.contains_key(s.name))
                .map(|s| s.name)
                .collect(),
            Some(list) => {
                let set = list
                    .iter()
                    .map(|n| find(n.trim(), "--modules"))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                if set.is_empty() {
                    return Err(PlacementError::NothingHosted { known });
                }
                set
            }
        };
        let entries: Vec<(ModuleSpec, Placement)> = specs
            .iter()
            .map(|s| {
                let placement = if hosted.contains(s.name) {
                    Placement::Hosted
                } else if let Some(url) = urls.get(s.name) {
                    Placement::Remote(url.clone())
                } else {
                    Placement::Absent
                };
                (*s, placement)
            })
            .collect();
        let plan = Self { entries };
        for (spec, placement) in &plan.entries {
            match placement {
                Placement::Hosted => {
                    for req in spec.requires {
                        if plan.placement(req) == &Placement::Absent {
                            return Err(PlacementError::MissingDependency {
                                module: spec.name,
                                requires: req,
                                upper: req.to_uppercase(),
                            });
                        }
                    }
                }
                Placement::Remote(url) => {
                    if points_at(url, listen) {
                        return Err(PlacementError::SelfForward {
                            module: spec.name,
                            url: url.to_string(),
                            listen,
                        });
                    }
                }
                Placement::Absent => {}
            }
        }
        Ok(plan)
    }

    /// A plan placing nothing (every module absent).
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Where `module` runs. Unknown names are [`Placement::Absent`].
    pub fn placement(&self, module: &str) -> &Placement {
        self.entries
            .iter()
            .find(|(s, _)| s.name == module)
            .map_or(&Placement::Absent, |(_, p)| p)
    }

    /// Every module with its placement, in declaration order.
    pub fn entries(&self) -> &[(ModuleSpec, Placement)] {
        &self.entries
    }

    /// Whether this process hosts `module` and no module it hosts calls it (requires it, or
    /// uses it when present): its callers are all in other processes. `false` for a module
    /// the plan does not host (an assembly put together by hand, as in tests).
    pub fn callers_all_remote(&self, module: &str) -> bool {
        *self.placement(module) == Placement::Hosted
            && !self.entries.iter().any(|(spec, placement)| {
                *placement == Placement::Hosted
                    && (spec.requires.contains(&module) || spec.optional.contains(&module))
            })
    }

    /// Names of the modules this process hosts.
    pub fn hosted(&self) -> Vec<&'static str> {
        self.entries
            .iter()
            .filter(|(_, p)| *p == Placement::Hosted)
            .map(|(s, _)| s.name)
            .collect()
    }
}

fn points_at(url: &Url, listen: SocketAddr) -> bool {
    if url.port_or_known_default() != Some(listen.port()) {
        return false;
    }
    let local_names = ["localhost", "127.0.0.1", "[::1]", "::1", "0.0.0.0"];
    match url.host_str() {
        Some(h) => {
            local_names.contains(&h) && (listen.ip().is_loopback() || listen.ip().is_unspecified())
                || h == listen.ip().to_string()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ModuleSpec] = &[
        ModuleSpec {
            name: "catalog",
            owns: "",
            requires: &[],
            optional: &[],
        },
        ModuleSpec {
            name: "recommendation",
            owns: "",
            requires: &["catalog"],
            optional: &[],
        },
    ];
    fn listen() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }
    fn urls(pairs: &[(&str, &str)]) -> BTreeMap<String, Url> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Url::parse(v).unwrap()))
            .collect()
    }

    #[test]
    fn a_module_has_callers_in_process_only_where_a_hosted_module_requires_it() {
        let catalog_url = urls(&[("catalog", "http://10.0.0.1:8081")]);
        let catalog_alone = vec!["catalog".to_owned()];
        let alone =
            PlacementPlan::resolve(SPECS, Some(&catalog_alone), &catalog_url, listen()).unwrap();
        assert!(alone.callers_all_remote("catalog"));
        let together = PlacementPlan::resolve(SPECS, None, &urls(&[]), listen()).unwrap();
        assert!(
            !together.callers_all_remote("catalog"),
            "recommendation calls it"
        );
        assert!(
            together.callers_all_remote("recommendation"),
            "nothing calls recommendation"
        );
        let elsewhere = PlacementPlan::resolve(SPECS, None, &catalog_url, listen()).unwrap();
        assert!(!elsewhere.callers_all_remote("catalog"), "not hosted here");
        assert!(!PlacementPlan::empty().callers_all_remote("catalog"));
    }

    #[test]
    fn without_modules_flag_everything_without_url_is_hosted() {
        let plan = PlacementPlan::resolve(SPECS, None, &urls(&[]), listen()).unwrap();
        assert_eq!(plan.hosted(), vec!["catalog", "recommendation"]);
        let plan = PlacementPlan::resolve(
            SPECS,
            None,
            &urls(&[("catalog", "http://10.1.1.1:8080")]),
            listen(),
        )
        .unwrap();
        assert_eq!(plan.hosted(), vec!["recommendation"]);
        assert!(matches!(plan.placement("catalog"), Placement::Remote(_)));
    }

    #[test]
    fn hosting_a_module_without_its_requirement_is_refused() {
        let err = PlacementPlan::resolve(
            SPECS,
            Some(&["recommendation".into()]),
            &urls(&[]),
            listen(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            PlacementError::MissingDependency {
                requires: "catalog",
                ..
            }
        ));
        assert!(err.to_string().contains("CLEAVE_MODULES__CATALOG__URL"));
    }

    #[test]
    fn unknown_and_empty_module_lists_are_refused() {
        let err = PlacementPlan::resolve(SPECS, Some(&["carts".into()]), &urls(&[]), listen())
            .unwrap_err();
        assert!(matches!(err, PlacementError::UnknownModule { .. }));
        let err = PlacementPlan::resolve(SPECS, Some(&[]), &urls(&[]), listen()).unwrap_err();
        assert!(matches!(err, PlacementError::NothingHosted { .. }));
        let err = PlacementPlan::resolve(SPECS, None, &urls(&[("ads", "http://x:1")]), listen())
            .unwrap_err();
        assert!(matches!(err, PlacementError::UnknownModule { .. }));
    }

    #[test]
    fn a_url_pointing_back_at_this_process_is_refused() {
        let err = PlacementPlan::resolve(
            SPECS,
            Some(&["recommendation".into()]),
            &urls(&[("catalog", "http://localhost:8080")]),
            listen(),
        )
        .unwrap_err();
        assert!(matches!(err, PlacementError::SelfForward { .. }));
    }

    #[test]
    fn a_hosted_module_may_also_have_a_url_for_other_processes() {
        let plan = PlacementPlan::resolve(
            SPECS,
            Some(&["catalog".into()]),
            &urls(&[("catalog", "http://catalog:8080")]),
            listen(),
        )
        .unwrap();
        assert_eq!(plan.placement("catalog"), &Placement::Hosted);
        assert_eq!(plan.placement("recommendation"), &Placement::Absent);
    }
}
