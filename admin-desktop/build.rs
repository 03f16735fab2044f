fn main() {
    // tauri's codegen embeds `frontendDist` and panics when it is missing.
    // `cargo xtask desktop|test` builds the real UI there first; a bare
    // `cargo check` gets a page that says so, and the end-to-end tests wait
    // for a marker only the real UI sets, so the placeholder fails loudly.
    let dist = std::path::Path::new("dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(dist).expect("create admin-desktop/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>Mercato Seller</title><p>The UI is not built: run <code>cargo xtask desktop</code>.</p>",
        )
        .expect("write the placeholder page");
        println!("cargo:warning=admin-desktop/dist was empty: a placeholder page is embedded; run `cargo xtask desktop`");
    }
    println!("cargo:rerun-if-changed=dist");
    tauri_build::build()
}
