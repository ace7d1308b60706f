//! Research: library items from a web page or pasted text. The code blocks
//! are extracted (`weft_codesearch::extract`), and each is kept only if
//! the tenant does not already see the same code (normalised hash) or
//! nearly the same (embedding similarity at or above
//! [`NEAR_DUPLICATE`]). Pages are fetched only from the operator's
//! allow-list (`[library] research_hosts`), over http(s), without
//! redirects, with a size and time cap.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_codesearch::extract;

use super::item::{ItemInput, code_hash};
use super::{Error, Library, Owner, Result, SearchParams};
use crate::ids::TenantId;

/// The similarity from which a block counts as a copy of an item.
pub const NEAR_DUPLICATE: f32 = 0.95;

const MAX_PAGE_BYTES: usize = 2 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResearchRequest {
    /// A page to read (its host must be allow-listed).
    pub url: Option<String>,
    /// Or the text itself (Markdown, HTML or code).
    pub text: Option<String>,
    /// The language of blocks whose language cannot be told.
    pub language: Option<String>,
    /// Tags every new item gets (beside `research`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Store the new blocks as items (default: only report them).
    #[serde(default)]
    pub save: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Found {
    /// `new` (would be added), `added`, `duplicate`, `near_duplicate`, or
    /// `skipped` (no language could be told).
    pub status: &'static str,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub line: usize,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

fn host_port(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

impl Library {
    async fn fetch_page(&self, raw: &str) -> Result<(Option<String>, String)> {
        let url = reqwest::Url::parse(raw).map_err(|e| Error::Invalid(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Invalid("url: only http and https".into()));
        }
        let (Some(host), Some(with_port)) = (url.host_str(), host_port(&url)) else {
            return Err(Error::Invalid("url: no host".into()));
        };
        let allowed = &self.config.research_hosts;
        if !allowed.iter().any(|a| a == host || *a == with_port) {
            return Err(Error::Forbidden(format!(
                "{with_port} is not in the operator's research allow-list ([library] research_hosts)"
            )));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| Error::Invalid(format!("url: {e}")))?;
        let mut resp = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| Error::Upstream(format!("fetching {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Error::Upstream(format!("{url} answered {}", resp.status())));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Error::Upstream(format!("reading {url}: {e}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_PAGE_BYTES {
                return Err(Error::Invalid(format!(
                    "url: the page is over {} MiB",
                    MAX_PAGE_BYTES >> 20
                )));
            }
        }
        Ok((content_type, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Extracts, dedupes and (with `save`) adds the code blocks of `req`.
    pub async fn research(
        &self,
        tenant: &TenantId,
        by: &str,
        req: ResearchRequest,
    ) -> Result<Vec<Found>> {
        let (source, content_type, body) = match (&req.url, &req.text) {
            (Some(url), None) => {
                let (ct, body) = self.fetch_page(url).await?;
                (url.clone(), ct, body)
            }
            (None, Some(text)) if !text.trim().is_empty() && text.len() <= MAX_PAGE_BYTES => {
                ("pasted text".to_owned(), None, text.clone())
            }
            (None, Some(_)) => {
                return Err(Error::Invalid("text: 1 byte to 2 MiB".into()));
            }
            _ => return Err(Error::Invalid("give either url or text".into())),
        };
        if let Some(l) = &req.language {
            super::one_of("language", l, &super::LANGUAGES)?;
        }
        let format = extract::sniff(content_type.as_deref(), &body);
        let blocks = extract::extract(&body, format);
        let state = self.state().await?;
        let mut seen_hashes = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(blocks.len());
        for (n, block) in blocks.into_iter().enumerate() {
            let language = block
                .language
                .clone()
                .or_else(|| req.language.clone())
                .filter(|l| super::LANGUAGES.contains(&l.as_str()));
            let title = block
                .title
                .clone()
                .unwrap_or_else(|| format!("Snippet {} from {source}", n + 1))
                .chars()
                .take(200)
                .collect::<String>();
            let mut found = Found {
                status: "new",
                title: title.clone(),
                language: language.clone(),
                line: block.line,
                code: block.code.clone(),
                item_id: None,
                duplicate_of: None,
                similarity: None,
            };
            let hash = code_hash(&block.code);
            if !seen_hashes.insert(hash.clone()) {
                found.status = "duplicate";
                out.push(found);
                continue;
            }
            if let Some(id) = super::store::find_by_hash(&self.db, tenant, &hash).await? {
                found.status = "duplicate";
                found.duplicate_of = Some(id);
                out.push(found);
                continue;
            }
            let Some(language) = language else {
                found.status = "skipped";
                out.push(found);
                continue;
            };
            if state.embedder.is_some() {
                let probe = SearchParams {
                    q: super::embed::item_text(
                        &title,
                        block.context.as_deref().unwrap_or(""),
                        &[],
                        &block.code,
                    ),
                    semantic_ratio: Some(1.0),
                    limit: Some(1),
                    ..SearchParams::default()
                };
                let nearest = self.search(Some(tenant), &probe).await?.hits;
                if let Some(top) = nearest.first()
                    && let Some(s) = &top.why.semantic
                    && s.similarity >= NEAR_DUPLICATE
                {
                    found.status = "near_duplicate";
                    found.duplicate_of = Some(top.item.id.clone());
                    found.similarity = Some(s.similarity);
                    out.push(found);
                    continue;
                }
            }
            if req.save {
                let mut tags: Vec<String> = req.tags.clone();
                if !tags.iter().any(|t| t == "research") {
                    tags.push("research".into());
                }
                let input = ItemInput {
                    title,
                    description: format!(
                        "{}{}From {source}.",
                        block.context.as_deref().unwrap_or(""),
                        if block.context.is_some() { " " } else { "" }
                    ),
                    language,
                    kind: "snippet".into(),
                    tags,
                    // The page's own terms are not known: SPDX's "no assertion".
                    license: "NOASSERTION".into(),
                    dependencies: Vec::new(),
                    placeholders: Vec::new(),
                    code: block.code,
                };
                let item = self.create(Owner::Tenant(tenant), input, by).await?;
                found.status = "added";
                found.item_id = Some(item.id);
            }
            out.push(found);
        }
        Ok(out)
    }
}
