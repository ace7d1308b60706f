//! The code library over REST: hybrid search, items with their versions
//! and diffs, ratings and uses, and the library hit rate.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Json};
use crate::app::App;
use crate::ids::{TenantId, now_ms};
use crate::library::{self, GenerateRequest, ItemInput, Owner, SearchParams};
use crate::llm::Caller;
use crate::tenancy::Role;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/library/search", get(search))
        .route("/v1/library/items", post(create))
        .route(
            "/v1/library/items/{id}",
            get(one).put(update).delete(remove),
        )
        .route("/v1/library/items/{id}/versions", get(versions))
        .route("/v1/library/items/{id}/versions/{version}", get(version))
        .route("/v1/library/items/{id}/diff", get(diff))
        .route("/v1/library/items/{id}/rating", post(rate))
        .route("/v1/library/items/{id}/uses", post(record_use))
        .route("/v1/library/hit-rate", get(hit_rate))
        .route("/v1/library/generate", post(generate))
        .route("/v1/library/constraints", get(constraints))
        .route("/v1/library/constraints/{name}", get(constraint))
        .route("/v1/library/check", post(check))
        .route("/v1/library/research", post(research))
        .route("/v1/library/templates", get(templates))
        .route("/v1/library/templates/{id}", get(template))
        .route(
            "/v1/library/templates/{id}/generate",
            post(generate_template),
        )
}

impl From<library::Error> for ApiError {
    fn from(err: library::Error) -> Self {
        use library::Error as E;
        match err {
            E::Invalid(m) => Self::invalid(m),
            E::NotFound => Self::not_found("not_found", "no such library item"),
            E::Duplicate(id) => Self::new(
                StatusCode::CONFLICT,
                "duplicate_item",
                format!("the same code is already item {id}"),
            )
            .with_details(json!({ "item_id": id })),
            E::Forbidden(m) => Self::forbidden(m),
            E::Db(e) => Self::internal(e),
            E::Index(e) => Self::internal(e),
            E::Llm(e) => e.into(),
            E::Upstream(m) => Self::new(StatusCode::BAD_GATEWAY, "upstream_failed", m),
        }
    }
}

/// The caller's tenant, or `None` for the platform operator (who works on
/// the global items). Every tenant member may read and add.
fn viewer(auth: &Auth) -> ApiResult<Option<TenantId>> {
    match &auth.0.tenant {
        Some(t) => {
            auth.require(t, Role::User)?;
            Ok(Some(t.clone()))
        }
        None => {
            auth.require_superadmin()?;
            Ok(None)
        }
    }
}

/// Whose items the caller writes: its tenant's, or the global ones for
/// the operator. Replacing and deleting need a tenant admin.
fn writer(auth: &Auth, role: Role) -> ApiResult<Option<TenantId>> {
    let tenant = viewer(auth)?;
    if let Some(t) = &tenant {
        auth.require(t, role)?;
    }
    Ok(tenant)
}

fn owner(tenant: &Option<TenantId>) -> Owner<'_> {
    tenant.as_ref().map_or(Owner::Global, Owner::Tenant)
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    language: Option<String>,
    kind: Option<String>,
    /// Comma-separated; every result has all of them.
    tags: Option<String>,
    min_quality: Option<f64>,
    semantic_ratio: Option<f32>,
    limit: Option<usize>,
    explain: Option<bool>,
    /// Include each item's code (default false: titles and metadata).
    code: Option<bool>,
}

#[utoipa::path(get, path = "/v1/library/search", tag = "library", security(("bearer" = [])),
    params(("q" = String, Query), ("language" = Option<String>, Query), ("kind" = Option<String>, Query),
        ("tags" = Option<String>, Query, description = "comma-separated, all required"),
        ("min_quality" = Option<f64>, Query), ("semantic_ratio" = Option<f32>, Query, description = "0 keywords only … 1 meaning only"),
        ("limit" = Option<usize>, Query), ("explain" = Option<bool>, Query), ("code" = Option<bool>, Query)),
    responses((status = 200, description = "Items best first, each with why it matched"), (status = 400, body = ErrorBody)))]
async fn search(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = viewer(&auth)?;
    let params = SearchParams {
        q: q.q.unwrap_or_default(),
        language: q.language,
        kind: q.kind,
        tags: q
            .tags
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        min_quality: q.min_quality,
        semantic_ratio: q.semantic_ratio,
        limit: q.limit,
        explain: q.explain.unwrap_or(false),
    };
    let outcome = app.library.search(tenant.as_ref(), &params).await?;
    let mut body = serde_json::to_value(&outcome).map_err(ApiError::internal)?;
    if !q.code.unwrap_or(false)
        && let Some(hits) = body["hits"].as_array_mut()
    {
        for hit in hits {
            if let Some(item) = hit["item"].as_object_mut() {
                item.remove("code");
            }
        }
    }
    Ok(axum::Json(body))
}

