//! Plugins from OCI registries: `plugin: oci://registry/team/monitor:1.2.0` (or `@sha256:…`).
//!
//! A reference is pulled once in the Wasm OCI artifact layout (a
//! `application/vnd.wasm.config.v0+json` config and one `application/wasm` layer, as `wkg`,
//! Spin and wasmCloud push it), the layer's digest is verified, and the component is kept in a
//! local content-addressed store ([`store`]) beside the compile cache. From then on it is a
//! file like any other: the layer digest is its `sha256:` pin, it goes through the same
//! compile cache and limits, and a start needs no network. A tag is resolved once per store
//! (`sentinela pull` resolves it again); the lock file beside the config ([`lock`]) records
//! what each tag resolved to, and a start refuses a tag that now resolves elsewhere.
//!
//! The registry protocol is `oci-client`'s; registry credentials come from the operator's
//! auth files ([`credentials`]), never from a monitor's.

pub mod credentials;
pub mod lock;
pub mod registry;
pub mod store;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use registry::Registry;
use store::{PluginStore, Record};

/// Where a config's `plugin:` value says a component is an OCI artifact.
pub const SCHEME: &str = "oci://";

/// The config media type of the Wasm OCI artifact layout.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer: the component's bytes.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// An `oci://` reference: a registry, a repository and a tag or a digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OciReference(oci_client::Reference);

impl OciReference {
    /// Parses `oci://registry/repository[:tag][@sha256:digest]` (without the scheme too).
    /// A reference with neither a tag nor a digest means the tag `latest`.
    ///
    /// The grammar is the distribution spec's, read with an ASCII-only expression of ours:
    /// `oci_client`'s own parser compiles a Unicode expression that costs ~40 ms per process,
    /// a third of a warm start. Names are split into registry and repository as Docker does
    /// (`docker.io` when the first part is not a host, `library/` for its one-part names),
    /// so the result is the `Reference` `oci_client` would build (a test compares them).
    pub fn parse(text: &str) -> Result<OciReference> {
        let rest = text.strip_prefix(SCHEME).unwrap_or(text);
        let shown = crate::guest_text::shortened(text, 200);
        if rest.len() > 1024 {
            bail!("OCI reference {shown} is longer than 1024 characters");
        }
        if !rest.contains('/') {
            bail!(
                "OCI reference {shown} names no registry: write oci://REGISTRY/REPOSITORY:TAG \
                 (for example oci://ghcr.io/team/monitor:1.0.0)"
            );
        }
        let captures = reference_grammar().captures(rest).with_context(|| {
            format!(
                "invalid OCI reference {shown}: a registry host[:port], a repository of \
                 lowercase path parts, then :TAG and/or @sha256:DIGEST"
            )
        })?;
        let (registry, repository) = split_domain(&captures["name"]);
        if repository.len() > 255 {
            bail!("invalid OCI reference {shown}: the repository is longer than 255 characters");
        }
        let tag = captures.name("tag").map(|m| m.as_str().to_owned());
        let digest = captures.name("digest").map(|m| m.as_str().to_owned());
        if let Some(digest) = &digest
            && !is_sha256_digest(digest)
        {
            bail!("OCI reference {shown}: the digest must be sha256:<64 hex digits>");
        }
        let reference = match (tag, digest) {
            (None, None) => oci_client::Reference::with_tag(registry, repository, "latest".into()),
            (Some(tag), None) => oci_client::Reference::with_tag(registry, repository, tag),
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(registry, repository, digest)
            }
            (Some(tag), Some(digest)) => {
                oci_client::Reference::with_tag_and_digest(registry, repository, tag, digest)
            }
        };
        Ok(OciReference(reference))
    }

    /// The reference with the given manifest digest (and no tag).
    pub fn with_digest(&self, digest: &str) -> OciReference {
        OciReference(self.0.clone_with_digest(digest.to_owned()))
    }

    /// The tag, when the reference names one and no digest: what a lock file pins.
    pub fn tag(&self) -> Option<&str> {
        match self.0.digest() {
            Some(_) => None,
            None => Some(self.0.tag().unwrap_or("latest")),
        }
    }

    /// The manifest digest the reference names, if any.
    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// The registry's host (and port).
    pub fn registry(&self) -> &str {
        self.0.resolve_registry()
    }

    pub(crate) fn inner(&self) -> &oci_client::Reference {
        &self.0
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.0.whole())
    }
}

