//! Compiles this crate, and only this crate, with `--cfg loom`, so the real
//! source it includes from `../hdrtrace/src` maps its atomics, `Arc`, `UnsafeCell` and
//! `ArcCell` to loom's (see `src/sync.rs` of the main crate).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(loom)");
    println!("cargo:rustc-cfg=loom");
    println!("cargo:rerun-if-changed=build.rs");
}