#[utoipa::path(post, path = "/v1/library/items", tag = "library", security(("bearer" = [])), request_body = ItemInput,
    responses((status = 201, description = "The item, version 1"), (status = 400, body = ErrorBody), (status = 409, description = "The same code is already an item", body = ErrorBody)))]
async fn create(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(input): Json<ItemInput>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let tenant = writer(&auth, Role::User)?;
    let item = app
        .library
        .create(owner(&tenant), input, &auth.0.id)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(json!(item))))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<i64>,
}

#[utoipa::path(get, path = "/v1/library/items/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path), ("version" = Option<i64>, Query)),
    responses((status = 200, description = "The item (its current version unless one is named)"), (status = 404, body = ErrorBody)))]
async fn one(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = viewer(&auth)?;
    Ok(axum::Json(json!(
        app.library.get(tenant.as_ref(), &id, q.version).await?
    )))
}

#[utoipa::path(put, path = "/v1/library/items/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path)), request_body = ItemInput,
    responses((status = 200, description = "The item at its new version"), (status = 404, body = ErrorBody)))]
async fn update(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    Json(input): Json<ItemInput>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = writer(&auth, Role::Admin)?;
    Ok(axum::Json(json!(
        app.library
            .update(owner(&tenant), &id, input, &auth.0.id)
            .await?
    )))
}

#[utoipa::path(delete, path = "/v1/library/items/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204, description = "Gone from search; its versions are kept"), (status = 404, body = ErrorBody)))]
async fn remove(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let tenant = writer(&auth, Role::Admin)?;
    app.library.delete(owner(&tenant), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/library/items/{id}/versions", tag = "library", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "Every version, oldest first"), (status = 404, body = ErrorBody)))]
async fn versions(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = viewer(&auth)?;
    let versions: Vec<Value> = app
        .library
        .versions(tenant.as_ref(), &id)
        .await?
        .into_iter()
        .map(|(version, title, created_at, created_by)| {
            json!({"version": version, "title": title, "created_at": created_at, "created_by": created_by})
        })
        .collect();
    Ok(axum::Json(json!({ "id": id, "versions": versions })))
}

#[utoipa::path(get, path = "/v1/library/items/{id}/versions/{version}", tag = "library", security(("bearer" = [])), params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 200, description = "That version"), (status = 404, body = ErrorBody)))]
async fn version(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = viewer(&auth)?;
    Ok(axum::Json(json!(
        app.library.get(tenant.as_ref(), &id, Some(version)).await?
    )))
}

#[derive(Deserialize)]
struct DiffQuery {
    from: i64,
    /// Default: the current version.
    to: Option<i64>,
}

#[utoipa::path(get, path = "/v1/library/items/{id}/diff", tag = "library", security(("bearer" = [])), params(("id" = String, Path), ("from" = i64, Query), ("to" = Option<i64>, Query)),
    responses((status = 200, description = "A unified diff of the code and the metadata fields that changed"), (status = 404, body = ErrorBody)))]
async fn diff(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = viewer(&auth)?;
    let old = app.library.get(tenant.as_ref(), &id, Some(q.from)).await?;
    let new = app.library.get(tenant.as_ref(), &id, q.to).await?;
    let text = similar::TextDiff::from_lines(&old.input.code, &new.input.code);
    let (mut added, mut removed) = (0, 0);
    for change in text.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    let unified = text
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{id}@{}", old.version),
            &format!("{id}@{}", new.version),
        )
        .to_string();
    let a = serde_json::to_value(&old.input).map_err(ApiError::internal)?;
    let b = serde_json::to_value(&new.input).map_err(ApiError::internal)?;
    let fields: Vec<&str> = [
        "title",
        "description",
        "language",
        "kind",
        "tags",
        "license",
        "dependencies",
        "placeholders",
    ]
    .into_iter()
    .filter(|f| a[f] != b[f])
    .collect();
    Ok(axum::Json(json!({
        "id": id,
        "from": old.version,
        "to": new.version,
        "lines_added": added,
        "lines_removed": removed,
        "fields_changed": fields,
        "unified": unified,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RateBody {
    /// 1-5.
    stars: i64,
}

#[utoipa::path(post, path = "/v1/library/items/{id}/rating", tag = "library", security(("bearer" = [])), params(("id" = String, Path)), request_body = RateBody,
    responses((status = 200, description = "The item with its new rating and quality"), (status = 400, body = ErrorBody)))]
async fn rate(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<RateBody>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::User)?;
    Ok(axum::Json(json!(
        app.library
            .rate(&tenant, &auth.0.id, &id, body.stars)
            .await?
    )))
}

#[utoipa::path(post, path = "/v1/library/items/{id}/uses", tag = "library", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The item with its use counted"), (status = 404, body = ErrorBody)))]
async fn record_use(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::User)?;
    Ok(axum::Json(json!(
        app.library.record_use(&tenant, &id).await?
    )))
}

