//! HTTP API of the commerce role (paths in ARCHITECTURE), the card-number guard in front of it, and the one
//! place its errors become HTTP.
//!
//! - catalogue: `GET /v1/products?limit=&offset=&category=`, `GET /v1/products/{id}`, `GET /v1/locations`;
//! - inventory: `GET|PUT /v1/inventory/{sku}`;
//! - carts: `POST /v1/carts`, `GET /v1/carts/{id}`, `POST /v1/carts/{id}/lines`;
//! - checkout: `POST /v1/checkouts` (header `Idempotency-Key`), `GET /v1/orders/{id}`,
//!   `POST /v1/orders/{id}/payment/confirm`, `POST /v1/payments/{provider}/webhook`;
//! - after the sale: `GET|POST /v1/orders/{id}/returns`, `GET /v1/orders/{id}/invoice.xml`,
//!   `POST /v1/orders/{id}/invoice/sdi`.
//!
//! Errors: `400` bad input (naming the field), `402` payment declined, `404`, `409` conflicts (stock short,
//! idempotency key reused with another body, wrong order state), `413` body too large, `503` + `Retry-After`
//! when PostgreSQL or a provider is unreachable, `500` for our bugs.
//!
//! **Card data**: every request body except the providers' signed webhooks is scanned before it is parsed;
//! one carrying a card-number-like value anywhere is refused with `400` naming the JSON path, and the value
//! is neither logged nor stored.

use pipelines::http::{json_body, ApiError, ApiResult};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use pipelines::access::{Principal, Scope};

use crate::aftersale::ReturnInput;
use crate::checkout::check_idempotency_key;
use crate::invoice::SdiReceipt;
use crate::model::CartLine;
use crate::service::{Commerce, NewCart, SetInventory};
use crate::{pci, Error};

/// Decodes a JSON value into `T`; the error names the offending field path.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> crate::Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        Error::bad(field, e.into_inner().to_string())
    })
}

/// The caller of an order route, as the HTTP edge identified it (`None` when the router runs without the
/// edge, as a library).
type Caller = Option<Extension<Principal>>;

/// An order's own routes are open to a secret key with `orders:manage`, or to whoever presents the order's
/// access token (the shopper's browser, with a publishable key). Checked before anything else about the
/// request, so a caller without either learns nothing (not even whether the order exists).
fn owner(c: &Commerce, caller: &Caller, headers: &HeaderMap, id: &str) -> ApiResult<()> {
    let Some(Extension(p)) = caller else {
        return Ok(());
    };
    if p.has(Scope::OrdersManage) {
        return Ok(());
    }
    let header = crate::order_token::ORDER_TOKEN_HEADER;
    match headers.get(header).and_then(|v| v.to_str().ok()) {
        Some(t) if c.order_tokens().verify(id, t.trim()) => Ok(()),
        Some(_) => Err(ApiError::Forbidden(format!(
            "the {header} sent is not this order's access token"
        ))),
        None => Err(ApiError::Forbidden(format!(
            "this order's routes need its access token in {header} (the checkout's `access_token`) or a \
             secret key with orders:manage"
        ))),
    }
}

fn uuid(what: &str, id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::from(Error::bad(what, format!("`{id}` is not a UUID"))))
}

/// The commerce routes, behind the card-number guard.
pub fn app(commerce: Arc<Commerce>) -> Router {
    let guarded = Router::new()
        .route("/v1/products", get(products))
        .route("/v1/products/{id}", get(product))
        .route("/v1/locations", get(locations))
        .route("/v1/inventory/{sku}", get(inventory).put(set_inventory))
        .route("/v1/carts", post(create_cart))
        .route("/v1/carts/{id}", get(cart))
        .route("/v1/carts/{id}/lines", post(add_line))
        .route("/v1/checkouts", post(checkout))
        .route("/v1/orders/{id}", get(order))
        .route("/v1/orders/{id}/payment/confirm", post(confirm))
        .route("/v1/orders/{id}/returns", get(returns).post(create_return))
        .route("/v1/orders/{id}/invoice.xml", get(invoice_xml))
        .route("/v1/orders/{id}/invoice/sdi", post(record_sdi))
        .layer(middleware::from_fn_with_state(commerce.clone(), card_guard));
    Router::new()
        .route("/v1/payments/{provider}/webhook", post(webhook))
        .merge(guarded)
        .with_state(commerce)
}

/// Buffers the body (bounded), refuses it when it carries a card-number-like value, passes it on otherwise.
async fn card_guard(
    State(c): State<Arc<Commerce>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = c.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::from(Error::bad(
            "body",
            format!("larger than {limit} bytes or unreadable"),
        ))
    })?;
    if let Some(path) = pci::find_card_number(&bytes) {
        c.metrics.card_numbers_refused.inc();
        // Only the path is logged: the value never leaves this function.
        tracing::warn!(field = %path, uri = %parts.uri.path(), "commerce: refused a request carrying a card-number-like value");
        return Err(ApiError::from(Error::bad(
            path,
            "looks like a payment card number; card data must go to the payment provider, send its token or payment-method id instead",
        )));
    }
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

#[derive(Deserialize)]
struct ProductsQuery {
    limit: Option<String>,
    offset: Option<String>,
    category: Option<String>,
}

fn query_num(field: &str, v: &Option<String>, default: usize, max: usize) -> ApiResult<usize> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::from(Error::bad(
                field,
                format!("must be an integer 0–{max}, got `{s}`"),
            ))),
        },
    }
}

