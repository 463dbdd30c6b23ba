//! A Mosquitto configuration equivalent to the embedded broker's rules, for sites
//! that run Mosquitto (Debian's `mosquitto` 2.x) instead.
//!
//! [`render`] writes three files into a directory:
//! - `mosquitto.conf`: one listener on 127.0.0.1, `allow_anonymous false`,
//!   `password_file`, `acl_file`, `use_username_as_clientid true`, persistence off;
//! - `passwd`: one `user:$7$...` line per user, hashed as `mosquitto_passwd`
//!   does (PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key, base64);
//! - `acl`: each service user gets `topic readwrite crossline/v1/#`, every user
//!   gets `pattern readwrite crossline/v1/d/%u/#`.
//!
//! Differences from the embedded broker, all on the safe side:
//! `use_username_as_clientid` makes Mosquitto replace the client id of every
//! client by its username instead of refusing a device whose client id differs
//! (either way a credential can only ever hold its own session; two service
//! connections with the same username then replace each other); a subscription
//! outside the client's topics is granted by Mosquitto but delivers nothing
//! (Mosquitto checks read access per message); a forbidden publish is dropped
//! silently instead of disconnecting the client.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::TryRngCore;
use sha2::Sha512;

use crate::error::MosquittoConfError;
use crate::topic;

/// PBKDF2 iterations written into the password file. `mosquitto_passwd` 2.0
/// writes 101; Mosquitto reads the count from each line, so a higher one works
/// with every 2.x and costs well under a millisecond per CONNECT.
pub const PBKDF2_ITERATIONS: u32 = 1000;
/// Salt length `mosquitto_passwd` uses (bytes).
pub const SALT_LEN: usize = 12;
const KEY_LEN: usize = 64;
const MAX_SERVICE_USER_LEN: usize = 64;

/// File names inside the output directory.
pub const CONF_FILE: &str = "mosquitto.conf";
/// See [`CONF_FILE`].
pub const PASSWORD_FILE: &str = "passwd";
/// See [`CONF_FILE`].
pub const ACL_FILE: &str = "acl";

/// The files [`render`] wrote (absolute paths when `dir` was absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoFiles {
    /// Pass this to `mosquitto -c`.
    pub conf: PathBuf,
    /// The `password_file`.
    pub password_file: PathBuf,
    /// The `acl_file`.
    pub acl_file: PathBuf,
}

/// Writes `mosquitto.conf`, `passwd` and `acl` into `dir` (which must exist).
///
/// `users` lists every credential as (username, secret); the names listed in
/// `service_users` are service users (mgmt: all of `crossline/v1/#`), every other
/// user is a device and its username must be a device id (`[a-z0-9_-]{1,64}`).
/// Service user names may use `[A-Za-z0-9_.-]`. Existing files are replaced; the
/// password and ACL files are created with mode 0600, so they must belong to the
/// user Mosquitto runs as (started as root, Debian's mosquitto switches to the
/// `mosquitto` user before reading them).
pub fn render<U, S>(
    dir: &Path,
    listen_port: u16,
    users: &[(U, S)],
    service_users: &[&str],
) -> Result<MosquittoFiles, MosquittoConfError>
where
    U: AsRef<str>,
    S: AsRef<[u8]>,
{
    let mut lines = Vec::with_capacity(users.len());
    for (user, secret) in users {
        let user = user.as_ref();
        if secret.as_ref().is_empty() {
            return Err(MosquittoConfError::EmptySecret(user.to_owned()));
        }
        lines.push((user, hash_secret(secret.as_ref())?));
    }
    write_all(dir, listen_port, &lines, service_users)
}

/// Like [`render`], from stored `$7$` hashes (as [`hash_secret`] makes them)
/// instead of secrets: mgmt keeps only hashes in its registry.
pub fn render_hashed<U, H>(
    dir: &Path,
    listen_port: u16,
    users: &[(U, H)],
    service_users: &[&str],
) -> Result<MosquittoFiles, MosquittoConfError>
where
    U: AsRef<str>,
    H: AsRef<str>,
{
    let mut lines = Vec::with_capacity(users.len());
    for (user, hash) in users {
        let (user, hash) = (user.as_ref(), hash.as_ref());
        if Pbkdf2Hash::parse(hash).is_none() {
            return Err(MosquittoConfError::BadHash(user.to_owned()));
        }
        lines.push((user, hash.to_owned()));
    }
    write_all(dir, listen_port, &lines, service_users)
}

