//! Crossline's TLS pieces (rustls with the ring provider only).
//!
//! - [`ServerIdentity::load`]: mgmt's certificate chain, key and CA from
//!   files (production), checked against each other on load: the key must
//!   belong to the certificate, the certificate must be issued by the CA and
//!   be valid now. Each failure names the file and what to do.
//! - [`dev::ensure`] (feature `server`): the development CA and server
//!   certificate, generated on first run in mgmt's data dir and reused after.
//! - [`ServerIdentity::server_config`]: the rustls `ServerConfig` for the
//!   MQTT and HTTPS listeners; [`accept`] (feature `server`) runs the
//!   handshakes.
//! - [`pinned_client_config`]: a rustls `ClientConfig` that trusts only the
//!   CA in one file (no system or webpki roots): what appliances and mgmt's
//!   own clients use.
//!
//! docs/FLEET.md ("TLS") describes the files, pinning and rotation.

#[cfg(feature = "server")]
pub mod accept;
#[cfg(feature = "server")]
pub mod dev;
mod error;

pub use error::TlsError;
pub use rustls;
pub use rustls_pki_types as pki_types;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The only crypto provider Crossline uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key mgmt serves, with the CA that issued it.
#[derive(Debug)]
pub struct ServerIdentity {
    /// Certificate chain file (PEM; the server certificate first).
    pub cert_file: PathBuf,
    /// Private key file (PEM).
    pub key_file: PathBuf,
    /// The CA certificate appliances pin (PEM).
    pub ca_file: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
}

impl Clone for ServerIdentity {
    fn clone(&self) -> Self {
        Self {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            ca_file: self.ca_file.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            ca: self.ca.clone(),
        }
    }
}

const PROD_HINT: &str = "check [tls] cert_file, key_file and ca_file in mgmt's configuration";

impl ServerIdentity {
    /// Loads and cross-checks the three files: the key belongs to the first
    /// certificate of the chain, which the CA issued and which is valid now.
    pub fn load(cert_file: &Path, key_file: &Path, ca_file: &Path) -> Result<Self, TlsError> {
        Self::load_at(cert_file, key_file, ca_file, PROD_HINT, UnixTime::now())
    }

    pub(crate) fn load_at(
        cert_file: &Path,
        key_file: &Path,
        ca_file: &Path,
        hint: &'static str,
        now: UnixTime,
    ) -> Result<Self, TlsError> {
        let chain = read_certs(cert_file, hint)?;
        let key = read_key(key_file, hint)?;
        let ca = read_certs(ca_file, hint)?
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::NoCertificate {
                path: ca_file.to_path_buf(),
                hint,
            })?;
        check_key_matches(&chain, &key, cert_file, key_file)?;
        verify_issued(&chain, &ca, cert_file, ca_file, None, now)?;
        Ok(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            ca_file: ca_file.to_path_buf(),
            chain,
            key,
            ca,
        })
    }

    /// The certificate chain, server certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The CA certificate (DER).
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// A rustls server configuration serving this identity (TLS 1.2 and 1.3,
    /// no client certificates), announcing `alpn` (e.g. `http/1.1`; empty
    /// for MQTT).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| {
                TlsError::Rustls(format!(
                    "{} / {}: {e}",
                    self.cert_file.display(),
                    self.key_file.display()
                ))
            })?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }

    /// Whether the server certificate is valid for `name` (a DNS name or an
    /// IP address).
    pub fn covers(&self, name: &str) -> bool {
        covers(&self.chain, name)
    }
}

/// A rustls client configuration that trusts only the CA certificate(s) in
/// `ca_file`: no system store, no built-in roots. What appliances (and mgmt,
/// towards an external broker) connect with.
pub fn pinned_client_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    const HINT: &str = "point ca_file at mgmt's CA (`crossline-mgmt tls ca` prints it)";
    let certs = read_certs(ca_file, HINT)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| TlsError::BadPem {
            path: ca_file.to_path_buf(),
            why: format!("not a usable CA certificate: {e}"),
            hint: HINT,
        })?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// SHA-256 fingerprint of a DER certificate as colon-separated upper-case
/// hex (the form `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint_sha256(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo: the pin
/// form of HPKP and of Chromium's `--ignore-certificate-errors-spki-list`.
pub fn spki_sha256_base64(der: &CertificateDer<'_>) -> Result<String, TlsError> {
    use base64::Engine;
    let cert = webpki::EndEntityCert::try_from(der)
        .map_err(|e| TlsError::Rustls(format!("cannot parse certificate: {e}")))?;
    let spki = cert.subject_public_key_info();
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_ref())))
}

/// Every certificate in a PEM file; an error naming the file when it cannot
/// be read or holds none.
pub fn read_certs(
    path: &Path,
    hint: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, hint)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            why: e.to_string(),
            hint,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
            hint,
        });
    }
    Ok(certs)
}

