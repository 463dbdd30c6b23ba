//! Broker addresses as both sides write them: the appliance's `mqtt.url`
//! and mgmt's external broker (`mqtt.url`, `--mqtt-url`) use one syntax.

/// A broker address: host, port, and whether it speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    /// `mqtts://` (or `ssl://`).
    pub tls: bool,
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// Why a broker URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("MQTT url {0:?}: use mqtts://host:port (TLS) or mqtt://host:port")]
    Scheme(String),
    #[error("MQTT url {0:?}: unclosed [ in the host")]
    Bracket(String),
    #[error("bad port in MQTT url {0:?} (a number from 0 to 65535)")]
    Port(String),
    #[error("no host in MQTT url {0:?} (expected mqtts://host:port)")]
    NoHost(String),
}

/// Parses `mqtts://host:port` (TLS, port defaults to 8883), `mqtt://host:port`,
/// `tcp://host:port` or `host:port` (plain, port defaults to 1883).
pub fn parse_mqtt_url(url: &str) -> Result<BrokerUrl, UrlError> {
    let (tls, rest) = if let Some(r) = url
        .strip_prefix("mqtts://")
        .or_else(|| url.strip_prefix("ssl://"))
    {
        (true, r)
    } else if let Some(r) = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
    {
        (false, r)
    } else if url.contains("://") {
        return Err(UrlError::Scheme(url.into()));
    } else {
        (false, url)
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if tls { 8883 } else { 1883 };
    let port = |p: &str| p.parse::<u16>().map_err(|_| UrlError::Port(url.into()));
    // [::1]:8883 and bare IPv6 literals in brackets.
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| UrlError::Bracket(url.into()))?;
        match after.strip_prefix(':') {
            Some(p) => (h, port(p)?),
            None => (h, default_port),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, port(p)?),
            None => (rest, default_port),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost(url.into()));
    }
    Ok(BrokerUrl {
        host: host.to_string(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let hp = |u: &str| {
            let b = parse_mqtt_url(u).unwrap();
            (b.host, b.port, b.tls)
        };
        assert_eq!(hp("mqtt://h:1"), ("h".into(), 1, false));
        assert_eq!(hp("tcp://h:2/"), ("h".into(), 2, false));
        assert_eq!(hp("h"), ("h".into(), 1883, false));
        assert_eq!(hp("mqtts://h"), ("h".into(), 8883, true));
        assert_eq!(hp("ssl://h:9"), ("h".into(), 9, true));
        assert_eq!(hp("mqtts://[::1]:9"), ("::1".into(), 9, true));
        assert_eq!(hp("mqtts://[::1]"), ("::1".into(), 8883, true));
        assert_eq!(
            parse_mqtt_url("mqtts://h:1").unwrap().to_string(),
            "mqtts://h:1"
        );
        let e = |u: &str| parse_mqtt_url(u).unwrap_err().to_string();
        assert!(e("https://h:1").contains("use mqtts://host:port"));
        assert!(e("mqtt://h:x").contains("bad port in MQTT url \"mqtt://h:x\""));
        assert!(e("mqtt://h:70000").contains("bad port"));
        assert!(e("mqtt://:1").contains("no host"));
        assert!(e("mqtts://[::1:9").contains("unclosed ["));
    }
}