fn write_all(
    dir: &Path,
    listen_port: u16,
    users: &[(&str, String)],
    service_users: &[&str],
) -> Result<MosquittoFiles, MosquittoConfError> {
    let mut seen = std::collections::HashSet::new();
    for (user, _) in users {
        let user = *user;
        if !seen.insert(user) {
            return Err(MosquittoConfError::DuplicateUser(user.to_owned()));
        }
        if service_users.contains(&user) {
            check_service_user(user)?;
        } else if !topic::is_valid_device_id(user) {
            return Err(MosquittoConfError::BadUser {
                username: user.to_owned(),
                why: "a device user name must match [a-z0-9_-]{1,64} (or list it as a service user)",
            });
        }
    }
    for service in service_users {
        if !seen.contains(service) {
            return Err(MosquittoConfError::ServiceWithoutSecret(
                (*service).to_owned(),
            ));
        }
    }

    let files = MosquittoFiles {
        conf: dir.join(CONF_FILE),
        password_file: dir.join(PASSWORD_FILE),
        acl_file: dir.join(ACL_FILE),
    };

    let mut passwd = String::new();
    for (user, hash) in users {
        passwd.push_str(&format!("{user}:{hash}\n"));
    }

    let mut acl = String::from(
        "# Generated by crossline-broker: the same rules as mgmt's embedded broker.\n",
    );
    for service in service_users {
        acl.push_str(&format!(
            "\n# service user: everything under {}\n",
            topic::ROOT_FILTER
        ));
        acl.push_str(&format!(
            "user {service}\ntopic readwrite {}\n",
            topic::ROOT_FILTER
        ));
    }
    acl.push_str(&format!(
        "\n# every user (devices: username = client id = device id): only its own topics\npattern readwrite {}/%u/#\n",
        topic::DEVICE_PREFIX
    ));

    let defaults = crate::embedded::BrokerConfig::default();
    let conf = format!(
        "# Generated by crossline-broker (crossline-mgmt broker mosquitto-config).\n\
         # Run: mosquitto -c {conf}\n\
         per_listener_settings false\n\
         allow_anonymous false\n\
         password_file {passwd}\n\
         acl_file {acl}\n\
         persistence false\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n\
         # Limits as in the embedded broker: the largest packet, and the messages\n\
         # queued for one offline client. Mosquitto cannot limit retained messages\n\
         # per client (the embedded broker keeps only a device's small presence):\n\
         # a device may leave retained messages of up to max_packet_size bytes on\n\
         # its own topics here (see docs/BROKER.md).\n\
         max_packet_size {max_packet}\n\
         max_queued_messages {max_queued}\n\
         # The listener comes before any listener option: an option above it would\n\
         # make Mosquitto open its default listener on port 1883 as well.\n\
         listener {listen_port} 127.0.0.1\n\
         # A client's id is replaced by its username: a credential can only hold its own session.\n\
         use_username_as_clientid true\n",
        conf = files.conf.display(),
        passwd = files.password_file.display(),
        acl = files.acl_file.display(),
        max_packet = defaults.max_packet_size,
        max_queued = defaults.max_queued_per_client,
    );

    write_file(&files.password_file, passwd.as_bytes(), 0o600)?;
    write_file(&files.acl_file, acl.as_bytes(), 0o600)?;
    write_file(&files.conf, conf.as_bytes(), 0o644)?;
    Ok(files)
}

/// The TLS files [`add_tls_listener`] copied next to the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoTlsFiles {
    /// Certificate chain (`certfile`).
    pub cert: PathBuf,
    /// Private key (`keyfile`, mode 0600).
    pub key: PathBuf,
    /// CA (`cafile`).
    pub ca: PathBuf,
}

/// File names of [`add_tls_listener`]'s copies.
pub const TLS_CERT_FILE: &str = "server.pem";
/// See [`TLS_CERT_FILE`].
pub const TLS_KEY_FILE: &str = "server.key";
/// See [`TLS_CERT_FILE`].
pub const TLS_CA_FILE: &str = "ca.pem";

/// Adds an MQTT-over-TLS listener on `port` (all interfaces) to the
/// configuration [`render`] wrote, serving mgmt's certificate: `cert`, `key`
/// and `ca` are copied into the configuration's directory (so that they can
/// belong to the user Mosquitto runs as) and named by `certfile`, `keyfile`
/// and `cafile`. The plain listener stays on 127.0.0.1.
pub fn add_tls_listener(
    files: &MosquittoFiles,
    port: u16,
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> Result<MosquittoTlsFiles, MosquittoConfError> {
    let dir = files.conf.parent().unwrap_or(Path::new("."));
    let tls = MosquittoTlsFiles {
        cert: dir.join(TLS_CERT_FILE),
        key: dir.join(TLS_KEY_FILE),
        ca: dir.join(TLS_CA_FILE),
    };
    for (from, to, mode) in [
        (cert, &tls.cert, 0o644),
        (key, &tls.key, 0o600),
        (ca, &tls.ca, 0o644),
    ] {
        let bytes = std::fs::read(from).map_err(|source| MosquittoConfError::Write {
            path: from.to_path_buf(),
            source,
        })?;
        write_file(to, &bytes, mode)?;
    }
    let mut conf =
        std::fs::read_to_string(&files.conf).map_err(|source| MosquittoConfError::Write {
            path: files.conf.clone(),
            source,
        })?;
    conf.push_str(&format!(
        "# MQTT over TLS with mgmt's certificate (appliances: mqtts://<host>:{port}, pinning ca.pem).
         listener {port}
         certfile {cert}
         keyfile {key}
         cafile {ca}
         use_username_as_clientid true
",
        cert = tls.cert.display(),
        key = tls.key.display(),
        ca = tls.ca.display(),
    ));
    write_file(&files.conf, conf.as_bytes(), 0o644)?;
    Ok(tls)
}

/// A new `$7$` hash of `secret` with a fresh random salt and
/// [`PBKDF2_ITERATIONS`], the value a password file line holds after `user:`.
pub fn hash_secret(secret: &[u8]) -> Result<String, MosquittoConfError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| MosquittoConfError::Random(e.to_string()))?;
    Ok(hash_password(secret, &salt, PBKDF2_ITERATIONS))
}