#[derive(Deserialize)]
struct RateQuery {
    /// Days back (default 30).
    days: Option<i64>,
}

#[utoipa::path(get, path = "/v1/library/hit-rate", tag = "library", security(("bearer" = [])), params(("days" = Option<i64>, Query)),
    responses((status = 200, description = "Generation requests served from the library against all, for the caller's tenant (the operator: every tenant)")))]
async fn hit_rate(
    State(app): State<Arc<App>>,
    auth: Auth,
    Query(q): Query<RateQuery>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = writer(&auth, Role::Admin)?;
    let days = q.days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::invalid("days: 1-3650"));
    }
    let since = now_ms() - days * 86_400_000;
    let (hits, total) = app.library.hit_rate(tenant.as_ref(), since).await?;
    Ok(axum::Json(json!({
        "scope": if tenant.is_some() { "tenant" } else { "global" },
        "days": days,
        "requests": total,
        "library_hits": hits,
        "hit_rate": if total > 0 { hits as f64 / total as f64 } else { 0.0 },
    })))
}

#[utoipa::path(post, path = "/v1/library/generate", tag = "library", security(("bearer" = [])), request_body = GenerateRequest,
    responses((status = 200, description = "Served from the library (a hit, no model called) or generated by the LLM gateway with the top items and the constraints in its prompt (a miss)"),
        (status = 400, body = ErrorBody), (status = 402, description = "A miss, and the credits cannot cover the model call", body = ErrorBody)))]
async fn generate(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(req): Json<GenerateRequest>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::User)?;
    let caller = Caller {
        tenant,
        user: auth.0.id.clone(),
        plugin: None,
    };
    let out = app.library.generate(&app.llm, &caller, req).await?;
    Ok(axum::Json(json!(out)))
}

#[utoipa::path(get, path = "/v1/library/constraints", tag = "library", security(("bearer" = [])),
    responses((status = 200, description = "The constraint documents in force: name, title, version, hash, rule count")))]
async fn constraints(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    viewer(&auth)?;
    Ok(axum::Json(
        json!({ "documents": app.library.constraints().list() }),
    ))
}

#[derive(Deserialize)]
struct ConstraintQuery {
    /// A stored earlier version's text instead of the one in force.
    version: Option<i64>,
}

#[utoipa::path(get, path = "/v1/library/constraints/{name}", tag = "library", security(("bearer" = [])), params(("name" = String, Path), ("version" = Option<i64>, Query)),
    responses((status = 200, description = "The document in force with its rules and every stored version, or the text of one version"), (status = 404, body = ErrorBody)))]
async fn constraint(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<ConstraintQuery>,
) -> ApiResult<axum::Json<Value>> {
    viewer(&auth)?;
    let (versions, body) =
        library::constraints::history(app.library.db(), &name, q.version).await?;
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|(version, sha256, loaded_at)| json!({"version": version, "sha256": sha256, "loaded_at": loaded_at}))
        .collect();
    if let Some(v) = q.version {
        let body = body.ok_or_else(|| {
            ApiError::not_found("not_found", format!("{name} has no version {v}"))
        })?;
        return Ok(axum::Json(
            json!({"name": name, "version": v, "text": body, "versions": versions}),
        ));
    }
    let (summary, rules, text) = app
        .library
        .constraints()
        .document(&name)
        .ok_or_else(|| ApiError::not_found("not_found", "no such constraint document"))?;
    Ok(axum::Json(json!({
        "document": summary,
        "rules": rules,
        "text": text,
        "versions": versions,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    code: String,
    language: String,
    #[serde(default)]
    tags: Vec<String>,
    /// Also have the LLM gateway review the rules no static check decides
    /// (billed to the caller's tenant).
    #[serde(default)]
    review: bool,
    /// A catalog model for the review.
    model: Option<String>,
}

#[utoipa::path(post, path = "/v1/library/check", tag = "library", security(("bearer" = [])), request_body = CheckBody,
    responses((status = 200, description = "Which applicable constraints the code violates (static checks, and with `review` the LLM's review of the others), and which still need a review"), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody)))]