pub(crate) fn read_key(
    path: &Path,
    hint: &'static str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, hint)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        e => TlsError::BadPem {
            path: path.to_path_buf(),
            why: e.to_string(),
            hint,
        },
    })
}

fn read(path: &Path, hint: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
        hint,
    })
}

fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_file: &Path,
    key_file: &Path,
) -> Result<(), TlsError> {
    let p = provider();
    let signing = p
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::BadPem {
            path: key_file.to_path_buf(),
            why: format!("unusable private key: {e}"),
            hint: "use an ECDSA (P-256/P-384), Ed25519 or RSA key in PEM",
        })?;
    rustls::sign::CertifiedKey::new(chain.to_vec(), signing)
        .keys_match()
        .map_err(|_| TlsError::KeyMismatch {
            cert: cert_file.to_path_buf(),
            key: key_file.to_path_buf(),
        })
}

/// Checks that `chain[0]` was issued by `ca` (directly or through the rest of
/// the chain), is valid at `now` for server authentication, and (when given)
/// for `name`.
pub(crate) fn verify_issued(
    chain: &[CertificateDer<'static>],
    ca: &CertificateDer<'static>,
    cert_file: &Path,
    ca_file: &Path,
    name: Option<&str>,
    now: UnixTime,
) -> Result<(), TlsError> {
    let invalid = |detail: String| TlsError::Invalid {
        cert: cert_file.to_path_buf(),
        detail,
    };
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_file.to_path_buf(),
            hint: PROD_HINT,
        });
    };
    let anchor = webpki::anchor_from_trusted_cert(ca).map_err(|e| TlsError::BadPem {
        path: ca_file.to_path_buf(),
        why: format!("not a usable CA certificate: {e}"),
        hint: PROD_HINT,
    })?;
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| invalid(format!("cannot parse it: {e}")))?;
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    ee.verify_for_usage(
        algs.all,
        &[anchor],
        &chain[1..],
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| match e {
        webpki::Error::CertExpired { time, not_after } => TlsError::Expired {
            cert: cert_file.to_path_buf(),
            detail: format!(
                "it expired {} days ago",
                time.as_secs().saturating_sub(not_after.as_secs()) / 86_400
            ),
        },
        webpki::Error::CertNotValidYet { .. } => TlsError::Expired {
            cert: cert_file.to_path_buf(),
            detail: "it is not valid yet (is the clock right?)".into(),
        },
        webpki::Error::UnknownIssuer => TlsError::NotIssuedBy {
            cert: cert_file.to_path_buf(),
            ca: ca_file.to_path_buf(),
        },
        e => invalid(format!("{e:?}")),
    })?;
    if let Some(name) = name
        && !covers(chain, name)
    {
        return Err(invalid(format!("it does not name {name}")));
    }
    Ok(())
}

fn covers(chain: &[CertificateDer<'static>], name: &str) -> bool {
    let Some(leaf) = chain.first() else {
        return false;
    };
    let Ok(ee) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&server_name).is_ok()
}

#[cfg(all(test, feature = "server"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn production_files_are_cross_checked_with_clear_errors() {
        let d = tempfile::tempdir().unwrap();
        let a = dev::ensure(&d.path().join("a"), &[]).unwrap().identity;
        let b = dev::ensure(&d.path().join("b"), &[]).unwrap().identity;
        ServerIdentity::load(&a.cert_file, &a.key_file, &a.ca_file).unwrap();

        let e = ServerIdentity::load(&a.cert_file, &b.key_file, &a.ca_file).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(
            e.to_string().contains(&*b.key_file.to_string_lossy()),
            "{e}"
        );

        let e = ServerIdentity::load(&a.cert_file, &a.key_file, &b.ca_file).unwrap_err();
        assert!(matches!(e, TlsError::NotIssuedBy { .. }), "{e}");
        assert!(e.to_string().contains("not issued by the CA"), "{e}");

        // The certificate given as the key, a missing file, an empty file.
        let e = ServerIdentity::load(&a.cert_file, &a.cert_file, &a.ca_file).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        let missing = d.path().join("nope.pem");
        let e = ServerIdentity::load(&missing, &a.key_file, &a.ca_file).unwrap_err();
        assert!(
            e.to_string().contains("nope.pem") && e.to_string().contains("[tls]"),
            "{e}"
        );
        let empty = d.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = pinned_client_config(&empty).unwrap_err();
        assert!(
            e.to_string().contains("no PEM certificate") && e.to_string().contains("tls ca"),
            "{e}"
        );

        // Fingerprints and pins have the usual shapes.
        let fp = fingerprint_sha256(a.ca());
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(spki_sha256_base64(&a.chain()[0]).unwrap().len(), 44);
    }
}