impl fmt::Debug for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The distribution spec's reference grammar, ASCII only: `name[:tag][@digest]`, the name
/// an optional `host[:port]/` and lowercase path components (the digest is checked after).
fn reference_grammar() -> &'static regex::Regex {
    static GRAMMAR: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    GRAMMAR.get_or_init(|| {
        const HOST_PART: &str = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
        const PATH_PART: &str = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        let pattern = format!(
            "^(?P<name>(?:{HOST_PART}(?:\\.{HOST_PART})*(?::[0-9]+)?/)?{PATH_PART}(?:/{PATH_PART})*)\
             (?::(?P<tag>[a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}))?\
             (?:@(?P<digest>.+))?$"
        );
        regex::Regex::new(&pattern).expect("the reference grammar is a valid expression")
    })
}

/// Splits a name into registry and repository as Docker's `normalize.go` does: the first
/// part is the registry when it has a `.` or `:` or is `localhost`, else it is Docker Hub's.
fn split_domain(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first, rest.to_owned())
        }
        _ => ("docker.io", name.to_owned()),
    };
    let registry = if registry == "index.docker.io" {
        "docker.io"
    } else {
        registry
    };
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    (registry.to_owned(), repository)
}

/// What a reference resolved to, and the component's file in the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The manifest's digest (`sha256:…`): what a tag resolved to.
    pub manifest_digest: String,
    /// The layer's digest (`sha256:…`): the component's SHA-256, its pin.
    pub layer_digest: String,
    /// The component in the local store.
    pub file: PathBuf,
}

impl Resolved {
    /// The layer digest's hex: the component file's SHA-256, as a `sha256:` pin holds it.
    pub fn sha256_hex(&self) -> &str {
        self.layer_digest
            .strip_prefix("sha256:")
            .unwrap_or(&self.layer_digest)
    }
}

/// Resolves references to components in the local store, pulling what it does not hold.
#[derive(Debug, Clone)]
pub struct Resolver {
    store: Option<PluginStore>,
    max_layer_bytes: u64,
}

impl Resolver {
    /// A resolver keeping components in `cache_dir`'s store, refusing layers over
    /// `max_layer_bytes` (`compile.max_plugin_bytes`).
    pub fn new(cache_dir: Option<&Path>, max_layer_bytes: u64) -> Resolver {
        Resolver {
            store: cache_dir.map(PluginStore::in_cache_dir),
            max_layer_bytes,
        }
    }

    /// Resolves each reference: from the store when it holds it (no network) unless
    /// `refresh`, else from its registry, keeping what is pulled. Registry work runs on a
    /// runtime of its own on a thread of its own, so this may be called from inside a tokio
    /// runtime; it blocks the calling thread (`run` calls it at start, a reload on a blocking
    /// thread).
    pub fn resolve_all(
        &self,
        references: &[OciReference],
        refresh: bool,
    ) -> Vec<(Result<Resolved>, Source)> {
        let held: Vec<Option<Resolved>> = references
            .iter()
            .map(|r| if refresh { None } else { self.held(r) })
            .collect();
        let missing: Vec<&OciReference> = references
            .iter()
            .zip(&held)
            .filter(|(_, held)| held.is_none())
            .map(|(r, _)| r)
            .collect();
        let mut pulled = if missing.is_empty() {
            Vec::new()
        } else {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| -> Result<Vec<Result<Resolved>>> {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .context("starting the registry client's runtime")?;
                        Ok(runtime.block_on(async {
                            let mut pulled = Vec::new();
                            for reference in &missing {
                                pulled.push(self.pull(reference).await);
                            }
                            pulled
                        }))
                    })
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the registry client panicked")))
            })
            .unwrap_or_else(|e| {
                let message = format!("{e:#}");
                missing
                    .iter()
                    .map(|_| Err(anyhow::anyhow!("{message}")))
                    .collect()
            })
        }
        .into_iter();
        held.into_iter()
            .map(|held| match held {
                Some(resolved) => (Ok(resolved), Source::Store),
                None => (
                    pulled
                        .next()
                        .unwrap_or_else(|| Err(anyhow::anyhow!("not pulled"))),
                    Source::Registry,
                ),
            })
            .collect()
    }

    fn store(&self) -> Result<&PluginStore> {
        self.store.as_ref().context(
            "no directory for the local plugin store: set SENTINELA_CACHE_DIR, the config's \
             cache_dir, XDG_CACHE_HOME or HOME",
        )
    }

    fn held(&self, reference: &OciReference) -> Option<Resolved> {
        let store = self.store.as_ref()?;
        let record = store.record(reference)?;
        Some(Resolved {
            file: store.blob_path(&record.layer_digest).ok()?,
            manifest_digest: record.manifest_digest,
            layer_digest: record.layer_digest,
        })
    }

    async fn pull(&self, reference: &OciReference) -> Result<Resolved> {
        let store = self.store()?;
        let pulled = Registry::for_reference(reference)?
            .pull(reference, self.max_layer_bytes)
            .await?;
        let keep = |digest: &str, bytes: &[u8]| {
            store
                .put_blob(digest, bytes)
                .with_context(|| format!("{reference}: keeping it in the local store"))
        };
        keep(&pulled.config_digest, &pulled.config)?;
        let file = keep(&pulled.layer_digest, &pulled.layer)?;
        let record = Record {
            reference: reference.to_string(),
            manifest_digest: pulled.manifest_digest.clone(),
            layer_digest: pulled.layer_digest.clone(),
            config_digest: pulled.config_digest,
        };
        store
            .put_record(reference, &record)
            .with_context(|| format!("{reference}: recording it in the local store"))?;
        Ok(Resolved {
            manifest_digest: pulled.manifest_digest,
            layer_digest: pulled.layer_digest,
            file,
        })
    }
}

