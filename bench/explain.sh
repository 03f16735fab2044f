#!/usr/bin/env bash
# EXPLAIN ANALYZE for the catalog's hot queries on the benchmark database
# (bench/catalog-read.sh seeds it). Shows which index each one uses.
set -euo pipefail
DB=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mercato_bench}
q() { echo; echo "-- $1"; psql "$DB" -X -qAt -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) $2"; }
ids=$(psql "$DB" -tAc "SELECT string_agg(quote_literal(id), ',') FROM (SELECT id FROM products ORDER BY md5(id::text) LIMIT 24) x")
skus=$(psql "$DB" -tAc "SELECT string_agg(quote_literal(id), ',') FROM (SELECT id FROM skus ORDER BY md5(id::text) LIMIT 60) x")
dept=$(psql "$DB" -tAc "SELECT quote_literal(id) FROM categories WHERE slug = 'electronics'")

q "cache miss: product records for a page of 24 ids (shop::catalog::record::load_json, abridged to its joins)" \
  "SELECT p.id, b.name, c.slug, s.name,
          (SELECT jsonb_agg(k.id ORDER BY k.position) FROM skus k WHERE k.product_id = p.id),
          (SELECT jsonb_agg(i.url ORDER BY i.position) FROM product_images i WHERE i.product_id = p.id)
   FROM products p JOIN brands b ON b.id = p.brand_id JOIN categories c ON c.id = p.category_id
   LEFT JOIN categories d ON d.id = c.parent_id JOIN sellers s ON s.id = p.seller_id
   WHERE p.id = ANY(ARRAY[$ids]::uuid[])"

q "stock counters cold: 60 SKUs (shop::inventory::load_from_db)" \
  "SELECT sku_id, stock_count - reserved FROM inventory WHERE sku_id = ANY(ARRAY[$skus]::uuid[])"

q "category page, department, price ascending, page 1 (shop::catalog::browse)" \
  "SELECT p.id FROM products p WHERE p.department_id = $dept::uuid
   ORDER BY p.min_price_cents, p.id LIMIT 25"

q "category page, department, rating (mixed directions), filtered by brand and price" \
  "SELECT p.id FROM products p WHERE p.department_id = $dept::uuid
     AND p.brand_id IN (SELECT id FROM brands WHERE name = ANY(ARRAY['Calic','Soltra']))
     AND p.min_price_cents BETWEEN 5000 AND 50000
   ORDER BY p.rating_avg DESC, p.id LIMIT 25"

q "category page, department, price ascending, deep page by cursor" \
  "SELECT p.id FROM products p WHERE p.department_id = $dept::uuid
     AND (p.min_price_cents, p.id) > (50000, '00000000-0000-0000-0000-000000000000')
   ORDER BY p.min_price_cents, p.id LIMIT 25"

q "category page, leaf, newest, in stock only" \
  "SELECT p.id FROM products p WHERE p.category_id = (SELECT id FROM categories WHERE slug = 'audio')
     AND EXISTS (SELECT 1 FROM skus k JOIN inventory i ON i.sku_id = k.id WHERE k.product_id = p.id AND i.stock_count > i.reserved)
   ORDER BY p.created_at DESC, p.id DESC LIMIT 25"

q "home page: new arrivals" "SELECT id FROM products ORDER BY created_at DESC, id DESC LIMIT 8"
