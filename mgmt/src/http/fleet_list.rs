//! The fleet list's query (filters, sort, page), as the fleet console's URL
//! and the fleet API's `GET /api/v1/fleet/devices` both take it.

use crate::services::fleet::db;
use serde::Deserialize;

/// Rows per page of the fleet list.
pub const PAGE_SIZE: usize = 50;

/// The fleet list's filters, sort order and page, as in its URL.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub operator: String,
    /// `id`, `name`, `status`, `last_seen` or `alerts`.
    #[serde(default)]
    pub sort: String,
    /// `desc` for descending.
    #[serde(default)]
    pub dir: String,
    /// 1-based.
    #[serde(default)]
    pub page: Option<usize>,
    /// The JSON API pages with `limit` and `offset` (the console with `page`).
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
}

/// Devices per page of `GET /api/v1/fleet/devices` unless `limit` says, and
/// the most it gives at once.
pub const API_PAGE_SIZE: usize = 100;
pub const API_MAX_PAGE_SIZE: usize = 1000;

fn nonempty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl ListQuery {
    pub(crate) fn sort(&self) -> db::SortBy {
        db::SortBy::parse(&self.sort)
    }

    pub(crate) fn desc(&self) -> bool {
        self.dir == "desc"
    }

    pub(crate) fn page(&self) -> usize {
        self.page.unwrap_or(1).clamp(1, 1_000_000)
    }

    /// The filters as a query string, without sort and page.
    pub(crate) fn filters_qs(&self) -> String {
        [
            ("q", &self.q),
            ("site", &self.site),
            ("tag", &self.tag),
            ("status", &self.status),
            ("operator", &self.operator),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            nonempty(v).map(|v| format!("{k}={}", crate::http::html::encode_component(&v)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }

    /// The filters and the sort order as a query string (links add `page`).
    pub(crate) fn qs(&self) -> String {
        let mut parts = vec![self.filters_qs()];
        if self.sort() != db::SortBy::Id {
            parts.push(format!("sort={}", self.sort().code()));
        }
        if self.desc() {
            parts.push("dir=desc".into());
        }
        parts.retain(|p| !p.is_empty());
        parts.join("&")
    }

    /// The JSON API's page: the same filters and sort, cut by `limit` and
    /// `offset`.
    pub(crate) fn api_filter(&self) -> db::ListFilter {
        db::ListFilter {
            offset: self.offset.unwrap_or(0),
            limit: self.api_limit(),
            ..self.filter()
        }
    }

    pub(super) fn api_limit(&self) -> usize {
        self.limit
            .unwrap_or(API_PAGE_SIZE)
            .clamp(1, API_MAX_PAGE_SIZE)
    }

    /// The JSON API's link to the page after `offset` (filters and sort kept).
    pub(super) fn api_next(&self, next_offset: usize) -> String {
        let mut qs = self.qs();
        if !qs.is_empty() {
            qs.push('&');
        }
        format!(
            "/api/v1/fleet/devices?{qs}limit={}&offset={next_offset}",
            self.api_limit()
        )
    }

    pub(crate) fn filter(&self) -> db::ListFilter {
        db::ListFilter {
            q: nonempty(&self.q),
            site: nonempty(&self.site),
            tag: nonempty(&self.tag),
            status: nonempty(&self.status),
            operator: nonempty(&self.operator),
            sort: self.sort(),
            desc: self.desc(),
            offset: (self.page() - 1) * PAGE_SIZE,
            limit: PAGE_SIZE,
        }
    }
}
