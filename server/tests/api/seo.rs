//! What search engines read: robots.txt, the sitemap (every product exactly
//! once, across pages), absolute canonical and Open Graph URLs, and product
//! JSON-LD true to the live price and stock.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::TestApp;

const ORIGIN: &str = "https://shop.example";

async fn app(db: PgPool, products: usize, sitemap_page: usize) -> TestApp {
    TestApp::spawn_seeded_configured(db, products, |config| {
        config.public_url = ORIGIN.to_owned();
        config.sitemap_page_size = sitemap_page;
    })
    .await
}

/// Every `<tag>…</tag>` text in a document, in order.
fn texts<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open).skip(1).map(|rest| rest.split(&close).next().unwrap()).collect()
}

/// The path part of an absolute URL on our public origin.
fn local_path(url: &str) -> &str {
    url.strip_prefix(ORIGIN).unwrap_or_else(|| panic!("{url} is not on {ORIGIN}"))
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn the_sitemap_lists_every_product_exactly_once_across_its_pages(db: PgPool) {
    let app = app(db.clone(), 300, 37).await;

    let robots = app.get("/robots.txt").await;
    assert_eq!(robots.status(), 200);
    let robots = robots.text().await.unwrap();
    assert!(robots.contains(&format!("Sitemap: {ORIGIN}/sitemap.xml")), "{robots}");
    assert!(robots.contains("Disallow: /checkout") && robots.contains("Disallow: /api/"), "{robots}");

    let index = app.get("/sitemap.xml").await;
    assert_eq!(index.status(), 200);
    assert!(index.headers()["content-type"].to_str().unwrap().starts_with("application/xml"));
    let index = index.text().await.unwrap();
    assert!(index.contains("<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">"));
    let pages = texts(&index, "loc");
    // 300 products in pages of 37: nine product pages, and the category pages.
    assert_eq!(pages.len(), 1 + 300usize.div_ceil(37), "{index}");

    let mut listed: Vec<Uuid> = Vec::new();
    let mut categories = BTreeSet::new();
    for page in pages {
        let response = app.get(local_path(page)).await;
        assert_eq!(response.status(), 200, "{page}");
        let xml = response.text().await.unwrap();
        assert!(xml.contains("<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">"));
        let urls = texts(&xml, "loc");
        assert!(urls.len() <= 37, "{page} has {} URLs", urls.len());
        for url in urls {
            let path = local_path(url);
            if let Some(id) = path.strip_prefix("/products/") {
                listed.push(Uuid::try_parse(id).unwrap());
            } else if let Some(slug) = path.strip_prefix("/c/") {
                categories.insert(slug.to_owned());
            } else {
                assert_eq!(path, "/", "{page}");
            }
        }
        for lastmod in texts(&xml, "lastmod") {
            chrono::DateTime::parse_from_rfc3339(lastmod).unwrap_or_else(|e| panic!("{lastmod}: {e}"));
        }
    }
    let products: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM products").fetch_all(&db).await.unwrap();
    let unique: BTreeSet<Uuid> = listed.iter().copied().collect();
    assert_eq!(listed.len(), unique.len(), "a product is listed twice");
    assert_eq!(unique, products.into_iter().collect::<BTreeSet<_>>(), "every product, and nothing else");
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM categories").fetch_all(&db).await.unwrap();
    assert_eq!(categories, slugs.into_iter().collect::<BTreeSet<_>>(), "every category page");

    // A page this server never issued is a 404, not a scan of the table.
    for bad in ["/sitemaps/products-nope-end.xml", "/sitemaps/other.xml"] {
        assert_eq!(app.get(bad).await.status(), 404, "{bad}");
    }
}

/// The page's JSON-LD blocks, parsed.
fn json_ld(html: &str) -> Vec<Value> {
    let blocks: Vec<Value> = html
        .split(r#"<script type="application/ld+json">"#)
        .skip(1)
        .map(|rest| serde_json::from_str(rest.split("</script>").next().unwrap()).expect("JSON-LD parses"))
        .collect();
    assert_eq!(blocks.len(), 1, "one JSON-LD block");
    blocks[0].as_array().expect("a list of items").clone()
}

fn of_type<'a>(items: &'a [Value], kind: &str) -> &'a Value {
    items.iter().find(|i| i["@type"] == kind).unwrap_or_else(|| panic!("no {kind} in {items:?}"))
}

/// An attribute of the first `<tag …>` that carries `marker` (e.g.
/// `rel="canonical"`), in whatever order the renderer wrote its attributes.
fn attribute<'a>(html: &'a str, tag: &str, marker: &str, attr: &str) -> &'a str {
    let element = html
        .split(&format!("<{tag} "))
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap())
        .find(|element| element.contains(marker))
        .unwrap_or_else(|| panic!("no <{tag} {marker}>"));
    element.split(&format!("{attr}=\"")).nth(1).unwrap_or_else(|| panic!("no {attr} in {element}")).split('"').next().unwrap()
}

const CANONICAL: (&str, &str) = ("link", r#"rel="canonical""#);
const OG_URL: (&str, &str) = ("meta", r#"property="og:url""#);
const OG_IMAGE: (&str, &str) = ("meta", r#"property="og:image""#);

fn canonical(html: &str) -> &str {
    attribute(html, CANONICAL.0, CANONICAL.1, "href")
}

fn og(html: &str, which: (&str, &str)) -> String {
    attribute(html, which.0, which.1, "content").to_owned()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn product_json_ld_and_share_urls_are_true_to_the_live_page(db: PgPool) {
    let app = app(db.clone(), 300, 100).await;
    // A rated product with several SKUs, one of them sold out.
    let (product, sold_out): (Uuid, Uuid) = sqlx::query_as(
        r#"SELECT k.product_id, k.id FROM skus k JOIN inventory i ON i.sku_id = k.id JOIN products p ON p.id = k.product_id
           WHERE i.stock_count = 0 AND p.rating_count > 0 AND (SELECT count(*) FROM skus WHERE product_id = k.product_id) > 1
           ORDER BY k.id LIMIT 1"#,
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let url = format!("{ORIGIN}/products/{product}");
    let html = app.get(&format!("/products/{product}")).await.text().await.unwrap();

    assert_eq!(canonical(&html), url);
    assert_eq!(og(&html, OG_URL), url);
    assert!(og(&html, OG_IMAGE).starts_with(&format!("{ORIGIN}/images/products/")));

    let items = json_ld(&html);
    let item = of_type(&items, "Product");
    assert_eq!(item["@context"], "https://schema.org");
    assert_eq!(item["url"], url);
    let (title, rating_sum, rating_count): (String, i64, i32) =
        sqlx::query_as("SELECT title, rating_sum::bigint, rating_count FROM products WHERE id = $1").bind(product).fetch_one(&db).await.unwrap();
    assert_eq!(item["name"], title);
    assert!(item["image"].as_array().is_some_and(|i| !i.is_empty() && i.iter().all(|u| u.as_str().unwrap().starts_with(ORIGIN))));
    assert!(item["brand"]["name"].is_string());
    let rating = &item["aggregateRating"];
    assert_eq!(rating["@type"], "AggregateRating");
    assert_eq!(rating["ratingCount"], rating_count);
    let average = rating_sum as f64 / rating_count as f64;
    assert!((rating["ratingValue"].as_f64().unwrap() - average).abs() <= 0.05, "{rating} vs {average}");

    // One offer per SKU, with the SKU's price and live availability.
    let offers = |items: &[Value]| -> BTreeMap<Uuid, Value> {
        of_type(items, "Product")["offers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (Uuid::try_parse(o["sku"].as_str().unwrap()).unwrap(), o.clone()))
            .collect()
    };
    let skus: Vec<(Uuid, i64, String)> =
        sqlx::query_as("SELECT id, price_cents, currency::text FROM skus WHERE product_id = $1").bind(product).fetch_all(&db).await.unwrap();
    let found = offers(&items);
    assert_eq!(found.keys().copied().collect::<BTreeSet<_>>(), skus.iter().map(|s| s.0).collect::<BTreeSet<_>>());
    for (sku, cents, currency) in &skus {
        let offer = &found[sku];
        assert_eq!(offer["@type"], "Offer");
        assert_eq!(offer["price"], format!("{}.{:02}", cents / 100, cents % 100), "{offer}");
        assert_eq!(offer["priceCurrency"], currency.as_str());
        assert!(offer["availability"].as_str().unwrap().starts_with("https://schema.org/"));
    }
    assert_eq!(found[&sold_out]["availability"], "https://schema.org/OutOfStock");

    let trail = of_type(&items, "BreadcrumbList")["itemListElement"].as_array().unwrap().clone();
    for (i, crumb) in trail.iter().enumerate() {
        assert_eq!(crumb["position"], i + 1);
        assert!(crumb["name"].is_string());
        assert!(crumb["item"].as_str().unwrap().starts_with(ORIGIN));
    }
    assert_eq!(trail.last().unwrap()["item"], url);

    // Restocked and repriced: the next render says so.
    sqlx::query("UPDATE inventory SET stock_count = 3 WHERE sku_id = $1").bind(sold_out).execute(&db).await.unwrap();
    app.shop.inventory().forget_counters().await.unwrap();
    let price = skus.iter().find(|s| s.0 == sold_out).unwrap().1 + 1_001;
    app.shop.catalog().set_prices(product, &[shop::catalog::SkuPrice { sku_id: sold_out, price_cents: price }]).await.unwrap();
    let html = app.get(&format!("/products/{product}")).await.text().await.unwrap();
    let offer = &offers(&json_ld(&html))[&sold_out];
    assert_eq!(offer["availability"], "https://schema.org/LimitedAvailability");
    assert_eq!(offer["price"], format!("{}.{:02}", price / 100, price % 100));
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn home_and_category_pages_have_absolute_canonical_urls(db: PgPool) {
    let app = app(db, 50, 100).await;
    let html = app.get("/").await.text().await.unwrap();
    assert_eq!(canonical(&html), format!("{ORIGIN}/"));
    // A filtered view of a category points at the category itself.
    let html = app.get("/c/electronics?sort=price_asc&rating_min=3").await.text().await.unwrap();
    assert_eq!(canonical(&html), format!("{ORIGIN}/c/electronics"));
    assert_eq!(og(&html, OG_URL), format!("{ORIGIN}/c/electronics"));
}
