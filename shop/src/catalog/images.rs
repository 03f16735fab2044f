//! Generated product images. The demo catalog has no photographs, so each
//! product's images are drawn as SVG from its record: stable for a given
//! product and view, different across products, readable as a placeholder.
//! URLs carry a version segment so the server can mark them immutable.

use uuid::Uuid;

use super::record::ProductRecord;

/// Bumped whenever the drawing changes, so cached copies are never stale.
pub const IMAGE_VERSION: &str = "v1";
pub const IMAGE_SIZE: i32 = 800;

pub fn url(product: Uuid, position: i32) -> String {
    format!("/images/products/{product}/{IMAGE_VERSION}/{position}.svg")
}

/// Draws view `position` of `product`; `None` when it has no such image.
pub fn render(product: &ProductRecord, position: usize) -> Option<String> {
    product.images.get(position)?;
    let seed = product.id.as_u128() as u64 ^ (position as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let hue = (seed % 360) as u32;
    let hue2 = (hue + 40) % 360;
    let initials: String = product
        .title
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_alphanumeric())
        .take(2)
        .collect::<String>()
        .to_uppercase();
    let brand = escape(&product.brand.name);
    let label = escape(&product.category.name);
    // Each view frames the "product" differently, like a photo set would.
    let shape = match position % 4 {
        0 => r##"<rect x="220" y="200" width="360" height="360" rx="48" fill="#ffffff" fill-opacity="0.92"/>"##.to_owned(),
        1 => r##"<circle cx="400" cy="380" r="190" fill="#ffffff" fill-opacity="0.92"/>"##.to_owned(),
        2 => r##"<rect x="170" y="250" width="460" height="260" rx="130" fill="#ffffff" fill-opacity="0.92"/>"##.to_owned(),
        _ => r##"<path d="M400 170 L620 560 L180 560 Z" fill="#ffffff" fill-opacity="0.92"/>"##.to_owned(),
    };
    Some(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 800 800" role="img" aria-label="{alt}">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl({hue},55%,78%)"/><stop offset="1" stop-color="hsl({hue2},60%,58%)"/></linearGradient></defs>
<rect width="800" height="800" fill="url(#g)"/>
{shape}
<text x="400" y="{text_y}" font-family="Inter,Segoe UI,Helvetica,Arial,sans-serif" font-size="150" font-weight="700" text-anchor="middle" fill="hsl({hue},45%,32%)">{initials}</text>
<text x="400" y="680" font-family="Inter,Segoe UI,Helvetica,Arial,sans-serif" font-size="44" font-weight="600" text-anchor="middle" fill="#ffffff">{brand}</text>
<text x="400" y="730" font-family="Inter,Segoe UI,Helvetica,Arial,sans-serif" font-size="30" text-anchor="middle" fill="#ffffff" fill-opacity="0.85">{label}</text>
</svg>"##,
        size = IMAGE_SIZE,
        alt = escape(&product.images[position].alt),
        text_y = if position % 4 == 3 { 500 } else { 432 },
        initials = escape(&initials),
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
