//! The access rules the broker enforces, derived from the topic contract in
//! `crossline-proto` (the contract's names live there only).
//!
//! Every device-scoped topic is `crossline/v1/d/{device_id}/{suffix}`.

pub use crossline_proto::topic::{
    DEVICE_PREFIX, ENROLL_PREFIX, ENROLL_USER, ROOT, is_valid_enrollment_id,
};

/// Filter covering the whole contract: what a service user (mgmt) may use.
pub const ROOT_FILTER: &str = "crossline/v1/#";

/// True when `id` is a valid device id (`[a-z0-9_-]{1,64}`, the grammar of
/// [`crossline_core::NodeId`]). Such an id holds no `/`, `+`, `#` or `$`, so
/// it always fills exactly one topic level.
pub fn is_valid_device_id(id: &str) -> bool {
    crossline_core::NodeId::new(id).is_ok()
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

/// May device `device_id` have a retained message kept on `topic`? Only on
/// its own topics of a kind the protocol retains for devices (presence, see
/// [`crossline_proto::Kind::retained_by_device`]); never on `config`, which
/// mgmt retains for it.
pub fn device_may_retain(device_id: &str, topic: &str) -> bool {
    device_may_use(device_id, topic)
        && crossline_proto::DeviceTopic::parse(topic)
            .is_ok_and(|t| t.device.as_str() == device_id && t.kind.retained_by_device())
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
    fn devices_retain_only_their_presence() {
        assert!(device_may_retain("a", "crossline/v1/d/a/presence"));
        for bad in [
            "crossline/v1/d/a/config",
            "crossline/v1/d/a/events",
            "crossline/v1/d/a/junk-1",
            "crossline/v1/d/a/presence/x",
            "crossline/v1/d/b/presence",
        ] {
            assert!(!device_may_retain("a", bad), "{bad}");
        }
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
    fn root_filter_is_the_contract_root() {
        assert_eq!(ROOT_FILTER, format!("{ROOT}/#"));
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
}
