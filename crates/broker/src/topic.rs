//! The topic contract the broker enforces, and the access rules derived from it.
//!
//! Every device-scoped topic is `crossline/v1/d/{device_id}/{suffix}`. These
//! constants mirror the contract the lead writes in `crossline-proto`; once that
//! crate exports them, this module should re-export them instead.

/// Root of every Crossline topic (version 1 of the contract).
pub const ROOT: &str = "crossline/v1";
/// Filter covering the whole contract: what a service user (mgmt) may use.
pub const ROOT_FILTER: &str = "crossline/v1/#";
/// Prefix of device-scoped topics; the device id is the next level.
pub const DEVICE_PREFIX: &str = "crossline/v1/d";

/// Device -> mgmt: conversation events (QoS 1).
pub const EVENTS: &str = "events";
/// mgmt -> device: acks of the highest contiguous event seq.
pub const ACK: &str = "ack";
/// mgmt -> device: commands.
pub const CMD: &str = "cmd";
/// Device -> mgmt: telemetry.
pub const TELEMETRY: &str = "telemetry";
/// Device presence (retained, last will).
pub const PRESENCE: &str = "presence";
/// Desired configuration (retained).
pub const CONFIG: &str = "config";
/// Device -> mgmt: hello after connect.
pub const HELLO: &str = "hello";

/// Prefix of enrollment topics; the enrollment id (the client id of a
/// bootstrap-token session) is the next level.
pub const ENROLL_PREFIX: &str = "crossline/v1/enroll";

/// The username of enrolling clients (their password is the bootstrap token).
pub const ENROLL_USER: &str = "enroll";

/// True for an enrollment id: 32 lowercase hex digits.
pub fn is_valid_enrollment_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// May an enrolling client (bootstrap token, client id `enrollment_id`) use
/// `topic_or_filter`? Only `crossline/v1/enroll/{enrollment_id}/` and a
/// further level, with the first four levels literal (no wildcard reaches
/// another enrollment or any device topic).
pub fn enrollment_may_use(enrollment_id: &str, topic_or_filter: &str) -> bool {
    if !is_valid_enrollment_id(enrollment_id) {
        return false;
    }
    topic_or_filter
        .strip_prefix(ENROLL_PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(enrollment_id))
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|tail| !tail.is_empty())
}

/// Longest device id the contract allows.
pub const DEVICE_ID_MAX_LEN: usize = 64;

/// True when `id` matches `[a-z0-9_-]{1,64}`, the device id grammar. Such an id
/// holds no `/`, `+`, `#` or `$`, so it always fills exactly one topic level.
pub fn is_valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= DEVICE_ID_MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `crossline/v1/d/{device_id}/{suffix}`.
pub fn device_topic(device_id: &str, suffix: &str) -> String {
    format!("{DEVICE_PREFIX}/{device_id}/{suffix}")
}

/// `crossline/v1/d/{device_id}/#`: everything a device may use.
pub fn device_filter(device_id: &str) -> String {
    format!("{DEVICE_PREFIX}/{device_id}/#")
}

/// May device `device_id` publish to `topic` or subscribe to `filter`?
///
/// Only names under `crossline/v1/d/{device_id}/` with at least one more level.
/// The first four levels must be literal (the prefix is compared as text), so a
/// wildcard can never reach another device's topics: `crossline/v1/d/+/events`
/// and `#` are refused, `crossline/v1/d/{device_id}/+` is allowed.
pub fn device_may_use(device_id: &str, topic_or_filter: &str) -> bool {
    if !is_valid_device_id(device_id) {
        return false;
    }
    let Some(rest) = topic_or_filter.strip_prefix(DEVICE_PREFIX) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('/') else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(device_id) else {
        return false;
    };
    match rest.strip_prefix('/') {
        Some(tail) => !tail.is_empty(),
        None => false,
    }
}

/// May a service user (mgmt) publish to `topic` or subscribe to `filter`?
///
/// Anything under `crossline/v1/` (including `crossline/v1/#`); nothing else
/// (no `#`, no `$SYS/...`), the same as the Mosquitto ACL we generate.
pub fn service_may_use(topic_or_filter: &str) -> bool {
    match topic_or_filter.strip_prefix(ROOT) {
        Some(rest) => rest.strip_prefix('/').is_some_and(|tail| !tail.is_empty()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        assert!(is_valid_device_id("a"));
        assert!(is_valid_device_id("branch-01_x"));
        assert!(is_valid_device_id(&"a".repeat(64)));
        assert!(!is_valid_device_id(&"a".repeat(65)));
        for bad in ["", "A", "a/b", "a+", "#", "$sys", "a b", "é", "mgmt.x"] {
            assert!(!is_valid_device_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn device_scope() {
        for ok in [
            "crossline/v1/d/a/events",
            "crossline/v1/d/a/#",
            "crossline/v1/d/a/+",
            "crossline/v1/d/a/cmd/x",
        ] {
            assert!(device_may_use("a", ok), "{ok}");
        }
        for bad in [
            "crossline/v1/d/b/events",
            "crossline/v1/d/+/events",
            "crossline/v1/d/#",
            "crossline/v1/d/a",
            "crossline/v1/d/a/",
            "crossline/v1/d/ab/events",
            "crossline/v1/d/a+/events",
            "crossline/v1/#",
            "#",
            "+/v1/d/a/events",
            "$share/g/crossline/v1/d/a/events",
            "$SYS/#",
        ] {
            assert!(!device_may_use("a", bad), "{bad}");
        }
        assert!(!device_may_use("+", "crossline/v1/d/+/events"));
        assert!(!device_may_use("#", "crossline/v1/d/#/x"));
    }

    #[test]
    fn enrollment_scope() {
        let e = "0123456789abcdef0123456789abcdef";
        assert!(enrollment_may_use(
            e,
            &format!("crossline/v1/enroll/{e}/req")
        ));
        assert!(enrollment_may_use(e, &format!("crossline/v1/enroll/{e}/#")));
        for bad in [
            "crossline/v1/enroll/+/resp".to_string(),
            "crossline/v1/enroll/#".to_string(),
            format!("crossline/v1/enroll/{e}"),
            format!("crossline/v1/d/{e}/events"),
            "crossline/v1/d/+/events".to_string(),
            "#".to_string(),
        ] {
            assert!(!enrollment_may_use(e, &bad), "{bad}");
        }
        assert!(!enrollment_may_use(
            "short",
            "crossline/v1/enroll/short/req"
        ));
    }

    #[test]
    fn service_scope() {
        assert!(service_may_use("crossline/v1/#"));
        assert!(service_may_use("crossline/v1/d/+/events"));
        assert!(!service_may_use("crossline/v1"));
        assert!(!service_may_use("crossline/v10/x"));
        assert!(!service_may_use("#"));
        assert!(!service_may_use("$SYS/brokers"));
    }

    #[test]
    fn builders() {
        assert_eq!(device_topic("a", EVENTS), "crossline/v1/d/a/events");
        assert_eq!(device_filter("a"), "crossline/v1/d/a/#");
    }
}
