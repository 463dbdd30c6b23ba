//! Errors of this crate: each names the file and says what to do.

use std::path::PathBuf;

/// Loading, checking or generating TLS material failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("TLS: cannot read {path}: {source}; {hint}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },
    /// A file could not be written.
    #[error("TLS: cannot write {path}: {source}; check that the directory exists and is writable")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file holds no certificate.
    #[error("TLS: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); {hint}")]
    NoCertificate { path: PathBuf, hint: &'static str },
    /// A file holds no private key.
    #[error(
        "TLS: {path} holds no private key (PEM: PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY); give the key file, not the certificate"
    )]
    NoKey { path: PathBuf },
    /// A file is not what it should be.
    #[error("TLS: {path}: {why}; {hint}")]
    BadPem {
        path: PathBuf,
        why: String,
        hint: &'static str,
    },
    /// The key does not belong to the certificate.
    #[error(
        "TLS: the private key in {key} does not belong to the certificate in {cert}; give the key the certificate was issued for"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The certificate is outside its validity period.
    #[error(
        "TLS: the certificate in {cert} cannot be used: {detail}; renew it (docs/FLEET.md, \"TLS\")"
    )]
    Expired { cert: PathBuf, detail: String },
    /// The certificate was not issued by the CA.
    #[error(
        "TLS: the certificate in {cert} was not issued by the CA in {ca}; appliances pin that CA, so give a certificate it signed (or the CA that signed this one)"
    )]
    NotIssuedBy { cert: PathBuf, ca: PathBuf },
    /// The certificate is unusable for another reason.
    #[error("TLS: the certificate in {cert} cannot be used: {detail}")]
    Invalid { cert: PathBuf, detail: String },
    /// Generating the development certificates failed.
    #[error("TLS: cannot generate the development certificates in {dir}: {why}")]
    Generate { dir: PathBuf, why: String },
    /// The development files are half there.
    #[error(
        "TLS: {present} exists but {missing} does not; restore {missing}, or delete {present} to start a new development CA (appliances pinned to the old one must then get the new ca.pem)"
    )]
    Incomplete { present: PathBuf, missing: PathBuf },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(String),
}
