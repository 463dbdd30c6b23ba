//! The development CA and server certificate, generated on mgmt's first run.
//!
//! `<dir>/ca.pem`, `ca.key` (the CA appliances pin), `server.pem` (server
//! certificate followed by the CA), `server.key`; keys are written 0600.
//! Later runs reuse them. The server certificate alone is issued again (by
//! the same CA, so pins stay valid) when it does not name every wanted
//! host, is not issued by the CA, or expires within 30 days.

use crate::{ServerIdentity, TlsError, covers, verify_issued};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// How long the development CA is valid.
const CA_DAYS: i64 = 3650;
/// How long a development server certificate is valid.
const SERVER_DAYS: i64 = 825;
/// Re-issue a server certificate this close to its end.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

const HINT: &str = "restore it from a backup; only if that is impossible, delete ca.pem, ca.key, server.pem and server.key in mgmt's <data_dir>/tls to generate a new development CA, and install the new ca.pem on every appliance";

/// What to do about an unusable server key (the CA stays: appliances keep
/// their pin).
const SERVER_KEY_HINT: &str = "restore it from a backup, or delete server.key and server.pem in mgmt's <data_dir>/tls to have a new key and certificate issued by the same development CA (appliances keep their pin)";

/// What [`ensure`] found or did.
#[derive(Debug)]
pub struct DevTls {
    /// The files and their contents.
    pub identity: ServerIdentity,
    /// The CA key (`ca.key`).
    pub ca_key_file: PathBuf,
    /// A new CA was generated (first run).
    pub new_ca: bool,
    /// A new server certificate was issued this run.
    pub new_server_cert: bool,
}

/// The names every development certificate carries: localhost, the
/// loopback addresses and this machine's host name.
pub fn default_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && rustls_pki_types::ServerName::try_from(h).is_ok() {
            names.push(h.to_string());
        }
    }
    names
}

/// Makes sure `dir` holds a development CA and a server certificate naming
/// [`default_names`] and `extra_names`; generates what is missing.
pub fn ensure(dir: &Path, extra_names: &[String]) -> Result<DevTls, TlsError> {
    let mut names = default_names();
    for n in extra_names {
        let n = n.trim();
        if n.is_empty() || names.iter().any(|x| x == n) {
            continue;
        }
        if rustls_pki_types::ServerName::try_from(n).is_err() {
            return Err(TlsError::Generate {
                dir: dir.to_path_buf(),
                why: format!("{n:?} in [tls] names is neither a DNS name nor an IP address"),
            });
        }
        names.push(n.to_string());
    }
    ensure_at(dir, &names, UnixTime::now())
}

