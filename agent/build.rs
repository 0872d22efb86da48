//! Link step of the static device binary: on musl targets the linker drops
//! the unwind tables nothing reads (`link/no-unwind-tables.ld` says why).
//! Other targets (the host's glibc build for tests, 32-bit ARM with its
//! EHABI tables) link as usual.

fn main() {
    let script = "link/no-unwind-tables.ld";
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/{script}");
    }
}
