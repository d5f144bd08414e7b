//! Compiles the kernel-side probes (bpf/probes.c) with clang-19 into OUT_DIR/probes.o, and the
//! host-side layout table (bpf/layout.c) that the ABI test compares with the Rust mirrors.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLANG: &str = "clang-19";
const STRIP: &str = "llvm-strip-19";
const INSTALL_HINT: &str = "apt-get install clang-19 llvm-19 libbpf-dev";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bpf_dir = manifest_dir.join("bpf");
    for file in ["probes.c", "empty.c", "notify.h", "maps.h", "layout.c"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(file).display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    check_clang();
    compile_bpf(&bpf_dir, "probes.c", &out_dir.join("probes.o"));
    compile_bpf(&bpf_dir, "empty.c", &out_dir.join("empty.o"));

    cc::Build::new()
        .file(bpf_dir.join("layout.c"))
        .include(&bpf_dir)
        .warnings(true)
        .extra_warnings(true)
        .compile("periscope_layout");
}

fn check_clang() {
    match Command::new(CLANG).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{CLANG} --version failed ({}): the eBPF probes need clang-19 with the BPF target; install it with `{INSTALL_HINT}`",
            out.status
        ),
        Err(err) => panic!(
            "{CLANG} not found ({err}): the eBPF probes are compiled with clang-19; install it with `{INSTALL_HINT}`"
        ),
    }
}

fn compile_bpf(bpf_dir: &Path, source: &str, object: &Path) {
    let mut cmd = Command::new(CLANG);
    cmd.args([
        "-O2", "-g", "-target", "bpf", "-Wall", "-Wextra", "-Werror", "-c",
    ])
    .arg("-I")
    .arg(bpf_dir);
    // <linux/bpf.h> pulls <asm/types.h>, which Debian keeps under the host's multiarch dir.
    if let Some(multiarch) = multiarch_include() {
        cmd.arg("-I").arg(multiarch);
    }
    cmd.arg(bpf_dir.join(source)).arg("-o").arg(object);
    let status = cmd
        .status()
        .unwrap_or_else(|err| panic!("running {CLANG}: {err}"));
    if !status.success() {
        panic!(
            "{CLANG} failed to compile bpf/{source} ({status}); it needs the kernel and libbpf headers: `{INSTALL_HINT}`"
        );
    }

    // DWARF is only for humans; BTF (kept by --strip-debug) is what the loader needs.
    match Command::new(STRIP)
        .arg("--strip-debug")
        .arg(object)
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => println!("cargo:warning={STRIP} failed ({status}); {source} keeps its DWARF"),
        Err(err) => println!("cargo:warning={STRIP} not found ({err}); {source} keeps its DWARF"),
    }
}

fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => return None,
    };
    let dir = Path::new("/usr/include").join(triple);
    dir.is_dir().then_some(dir)
}
