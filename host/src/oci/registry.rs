//! Pulling and pushing components in the Wasm OCI artifact layout, with `oci-client`.
//!
//! A pull reads the manifest, refuses anything but one Wasm layer under a Wasm (or empty)
//! config, checks the layer's declared size against `compile.max_plugin_bytes` before
//! fetching it, and stops a download that grows past it; `oci-client` checks each blob's
//! digest and this module checks the manifest's, so nothing is kept that is not what the
//! reference names.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{
    IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
    OciImageManifest,
};
use oci_client::secrets::RegistryAuth;

use super::credentials;
use super::{OciReference, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE, sha256_digest};

/// Registries reached over plain HTTP besides loopback ones (comma-separated `host:port`).
pub const INSECURE_ENV: &str = "SENTINELA_INSECURE_REGISTRIES";

/// The largest manifest or config blob accepted.
const MAX_METADATA_BYTES: u64 = 1 << 20;

/// Layer media types of a component: the CNCF layout's and the older wasm-to-oci one.
const LAYER_MEDIA_TYPES: [&str; 2] = [
    WASM_LAYER_MEDIA_TYPE,
    "application/vnd.wasm.content.layer.v1+wasm",
];
/// Config media types accepted beside a Wasm layer.
const CONFIG_MEDIA_TYPES: [&str; 3] = [
    WASM_CONFIG_MEDIA_TYPE,
    "application/vnd.wasm.config.v1+json",
    "application/vnd.oci.empty.v1+json",
];

/// A component pulled from a registry.
pub struct Pulled {
    /// The manifest's digest: what the reference resolved to.
    pub manifest_digest: String,
    /// The Wasm layer's digest, checked against its bytes.
    pub layer_digest: String,
    /// The component.
    pub layer: Vec<u8>,
    /// The artifact config's digest, checked against its bytes.
    pub config_digest: String,
    /// The artifact's config (JSON).
    pub config: Vec<u8>,
}

/// A client for the registry of one reference, with the operator's login for it.
pub struct Registry {
    client: oci_client::Client,
    auth: RegistryAuth,
}

impl Registry {
    /// A client for `reference`'s registry: HTTPS, or plain HTTP for a loopback registry (as
    /// Docker does) or one listed in `SENTINELA_INSECURE_REGISTRIES`.
    pub fn for_reference(reference: &OciReference) -> Result<Registry> {
        let registry = reference.registry().to_owned();
        let protocol = if is_insecure(&registry) {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            // An image index is refused, not resolved to a platform.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let auth = match credentials::login_for(&registry)? {
            Some(login) => login.auth(),
            None => RegistryAuth::Anonymous,
        };
        Ok(Registry {
            client: oci_client::Client::new(config),
            auth,
        })
    }

    /// Pulls the component `reference` names, at most `max_layer_bytes` of it.
    pub async fn pull(&self, reference: &OciReference, max_layer_bytes: u64) -> Result<Pulled> {
        let image = reference.inner();
        let (manifest_bytes, _) = self
            .client
            .pull_manifest_raw(
                image,
                &self.auth,
                &[
                    OCI_IMAGE_MEDIA_TYPE,
                    IMAGE_MANIFEST_MEDIA_TYPE,
                    OCI_IMAGE_INDEX_MEDIA_TYPE,
                ],
            )
            .await
            .map_err(|e| registry_error(reference, "fetching the manifest", e))?;
        if manifest_bytes.len() as u64 > MAX_METADATA_BYTES {
            bail!("{reference}: the manifest is larger than {MAX_METADATA_BYTES} bytes");
        }
        let manifest_digest = sha256_digest(&manifest_bytes);
        if let Some(pinned) = reference.digest()
            && pinned != manifest_digest
        {
            bail!(
                "{reference}: the registry answered a manifest that hashes to {manifest_digest}, \
                 not the digest the reference names"
            );
        }
        let manifest = wasm_manifest(reference, &manifest_bytes, max_layer_bytes)?;
        let layer_descriptor = &manifest.layers[0];
        let mut config = Bounded::new(MAX_METADATA_BYTES);
        self.client
            .pull_blob(image, &manifest.config, &mut config)
            .await
            .map_err(|e| registry_error(reference, "fetching the config", e))?;
        let mut layer = Bounded::new(max_layer_bytes);
        self.client
            .pull_blob(image, layer_descriptor, &mut layer)
            .await
            .map_err(|e| registry_error(reference, "fetching the Wasm layer", e))?;
        // oci-client checked the digest as the bytes came; a second look costs one hash of a
        // few megabytes and does not depend on it.
        let layer_digest = sha256_digest(&layer.bytes);
        if layer_digest != layer_descriptor.digest {
            bail!(
                "{reference}: the Wasm layer hashes to {layer_digest}, not the {} its manifest \
                 names: refused",
                layer_descriptor.digest
            );
        }
        Ok(Pulled {
            manifest_digest,
            layer_digest,
            layer: layer.bytes,
            config_digest: manifest.config.digest.clone(),
            config: config.bytes,
        })
    }