async fn products(
    State(c): State<Arc<Commerce>>,
    Query(q): Query<ProductsQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = query_num("limit", &q.limit, 50, 500)?;
    let offset = query_num("offset", &q.offset, 0, usize::MAX)?;
    let catalog = c.catalog.catalog();
    if let Some(cat) = &q.category {
        if !catalog.categories().iter().any(|k| &k.id == cat) {
            return Err(ApiError::from(Error::bad(
                "category",
                format!("`{cat}` is not a category"),
            )));
        }
    }
    let listed: Vec<&pipelines::catalog::Product> = catalog
        .products()
        .iter()
        .filter(|p| p.is_listed())
        .filter(|p| q.category.as_ref().is_none_or(|cat| &p.category_id == cat))
        .collect();
    let page: Vec<serde_json::Value> = listed
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| product_json(p))
        .collect();
    Ok(Json(
        json!({"total": listed.len(), "offset": offset, "limit": limit, "products": page}),
    ))
}

fn product_json(p: &pipelines::catalog::Product) -> serde_json::Value {
    json!({
        "id": p.id,
        "name": p.name,
        "line_id": p.line_id,
        "category_id": p.category_id,
        "collection_id": p.collection_id,
        "colour_code": p.colour_code,
        "price": p.price,
        "sale_price": p.sale_price,
        "currency": pipelines::catalog::CURRENCY,
        "tax_class": crate::catalog::tax_class_name(p.tax_class),
        "variants": p.variants.iter().map(|v| json!({"sku": v.id, "size": v.size})).collect::<Vec<_>>(),
    })
}

async fn product(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let p = c
        .catalog
        .catalog()
        .product(&id)
        .filter(|p| !p.hidden)
        .ok_or_else(|| ApiError::from(Error::NotFound(format!("product `{id}` does not exist"))))?;
    Ok(Json(product_json(p)))
}

async fn locations(State(c): State<Arc<Commerce>>) -> Json<serde_json::Value> {
    Json(json!({"locations": c.catalog.catalog().locations()}))
}

async fn inventory(
    State(c): State<Arc<Commerce>>,
    Path(sku): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(json!(c.inventory(&sku).await?)))
}

async fn set_inventory(
    State(c): State<Arc<Commerce>>,
    Path(sku): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let input: SetInventory = json_body(&body)?;
    Ok(Json(json!(c.set_inventory(&sku, input).await?)))
}

async fn create_cart(State(c): State<Arc<Commerce>>, body: Bytes) -> ApiResult<Response> {
    let input: NewCart = if body.iter().all(u8::is_ascii_whitespace) {
        NewCart {
            market: None,
            lines: Vec::new(),
        }
    } else {
        json_body(&body)?
    };
    let cart = c.create_cart(input).await?;
    Ok((StatusCode::CREATED, Json(json!(cart))).into_response())
}

async fn cart(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(json!(c.cart(uuid("id", &id)?).await?)))
}

async fn add_line(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let id = uuid("id", &id)?;
    let line: CartLine = json_body(&body)?;
    Ok(Json(json!(c.add_line(id, line).await?)))
}

async fn checkout(
    State(c): State<Arc<Commerce>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let key = check_idempotency_key(
        headers
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap_or("\u{0}")),
    )?;
    let value: serde_json::Value = json_body(&body)?;
    let mut stored = c.checkout(&key, value).await?;
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    // The order's access token is derived, never stored: a replay answers the same one.
    let id = stored.body["order_id"].as_str().map(str::to_string);
    if let (Some(id), Some(body)) = (id, stored.body.as_object_mut()) {
        body.insert("access_token".into(), json!(c.order_tokens().issue(&id)));
    }
    Ok((status, Json(stored.body)).into_response())
}

async fn order(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    owner(&c, &caller, &headers, &id)?;
    Ok(Json(json!(c.order(uuid("id", &id)?).await?)))
}

async fn confirm(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    owner(&c, &caller, &headers, &id)?;
    let id = uuid("id", &id)?;
    let params: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        json_body(&body)?
    };
    if !params.is_object() {
        return Err(ApiError::from(Error::bad("body", "must be a JSON object")));
    }
    Ok(Json(json!(c.confirm_payment(id, params).await?)))
}

async fn webhook(
    State(c): State<Arc<Commerce>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let order = c.webhook(&provider, &headers, &body).await?;
    Ok(Json(json!({"received": true, "order_id": order})))
}

async fn returns(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    owner(&c, &caller, &headers, &id)?;
    Ok(Json(json!({"returns": c.returns(uuid("id", &id)?).await?})))
}

async fn create_return(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    owner(&c, &caller, &headers, &id)?;
    let id = uuid("id", &id)?;
    let input: ReturnInput = json_body(&body)?;
    let ret = c.create_return(id, input).await?;
    Ok((StatusCode::CREATED, Json(json!(ret))).into_response())
}

async fn invoice_xml(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    owner(&c, &caller, &headers, &id)?;
    let (file_name, xml) = c.invoice_xml(uuid("id", &id)?).await?;
    let disposition = format!("attachment; filename=\"{file_name}\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/xml; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        xml,
    )
        .into_response())
}

async fn record_sdi(
    State(c): State<Arc<Commerce>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let id = uuid("id", &id)?;
    let receipt: SdiReceipt = json_body(&body)?;
    Ok(Json(json!(c.record_sdi(id, receipt).await?)))
}
