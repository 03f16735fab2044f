//! What search engines and link previews read: absolute URLs on the shop's
//! public origin, and a product's structured data (schema.org JSON-LD).

use leptos::prelude::*;
use model::{Availability, Product};
use serde_json::{json, Value};

/// The origin shoppers reach the shop at (`MERCATO_PUBLIC_URL`), without a
/// trailing slash. The server provides it per request; the shell writes it
/// into a meta tag so the browser renders the very same links on hydration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(pub String);

pub const PUBLIC_URL_META: &str = "mercato:public-url";

impl PublicUrl {
    pub fn current() -> String {
        #[cfg(feature = "ssr")]
        {
            use_context::<PublicUrl>().map(|p| p.0).unwrap_or_default()
        }
        #[cfg(not(feature = "ssr"))]
        {
            document()
                .query_selector(&format!("meta[name=\"{PUBLIC_URL_META}\"]"))
                .ok()
                .flatten()
                .and_then(|meta| meta.get_attribute("content"))
                .unwrap_or_default()
        }
    }

    /// `path` (starting with `/`) on the public origin; absolute URLs pass through.
    pub fn absolute(path: &str) -> String {
        absolute_on(&Self::current(), path)
    }
}

fn absolute_on(origin: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        path.to_owned()
    } else {
        format!("{origin}{path}")
    }
}

/// Cents as the decimal amount schema.org and Open Graph expect ("12.50").
pub fn decimal_amount(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

fn availability_url(availability: Availability) -> &'static str {
    match availability {
        Availability::InStock => "https://schema.org/InStock",
        Availability::LowStock => "https://schema.org/LimitedAvailability",
        Availability::OutOfStock => "https://schema.org/OutOfStock",
    }
}

/// The product page's JSON-LD: a `Product` with one `Offer` per SKU (price
/// and availability as the page renders them, from live stock), its
/// `AggregateRating` once it has ratings (schema.org forbids a count of 0),
/// and the page's `BreadcrumbList`.
pub fn product_json_ld(origin: &str, product: &Product) -> Value {
    let url = absolute_on(origin, &format!("/products/{}", product.id));
    let offers: Vec<Value> = product
        .skus
        .iter()
        .map(|sku| {
            json!({
                "@type": "Offer",
                "sku": sku.sku_id.to_string(),
                "url": format!("{url}?sku={}", sku.sku_id),
                "price": decimal_amount(sku.price_cents),
                "priceCurrency": sku.currency,
                "availability": availability_url(sku.availability),
                "itemCondition": "https://schema.org/NewCondition",
                "seller": { "@type": "Organization", "name": product.seller.name },
            })
        })
        .collect();
    let mut item = json!({
        "@context": "https://schema.org",
        "@type": "Product",
        "@id": format!("{url}#product"),
        "url": url,
        "name": product.title,
        "description": product.description,
        "image": product.images.iter().map(|i| absolute_on(origin, &i.url)).collect::<Vec<_>>(),
        "brand": { "@type": "Brand", "name": product.brand.name },
        "category": product.category.name,
        "offers": offers,
    });
    if let Some(sku) = product.default_sku() {
        item["sku"] = json!(sku.sku_id.to_string());
    }
    if product.rating_count > 0 {
        item["aggregateRating"] = json!({
            "@type": "AggregateRating",
            "ratingValue": (product.rating_avg * 10.0).round() / 10.0,
            "ratingCount": product.rating_count,
            "bestRating": 5,
            "worstRating": 1,
        });
    }
    let mut trail = vec![("Home".to_owned(), absolute_on(origin, "/"))];
    if let Some(department) = &product.department {
        trail.push((department.name.clone(), absolute_on(origin, &format!("/c/{}", department.slug))));
    }
    trail.push((product.category.name.clone(), absolute_on(origin, &format!("/c/{}", product.category.slug))));
    trail.push((product.title.clone(), url));
    let breadcrumbs = json!({
        "@context": "https://schema.org",
        "@type": "BreadcrumbList",
        "itemListElement": trail.into_iter().enumerate().map(|(i, (name, item))| json!({
            "@type": "ListItem", "position": i + 1, "name": name, "item": item,
        })).collect::<Vec<_>>(),
    });
    json!([item, breadcrumbs])
}

/// JSON for inside a `<script>` element: `<`, `>` and `&` escaped as JSON
/// escapes, so a product title can never close the script.
pub fn script_json(value: &Value) -> String {
    value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// The structured data block for a page.
#[component]
pub fn JsonLd(data: Value) -> impl IntoView {
    view! { <script type="application/ld+json" inner_html=script_json(&data)></script> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_decimal_strings() {
        assert_eq!(decimal_amount(1250), "12.50");
        assert_eq!(decimal_amount(5), "0.05");
        assert_eq!(decimal_amount(-5), "-0.05");
    }

    #[test]
    fn a_title_cannot_close_the_script() {
        let out = script_json(&json!({ "name": "</script><b>&" }));
        assert!(!out.contains('<') && !out.contains('>') && !out.contains('&'), "{out}");
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["name"], "</script><b>&");
    }

    #[test]
    fn relative_paths_become_absolute_on_the_origin() {
        assert_eq!(absolute_on("https://shop.example", "/images/a.svg"), "https://shop.example/images/a.svg");
        assert_eq!(absolute_on("https://shop.example", "https://cdn.example/a.svg"), "https://cdn.example/a.svg");
    }
}