fn ensure_at(dir: &Path, names: &[String], now: UnixTime) -> Result<DevTls, TlsError> {
    let gen_err = |why: String| TlsError::Generate {
        dir: dir.to_path_buf(),
        why,
    };
    create_private_dir(dir)?;
    let ca_file = dir.join("ca.pem");
    let ca_key_file = dir.join("ca.key");
    let cert_file = dir.join("server.pem");
    let key_file = dir.join("server.key");

    // The CA: reuse, or generate both files.
    let (ca_key, ca_pem, new_ca) = match (ca_file.exists(), ca_key_file.exists()) {
        (true, true) => {
            let key = read_key_pair(&ca_key_file, HINT)?;
            let ca = crate::read_certs(&ca_file, HINT)?;
            let ca_cert = ca
                .into_iter()
                .next()
                .ok_or_else(|| TlsError::NoCertificate {
                    path: ca_file.clone(),
                    hint: HINT,
                })?;
            let spki = webpki::EndEntityCert::try_from(&ca_cert)
                .map(|c| c.subject_public_key_info().as_ref().to_vec())
                .map_err(|e| TlsError::BadPem {
                    path: ca_file.clone(),
                    why: format!("cannot parse it: {e}"),
                    hint: HINT,
                })?;
            if spki != key.subject_public_key_info() {
                return Err(TlsError::KeyMismatch {
                    cert: ca_file,
                    key: ca_key_file,
                });
            }
            let pem = std::fs::read_to_string(&ca_file).map_err(|source| TlsError::Read {
                path: ca_file.clone(),
                source,
                hint: HINT,
            })?;
            (key, pem, false)
        }
        (true, false) => {
            return Err(TlsError::Incomplete {
                present: ca_file,
                missing: ca_key_file,
            });
        }
        (false, true) => {
            return Err(TlsError::Incomplete {
                present: ca_key_file,
                missing: ca_file,
            });
        }
        (false, false) => {
            let key = KeyPair::generate().map_err(|e| gen_err(e.to_string()))?;
            let mut params = ca_params(&key);
            let start = at(now);
            params.not_before = start - time::Duration::days(1);
            params.not_after = start + time::Duration::days(CA_DAYS);
            let cert = params
                .self_signed(&key)
                .map_err(|e| gen_err(e.to_string()))?;
            write_file(
                &ca_key_file,
                &pem("PRIVATE KEY", &key.serialize_der()),
                true,
            )?;
            let ca_pem = pem("CERTIFICATE", cert.der());
            write_file(&ca_file, &ca_pem, false)?;
            (key, ca_pem, true)
        }
    };
    let ca_der = CertificateDer::from_pem_slice_owned(ca_pem.as_bytes(), &ca_file)?;

    // The server key: never replaced once it exists (a corrupt or empty one
    // is an error naming the file); generated only when absent.
    let server_key = if key_file.exists() {
        Some(read_key_pair(&key_file, SERVER_KEY_HINT)?)
    } else {
        None
    };
    // The server certificate: reuse when it still fits, else issue anew
    // (for the existing key, if there is one).
    let reuse = !new_ca
        && server_key.is_some()
        && cert_file.exists()
        && ServerIdentity::load_at(&cert_file, &key_file, &ca_file, HINT, now)
            .ok()
            .is_some_and(|id| {
                let later =
                    UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs()) + RENEW_BEFORE);
                names.iter().all(|n| covers(id.chain(), n))
                    && verify_issued(id.chain(), &ca_der, &cert_file, &ca_file, None, later).is_ok()
            });
    if !reuse {
        let new_key = server_key.is_none();
        let key = match server_key {
            Some(k) => k,
            None => KeyPair::generate().map_err(|e| gen_err(e.to_string()))?,
        };
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| gen_err(e.to_string()))?;
        for n in names {
            params
                .subject_alt_names
                .push(match n.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        n.clone()
                            .try_into()
                            .map_err(|e: rcgen::Error| gen_err(format!("name {n:?}: {e}")))?,
                    ),
                });
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        dn.push(DnType::OrganizationName, "Crossline (development)");
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let start = at(now);
        params.not_before = start - time::Duration::days(1);
        params.not_after = start + time::Duration::days(SERVER_DAYS);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial(&key)));
        let issuer = Issuer::new(ca_params(&ca_key), &ca_key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| gen_err(e.to_string()))?;
        if new_key {
            write_file(&key_file, &pem("PRIVATE KEY", &key.serialize_der()), true)?;
        }
        write_file(
            &cert_file,
            &format!("{}{ca_pem}", pem("CERTIFICATE", cert.der())),
            false,
        )?;
    }
    let identity = ServerIdentity::load_at(&cert_file, &key_file, &ca_file, HINT, now)?;
    Ok(DevTls {
        identity,
        ca_key_file,
        new_ca,
        new_server_cert: !reuse,
    })
}

/// A key file of ours: an error naming it (and saying what to do) when it
/// is empty, unreadable or not a usable key; never replaced here.
fn read_key_pair(path: &Path, hint: &'static str) -> Result<KeyPair, TlsError> {
    let der = crate::read_key(path, hint).map_err(|e| match e {
        TlsError::NoKey { path } => TlsError::BadPem {
            path,
            why: "it is empty, or holds no private key".into(),
            hint,
        },
        e => e,
    })?;
    KeyPair::try_from(&der).map_err(|e| TlsError::BadPem {
        path: path.to_path_buf(),
        why: format!("not a usable key: {e}"),
        hint,
    })
}

/// The CA's parameters, derived from its key alone, so that a later run can
/// issue certificates from `ca.key` without parsing `ca.pem`.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let id: String = Sha256::digest(key.subject_public_key_info())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Crossline development CA {id}"));
    dn.push(DnType::OrganizationName, "Crossline (development)");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial(key)));
    params
}

/// A positive 16-byte serial derived from the key and the time.
fn serial(key: &KeyPair) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(key.subject_public_key_info());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes(),
    );
    let mut s: Vec<u8> = h.finalize().iter().take(16).copied().collect();
    if let Some(b) = s.first_mut() {
        *b &= 0x7f;
        *b |= 0x01;
    }
    s
}

/// PEM text of one DER object (RFC 7468: base64 in lines of 64).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn at(now: UnixTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(now.as_secs() as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

trait FromPemOwned: Sized {
    fn from_pem_slice_owned(pem: &[u8], path: &Path) -> Result<Self, TlsError>;
}

