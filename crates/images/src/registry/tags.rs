//! Listings: tags of a repository, and the registry's catalog.
//!
//! Both are paginated with `?n=<count>` and a `Link: <url>; rel="next"` header. The next
//! page must stay on the registry's origin; pages, entries and page sizes are bounded,
//! and a link back to a page already read ends in an error rather than a loop.

use std::collections::HashSet;

use reqwest::header::LINK;
use reqwest::Method;
use url::Url;

use super::auth::Scope;
use super::client::{Client, Endpoint, Repository};
use super::error::{Operation, RegistryError};
use super::transport::{display_url, read_bounded, status_error, Request};

/// Largest page read.
const MAX_PAGE: u64 = 4 * 1024 * 1024;
/// Most pages followed.
const MAX_PAGES: usize = 10_000;
/// Most entries collected.
const MAX_ENTRIES: usize = 1_000_000;

/// The `rel="next"` target of a `Link` header value, if any.
fn next_link(value: &str) -> Option<&str> {
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let after = rest.strip_prefix('<')?;
        let (target, params) = after.split_once('>')?;
        // Parameters run to the next link (a ',' outside quotes) or the end.
        let mut end = params.len();
        let mut quoted = false;
        for (i, c) in params.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let (these, next) = params.split_at(end);
        let is_next = these.split(';').any(|p| {
            let p = p.trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.trim());
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

impl Client {
    /// Follows pages from `url`, collecting the string array `field` of each.
    async fn list_pages(
        &self,
        endpoint: &Endpoint,
        op: Operation,
        mut url: Url,
        scopes: Vec<Scope>,
        field: &'static str,
    ) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            if !seen.insert(url.clone()) {
                return Err(RegistryError::RedirectLoop {
                    op,
                    url: display_url(&url),
                });
            }
            let shown = display_url(&url);
            let req = Request::new(self, op, Method::GET, url.clone(), scopes.clone());
            let resp = self.execute(endpoint, req).await?;
            if !resp.status().is_success() {
                return Err(status_error(op, &shown, resp).await);
            }
            let link = resp.headers().get(LINK).cloned();
            let body = read_bounded(op, &shown, resp, MAX_PAGE).await?;
            let page: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
                .map_err(|source| RegistryError::InvalidJson {
                    op,
                    url: shown.clone(),
                    source,
                })?;
            if let Some(values) = page.get(field).and_then(|v| v.as_array()) {
                for v in values {
                    // Names longer than any valid tag or repository are dropped.
                    if let Some(s) = v.as_str().filter(|s| s.len() <= 512) {
                        if out.len() == MAX_ENTRIES {
                            return Err(RegistryError::ListingTooLong {
                                op,
                                url: shown,
                                limit: MAX_ENTRIES,
                            });
                        }
                        out.push(s.to_owned());
                    }
                }
            }
            let Some(link) = link else {
                return Ok(out);
            };
            let Some(target) = link.to_str().ok().and_then(next_link) else {
                return Ok(out);
            };
            let target = reqwest::header::HeaderValue::from_str(target).map_err(|_| {
                RegistryError::InvalidHeader {
                    op,
                    url: shown.clone(),
                    header: "Link",
                    value: super::error::sanitize(target, 256),
                }
            })?;
            url = endpoint.same_origin_location(op, &url, "Link", &target)?;
        }
        Err(RegistryError::ListingTooLong {
            op,
            url: display_url(&url),
            limit: MAX_PAGES,
        })
    }

    /// The tags of a repository, all pages (`page_size` entries per request if given).
    pub async fn list_tags(
        &self,
        repo: &Repository,
        page_size: Option<u32>,
    ) -> Result<Vec<String>, RegistryError> {
        let endpoint = self.endpoint(repo.host()).await?;
        let mut url = endpoint.url(&format!("{}/tags/list", repo.name()))?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        self.list_pages(
            &endpoint,
            Operation::ListTags,
            url,
            vec![Scope::pull(repo.name())],
            "tags",
        )
        .await
    }

    /// The repositories of a registry (`GET /v2/_catalog`), all pages. Many registries
    /// (Docker Hub among them) refuse it.
    pub async fn catalog(
        &self,
        host: &str,
        page_size: Option<u32>,
    ) -> Result<Vec<String>, RegistryError> {
        let endpoint = self.endpoint(host).await?;
        let mut url = endpoint.url("_catalog")?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        self.list_pages(
            &endpoint,
            Operation::Catalog,
            url,
            vec![Scope::catalog()],
            "repositories",
        )
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev"; title="a,b", <https://x/n>; rel=next"#),
            Some("https://x/n")
        );
        assert_eq!(next_link(r#"<https://x/p>; rel="prev first""#), None);
        assert_eq!(
            next_link(r#"<https://x/p>; rel="last next""#),
            Some("https://x/p")
        );
        for bad in [
            "",
            "garbage",
            "<unterminated; rel=next",
            ">; rel=next",
            "<a>; rel",
        ] {
            assert_eq!(next_link(bad), None, "{bad}");
        }
    }
}
