//! The fleet JSON API's device list at a size where it must page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, http_with_head};
use crossline_core::NodeId;
use crossline_store::DeviceRegistry;
use serde_json::Value;

fn ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_list_pages_filters_and_links_the_next_page() {
    let mgmt = Mgmt::start().await;
    let store = &mgmt.running().store;
    for i in 0..130 {
        let id = NodeId::new(format!("shop-{i:03}")).unwrap();
        store.put_device(&id, "$7$x").await.unwrap();
    }
    for i in [5, 17, 129] {
        let (s, v) = mgmt
            .post(
                &format!("/api/v1/fleet/devices/shop-{i:03}/meta"),
                r#"{"site":"kyiv"}"#,
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let get = |path: String| {
        let (addr, token) = (mgmt.http.clone(), mgmt.token.clone());
        async move { http_with_head(&addr, "GET", &path, Some(&token), None).await }
    };

    // Without parameters: the first 100, the total, a link to the rest.
    let (s, head, body) = get("/api/v1/fleet/devices".into()).await;
    assert_eq!(s, 200);
    let first = ids(&body);
    assert_eq!(first.len(), 100);
    assert_eq!(first[0], "shop-000");
    assert_eq!(header(&head, "x-total-count"), Some("130"));
    let link = header(&head, "link").expect("a link to the next page");
    assert_eq!(
        link,
        "</api/v1/fleet/devices?limit=100&offset=100>; rel=\"next\""
    );

    // Following it: the last 30, no further link.
    let (s, head, body) = get("/api/v1/fleet/devices?limit=100&offset=100".into()).await;
    assert_eq!(s, 200);
    let rest = ids(&body);
    assert_eq!(rest.len(), 30);
    assert_eq!(rest[0], "shop-100");
    assert!(header(&head, "link").is_none(), "{head}");
    let mut all: Vec<String> = first.into_iter().chain(rest).collect();
    all.dedup();
    assert_eq!(all.len(), 130, "every device exactly once across the pages");

    // Filters and sort apply before the cut and are kept in the link.
    let (s, head, body) =
        get("/api/v1/fleet/devices?site=kyiv&sort=id&dir=desc&limit=2".into()).await;
    assert_eq!(s, 200);
    assert_eq!(ids(&body), ["shop-129", "shop-017"]);
    assert_eq!(header(&head, "x-total-count"), Some("3"));
    assert_eq!(
        header(&head, "link"),
        Some("</api/v1/fleet/devices?site=kyiv&dir=desc&limit=2&offset=2>; rel=\"next\"")
    );
    let (_, _, body) = get("/api/v1/fleet/devices?q=shop-01&limit=1000".into()).await;
    assert_eq!(ids(&body).len(), 10);

    // A limit beyond the maximum is cut to it; nonsense is refused clearly.
    let (s, _, body) = get("/api/v1/fleet/devices?limit=100000".into()).await;
    assert_eq!(s, 200);
    assert_eq!(ids(&body).len(), 130);
    let (s, _, body) = get("/api/v1/fleet/devices?limit=ten".into()).await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("limit"));
    mgmt.stop().await;
}
