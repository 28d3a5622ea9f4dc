//! Registry credentials: the operator's, from the auth files container tools already write,
//! never a monitor's credentials and never logged.
//!
//! The first file that exists is read: `$REGISTRY_AUTH_FILE` (podman, skopeo, buildah), else
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Each holds
//! `{"auths": {"registry.example": {"auth": "<base64 user:password>"}}}` (or `username` and
//! `password`), as `docker login` and `podman login` write it. Credential helpers
//! (`credHelpers`, `credsStore`) are not run: a registry whose login lives only in a helper is
//! reached anonymously, and an error from it says so.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The environment variable naming an auth file (podman's name for it).
pub const AUTH_FILE_ENV: &str = "REGISTRY_AUTH_FILE";

/// The largest auth file read.
const MAX_AUTH_FILE_BYTES: u64 = 1 << 20;

/// A user name and password for one registry. Neither is ever printed: `Debug` shows the
/// user only.
pub struct RegistryLogin {
    username: String,
    password: Zeroizing<String>,
}

impl RegistryLogin {
    /// The login as `oci-client` takes it.
    pub fn auth(&self) -> oci_client::secrets::RegistryAuth {
        oci_client::secrets::RegistryAuth::Basic(
            self.username.clone(),
            self.password.as_str().to_owned(),
        )
    }
}

impl fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The auth file in use, if any, and the login it holds for `registry`.
pub fn login_for(registry: &str) -> Result<Option<RegistryLogin>> {
    let Some(path) = auth_file() else {
        return Ok(None);
    };
    login_in(&path, registry)
}

/// The auth file the environment points at (see the module's doc), if it exists.
pub fn auth_file() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(file) = env(AUTH_FILE_ENV) {
        return Some(PathBuf::from(file));
    }
    let docker = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".docker")))?
        .join("config.json");
    docker.is_file().then_some(docker)
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<Zeroizing<String>>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<Zeroizing<String>>,
}

/// The login for `registry` in the auth file at `path`. Errors name the file, never a value.
fn login_in(path: &Path, registry: &str) -> Result<Option<RegistryLogin>> {
    use std::io::Read;
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_AUTH_FILE_BYTES).read_to_string(&mut text))
        .with_context(|| format!("reading the registry auth file {}", path.display()))?;
    // serde_json's errors quote no input, only a line and column.
    let file: AuthFile = serde_json::from_str(&text)
        .with_context(|| format!("the registry auth file {} is not valid", path.display()))?;
    let Some(entry) = file
        .auths
        .iter()
        .find(|(key, _)| registry_of_key(key) == normalized(registry))
        .map(|(_, entry)| entry)
    else {
        return Ok(None);
    };
    let invalid = || {
        anyhow::anyhow!(
            "the registry auth file {}: the entry for {registry} holds no user name and \
             password (an `auth` of base64 `user:password`, or `username` and `password`)",
            path.display()
        )
    };
    if let Some(auth) = &entry.auth {
        let pair = Zeroizing::new(base64_decode(auth.trim()).ok_or_else(invalid)?);
        let (username, password) = pair.split_once(':').ok_or_else(invalid)?;
        return Ok(Some(RegistryLogin {
            username: username.to_owned(),
            password: Zeroizing::new(password.to_owned()),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) => Ok(Some(RegistryLogin {
            username: username.clone(),
            password: password.clone(),
        })),
        _ => Err(invalid()),
    }
}

/// The registry an `auths` key stands for: keys may carry a scheme and a path
/// (`https://index.docker.io/v1/`).
fn registry_of_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    normalized(key.split('/').next().unwrap_or(key))
}

fn normalized(registry: &str) -> String {
    match registry.to_ascii_lowercase().as_str() {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// Standard base64 to UTF-8 text (the SDK's decoder, already in the tree).
fn base64_decode(text: &str) -> Option<String> {
    let bytes = aws_smithy_types::base64::decode(text).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_read_by_registry_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("sentinela-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("auth.json");
        // "ops:s3cret-pw" in base64.
        std::fs::write(
            &path,
            r#"{"auths": {"https://127.0.0.1:5001/v1/": {"auth": "b3BzOnMzY3JldC1wdw=="},
                          "other.example": {"username": "u", "password": "p"}}}"#,
        )
        .unwrap();
        let login = login_in(&path, "127.0.0.1:5001").unwrap().unwrap();
        assert_eq!(login.username, "ops");
        assert_eq!(login.password.as_str(), "s3cret-pw");
        assert!(!format!("{login:?}").contains("s3cret"));
        assert!(login_in(&path, "127.0.0.1:5002").unwrap().is_none());
        assert!(login_in(&path, "other.example").unwrap().is_some());

        std::fs::write(
            &path,
            r#"{"auths": {"x.example": {"auth": "bm90LWEtcGFpcg=="}}}"#,
        )
        .unwrap();
        let error = format!("{:#}", login_in(&path, "x.example").unwrap_err());
        assert!(
            error.contains("x.example") && !error.contains("not-a-pair"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
