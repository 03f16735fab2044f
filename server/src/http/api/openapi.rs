//! `GET /api/v1/openapi.json`: the machine-readable contract (OpenAPI 3.1).
//! Written next to the routes it describes; a test checks that every path
//! here answers and that the catalog routes are all listed.

use axum::Json;
use serde_json::{json, Value};

pub async fn document() -> Json<Value> {
    Json(spec())
}

fn param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": location, "required": location == "path", "description": description, "schema": schema })
}

fn errors(codes: &[u16]) -> Value {
    let mut out = serde_json::Map::new();
    for code in codes {
        out.insert(code.to_string(), json!({ "$ref": format!("#/components/responses/E{code}") }));
    }
    Value::Object(out)
}

fn ok(schema: &str) -> Value {
    json!({ "description": "OK", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn created(schema: &str) -> Value {
    let mut response = ok(schema);
    response["description"] = json!("Created");
    response
}

fn with(responses: Value, ok_response: Value) -> Value {
    with_code(responses, "200", ok_response)
}

fn with_code(mut responses: Value, code: &str, response: Value) -> Value {
    responses[code] = response;
    responses
}

pub fn spec() -> Value {
    let listing_params = vec![
        param("q", "query", "Search text; typos forgiven (1 from 5 letters, 2 from 9); the last word also matches as a prefix.", json!({"type": "string", "maxLength": 200})),
        param("category", "query", "Category slug; a department includes its categories.", json!({"type": "string"})),
        param("brand", "query", "Brand name; repeat for several (any matches).", json!({"type": "array", "items": {"type": "string"}})),
        param("price_min", "query", "Lowest price in whole currency units, e.g. 25 or 49.99.", json!({"type": "string"})),
        param("price_max", "query", "Highest price in whole currency units.", json!({"type": "string"})),
        param("rating_min", "query", "Minimum average rating, 1 to 5.", json!({"type": "number", "minimum": 0, "maximum": 5})),
        param("in_stock", "query", "Only products with a SKU that can be bought now.", json!({"type": "boolean"})),
        param("sort", "query", "Result order.", json!({"type": "string", "enum": ["relevance", "price_asc", "price_desc", "rating", "newest"]})),
    ];
    let mut search_params = listing_params.clone();
    search_params.push(param("page", "query", "1-based page number (at most 400).", json!({"type": "integer", "minimum": 1, "maximum": 400})));
    search_params.push(param("per_page", "query", "Results per page; clamped to 1..48.", json!({"type": "integer", "default": 24})));
    let mut browse_params = vec![param("slug", "path", "Category slug.", json!({"type": "string"}))];
    browse_params.extend(listing_params);
    browse_params.push(param("cursor", "query", "`next_cursor` of the previous page.", json!({"type": "string"})));
    browse_params.push(param("limit", "query", "Products per page; clamped to 1..48.", json!({"type": "integer", "default": 24})));
    let product_id = param("product_id", "path", "Product id (UUIDv7).", json!({"type": "string", "format": "uuid"}));

    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Mercato API",
            "version": "1",
            "description": "The marketplace's REST API. Money is integer minor units plus an ISO 4217 currency; ids are UUIDv7; errors are {error, message}."
        },
        "paths": {
            "/api/v1/auth/register": { "post": {
                "summary": "Create a customer account; signs in (token and session cookie).",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Registration" } } } },
                "responses": with_code(errors(&[400, 409, 422, 429, 503]), "201", created("SignedIn"))
            }},
            "/api/v1/auth/login": { "post": {
                "summary": "Sign in (token and session cookie). A wrong email or password is one 401, without a hint which. Attempts are limited per address, and failures per account (429 + Retry-After).",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Credentials" } } } },
                "responses": with(errors(&[400, 401, 429, 503]), ok("SignedIn"))
            }},
            "/api/v1/auth/logout": { "post": {
                "summary": "End this session (the token stops working at once).",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "responses": { "204": { "description": "Signed out" }, "401": { "$ref": "#/components/responses/E401" },
                               "403": { "$ref": "#/components/responses/E403" } }
            }},
            "/api/v1/me": { "get": {
                "summary": "The signed-in user.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "responses": with(errors(&[401, 503]), ok("User"))
            }},
            "/api/v1/cart": { "get": {
                "summary": "The cart (the signed-in user's, or the guest cookie's), with snapshot and current prices.",
                "responses": with(errors(&[503]), ok("Cart"))
            }},
            "/api/v1/cart/items": { "post": {
                "summary": "Add a SKU. Guests get a `mercato_guest` cookie on their first write. Rate-limited per user or guest IP.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/AddItem" } } } },
                "responses": with(errors(&[400, 403, 404, 422, 429, 503]), ok("Cart"))
            }},
            "/api/v1/cart/items/{sku_id}": {
                "put": {
                    "summary": "Set a line's quantity (0 removes it). Shares the add-to-cart rate limit.",
                    "parameters": [param("sku_id", "path", "SKU id.", json!({"type": "string", "format": "uuid"}))],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["quantity"], "properties": { "quantity": {"type": "integer", "minimum": 0, "maximum": 10} } } } } },
                    "responses": with(errors(&[400, 403, 404, 422, 429, 503]), ok("Cart"))
                },
                "delete": {
                    "summary": "Remove a line.",
                    "parameters": [param("sku_id", "path", "SKU id.", json!({"type": "string", "format": "uuid"}))],
                    "responses": with(errors(&[400, 403, 503]), ok("Cart"))
                }
            },
            "/api/v1/categories": { "get": {
                "summary": "Every category, departments first, with product counts.",
                "responses": with(errors(&[503]), ok("CategoryList"))
            }},
            "/api/v1/categories/{slug}/products": { "get": {
                "summary": "A category's products, keyset-paginated.",
                "parameters": browse_params,
                "responses": with(errors(&[400, 404, 503]), ok("BrowsePage"))
            }},
            "/api/v1/products": { "get": {
                "summary": "Search and browse with filters and facet counts.",
                "parameters": search_params,
                "responses": with(errors(&[400, 503]), ok("SearchPage"))
            }},
            "/api/v1/products/{product_id}": { "get": {
                "summary": "One product with its SKUs and live availability.",
                "parameters": [product_id.clone()],
                "responses": with(errors(&[400, 404, 503]), ok("Product"))
            }},
            "/api/v1/products/{product_id}/stock": { "get": {
                "summary": "Live stock for a product's SKUs (never cached).",
                "parameters": [product_id],
                "responses": with(errors(&[400, 404, 503]), ok("Stock"))
            }},
            "/api/v1/products/{product_id}/reviews": {
                "get": {
                    "summary": "A product's reviews, keyset-paginated, with the rating histogram and the product's average and count. Public (first names only).",
                    "parameters": [
                        product_id,
                        param("sort", "query", "Order: newest first, or most helpful first.", json!({"type": "string", "enum": ["newest", "helpful"], "default": "newest"})),
                        param("limit", "query", "Reviews per page; clamped to 1..50 (default 10).", json!({"type": "integer"})),
                        param("cursor", "query", "`next_cursor` of the previous page.", json!({"type": "string", "format": "uuid"}))
                    ],
                    "responses": with(errors(&[400, 404, 503]), ok("ReviewPage"))
                },
                "post": {
                    "summary": "Review the product: only a customer with a DELIVERED order containing it (else 403 `not_a_verified_buyer`). A second review replaces the first (200; 201 the first time). Title and body are stored as plain text.",
                    "security": [{ "bearer": [] }, { "cookie": [] }],
                    "parameters": [product_id],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ReviewRequest" } } } },
                    "responses": with_code(with(errors(&[400, 401, 403, 404, 422, 503]), ok("Review")), "201", created("Review"))
                }
            },
            "/api/v1/search/suggest": { "get": {
                "summary": "Search-as-you-type suggestions (products).",
                "parameters": [param("q", "query", "What the shopper has typed so far (2+ characters).", json!({"type": "string"}))],
                "responses": with(errors(&[400, 503]), ok("Suggestions"))
            }},
            "/api/v1/seller/skus": { "get": {
                "summary": "The caller's SKUs with live stock (a seller: its own shop's; an admin: every seller's), keyset-paginated.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [
                    param("limit", "query", "Page size, 1 to 500 (default 100).", json!({"type": "integer"})),
                    param("cursor", "query", "`next_cursor` of the previous page.", json!({"type": "string", "format": "uuid"}))
                ],
                "responses": with(errors(&[400, 401, 403, 503]), ok("SkuStockPage"))
            }},
            "/api/v1/seller/skus/{sku_id}/stock": { "put": {
                "summary": "Set a SKU's stock. Refused (409 `stock_below_reserved`, with `stock_count` and `reserved`) below what is in orders and live reservations right now.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [param("sku_id", "path", "SKU id.", json!({"type": "string", "format": "uuid"}))],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["stock_count"], "properties": { "stock_count": {"type": "integer", "minimum": 0} } } } } },
                "responses": with(errors(&[400, 401, 403, 404, 409, 422, 503]), ok("SkuStock"))
            }},
            "/api/v1/seller/skus/{sku_id}/shards": { "put": {
                "summary": "Split a hot SKU's Redis counter into N sub-counters (1 to 64; 1 = one counter), e.g. before a flash sale. The total is carried over exactly.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [param("sku_id", "path", "SKU id.", json!({"type": "string", "format": "uuid"}))],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["shards"], "properties": { "shards": {"type": "integer", "minimum": 1, "maximum": 64} } } } } },
                "responses": with(errors(&[400, 401, 403, 404, 422, 503]), ok("SkuStock"))
            }},
            "/api/v1/seller/products": {
                "get": {
                    "summary": "The caller's products (a seller: its own shop's; an admin: every seller's), newest first, keyset-paginated, read from PostgreSQL (never stale).",
                    "security": [{ "bearer": [] }, { "cookie": [] }],
                    "parameters": [
                        param("q", "query", "Only products whose title or brand contains this text (case aside).", json!({"type": "string"})),
                        param("limit", "query", "Page size, 1 to 200 (default 50).", json!({"type": "integer"})),
                        param("cursor", "query", "`next_cursor` of the previous page.", json!({"type": "string", "format": "uuid"}))
                    ],
                    "responses": with(errors(&[400, 401, 403, 503]), ok("SellerProductPage"))
                },
                "post": {
                    "summary": "Add a product with its SKUs and their opening stock (201, `Location` of the new product). A seller adds to its own shop (another `seller_id` is 403 `not_your_shop`); an admin names `seller_id`. An unknown brand is created; an unknown category, a currency other than the shop's, duplicate variants, or out-of-range prices and stock are 422 naming the field. Shows in lists and search at once. With an `Idempotency-Key`, a retry (same caller, key and body) answers with the first attempt's product and `Idempotent-Replayed: true`; the key with another body is 422 `idempotency_key_reused`.",
                    "security": [{ "bearer": [] }, { "cookie": [] }],
                    "parameters": [param("Idempotency-Key", "header", "Optional: a client-generated key (e.g. a UUID), one per create, reused on retry; kept 24 h.", json!({"type": "string", "maxLength": 255}))],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewProduct" } } } },
                    "responses": with_code(errors(&[400, 401, 403, 422, 503]), "201", created("Product"))
                }
            },
            "/api/v1/seller/products/{product_id}": {
                "get": {
                    "summary": "One of the caller's products as the public API shows it, live stock included; another seller's is 404.",
                    "security": [{ "bearer": [] }, { "cookie": [] }],
                    "parameters": [param("product_id", "path", "Product id.", json!({"type": "string", "format": "uuid"}))],
                    "responses": with(errors(&[400, 401, 403, 404, 503]), ok("Product"))
                },
                "patch": {
                    "summary": "Change a product in one transaction: absent fields keep their value; `skus` entries with `sku_id` change that SKU's price or attributes, entries without add a SKU (with `price_cents` and optional opening `stock_count`). Existing SKUs' stock moves through PUT /seller/skus/{sku_id}/stock. Another seller's product is 404; the edit shows in the product page, lists and search at once.",
                    "security": [{ "bearer": [] }, { "cookie": [] }],
                    "parameters": [param("product_id", "path", "Product id.", json!({"type": "string", "format": "uuid"}))],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ProductChange" } } } },
                    "responses": with(errors(&[400, 401, 403, 404, 422, 503]), ok("Product"))
                }
            },
            "/api/v1/seller/orders": { "get": {
                "summary": "Orders holding the caller's lines (a seller: only its own lines are shown; an admin: every order, every line), newest first, keyset-paginated, with each seller's shipment (state, carrier, tracking number).",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [
                    param("status", "query", "Only orders in this status (PLACED, PAYMENT_PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED, REFUNDED).", json!({"type": "string"})),
                    param("limit", "query", "Page size, 1 to 100 (default 50).", json!({"type": "integer"})),
                    param("cursor", "query", "`next_cursor` of the previous page.", json!({"type": "string", "format": "uuid"}))
                ],
                "responses": with(errors(&[400, 401, 403, 503]), ok("SellerOrderPage"))
            }},
            "/api/v1/seller/orders/{order_id}/ship": { "post": {
                "summary": "Ship the caller's part of an order by hand (an admin: every part not shipped): the payment is captured (once per order), the units leave stock and the order becomes SHIPPED. The same carrier and tracking number again answers as the first time. 409 `not_shippable` for an order cancelled, refunded, not confirmed or with a cancel recorded; 409 `already_shipped` with another tracking number; 409 `nothing_to_pick` when the units are not in stock.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [param("order_id", "path", "Order id.", json!({"type": "string", "format": "uuid"}))],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["carrier", "tracking_number"], "properties": {
                    "carrier": {"type": "string", "minLength": 1, "maxLength": 50},
                    "tracking_number": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"} } } } } },
                "responses": with(errors(&[400, 401, 403, 404, 409, 422, 503]), ok("SellerOrder"))
            }},
            "/api/v1/seller/orders/{order_id}/refund": { "post": {
                "summary": "Refund a shipped or delivered order in full (a seller: its own orders; an admin: any): recorded first, refunded at the provider, then REFUNDED; parts not yet shipped go back to stock. Refunding a refunded order answers with it. 409 `not_refundable` before it ships (cancel instead).",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [param("order_id", "path", "Order id.", json!({"type": "string", "format": "uuid"}))],
                "responses": with(errors(&[400, 401, 403, 404, 409, 503]), ok("SellerOrder"))
            }},
            "/api/v1/seller/analytics": { "get": {
                "summary": "Per-minute figures of one SKU (a seller: its own SKUs only, another's is 404; an admin: any), from order events: orders, units and revenue at the unit price, gross (a cancel subtracts nothing). `reservations` and `rejections` are 0 until inventory publishes them. Only minutes with activity are listed, oldest first; a few seconds behind the orders (the bus).",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [
                    param("sku_id", "query", "SKU id (required).", json!({"type": "string", "format": "uuid"})),
                    param("from", "query", "RFC 3339; its minute is included (default: an hour before `to`).", json!({"type": "string", "format": "date-time"})),
                    param("to", "query", "RFC 3339, exclusive (default: now). After `from`, at most 31 days later (422 otherwise).", json!({"type": "string", "format": "date-time"}))
                ],
                "responses": with(errors(&[400, 401, 403, 404, 422, 503]), ok("SkuAnalytics"))
            }},
            "/api/v1/checkout": { "post": {
                "summary": "Place the signed-in customer's cart as an order: reserve, authorize the card (manual capture), write the order at the prices PostgreSQL has (409 price_changed otherwise). Idempotent by key: a retry (even while the first is running) gets the first answer. A card that asks for 3-D Secure is refused (422 authentication_required).",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [param("Idempotency-Key", "header", "A client-generated key (e.g. a UUID), one per checkout attempt, reused on retry.", json!({"type": "string", "maxLength": 255}))],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CheckoutRequest" } } } },
                "responses": with_code(errors(&[400, 401, 402, 403, 409, 422, 503]), "201", created("Placed"))
            }},
            "/api/v1/orders": { "get": {
                "summary": "My orders, newest first.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [
                    param("limit", "query", "Page size, 1 to 100 (default 20).", json!({"type": "integer"})),
                    param("cursor", "query", "`next_cursor` of the previous page.", json!({"type": "string", "format": "uuid"}))
                ],
                "responses": with(errors(&[400, 401, 503]), ok("OrderPage"))
            }},
            "/api/v1/orders/{order_id}": { "get": {
                "summary": "One of my orders with its status timeline (someone else's: 404).",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [param("order_id", "path", "Order id.", json!({"type": "string", "format": "uuid"}))],
                "responses": with(errors(&[400, 401, 404, 503]), ok("Order"))
            }},
            "/api/v1/orders/{order_id}/cancel": { "post": {
                "summary": "Cancel before shipment: the cancel is recorded, the payment voided (refunded if captured) and the units go back to stock. Cancelling a cancelled order answers with it again. With the payment provider down: 503, and the recorded cancel is finished by recovery.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [param("order_id", "path", "Order id.", json!({"type": "string", "format": "uuid"}))],
                "responses": with(errors(&[400, 401, 404, 409, 503]), ok("Order"))
            }},
            "/api/v1/admin/reconcile": { "post": {
                "summary": "Compare every Redis stock counter with PostgreSQL minus live reservations, correct drift, and report each corrected SKU (also `server reconcile` and a periodic job).",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "responses": with(errors(&[401, 403, 503]), ok("ReconcileReport"))
            }},
            "/api/v1/admin/dead-letters": { "get": {
                "summary": "Events a consumer group gave up on after 3 tries, newest first, each with its group, error and try count.",
                "security": [{ "bearer": [] }, { "cookie": [] }],
                "parameters": [
                    param("topic", "query", "Only this topic: order-events, inventory-events or payment-events.", json!({"type": "string", "enum": ["order-events", "inventory-events", "payment-events"]})),
                    param("limit", "query", "At most this many (default 50, up to 500).", json!({"type": "integer", "minimum": 1}))
                ],
                "responses": with(errors(&[400, 401, 403, 503]), ok("DeadLetters"))
            }}
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "The `token` from register or login." },
                "cookie": { "type": "apiKey", "in": "cookie", "name": "mercato_session",
                            "description": "Browser session. Writes must come from the shop's own origin (Origin header)." }
            },
            "responses": {
                "E401": { "description": "Not signed in, or wrong credentials.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E402": { "description": "`payment_declined`, with the provider's `decline_code`.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E403": { "description": "Wrong role, a cross-site write, or `not_a_verified_buyer` (reviews).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E429": { "description": "Too many requests; see Retry-After.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E409": { "description": "Conflict, e.g. `email_taken`, `out_of_stock` (with `skus`), `price_changed` (with `total_cents` and `lines`), `stock_below_reserved` (with the numbers), `illegal_transition`.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E422": { "description": "Validation failed; the message says how to fix it.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E400": { "description": "Malformed input; `param` names the parameter.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E404": { "description": "Unknown id.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "E503": { "description": "A dependency is down; see Retry-After.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            },
            "schemas": {
                "Registration": { "type": "object", "required": ["email", "password", "name"], "properties": {
                    "email": {"type": "string", "format": "email"}, "password": {"type": "string", "minLength": 10, "maxLength": 128},
                    "name": {"type": "string", "minLength": 1, "maxLength": 100} } },
                "Credentials": { "type": "object", "required": ["email", "password"], "properties": {
                    "email": {"type": "string"}, "password": {"type": "string"} } },
                "User": { "type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "email": {"type": "string"}, "name": {"type": "string"},
                    "role": {"type": "string", "enum": ["customer", "seller", "admin"]},
                    "seller_id": {"type": "string", "format": "uuid", "description": "Sellers only: the shop they act for."} } },
                "AddItem": { "type": "object", "required": ["sku_id", "quantity"], "properties": {
                    "sku_id": {"type": "string", "format": "uuid"}, "quantity": {"type": "integer", "minimum": 1, "maximum": 10} } },
                "Cart": { "type": "object", "properties": {
                    "lines": { "type": "array", "items": { "type": "object", "properties": {
                        "sku_id": {"type": "string", "format": "uuid"}, "product_id": {"type": "string", "format": "uuid"},
                        "title": {"type": "string"}, "quantity": {"type": "integer"},
                        "unit_cents": {"type": "integer", "description": "The price when the line was added."},
                        "current_unit_cents": {"type": "integer"}, "price_changed": {"type": "boolean"} } } },
                    "subtotal_cents": {"type": "integer", "description": "At current prices."}, "currency": {"type": "string"} } },
                "SignedIn": { "type": "object", "properties": { "user": { "$ref": "#/components/schemas/User" }, "token": {"type": "string"} } },
                "Error": { "type": "object", "required": ["error", "message"], "properties": {
                    "error": { "type": "string" }, "message": { "type": "string" },
                    "param": { "type": "string" }, "dependency": { "type": "string" } } },
                "Image": { "type": "object", "properties": { "url": {"type": "string"}, "alt": {"type": "string"}, "width": {"type": "integer"}, "height": {"type": "integer"} } },
                "NamedRef": { "type": "object", "properties": { "id": {"type": "string", "format": "uuid"}, "slug": {"type": "string"}, "name": {"type": "string"} } },
                "CategorySummary": { "type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "slug": {"type": "string"}, "name": {"type": "string"},
                    "parent": {"type": ["string", "null"]}, "product_count": {"type": "integer"} } },
                "CategoryList": { "type": "object", "properties": { "categories": { "type": "array", "items": { "$ref": "#/components/schemas/CategorySummary" } } } },
                "ProductSummary": { "type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "title": {"type": "string"}, "brand": {"type": "string"},
                    "category_slug": {"type": "string"}, "category_name": {"type": "string"},
                    "price_cents": {"type": "integer"}, "currency": {"type": "string"},
                    "rating_avg": {"type": "number"}, "rating_count": {"type": "integer"},
                    "image": { "oneOf": [{ "$ref": "#/components/schemas/Image" }, {"type": "null"}] } } },
                "Facets": { "type": "object", "properties": {
                    "brand": { "type": "object", "additionalProperties": {"type": "integer"} },
                    "category": { "type": "object", "additionalProperties": {"type": "integer"} },
                    "rating": { "type": "object", "description": "\"4\": products rated 4 and up, and so on.", "additionalProperties": {"type": "integer"} },
                    "price": { "type": "array", "items": { "type": "object", "properties": {
                        "min_cents": {"type": "integer"}, "max_cents": {"type": ["integer", "null"]}, "count": {"type": "integer"} } } } } },
                "SearchPage": { "type": "object", "properties": {
                    "hits": { "type": "array", "items": { "$ref": "#/components/schemas/ProductSummary" } },
                    "total": {"type": "integer"}, "page": {"type": "integer"}, "per_page": {"type": "integer"},
                    "facets": { "$ref": "#/components/schemas/Facets" } } },
                "BrowsePage": { "type": "object", "properties": {
                    "category": { "$ref": "#/components/schemas/CategorySummary" },
                    "subcategories": { "type": "array", "items": { "$ref": "#/components/schemas/CategorySummary" } },
                    "products": { "type": "array", "items": { "$ref": "#/components/schemas/ProductSummary" } },
                    "next_cursor": {"type": ["string", "null"]},
                    "brands": { "type": "object", "additionalProperties": {"type": "integer"} } } },
                "Sku": { "type": "object", "properties": {
                    "sku_id": {"type": "string", "format": "uuid"},
                    "attributes": { "type": "object", "additionalProperties": {"type": "string"} },
                    "price_cents": {"type": "integer"}, "currency": {"type": "string"},
                    "availability": {"type": "string", "enum": ["in_stock", "low_stock", "out_of_stock"]},
                    "available": {"type": "integer"} } },
                "Product": { "type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "title": {"type": "string"}, "description": {"type": "string"},
                    "attributes": { "type": "object", "additionalProperties": {"type": "string"} },
                    "brand": { "$ref": "#/components/schemas/NamedRef" }, "category": { "$ref": "#/components/schemas/NamedRef" },
                    "seller": { "$ref": "#/components/schemas/NamedRef" },
                    "images": { "type": "array", "items": { "$ref": "#/components/schemas/Image" } },
                    "rating_avg": {"type": "number"}, "rating_count": {"type": "integer"},
                    "skus": { "type": "array", "items": { "$ref": "#/components/schemas/Sku" } } } },
                "Stock": { "type": "object", "properties": {
                    "product_id": {"type": "string", "format": "uuid"},
                    "skus": { "type": "array", "items": { "type": "object", "properties": {
                        "sku_id": {"type": "string", "format": "uuid"}, "available": {"type": "integer"},
                        "availability": {"type": "string", "enum": ["in_stock", "low_stock", "out_of_stock"]} } } } } },
                "ReviewRequest": { "type": "object", "required": ["rating", "title", "body"], "properties": {
                    "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                    "title": {"type": "string", "minLength": 1, "maxLength": 120, "description": "Plain text, trimmed."},
                    "body": {"type": "string", "minLength": 1, "maxLength": 4000, "description": "Plain text, trimmed."} } },
                "Review": { "type": "object", "properties": {
                    "id": {"type": "string", "format": "uuid"}, "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                    "title": {"type": "string", "description": "Plain text: escape when rendering."},
                    "body": {"type": "string", "description": "Plain text: escape when rendering."},
                    "author": {"type": "string", "description": "The reviewer's first name."},
                    "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
                    "verified_buyer": {"type": "boolean"} } },
                "ReviewPage": { "type": "object", "properties": {
                    "reviews": { "type": "array", "items": { "$ref": "#/components/schemas/Review" } },
                    "next_cursor": {"type": ["string", "null"], "format": "uuid"},
                    "histogram": { "type": "object", "description": "\"1\" to \"5\" → number of reviews with that rating.", "additionalProperties": {"type": "integer"} },
                    "rating_avg": {"type": "number"}, "rating_count": {"type": "integer"} } },
                "CheckoutRequest": { "type": "object", "required": ["shipping_address", "payment_method"], "properties": {
                    "shipping_address": { "type": "object", "required": ["name", "line1", "city", "postal_code", "country"], "properties": {
                        "name": {"type": "string"}, "line1": {"type": "string"}, "line2": {"type": "string"},
                        "city": {"type": "string"}, "postal_code": {"type": "string"},
                        "country": {"type": "string", "description": "ISO 3166-1 alpha-2, e.g. GB."} } },
                    "payment_method": {"type": "string", "description": "A Stripe PaymentMethod id, e.g. pm_card_visa."},
                    "expected_total_cents": {"type": "integer", "description": "The total the customer agreed to; required to go ahead when a price changed since the item went into the cart (else 409 price_changed)."} } },
                "Placed": { "type": "object", "properties": {
                    "order_id": {"type": "string", "format": "uuid"}, "status": {"type": "string"},
                    "total_cents": {"type": "integer"}, "currency": {"type": "string"} } },
                "Order": { "type": "object", "properties": {
                    "order_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string", "enum": ["PLACED", "PAYMENT_PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED", "REFUNDED"]},
                    "items": { "type": "array", "items": { "type": "object", "properties": {
                        "sku_id": {"type": "string", "format": "uuid"}, "product_id": {"type": "string", "format": "uuid"},
                        "title": {"type": "string"}, "quantity": {"type": "integer"}, "unit_cents": {"type": "integer"} } } },
                    "total_cents": {"type": "integer"}, "currency": {"type": "string"}, "payment_id": {"type": ["string", "null"]},
                    "status_history": { "type": "array", "items": { "type": "object", "properties": {
                        "status": {"type": "string"}, "at": {"type": "string", "format": "date-time"} } } },
                    "created_at": {"type": "string", "format": "date-time"} } },
                "OrderPage": { "type": "object", "properties": {
                    "orders": { "type": "array", "items": { "type": "object", "properties": {
                        "order_id": {"type": "string", "format": "uuid"}, "status": {"type": "string"},
                        "total_cents": {"type": "integer"}, "currency": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"}, "item_count": {"type": "integer"} } } },
                    "next_cursor": {"type": "string", "format": "uuid"} } },
                "NewProduct": { "type": "object", "required": ["title", "category", "brand", "skus"], "additionalProperties": false, "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 300},
                    "description": {"type": "string", "maxLength": 20000},
                    "category": {"type": "string", "description": "Category slug."},
                    "brand": {"type": "string", "description": "Brand name; created when new.", "maxLength": 120},
                    "attributes": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 30},
                    "currency": {"type": "string", "description": "The shop's currency (EUR) when absent; no other is accepted."},
                    "seller_id": {"type": "string", "format": "uuid", "description": "Required of an admin; a seller may only name its own."},
                    "skus": { "type": "array", "minItems": 1, "maxItems": 100, "items": { "type": "object", "required": ["price_cents"], "additionalProperties": false, "properties": {
                        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
                        "price_cents": {"type": "integer", "minimum": 0, "maximum": 10000000000_i64},
                        "stock_count": {"type": "integer", "minimum": 0} } } } } },
                "ProductChange": { "type": "object", "additionalProperties": false, "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 300},
                    "description": {"type": "string", "maxLength": 20000},
                    "category": {"type": "string"}, "brand": {"type": "string"},
                    "attributes": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Replaces the product's attributes whole."},
                    "skus": { "type": "array", "items": { "type": "object", "additionalProperties": false, "properties": {
                        "sku_id": {"type": "string", "format": "uuid", "description": "Absent: add a SKU."},
                        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
                        "price_cents": {"type": "integer", "minimum": 0},
                        "stock_count": {"type": "integer", "minimum": 0, "description": "New SKUs only."} } } } } },
                "SellerProductPage": { "type": "object", "properties": {
                    "items": { "type": "array", "items": { "type": "object", "properties": {
                        "id": {"type": "string", "format": "uuid"}, "title": {"type": "string"}, "brand": {"type": "string"},
                        "category_slug": {"type": "string"}, "category_name": {"type": "string"},
                        "min_price_cents": {"type": "integer"}, "currency": {"type": "string"},
                        "sku_count": {"type": "integer"}, "stock_count": {"type": "integer"},
                        "rating_avg": {"type": "number"}, "rating_count": {"type": "integer"},
                        "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"} } } },
                    "next_cursor": {"type": "string", "format": "uuid"} } },
                "SkuStock": { "type": "object", "properties": {
                    "sku_id": {"type": "string", "format": "uuid"}, "product_id": {"type": "string", "format": "uuid"},
                    "title": {"type": "string"}, "variant": {"type": "string", "description": "The SKU's attributes, e.g. \"Black / 42\"."},
                    "stock_count": {"type": "integer"},
                    "reserved": {"type": "integer", "description": "Not available to shoppers: `in_orders` + `held`."},
                    "available": {"type": "integer", "description": "The live figure shoppers see."},
                    "in_orders": {"type": "integer", "description": "Confirmed into orders, not yet shipped."},
                    "held": {"type": "integer", "description": "In live reservations (checkouts in progress)."},
                    "shards": {"type": "integer"} } },
                "SellerOrder": { "type": "object", "properties": {
                    "order_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string"},
                    "currency": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "items": { "type": "array", "description": "The caller's lines only (an admin: all).", "items": { "type": "object" } },
                    "lines_total_cents": {"type": "integer"},
                    "shipments": { "type": "array", "items": { "type": "object", "properties": {
                        "seller_id": {"type": "string", "format": "uuid"},
                        "state": {"type": "string", "enum": ["picking", "picked", "shipped", "delivered", "cancelled"]},
                        "carrier": {"type": "string"},
                        "tracking_number": {"type": "string"} } } } } },
                "SellerOrderPage": { "type": "object", "properties": {
                    "orders": { "type": "array", "items": { "$ref": "#/components/schemas/SellerOrder" } },
                    "next_cursor": {"type": "string", "format": "uuid", "description": "Absent on the last page."} } },
                "SkuStockPage": { "type": "object", "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/SkuStock" } },
                    "next_cursor": {"type": "string", "format": "uuid", "description": "Absent on the last page."} } },
                "SkuAnalytics": { "type": "object", "properties": {
                    "sku_id": {"type": "string", "format": "uuid"},
                    "from": {"type": "string", "format": "date-time"},
                    "to": {"type": "string", "format": "date-time"},
                    "buckets": { "type": "array", "items": { "type": "object", "properties": {
                        "minute": {"type": "string", "format": "date-time", "description": "The minute's start, UTC."},
                        "reservations": {"type": "integer"}, "rejections": {"type": "integer"},
                        "orders": {"type": "integer"}, "units": {"type": "integer"}, "revenue_cents": {"type": "integer"} } } } } },
                "Event": { "type": "object", "description": "The event envelope every topic carries.", "properties": {
                    "id": {"type": "string", "format": "uuid", "description": "UUIDv7; the dedup key."},
                    "type": {"type": "string", "example": "order.confirmed"},
                    "aggregate_id": {"type": "string", "format": "uuid", "description": "Also the partition key."},
                    "occurred_at": {"type": "string", "format": "date-time"},
                    "payload": {"type": "object"} } },
                "DeadLetters": { "type": "object", "properties": {
                    "items": { "type": "array", "items": { "type": "object", "properties": {
                        "topic": {"type": "string"}, "group": {"type": "string", "description": "The consumer group that gave up."},
                        "event": { "$ref": "#/components/schemas/Event" },
                        "error": {"type": "string", "description": "The last try's error."},
                        "attempts": {"type": "integer"},
                        "dead_at": {"type": "string", "format": "date-time"} } } } } },
                "ReconcileReport": { "type": "object", "properties": {
                    "checked": {"type": "integer", "description": "SKUs in PostgreSQL."},
                    "loaded": {"type": "integer", "description": "SKUs with a Redis counter (the rest load on demand)."},
                    "corrected": { "type": "array", "items": { "type": "object", "properties": {
                        "sku_id": {"type": "string", "format": "uuid"}, "counter": {"type": "integer", "description": "What Redis said."},
                        "expected": {"type": "integer", "description": "PostgreSQL minus live reservations: what it says now."},
                        "drift": {"type": "integer", "description": "counter - expected; positive would have oversold."} } } },
                    "held_corrected": { "type": "array", "description": "SKUs whose Redis `held` disagreed with the live reservation records (rebuilt first).", "items": { "type": "object", "properties": {
                        "sku_id": {"type": "string", "format": "uuid"}, "held": {"type": "integer", "description": "What `inv:{sku}:held` said."},
                        "expected": {"type": "integer", "description": "Units in live records."},
                        "drift": {"type": "integer", "description": "held - expected; positive kept units from sale."} } } },
                    "took_ms": {"type": "integer"} } },
                "Suggestions": { "type": "object", "properties": { "suggestions": { "type": "array", "items": { "type": "object", "properties": {
                    "product_id": {"type": "string", "format": "uuid"}, "title": {"type": "string"}, "category": {"type": "string"} } } } } }
            }
        }
    });
    flash(&mut doc);
    doc
}

