//! meta-crossline (yocto/): the configuration the image installs as
//! /etc/crossline/appliance.toml, loaded with the appliance's own parser and
//! validation (the recipe only fills in mgmt's URL), and agreeing with the
//! systemd unit and tmpfiles entry that run the daemon. The rest of the
//! layer's checks are scripts/yocto-check's (scripts/test runs both).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_appliance::config::Config;
use std::path::Path;

const IMAGE_CONF: &str = include_str!(
    "../../yocto/meta-crossline/recipes-crossline/crossline-appliance-conf/files/appliance.toml"
);
const UNIT: &str = include_str!(
    "../../yocto/meta-crossline/recipes-crossline/crossline-appliance/files/crossline-appliance.service"
);
const TMPFILES: &str = include_str!(
    "../../yocto/meta-crossline/recipes-crossline/crossline-appliance/files/crossline-appliance.tmpfiles"
);

/// The image's file as crossline-appliance-conf writes it, with the token
/// file moved into `dir` (validation reads it).
fn installed(dir: &Path) -> String {
    let token = dir.join("bootstrap.token");
    std::fs::write(&token, "bootstrap-token-from-mgmt\n").unwrap();
    IMAGE_CONF
        .replace("@CROSSLINE_MGMT_URL@", "mqtts://mgmt.example.org:8883")
        .replace("/etc/crossline/bootstrap.token", token.to_str().unwrap())
}

fn load(dir: &Path, text: &str) -> Config {
    let path = dir.join("appliance.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("the image's appliance.toml: {e:#}"))
}

/// The value of `key=` in the unit (the first one).
fn unit_value(key: &str) -> &'static str {
    UNIT.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

#[test]
fn the_image_configuration_loads_and_enrolls_with_the_baked_in_token_and_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = load(dir.path(), &installed(dir.path()));
    assert_eq!(cfg.data_dir, Path::new("/data/crossline"));
    assert!(cfg.node_id.is_none(), "the image enrolls: no node_id");
    assert!(cfg.mqtt.secret.is_none() && cfg.mqtt.secret_file.is_none());
    assert_eq!(
        cfg.mqtt.ca_file.as_deref(),
        Some(Path::new("/etc/crossline/mgmt-ca.pem"))
    );
    assert!(cfg.mqtt.broker().unwrap().tls);
    let token = cfg.enroll.as_ref().unwrap().load_token().unwrap();
    assert_eq!(token, "bootstrap-token-from-mgmt");
    assert!(cfg.modems.is_empty() && cfg.fxo.is_empty());
    assert!(cfg.offline.is_some());
    assert!(
        cfg.commands.reboot_command.is_none(),
        "the unit cannot reboot the box: mgmt's reboot restarts the daemon"
    );
}

#[test]
fn the_commented_modem_example_loads_with_the_udev_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let mut in_example = false;
    for line in installed(dir.path()).lines() {
        in_example |= line == "# [[modems]]";
        in_example &= !line.is_empty();
        text.push_str(if in_example {
            line.strip_prefix("# ").unwrap_or(line)
        } else {
            line
        });
        text.push('\n');
    }
    let cfg = load(dir.path(), &text);
    assert_eq!(cfg.modems.len(), 1, "{text}");
    assert!(
        cfg.modems[0].port.starts_with("/dev/crossline/usb-"),
        "{}",
        cfg.modems[0].port
    );
}

#[test]
fn the_unit_and_tmpfiles_agree_with_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = load(dir.path(), &installed(dir.path()));
    let data_dir = cfg.data_dir.to_str().unwrap();
    assert_eq!(unit_value("ReadWritePaths"), data_dir);
    assert_eq!(unit_value("RequiresMountsFor"), data_dir);
    assert!(
        TMPFILES
            .lines()
            .any(|l| l.starts_with(&format!("d {data_dir} ")) && l.contains("crossline")),
        "tmpfiles.d creates {data_dir}"
    );
    assert_eq!(
        unit_value("ExecStart"),
        "/usr/bin/crossline-appliance run --config /etc/crossline/appliance.toml"
    );
    assert_eq!(unit_value("Restart"), "always");
}