/// Where a resolved component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The local store: no network.
    Store,
    /// The registry, just now.
    Registry,
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_their_tag_or_digest() {
        let tagged = OciReference::parse("oci://127.0.0.1:5000/team/depth:1.2.0").unwrap();
        assert_eq!(tagged.registry(), "127.0.0.1:5000");
        assert_eq!(tagged.tag(), Some("1.2.0"));
        assert_eq!(tagged.to_string(), "oci://127.0.0.1:5000/team/depth:1.2.0");
        let digest = format!("sha256:{}", "ab".repeat(32));
        let pinned = OciReference::parse(&format!("oci://ghcr.io/team/depth@{digest}")).unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.digest(), Some(digest.as_str()));
        assert_eq!(
            OciReference::parse("oci://ghcr.io/team/depth")
                .unwrap()
                .tag(),
            Some("latest")
        );
        for bad in [
            "oci://depth",
            "oci://ghcr.io/Team/depth:1",
            "oci://ghcr.io/team/depth@sha256:abc",
            "oci://ghcr.io/team/depth@md5:0123",
        ] {
            assert!(OciReference::parse(bad).is_err(), "{bad}");
        }
    }

    /// Our grammar builds the `Reference` `oci_client`'s own parser builds, and refuses what it
    /// refuses (we refuse more: no registry part, a digest that is not sha256, Unicode tags).
    #[test]
    fn references_agree_with_oci_client() {
        let digest = format!("sha256:{}", "0a".repeat(32));
        let long_tag = "t".repeat(128);
        let too_long_tag = "t".repeat(129);
        let long_repository = format!("ghcr.io/{}", "a".repeat(256));
        let cases = [
            "ghcr.io/team/depth:1.2.0".to_owned(),
            "ghcr.io/team/depth".to_owned(),
            format!("ghcr.io/team/depth@{digest}"),
            format!("ghcr.io/team/depth:1.0@{digest}"),
            "127.0.0.1:5000/team/sub/depth:v1_2-3".to_owned(),
            "localhost/depth:1".to_owned(),
            "localhost:5000/a__b/c--d/e.f:latest".to_owned(),
            "docker.io/depth:1".to_owned(),
            "index.docker.io/depth:1".to_owned(),
            "team/depth:1".to_owned(),
            "registry-1.example.com/x/y/z:_tag.X-1".to_owned(),
            format!("ghcr.io/team/depth:{long_tag}"),
            format!("ghcr.io/team/depth:{too_long_tag}"),
            long_repository,
            "ghcr.io/Team/depth:1".to_owned(),
            "ghcr.io/team/depth:.tag".to_owned(),
            "ghcr.io/team/-depth:1".to_owned(),
            "ghcr.io/team/depth_:1".to_owned(),
            "ghcr.io/team//depth:1".to_owned(),
            "-ghcr.io/team/depth:1".to_owned(),
            "ghcr.io:port/team/depth:1".to_owned(),
            "ghcr.io/team/depth:1:2".to_owned(),
            "ghcr.io/team/depth@sha256:ABC".to_owned(),
            "ghcr.io/team/dépth:1".to_owned(),
            "ghcr.io/team/depth:tägé".to_owned(),
            "ghcr.io/team/depth:1 ".to_owned(),
            "ghcr.io/team/depth:1\n".to_owned(),
            "".to_owned(),
        ];
        for case in &cases {
            let ours = OciReference::parse(&format!("oci://{case}"));
            let theirs = case.parse::<oci_client::Reference>();
            match (&ours, &theirs) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours.inner(), theirs, "{case}"),
                (Ok(ours), Err(e)) => panic!("{case}: we accept {ours}, oci_client says {e}"),
                (Err(_), _) => {}
            }
            if theirs.is_ok() && case.is_ascii() && case.contains('/') && !case.contains('@') {
                assert!(ours.is_ok(), "{case}: {:#}", ours.unwrap_err());
            }
        }
    }
}