/// The flash-sale endpoints and their schemas.
fn flash(doc: &mut Value) {
    let id = || param("id", "path", "Flash sale id.", json!({"type": "string", "format": "uuid"}));
    let bearer = json!([{ "bearer": [] }, { "cookie": [] }]);
    let paths = json!({
        "/api/v1/seller/flash-sales": {
            "post": {
                "summary": "Create a flash sale of one of the caller's SKUs (an admin: any). Its units are set aside from normal stock at once. Refused: 409 not_enough_stock (with `available`), 409 overlapping_sale (another sale of the SKU overlaps the window), 422 window_in_the_past, invalid_window, invalid_quantity, invalid_limit, invalid_price; 400 for a time that is not RFC 3339.",
                "security": bearer,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewFlashSale" } } } },
                "responses": with_code(errors(&[400, 401, 403, 404, 409, 422, 503]), "201", created("FlashSale"))
            },
            "get": {
                "summary": "The caller's flash sales (an admin: all), newest first.",
                "security": bearer,
                "parameters": [
                    param("limit", "query", "Page size, 1 to 100 (default 20).", json!({"type": "integer"})),
                    param("cursor", "query", "`next_cursor` of the previous page.", json!({"type": "string", "format": "uuid"}))
                ],
                "responses": with(errors(&[400, 401, 403, 503]), ok("FlashSalePage"))
            }
        },
        "/api/v1/seller/flash-sales/{id}": { "get": {
            "summary": "One of the caller's flash sales, with its remaining units and, once ended, its report (another seller's: 404).",
            "security": bearer, "parameters": [id()],
            "responses": with(errors(&[400, 401, 403, 404, 503]), ok("FlashSale"))
        }},
        "/api/v1/seller/flash-sales/{id}/cancel": { "post": {
            "summary": "Cancel a sale before its start; its units go back to normal stock. Idempotent. 409 sale_started once it started (or anyone holds units of it).",
            "security": bearer, "parameters": [id()],
            "responses": with(errors(&[400, 401, 403, 404, 409, 503]), ok("FlashSale"))
        }},
        "/api/v1/seller/flash-sales/{id}/live": { "get": {
            "summary": "Live figures as Server-Sent Events: one `figures` event a second while the sale runs (data: FlashLive JSON). Send `Last-Event-ID` to resume after an event (the last hour is kept); without it the stream starts with the latest.",
            "security": bearer,
            "parameters": [id(), param("Last-Event-ID", "header", "The id of the last event received.", json!({"type": "string"}))],
            "responses": with(errors(&[400, 401, 403, 404, 503]), json!({ "description": "An event stream", "content": { "text/event-stream": { "schema": { "$ref": "#/components/schemas/FlashLive" } } } }))
        }},
        "/api/v1/flash-sales/{id}": { "get": {
            "summary": "A flash sale as customers see it (public; cached for a second). `server_time` is for a countdown that does not trust the visitor's clock.",
            "parameters": [id()],
            "responses": with(errors(&[400, 404, 503]), ok("PublicFlashSale"))
        }},
        "/api/v1/flash-sales/{id}/buy": { "post": {
            "summary": "Buy: 200 reserved (a hold in your cart at the sale price until `pay_by`; check out as usual), or 202 waiting with your `position` in line when nothing is left but units may come back: poll /me, which turns `reserved` when a unit comes back for you (first come, first served) or `sold_out` when your wait is over. Pressing again while holding answers with the same hold. 422 over_limit; 409 sold_out, sale_not_started, sale_ended, sale_cancelled; 429 beyond 5 flash requests a second.",
            "security": bearer, "parameters": [id()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["quantity"], "properties": { "quantity": {"type": "integer", "minimum": 1} } } } } },
            "responses": with_code(with(errors(&[400, 401, 403, 404, 409, 422, 429, 503]), ok("MyFlashState")), "202", json!({ "description": "Waiting in line", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/MyFlashState" } } } }))
        }},
        "/api/v1/flash-sales/{id}/me": {
            "get": {
                "summary": "Your state in the sale: reserved (with pay_by), waiting (position), sold_out, purchased, or none.",
                "security": bearer, "parameters": [id()],
                "responses": with(errors(&[400, 401, 404, 429, 503]), ok("MyFlashState"))
            },
            "delete": {
                "summary": "Leave the line, or give up a held unit (it goes to the head of the line); your state afterwards.",
                "security": bearer, "parameters": [id()],
                "responses": with(errors(&[400, 401, 403, 404, 429, 503]), ok("MyFlashState"))
            }
        }
    });
    let report = json!({ "type": "object", "properties": {
        "sold": {"type": "integer"}, "promoted": {"type": "integer"}, "abandoned": {"type": "integer", "description": "Holds whose payment window ran out."},
        "rejected": {"type": "integer"}, "returned": {"type": "integer", "description": "Units back to normal stock at the end."},
        "oversold": {"type": "integer", "description": "From PostgreSQL: always 0."}, "drift_corrected": {"type": "integer"} } });
    let schemas = json!({
        "NewFlashSale": { "type": "object", "required": ["sku_id", "quantity", "price_cents", "starts_at", "ends_at", "per_user_limit"], "properties": {
            "sku_id": {"type": "string", "format": "uuid"}, "quantity": {"type": "integer", "minimum": 1},
            "price_cents": {"type": "integer", "minimum": 0},
            "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"},
            "per_user_limit": {"type": "integer", "minimum": 1} } },
        "FlashReport": report,
        "FlashSale": { "type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "sku_id": {"type": "string", "format": "uuid"}, "product_id": {"type": "string", "format": "uuid"},
            "title": {"type": "string"}, "quantity": {"type": "integer"}, "price_cents": {"type": "integer"}, "regular_price_cents": {"type": "integer"},
            "currency": {"type": "string"}, "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"},
            "per_user_limit": {"type": "integer"},
            "status": {"type": "string", "enum": ["scheduled", "live", "closing", "ended", "cancelled"]},
            "remaining": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
            "preloaded_at": {"type": "string", "format": "date-time"},
            "report": { "$ref": "#/components/schemas/FlashReport" } } },
        "FlashSalePage": { "type": "object", "properties": {
            "items": { "type": "array", "items": { "$ref": "#/components/schemas/FlashSale" } },
            "next_cursor": {"type": "string", "format": "uuid", "description": "Absent on the last page."} } },
        "PublicFlashSale": { "type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "sku_id": {"type": "string", "format": "uuid"}, "product_id": {"type": "string", "format": "uuid"},
            "title": {"type": "string"}, "price_cents": {"type": "integer"}, "regular_price_cents": {"type": "integer"}, "currency": {"type": "string"},
            "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"},
            "per_user_limit": {"type": "integer"}, "remaining": {"type": "integer"},
            "status": {"type": "string", "enum": ["scheduled", "live", "sold_out", "ended", "cancelled"]},
            "server_time": {"type": "string", "format": "date-time"} } },
        "MyFlashState": { "type": "object", "required": ["state"], "properties": {
            "state": {"type": "string", "enum": ["reserved", "waiting", "sold_out", "purchased", "none"]},
            "quantity": {"type": "integer"}, "price_cents": {"type": "integer"},
            "pay_by": {"type": "string", "format": "date-time", "description": "reserved: check out before this."},
            "promoted": {"type": "boolean", "description": "reserved: the hold came from the waitlist."},
            "position": {"type": "integer", "description": "waiting: 1 is next."},
            "wait_until": {"type": "string", "format": "date-time", "description": "waiting: after this, sold_out."} } },
        "FlashLive": { "type": "object", "properties": {
            "sale_id": {"type": "string", "format": "uuid"}, "status": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
            "remaining": {"type": "integer"}, "reservations_per_s": {"type": "number"}, "orders_per_s": {"type": "number"},
            "rejections_per_s": {"type": "number"}, "waitlist": {"type": "integer"}, "promotions": {"type": "integer"},
            "reserve_p50_ms": {"type": "number"}, "reserve_p99_ms": {"type": "number"},
            "sold": {"type": "integer"}, "oversold": {"type": "integer", "description": "From PostgreSQL: always 0."} } }
    });
    for (path, item) in paths.as_object().into_iter().flatten() {
        doc["paths"][path] = item.clone();
    }
    for (name, schema) in schemas.as_object().into_iter().flatten() {
        doc["components"]["schemas"][name] = schema.clone();
    }
}