async fn check(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(body): Json<CheckBody>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = viewer(&auth)?;
    library::one_of("language", &body.language, &library::LANGUAGES)?;
    if body.code.len() > 200_000 {
        return Err(ApiError::invalid("code: at most 200,000 bytes"));
    }
    let mut report = app
        .library
        .constraints()
        .check(&body.code, &body.language, &body.tags);
    let review = match (body.review, tenant) {
        (false, _) => None,
        (true, None) => {
            return Err(ApiError::invalid(
                "review: needs a tenant's caller (the model call is billed to the tenant)",
            ));
        }
        (true, Some(tenant)) => {
            let caller = Caller {
                tenant,
                user: auth.0.id.clone(),
                plugin: None,
            };
            app.library
                .review(
                    &app.llm,
                    &caller,
                    &body.code,
                    &body.language,
                    body.model,
                    &mut report,
                )
                .await?
        }
    };
    let reviewed_errors = review.as_ref().is_some_and(|r| {
        r.violations
            .iter()
            .any(|v| v.severity == weft_constraints::Severity::Error)
    });
    let reviewed_clean = review.as_ref().is_none_or(|r| r.violations.is_empty());
    Ok(axum::Json(json!({
        "clean": report.violations.is_empty() && reviewed_clean,
        "has_errors": report.has_errors() || reviewed_errors,
        "report": report,
        "review": review,
    })))
}

fn template_summary(id: &str, t: &weft_templates::Template) -> Value {
    let m = t.manifest();
    json!({
        "id": id,
        "title": m.title,
        "description": m.description,
        "language": m.language,
        "tags": m.tags,
        "questions": t.questions(),
    })
}

#[utoipa::path(get, path = "/v1/library/templates", tag = "library", security(("bearer" = [])),
    responses((status = 200, description = "The project templates with their questions")))]
async fn templates(State(app): State<Arc<App>>, auth: Auth) -> ApiResult<axum::Json<Value>> {
    viewer(&auth)?;
    let list: Vec<Value> = app
        .library
        .templates()
        .iter()
        .map(|(id, t)| template_summary(id, t))
        .collect();
    Ok(axum::Json(json!({ "templates": list })))
}

#[utoipa::path(get, path = "/v1/library/templates/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The template, its questions and its source files"), (status = 404, body = ErrorBody)))]
async fn template(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    viewer(&auth)?;
    let t = app
        .library
        .templates()
        .get(&id)
        .ok_or_else(|| ApiError::not_found("not_found", "no such template"))?;
    let mut body = template_summary(&id, t);
    body["files"] = json!(t.source_paths().collect::<Vec<_>>());
    Ok(axum::Json(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TemplateAnswers {
    /// Question id → answer; unanswered questions take their defaults.
    #[serde(default)]
    answers: serde_json::Map<String, Value>,
}

#[utoipa::path(post, path = "/v1/library/templates/{id}/generate", tag = "library", security(("bearer" = [])), params(("id" = String, Path)), request_body = TemplateAnswers,
    responses((status = 200, description = "application/zip: the generated project", content_type = "application/zip"),
        (status = 422, description = "Answers refused: every bad one listed under `answers`", body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn generate_template(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path(id): Path<String>,
    Json(body): Json<TemplateAnswers>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    viewer(&auth)?;
    let t = app
        .library
        .templates()
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("not_found", "no such template"))?;
    let answers = t.validate(&body.answers).map_err(|errors| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_answers",
            errors.to_string(),
        )
        .with_details(json!({ "answers": errors.errors }))
    })?;
    let name = id.clone();
    // Rendering and compressing are CPU work, bounded by the engine's limits.
    let zip = tokio::task::spawn_blocking(
        move || -> Result<(String, Vec<u8>), weft_templates::Error> {
            let files = t.render(&answers)?;
            let root = t.root_dir_name(&answers)?.unwrap_or(name);
            let zip = weft_templates::to_zip(&files, &root)?;
            Ok((root, zip))
        },
    )
    .await
    .map_err(ApiError::internal)?;
    let (root, zip) = zip.map_err(|e| match e.code() {
        "internal" => ApiError::internal(e),
        code => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_failed",
            format!("{code}: {e}"),
        ),
    })?;
    let disposition = format!("attachment; filename=\"{root}.zip\"");
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/zip".to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        zip,
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/library/research", tag = "library", security(("bearer" = [])), request_body = library::research::ResearchRequest,
    responses((status = 200, description = "Every code block found, with whether it is new, a duplicate (same code) or a near duplicate (similar meaning) of an item the tenant sees, or added"),
        (status = 400, body = ErrorBody), (status = 403, description = "The URL's host is not allow-listed", body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn research(
    State(app): State<Arc<App>>,
    auth: Auth,
    Json(req): Json<library::research::ResearchRequest>,
) -> ApiResult<axum::Json<Value>> {
    let tenant = auth.tenant()?;
    auth.require(&tenant, Role::User)?;
    let found = app.library.research(&tenant, &auth.0.id, req).await?;
    Ok(axum::Json(json!({ "blocks": found })))
}