    /// Publishes `component` at `reference` in the Wasm OCI artifact layout, with `config` as
    /// the artifact's config. Returns the manifest's digest.
    pub async fn push(
        &self,
        reference: &OciReference,
        component: Vec<u8>,
        config: Vec<u8>,
        annotations: BTreeMap<String, String>,
    ) -> Result<String> {
        let layers = [ImageLayer::new(
            component,
            WASM_LAYER_MEDIA_TYPE.to_owned(),
            None,
        )];
        let config = Config::new(config, WASM_CONFIG_MEDIA_TYPE.to_owned(), None);
        let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
        let image = reference.inner();
        self.client
            .push(image, &layers, config, &self.auth, Some(manifest))
            .await
            .map_err(|e| registry_error(reference, "pushing", e))?;
        self.client
            .fetch_manifest_digest(image, &self.auth)
            .await
            .map_err(|e| registry_error(reference, "reading back the pushed manifest", e))
    }
}

/// The manifest, checked to be a Wasm artifact: one Wasm layer of at most `max_layer_bytes`.
fn wasm_manifest(
    reference: &OciReference,
    bytes: &[u8],
    max_layer_bytes: u64,
) -> Result<OciImageManifest> {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let kind: Kind = serde_json::from_slice(bytes)
        .with_context(|| format!("{reference}: the manifest is not JSON"))?;
    if kind.manifests.is_some() || kind.media_type.as_deref() == Some(OCI_IMAGE_INDEX_MEDIA_TYPE) {
        bail!("{reference} is an image index (several platforms), not a Wasm component");
    }
    let manifest: OciImageManifest = serde_json::from_slice(bytes)
        .with_context(|| format!("{reference}: the manifest is not an OCI image manifest"))?;
    let shown = |text: &str| crate::guest_text::shortened(text, 100);
    if !CONFIG_MEDIA_TYPES.contains(&manifest.config.media_type.as_str()) {
        bail!(
            "{reference}: its config is {}, not a Wasm artifact's ({WASM_CONFIG_MEDIA_TYPE})",
            shown(&manifest.config.media_type)
        );
    }
    check_size(reference, "config", &manifest.config, MAX_METADATA_BYTES)?;
    match manifest.layers.as_slice() {
        [layer] if LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) => {
            check_size(reference, "Wasm layer", layer, max_layer_bytes)?;
        }
        [layer] => bail!(
            "{reference}: its layer is {}, not a Wasm component ({WASM_LAYER_MEDIA_TYPE})",
            shown(&layer.media_type)
        ),
        layers => bail!(
            "{reference}: its manifest has {} layers; a Wasm component artifact has exactly one \
             ({WASM_LAYER_MEDIA_TYPE})",
            layers.len()
        ),
    }
    Ok(manifest)
}

fn check_size(reference: &OciReference, what: &str, blob: &OciDescriptor, max: u64) -> Result<()> {
    if !super::is_sha256_digest(&blob.digest) {
        bail!(
            "{reference}: its {what}'s digest {} is not sha256:<64 hex digits>",
            crate::guest_text::shortened(&blob.digest, 100)
        );
    }
    if blob.size < 0 || blob.size as u64 > max {
        bail!(
            "{reference}: its {what} is {} bytes, over the {max} allowed (compile.max_plugin_bytes \
             for a plugin)",
            blob.size
        );
    }
    Ok(())
}

