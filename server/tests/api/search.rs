//! Search quality on the seeded catalog: typos, prefixes, facet counts that
//! equal SQL counts over the same filters, sorting, paging, and user text
//! that cannot inject query syntax.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::TestApp;

async fn search(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/api/v1/products?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn titles(page: &Value) -> Vec<String> {
    page["hits"].as_array().unwrap().iter().map(|h| h["title"].as_str().unwrap().to_owned()).collect()
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn typos_are_forgiven(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 3_000).await;
    for (typo, word) in [("headphnoes", "Headphones"), ("keybaord", "Keyboard"), ("espreso", "Espresso"), ("sneakres", "Sneakers")] {
        let page = search(&app, &format!("q={typo}")).await;
        let titles = titles(&page);
        assert!(!titles.is_empty(), "{typo} finds something");
        assert!(titles.iter().all(|t| t.contains(word)), "{typo} → {titles:?}");
        let exact = search(&app, &format!("q={}", word.to_lowercase())).await;
        assert_eq!(page["total"], exact["total"], "{typo} finds what {word} finds");
    }
    // A brand name with its letters swapped.
    let brand: String = sqlx::query_scalar("SELECT b.name FROM brands b JOIN products p ON p.brand_id = b.id WHERE length(b.name) BETWEEN 5 AND 8 ORDER BY b.name LIMIT 1")
        .fetch_one(&db)
        .await
        .unwrap();
    let mut chars: Vec<char> = brand.to_lowercase().chars().collect();
    chars.swap(2, 3);
    let typo: String = chars.into_iter().collect();
    let page = search(&app, &format!("q={typo}")).await;
    assert!(titles(&page).iter().any(|t| t.starts_with(&brand)), "{typo} finds {brand}");
    // Short words must match exactly: no typo budget below five letters.
    assert_eq!(search(&app, "q=qzxw").await["total"], 0);
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn prefixes_match_as_you_type(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 2_000).await;
    let page = search(&app, "q=headph").await;
    assert!(titles(&page).iter().all(|t| t.contains("Headphones")) && page["total"].as_u64().unwrap() > 0);
    let response = app.get("/api/v1/search/suggest?q=espres").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let suggestions = body["suggestions"].as_array().unwrap();
    assert!(!suggestions.is_empty() && suggestions.len() <= 8);
    assert!(suggestions.iter().all(|s| s["title"].as_str().unwrap().contains("Espresso")), "{suggestions:?}");
    let short: Value = app.get("/api/v1/search/suggest?q=e").await.json().await.unwrap();
    assert_eq!(short["suggestions"].as_array().unwrap().len(), 0, "one letter suggests nothing");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn facet_counts_equal_sql_counts_under_the_other_filters(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 3_000).await;
    let brand: String = sqlx::query_scalar(
        "SELECT b.name FROM products p JOIN brands b ON b.id = p.brand_id JOIN categories c ON c.id = p.category_id JOIN categories d ON d.id = c.parent_id WHERE d.slug = 'electronics' GROUP BY b.name ORDER BY count(*) DESC, b.name LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let query = format!("category=electronics&brand={brand}&price_min=50&rating_min=3&in_stock=true&per_page=48");
    let page = search(&app, &query).await;

    // Every filter, each switchable off, as SQL.
    let sql = |brand_f: bool, category_f: bool, price_f: bool, rating_f: bool, group: &str| {
        format!(
            r#"SELECT {group}, count(*) FROM products p
               JOIN brands b ON b.id = p.brand_id
               JOIN categories c ON c.id = p.category_id
               LEFT JOIN categories d ON d.id = c.parent_id
               WHERE EXISTS (SELECT 1 FROM skus k JOIN inventory i ON i.sku_id = k.id WHERE k.product_id = p.id AND i.stock_count > i.reserved)
                 {} {} {} {}
               GROUP BY 1"#,
            if brand_f { "AND b.name = $1" } else { "AND $1::text IS NOT NULL" },
            if category_f { "AND (c.slug = 'electronics' OR d.slug = 'electronics')" } else { "" },
            if price_f { "AND p.min_price_cents >= 5000" } else { "" },
            if rating_f { "AND p.rating_avg >= 3" } else { "" },
        )
    };
    let counts = |rows: Vec<(String, i64)>| rows.into_iter().map(|(k, v)| (k, v as u64)).collect::<BTreeMap<_, _>>();

    let total: Vec<(String, i64)> = sqlx::query_as(&sql(true, true, true, true, "'all'")).bind(&brand).fetch_all(&db).await.unwrap();
    assert_eq!(page["total"].as_u64().unwrap(), total.first().map(|r| r.1 as u64).unwrap_or(0));
    assert!(page["total"].as_u64().unwrap() > 0, "the filters leave something to count");

    let brands: Vec<(String, i64)> = sqlx::query_as(&sql(false, true, true, true, "b.name")).bind(&brand).fetch_all(&db).await.unwrap();
    let got: BTreeMap<String, u64> = serde_json::from_value(page["facets"]["brand"].clone()).unwrap();
    assert_eq!(got, counts(brands), "brand facet ignores the brand filter only");

    let leaves: Vec<(String, i64)> = sqlx::query_as(&sql(true, false, true, true, "c.slug")).bind(&brand).fetch_all(&db).await.unwrap();
    let departments: Vec<(String, i64)> = sqlx::query_as(&sql(true, false, true, true, "d.slug")).bind(&brand).fetch_all(&db).await.unwrap();
    let mut expected = counts(leaves);
    expected.extend(counts(departments));
    let got: BTreeMap<String, u64> = serde_json::from_value(page["facets"]["category"].clone()).unwrap();
    assert_eq!(got, expected, "category facet counts leaves and departments");

    let buckets: Vec<(String, i64)> = sqlx::query_as(&sql(true, true, false, true,
        "(CASE WHEN p.min_price_cents < 2500 THEN 0 WHEN p.min_price_cents < 5000 THEN 1 WHEN p.min_price_cents < 10000 THEN 2 WHEN p.min_price_cents < 25000 THEN 3 WHEN p.min_price_cents < 50000 THEN 4 WHEN p.min_price_cents < 100000 THEN 5 ELSE 6 END)::text"))
        .bind(&brand).fetch_all(&db).await.unwrap();
    let expected = counts(buckets);
    for (i, bucket) in page["facets"]["price"].as_array().unwrap().iter().enumerate() {
        assert_eq!(bucket["count"].as_u64().unwrap(), expected.get(&i.to_string()).copied().unwrap_or(0), "price bucket {i}");
    }

    for r in 1..=4 {
        let expected: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM ({}) x",
            sql(true, true, true, false, "p.id").replace("GROUP BY 1", &format!("AND p.rating_avg >= {r} GROUP BY 1"))
        ))
        .bind(&brand)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(page["facets"]["rating"][r.to_string()].as_u64().unwrap(), expected as u64, "rating {r}+");
    }
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn sorting_and_paging_are_consistent(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 1_000).await;
    let prices = |page: &Value| page["hits"].as_array().unwrap().iter().map(|h| h["price_cents"].as_i64().unwrap()).collect::<Vec<_>>();
    let asc = prices(&search(&app, "sort=price_asc&per_page=48").await);
    assert!(asc.windows(2).all(|w| w[0] <= w[1]), "{asc:?}");
    let desc = prices(&search(&app, "q=pro&sort=price_desc&per_page=48").await);
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");
    let rated = search(&app, "sort=rating&per_page=48").await;
    let ratings: Vec<f64> = rated["hits"].as_array().unwrap().iter().map(|h| h["rating_avg"].as_f64().unwrap()).collect();
    assert!(ratings.windows(2).all(|w| w[0] >= w[1]));

    let page1 = search(&app, "q=pro&page=1&per_page=10").await;
    let page2 = search(&app, "q=pro&page=2&per_page=10").await;
    assert_eq!(page1["total"], page2["total"]);
    let ids = |p: &Value| p["hits"].as_array().unwrap().iter().map(|h| h["id"].clone()).collect::<Vec<_>>();
    assert!(ids(&page1).iter().all(|id| !ids(&page2).contains(id)), "pages do not overlap");
    let all = search(&app, "q=pro&per_page=20").await;
    assert_eq!([ids(&page1), ids(&page2)].concat(), ids(&all), "two pages of ten are the first twenty");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn user_text_cannot_inject_query_syntax(db: PgPool) {
    let app = TestApp::spawn_seeded(db, 1_000).await;
    for q in [
        "title:headphones",
        "* OR 1=1",
        "\"unterminated",
        "(a AND b",
        "brand:\"x\" OR brand = \"y\"",
        "\\",
        "headphones~2",
        "ä ö ü 😀",
    ] {
        let encoded = model::query::encode_component(q);
        let response = app.get(&format!("/api/v1/products?q={encoded}")).await;
        assert_eq!(response.status(), 200, "{q}");
        let response = app.get(&format!("/api/v1/search/suggest?q={encoded}")).await;
        assert_eq!(response.status(), 200, "{q}");
    }
    // Field syntax is not interpreted: "title:x" searches for both words, and
    // no product mentions "title".
    assert!(search(&app, "q=headphones").await["total"].as_u64().unwrap() > 0);
    assert_eq!(search(&app, "q=title%3Aheadphones").await["total"], 0);
    let page = search(&app, &format!("brand={}", model::query::encode_component("x\" OR brand != \"y"))).await;
    assert_eq!(page["total"], 0, "a brand value stays one value");
}

#[sqlx::test(migrator = "shop::db::MIGRATOR")]
async fn changes_made_by_another_process_reach_the_index(db: PgPool) {
    let app = TestApp::spawn_seeded(db.clone(), 200).await;
    // Another replica (or a script) renames a product behind this process's back.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM products ORDER BY id LIMIT 1").fetch_one(&db).await.unwrap();
    sqlx::query("UPDATE products SET title = 'Zyzzogeton Field Lantern', updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&db)
        .await
        .unwrap();
    let mut found = Value::Null;
    for _ in 0..50 {
        found = search(&app, "q=zyzzogeton").await;
        if found["total"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(found["total"], 1, "the sync worker re-indexed the renamed product");
    assert_eq!(found["hits"][0]["id"], id.to_string());
}
