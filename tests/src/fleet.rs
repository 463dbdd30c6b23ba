//! Fleet fixtures shared by the fleet tests and the fleet bench.

use std::path::Path;

/// Registers `n` devices `{prefix}-{i:05}` in mgmt's database at `data_dir`
/// before mgmt starts, all with one fresh secret (returned), each in `site`
/// when given and named "`{prefix}` shop {i}".
pub async fn seed_devices(
    data_dir: &Path,
    prefix: &str,
    n: usize,
    site: Option<&str>,
) -> anyhow::Result<String> {
    let secret = crossline_mgmt::services::fleet::credentials::new_secret();
    let hash = crossline_mgmt::services::fleet::credentials::hash_secret(&secret)?;
    let mut cfg: crossline_mgmt::config::Config = toml::from_str("")?;
    cfg.data_dir = data_dir.to_path_buf();
    let store = crossline_mgmt::server::open_store(&cfg)?;
    let (prefix, site) = (prefix.to_string(), site.map(str::to_string));
    store
        .write(move |tx| {
            let mut dev = tx.prepare(
                "INSERT INTO device (id, secret_hash, revoked, online, created_ms) VALUES (?1, ?2, 0, 0, 0)",
            )?;
            let mut meta =
                tx.prepare("INSERT INTO fleet_device (id, name, site) VALUES (?1, ?2, ?3)")?;
            for i in 0..n {
                let id = format!("{prefix}-{i:05}");
                dev.execute(rusqlite::params![id, hash])?;
                meta.execute(rusqlite::params![id, format!("{prefix} shop {i}"), site])?;
            }
            Ok(())
        })
        .await?;
    store.close()?;
    Ok(secret)
}