/// A registry's error, with the reference; registry answers are escaped and cut.
fn registry_error(
    reference: &OciReference,
    doing: &str,
    error: oci_client::errors::OciDistributionError,
) -> anyhow::Error {
    use oci_client::errors::OciDistributionError as E;
    let text = crate::guest_text::shortened(format!("{error}").trim(), 400);
    let hint = match &error {
        E::AuthenticationFailure(_)
        | E::UnauthorizedError { .. }
        | E::ServerError {
            code: 401 | 403, ..
        } => format!(
            " (registry logins are read from ${}, $DOCKER_CONFIG/config.json or \
             ~/.docker/config.json)",
            credentials::AUTH_FILE_ENV
        ),
        _ => String::new(),
    };
    anyhow::anyhow!("{reference}: {doing}: {text}{hint}")
}

/// Loopback registries, and those the operator lists, are spoken to over plain HTTP.
fn is_insecure(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback
        || std::env::var(INSECURE_ENV).is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|listed| !listed.is_empty() && listed == registry)
        })
}

/// An in-memory writer that fails once more than `max` bytes are written: a download is cut
/// when it outgrows what its manifest declared.
struct Bounded {
    bytes: Vec<u8>,
    max: u64,
}

impl Bounded {
    fn new(max: u64) -> Bounded {
        Bounded {
            bytes: Vec::new(),
            max,
        }
    }
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if (this.bytes.len() + buf.len()) as u64 > this.max {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the blob is larger than {} bytes",
                this.max
            ))));
        }
        this.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_listed_registries_are_plain_http() {
        assert!(is_insecure("127.0.0.1:5000"));
        assert!(is_insecure("localhost:5000"));
        assert!(is_insecure("[::1]:5000"));
        assert!(!is_insecure("ghcr.io"));
        assert!(!is_insecure("10.0.0.1:5000"));
    }

    #[test]
    fn a_manifest_must_be_one_wasm_layer() {
        let reference = OciReference::parse("oci://127.0.0.1:1/team/m:1").unwrap();
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let manifest = |config: &str, layers: &[(&str, i64)]| {
            let layers: Vec<_> = layers
                .iter()
                .map(|(media_type, size)| {
                    serde_json::json!({"mediaType": media_type, "digest": digest('b'), "size": size})
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "config": {"mediaType": config, "digest": digest('a'), "size": 2},
                "layers": layers,
            }))
            .unwrap()
        };
        let ok = manifest(WASM_CONFIG_MEDIA_TYPE, &[(WASM_LAYER_MEDIA_TYPE, 10)]);
        assert!(wasm_manifest(&reference, &ok, 100).is_ok());
        for (bytes, expected) in [
            (
                manifest(
                    WASM_CONFIG_MEDIA_TYPE,
                    &[(WASM_LAYER_MEDIA_TYPE, 10), (WASM_LAYER_MEDIA_TYPE, 10)],
                ),
                "2 layers",
            ),
            (
                manifest(
                    WASM_CONFIG_MEDIA_TYPE,
                    &[("application/vnd.oci.image.layer.v1.tar+gzip", 10)],
                ),
                "not a Wasm component",
            ),
            (
                manifest(
                    "application/vnd.oci.image.config.v1+json",
                    &[(WASM_LAYER_MEDIA_TYPE, 10)],
                ),
                "not a Wasm artifact",
            ),
            (
                manifest(WASM_CONFIG_MEDIA_TYPE, &[(WASM_LAYER_MEDIA_TYPE, 1000)]),
                "over the 100",
            ),
            (
                br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
                "image index",
            ),
        ] {
            let error = format!("{:#}", wasm_manifest(&reference, &bytes, 100).unwrap_err());
            assert!(
                error.contains(expected) && error.contains("oci://127.0.0.1:1/team/m:1"),
                "{error}"
            );
        }
    }
}
