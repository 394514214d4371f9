//! The session CA and the TLS configurations the proxy uses with it.
//!
//! One CA per session, made in the supervisor's memory at start: its key
//! is never written anywhere, and it dies with the session, so a cage that
//! copies the bundle learns nothing usable later. Leaf certificates are
//! issued per destination host (the name the proxy's rules decided on) and
//! cached; they share one leaf key. Upstream, the proxy is an ordinary TLS
//! client that verifies the server against the host's trust store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::SecretError;

/// Leaves cached at most (a cage could ask for many names; only the
/// secrets' hosts are ever terminated, so this is generous).
const MAX_LEAVES: usize = 256;

/// The one crypto provider cage uses: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub struct SessionCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    leaf_key: KeyPair,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl SessionCa {
    pub fn new() -> Result<SessionCa, String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "cage session CA");
        dn.push(DnType::OrganizationName, "cage");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let pem = cert.pem();
        let issuer = Issuer::new(params, key);
        let leaf_key = KeyPair::generate().map_err(|e| e.to_string())?;
        Ok(SessionCa {
            issuer,
            pem,
            leaf_key,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate, PEM: what the cage's bundle adds.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The server side of a terminated connection to `host` (a name or an
    /// IP literal), with a leaf for it signed by the session CA.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = leaves.get(host) {
            return Ok(Arc::clone(c));
        }
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(DnType::CommonName, host.to_string());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params);
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .map_err(|e| e.to_string())?;
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        if leaves.len() >= MAX_LEAVES {
            leaves.clear();
        }
        leaves.insert(host.to_string(), Arc::clone(&config));
        Ok(config)
    }
}

/// From a day ago (clocks differ) to thirty days on: a session never lasts
/// that long, and the key is gone when it ends anyway.
fn set_validity(params: &mut CertificateParams) {
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    params.not_before = (now - day).into();
    params.not_after = (now + 30 * day).into();
}

/// The proxy's upstream TLS client: the host's trust store, HTTP/1.1.
pub fn client_config(roots: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, SecretError> {
    let mut store = rustls::RootCertStore::empty();
    for path in roots {
        let certs = super::pem_certs(path)?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 && roots.len() == 1 {
            return Err(SecretError::NoRoots { path: path.clone() });
        }
    }
    if store.is_empty() {
        return Err(SecretError::NoRoots {
            path: roots.first().cloned().unwrap_or_default(),
        });
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SecretError::Ca(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