/// One password file line `username:$7$iterations$salt$hash` with a fresh salt.
pub fn password_line(username: &str, secret: &[u8]) -> Result<String, MosquittoConfError> {
    Ok(format!("{username}:{}", hash_secret(secret)?))
}

/// Mosquitto's `$7$` hash: `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`.
pub fn hash_password(secret: &[u8], salt: &[u8], iterations: u32) -> String {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(secret, salt, iterations, &mut key);
    format!(
        "$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(key)
    )
}

/// Does `secret` match a stored `$7$` hash (ours or `mosquitto_passwd`'s)?
/// False for anything malformed, including an iteration count above
/// [`MAX_ITERATIONS`] (a stored value must not make a CONNECT arbitrarily slow).
pub fn verify_secret(hash: &str, secret: &[u8]) -> bool {
    let Some(parsed) = Pbkdf2Hash::parse(hash) else {
        return false;
    };
    let mut key = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(secret, &parsed.salt, parsed.iterations, &mut key);
    crate::auth::constant_time_eq(&key, &parsed.key)
}

/// Highest iteration count [`verify_secret`] accepts.
pub const MAX_ITERATIONS: u32 = 1_000_000;

struct Pbkdf2Hash {
    iterations: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

impl Pbkdf2Hash {
    fn parse(hash: &str) -> Option<Self> {
        let rest = hash.strip_prefix("$7$")?;
        let mut parts = rest.split('$');
        let iterations: u32 = parts.next()?.parse().ok()?;
        let salt = parts.next()?;
        let key = parts.next()?;
        if parts.next().is_some() || iterations == 0 || iterations > MAX_ITERATIONS {
            return None;
        }
        // Bounded before decoding: a salt is 12 bytes, a key 64 (base64: 16, 88).
        if salt.len() > 64 || key.len() != 88 {
            return None;
        }
        let salt = STANDARD.decode(salt).ok()?;
        let key = STANDARD.decode(key).ok()?;
        (!salt.is_empty() && key.len() == KEY_LEN).then_some(Self {
            iterations,
            salt,
            key,
        })
    }
}

fn check_service_user(user: &str) -> Result<(), MosquittoConfError> {
    let ok = !user.is_empty()
        && user.len() <= MAX_SERVICE_USER_LEN
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(MosquittoConfError::BadUser {
            username: user.to_owned(),
            why: "a service user name must be 1 to 64 of [A-Za-z0-9_.-]",
        })
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), MosquittoConfError> {
    let err = |source| MosquittoConfError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(mode);
        let mut file = options.open(path).map_err(err)?;
        // `mode` only applies to new files: fix an existing one too.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut file = options.open(path).map_err(err)?;
        file.write_all(contents).map_err(err)?;
        file.sync_all().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line `mosquitto_passwd -b pw a secret` (Debian mosquitto 2.0.11) wrote.
    const FROM_MOSQUITTO_PASSWD: &str = "$7$101$h2f19iYpXuUV22x6$B16GdE4TjhszwVY2NIoVADGhk/pH3YZY+uHH6v6SmR8WfX2qU38iHDbwigD8HVdScCF315v3wURLVH9iuIROvA==";

    #[test]
    fn hash_matches_mosquitto_passwd() {
        let salt = STANDARD.decode("h2f19iYpXuUV22x6").unwrap();
        assert_eq!(hash_password(b"secret", &salt, 101), FROM_MOSQUITTO_PASSWD);
        assert_ne!(hash_password(b"secreT", &salt, 101), FROM_MOSQUITTO_PASSWD);
    }

    #[test]
    fn verifies_our_hashes_and_mosquitto_passwd_ones() {
        assert!(verify_secret(FROM_MOSQUITTO_PASSWD, b"secret"));
        assert!(!verify_secret(FROM_MOSQUITTO_PASSWD, b"secreT"));
        let ours = hash_secret(b"s3").unwrap();
        assert!(verify_secret(&ours, b"s3"));
        assert!(!verify_secret(&ours, b"s4"));
        for bad in [
            "",
            "$6$abc",
            "$7$0$h2f19iYpXuUV22x6$B16GdE4TjhszwVY2NIoVADGhk/pH3YZY+uHH6v6SmR8WfX2qU38iHDbwigD8HVdScCF315v3wURLVH9iuIROvA==",
            "$7$99999999$h2f19iYpXuUV22x6$B16GdE4TjhszwVY2NIoVADGhk/pH3YZY+uHH6v6SmR8WfX2qU38iHDbwigD8HVdScCF315v3wURLVH9iuIROvA==",
            "$7$101$h2f19iYpXuUV22x6$short",
            "$7$101$$B16GdE4TjhszwVY2NIoVADGhk/pH3YZY+uHH6v6SmR8WfX2qU38iHDbwigD8HVdScCF315v3wURLVH9iuIROvA==",
            "$7$101$h2f19iYpXuUV22x6$B16GdE4TjhszwVY2NIoVADGhk/pH3YZY+uHH6v6SmR8WfX2qU38iHDbwigD8HVdScCF315v3wURLVH9iuIROvA==$x",
        ] {
            assert!(!verify_secret(bad, b"secret"), "{bad}");
        }
    }

    #[test]
    fn renders_from_stored_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_secret(b"d").unwrap();
        let files = render_hashed(dir.path(), 1, &[("dev-1", hash.as_str())], &[]).unwrap();
        let passwd = std::fs::read_to_string(&files.password_file).unwrap();
        assert_eq!(passwd, format!("dev-1:{hash}\n"));
        assert!(matches!(
            render_hashed(dir.path(), 1, &[("dev-1", "plain")], &[]),
            Err(MosquittoConfError::BadHash(_))
        ));
        assert!(matches!(
            render_hashed(
                dir.path(),
                1,
                &[("dev-1", format!("{hash}\nx:y").as_str())],
                &[]
            ),
            Err(MosquittoConfError::BadHash(_))
        ));
    }

