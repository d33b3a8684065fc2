//! Rebuilds wscap when its optimisation profile changes: the workspace
//! rustc wrapper (`scripts/rustc-pgo`) reads `pgo/wscap.profdata`, which
//! cargo cannot see on its own. The profile changes speed only.
fn main() {
    println!("cargo::rerun-if-changed=pgo/wscap.profdata");
    println!("cargo::rerun-if-changed=pgo/llvm-major");
    println!("cargo::rerun-if-changed=scripts/rustc-pgo");
}