impl FromPemOwned for CertificateDer<'static> {
    fn from_pem_slice_owned(pem: &[u8], path: &Path) -> Result<Self, TlsError> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem).map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            why: e.to_string(),
            hint: HINT,
        })
    }
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `path` atomically (temporary file, fsync, rename); `private`
/// files get mode 0600.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(extra: &[&str]) -> Vec<String> {
        let mut n = default_names();
        n.extend(extra.iter().map(|s| s.to_string()));
        n
    }

    #[test]
    fn generated_once_then_reused() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tls");
        let first = ensure(&dir, &[]).unwrap();
        assert!(first.new_ca && first.new_server_cert);
        for (f, mode) in [("ca.key", 0o600), ("server.key", 0o600), ("ca.pem", 0o644)] {
            let m = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, mode, "{f}");
        }
        for n in ["localhost", "127.0.0.1", "::1"] {
            assert!(first.identity.covers(n), "{n}");
        }
        assert!(!first.identity.covers("example.org"));
        let pem = std::fs::read(dir.join("server.pem")).unwrap();
        let again = ensure(&dir, &[]).unwrap();
        assert!(!again.new_ca && !again.new_server_cert);
        assert_eq!(std::fs::read(dir.join("server.pem")).unwrap(), pem);
        // The server config builds and the pinned client trusts the chain.
        again.identity.server_config(&[b"http/1.1"]).unwrap();
        crate::pinned_client_config(&dir.join("ca.pem")).unwrap();
    }

    #[test]
    fn new_name_reissues_the_server_cert_with_the_same_ca() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tls");
        let first = ensure(&dir, &[]).unwrap();
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        let more = ensure(&dir, &["mgmt.example.org".into(), "10.1.2.3".into()]).unwrap();
        assert!(!more.new_ca && more.new_server_cert);
        assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca);
        assert!(more.identity.covers("mgmt.example.org"));
        assert!(more.identity.covers("10.1.2.3"));
        assert_eq!(first.identity.ca(), more.identity.ca());
        // Same names again: reused.
        let same = ensure(&dir, &["10.1.2.3".into(), "mgmt.example.org".into()]).unwrap();
        assert!(!same.new_server_cert);
        let bad = ensure(&dir, &["not a name".into()]).unwrap_err();
        assert!(bad.to_string().contains("not a name"), "{bad}");
    }

    #[test]
    fn expiring_server_cert_is_reissued_and_expired_one_refused_on_load() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tls");
        let n = names(&[]);
        let now = UnixTime::now();
        ensure_at(&dir, &n, now).unwrap();
        // Years later: the server certificate has expired.
        let later = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 900 * 86_400));
        let ca = crate::read_certs(&dir.join("ca.pem"), HINT).unwrap();
        let chain = crate::read_certs(&dir.join("server.pem"), HINT).unwrap();
        let e = verify_issued(
            &chain,
            &ca[0],
            &dir.join("server.pem"),
            &dir.join("ca.pem"),
            None,
            later,
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::Expired { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("server.pem") && msg.contains("expired") && msg.contains("renew"),
            "{msg}"
        );
        // ensure() at that time issues a new one from the same CA.
        let re = ensure_at(&dir, &n, later).unwrap();
        assert!(!re.new_ca && re.new_server_cert);
    }

    #[test]
    fn a_corrupt_or_empty_key_is_refused_never_replaced() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tls");
        ensure(&dir, &[]).unwrap();
        for (file, bad) in [
            ("server.key", &b""[..]),
            (
                "server.key",
                &b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"[..],
            ),
            ("ca.key", &b"\n"[..]),
            ("ca.key", &b"not a key at all"[..]),
        ] {
            let good = std::fs::read(dir.join(file)).unwrap();
            std::fs::write(dir.join(file), bad).unwrap();
            let e = ensure(&dir, &[]).unwrap_err().to_string();
            assert!(
                e.contains(file) && e.contains("restore it from a backup"),
                "{file} {bad:?}: {e}"
            );
            assert_eq!(
                std::fs::read(dir.join(file)).unwrap(),
                bad,
                "{file} left as it was"
            );
            std::fs::write(dir.join(file), good).unwrap();
        }
        // A missing server certificate is issued again for the same key.
        let key = std::fs::read(dir.join("server.key")).unwrap();
        std::fs::remove_file(dir.join("server.pem")).unwrap();
        let again = ensure(&dir, &[]).unwrap();
        assert!(again.new_server_cert && !again.new_ca);
        assert_eq!(std::fs::read(dir.join("server.key")).unwrap(), key);
        again.identity.server_config(&[b"http/1.1"]).unwrap();
    }

    #[test]
    fn half_a_ca_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tls");
        ensure(&dir, &[]).unwrap();
        std::fs::remove_file(dir.join("ca.key")).unwrap();
        let e = ensure(&dir, &[]).unwrap_err().to_string();
        assert!(
            e.contains("ca.key") && e.contains("does not") && e.contains("restore"),
            "{e}"
        );
    }
}