    #[test]
    fn password_lines_are_salted() {
        let a = password_line("a", b"s").unwrap();
        let b = password_line("a", b"s").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("a:$7$1000$"));
        let parts: Vec<&str> = a.split('$').collect();
        assert_eq!(STANDARD.decode(parts[3]).unwrap().len(), SALT_LEN);
        assert_eq!(STANDARD.decode(parts[4]).unwrap().len(), KEY_LEN);
    }

    #[test]
    fn renders_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = render(
            dir.path(),
            18830,
            &[("mgmt", "m"), ("dev-1", "d")],
            &["mgmt"],
        )
        .unwrap();
        let conf = std::fs::read_to_string(&files.conf).unwrap();
        assert!(conf.contains("listener 18830 127.0.0.1\n"));
        assert!(conf.contains("allow_anonymous false\n"));
        assert!(conf.contains("use_username_as_clientid true\n"));
        assert!(conf.contains("max_packet_size 1048576\n"), "{conf}");
        assert!(conf.contains("max_queued_messages 1000\n"), "{conf}");
        assert!(conf.contains(&format!(
            "password_file {}\n",
            files.password_file.display()
        )));
        let acl = std::fs::read_to_string(&files.acl_file).unwrap();
        assert!(acl.contains("user mgmt\ntopic readwrite crossline/v1/#\n"));
        assert!(acl.contains("pattern readwrite crossline/v1/d/%u/#\n"));
        let passwd = std::fs::read_to_string(&files.password_file).unwrap();
        assert_eq!(passwd.lines().count(), 2);
        assert!(passwd.lines().any(|l| l.starts_with("dev-1:$7$")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.password_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(
            render(d, 1, &[("Dev A", "x")], &[]),
            Err(MosquittoConfError::BadUser { .. })
        ));
        assert!(matches!(
            render(d, 1, &[("mgmt user", "x")], &["mgmt user"]),
            Err(MosquittoConfError::BadUser { .. })
        ));
        assert!(matches!(
            render(d, 1, &[("a", "x"), ("a", "y")], &[]),
            Err(MosquittoConfError::DuplicateUser(_))
        ));
        assert!(matches!(
            render(d, 1, &[("a", "x")], &["mgmt"]),
            Err(MosquittoConfError::ServiceWithoutSecret(_))
        ));
        assert!(matches!(
            render(d, 1, &[("a", "")], &[]),
            Err(MosquittoConfError::EmptySecret(_))
        ));
        assert!(matches!(
            render(&d.join("missing"), 1, &[("a", "x")], &[]),
            Err(MosquittoConfError::Write { .. })
        ));
    }
}
