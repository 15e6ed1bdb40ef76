//! The runtime image: this very `pipeline` program and the shared libraries
//! it loads, on an empty root filesystem (`FROM scratch`), so it builds with
//! no base image to pull. Built-in steps run in it.
//!
//! Its tag names the program's content hash, so a rebuilt program gets a new
//! image and a step never runs an older engine than the one that planned it.
//!
//! A user's image that runs on AWS Batch gets a *staged* image derived from
//! it ([`ensure_staged`]): the user's image unchanged, plus this program and
//! its libraries under `/opt/pipeline` (started through its own dynamic
//! loader, so the image's libraries are never touched), as the entrypoint.
//! That program lays `/opt/ml` out from the store, starts the image's own
//! entrypoint with `train` (or the step's command), as the image's own user,
//! and stores what it wrote (see `exec::batch::node`).

use std::io::Write;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::{CONTAINER_UID, RUNTIME_PROGRAM};

/// Where Linux distributions keep the CA certificate bundle.
pub const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The repository the runtime image is tagged in.
pub const RUNTIME_REPOSITORY: &str = "pipeline-runtime";

/// The tag of the runtime image for the running program.
pub fn runtime_tag() -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("find the pipeline program: {e}"))?;
    let mut h = blake3::Hasher::new();
    h.update_mmap(&exe)
        .map_err(|e| format!("read {}: {e}", exe.display()))?;
    let hex = h.finalize().to_hex();
    Ok(format!(
        "{RUNTIME_REPOSITORY}:{}-{}",
        env!("CARGO_PKG_VERSION"),
        &hex[..12]
    ))
}

/// The runtime image's tag for the running program, built first when the
/// engine lacks it.
pub async fn ensure_runtime(
    docker: &Docker,
    log: &(dyn Fn(&str) + Sync),
) -> Result<String, String> {
    let tag = runtime_tag()?;
    if docker.inspect_image(&tag).await.is_err() {
        build_runtime(docker, &tag, None, log).await?;
    }
    Ok(tag)
}

/// Builds the runtime image as `tag` (and `extra_tag`), printing the
/// builder's progress through `log`.
pub async fn build_runtime(
    docker: &Docker,
    tag: &str,
    extra_tag: Option<&str>,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("find the pipeline program: {e}"))?;
    let libs = shared_libraries(&exe)?;
    let context = build_context(&exe, &libs)?;
    log(&format!(
        "building {tag}: {} and {} shared librar{} ({:.1} MB)",
        exe.display(),
        libs.len(),
        if libs.len() == 1 { "y" } else { "ies" },
        context.len() as f64 / 1e6
    ));
    build(docker, context, tag, log).await?;
    if let Some(extra) = extra_tag {
        let (repo, t) = extra.rsplit_once(':').unwrap_or((extra, "latest"));
        let opts = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repo)
            .tag(t)
            .build();
        docker
            .tag_image(tag, Some(opts))
            .await
            .map_err(|e| format!("tag {tag} as {extra}: {e}"))?;
    }
    Ok(())
}

/// Sends a build context to the engine and follows the build to its end.
pub async fn build(
    docker: &Docker,
    context: Vec<u8>,
    tag: &str,
    log: &(dyn Fn(&str) + Sync),
) -> Result<(), String> {
    let opts = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(
        opts,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| format!("build {tag}: {e}"))?;
        if let Some(detail) = info.error_detail {
            return Err(format!(
                "build {tag}: {}",
                detail.message.unwrap_or_default()
            ));
        }
        if let Some(s) = info.stream {
            for l in s.lines().filter(|l| !l.trim().is_empty()) {
                log(l.trim_end());
            }
        }
    }
    Ok(())
}

/// The repository staged images are tagged in.
pub const STAGED_REPOSITORY: &str = "pipeline-staged";
/// Where a staged image keeps this program, its libraries and its scratch space.
pub const STAGED_HOME: &str = "/opt/pipeline";

/// A user's image made ready for AWS Batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The staged image's local tag.
    pub tag: String,
    /// The words the job's command starts with to reach this program
    /// (the staged image's entrypoint is empty: a job definition's command
    /// replaces only the image's CMD).
    pub program: Vec<String>,
    /// What the user's image starts with (its ENTRYPOINT), before `train`
    /// or the step's command, as `docker run IMAGE train` would run it.
    pub entrypoint: Vec<String>,
}

/// The staged image of `image` for the running program, built when the
/// engine lacks it. `image` must be on this Docker Engine (never pulled).
pub async fn ensure_staged(
    docker: &Docker,
    image: &str,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Staged, String> {
    let info = docker.inspect_image(image).await.map_err(|_| {
        format!(
            "the image `{image}` is not on this Docker Engine, and images are never pulled: build it first (`docker build -t {image} DIR`)"
        )
    })?;
    let id = info
        .id
        .clone()
        .ok_or_else(|| format!("the Docker Engine gave no ID for the image `{image}`"))?;
    let config = info.config.unwrap_or_default();
    let entrypoint = config.entrypoint.unwrap_or_default();
    let user = config.user.unwrap_or_default();
    let exe = std::env::current_exe().map_err(|e| format!("find the pipeline program: {e}"))?;
    let libs = shared_libraries(&exe)?;
    let runtime = runtime_tag()?;
    let own = runtime.rsplit('-').next().unwrap_or_default();
    let short = id.trim_start_matches("sha256:");
    let tag = format!(
        "{STAGED_REPOSITORY}:{}-{own}",
        &short[..short.len().min(12)]
    );
    let program = staged_program(&libs);
    let staged = Staged {
        tag: tag.clone(),
        program: program.clone(),
        entrypoint,
    };
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(staged);
    }
    let context = staged_context(&exe, &libs, &id, &user)?;
    log(&format!(
        "building {tag}: the image {image} ({}) with {} added under {STAGED_HOME} ({:.1} MB)",
        &short[..short.len().min(12)],
        exe.display(),
        context.len() as f64 / 1e6
    ));
    build(docker, context, &tag, log).await?;
    Ok(staged)
}

/// How a staged image starts this program: through the loader it was linked
/// against, with the libraries beside it (a static program needs neither).
fn staged_program(libs: &[PathBuf]) -> Vec<String> {
    let program = format!("{STAGED_HOME}/bin/pipeline");
    match libs.iter().find(|l| is_loader(l)) {
        Some(loader) => vec![
            format!(
                "{STAGED_HOME}/lib/{}",
                loader.file_name().unwrap_or_default().to_string_lossy()
            ),
            "--library-path".into(),
            format!("{STAGED_HOME}/lib"),
            program,
        ],
        None => vec![program],
    }
}

fn is_loader(lib: &Path) -> bool {
    lib.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("ld-"))
}

/// The build context of a staged image: the user's image by its ID, this
/// program, its libraries and the CA certificates under [`STAGED_HOME`],
/// and `/opt/ml` and a scratch directory owned by the image's own user.
fn staged_context(exe: &Path, libs: &[PathBuf], id: &str, user: &str) -> Result<Vec<u8>, String> {
    let fail = |what: &str, e: std::io::Error| format!("pack the staged image ({what}): {e}");
    let mut tar = Tar::new();
    let chown = if user.is_empty() {
        String::new()
    } else {
        format!("--chown={user} ")
    };
    let dockerfile = format!(
        "FROM {id}
         COPY home/ {STAGED_HOME}/
         COPY {chown}ml/ /opt/ml/
         COPY {chown}scratch/ {STAGED_HOME}/tmp/
         LABEL org.pipeline.staged-from=\"{id}\" org.pipeline.runtime=\"{}\"
         ENTRYPOINT []
         CMD []
",
        env!("CARGO_PKG_VERSION")
    );
    tar.file("Dockerfile", 0o644, dockerfile.as_bytes())
        .map_err(|e| fail("Dockerfile", e))?;
    tar.dir("ml", 0o755).map_err(|e| fail("/opt/ml", e))?;
    tar.dir("scratch", 0o700).map_err(|e| fail("scratch", e))?;
    if let Some(ca) = CA_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
        let data = std::fs::read(ca).map_err(|e| fail(ca, e))?;
        tar.file("home/certs/ca-certificates.crt", 0o644, &data)
            .map_err(|e| fail(ca, e))?;
    }
    let program = std::fs::read(exe).map_err(|e| fail(&exe.display().to_string(), e))?;
    tar.file("home/bin/pipeline", 0o755, &program)
        .map_err(|e| fail("the program", e))?;
    for lib in libs {
        let data = std::fs::read(lib).map_err(|e| fail(&lib.display().to_string(), e))?;
        let name = lib.file_name().unwrap_or_default().to_string_lossy();
        tar.file(&format!("home/lib/{name}"), 0o755, &data)
            .map_err(|e| fail(&lib.display().to_string(), e))?;
    }
    tar.finish().map_err(|e| fail("finish", e))
}

/// A build context being packed, with deterministic headers.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        Tar(b)
    }
    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        self.0.append_data(&mut h, path, data)
    }
    fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(mode);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_cksum();
        self.0.append_data(&mut h, path, std::io::empty())
    }
    fn finish(self) -> std::io::Result<Vec<u8>> {
        let mut bytes = self.0.into_inner()?;
        bytes.flush().ok();
        Ok(bytes)
    }
}

/// The shared libraries `exe` loads (its dynamic loader included), as
/// `ldd` resolves them on this machine.
fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>, String> {
    let out = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| {
            format!(
                "run ldd to find the libraries {} needs: {e} (is libc-bin installed?)",
                exe.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static program needs nothing.
        if text.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(vec![]);
        }
        return Err(format!(
            "ldd {}: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_ldd(&text))
}

/// The absolute paths in `ldd` output: `name => /path (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`; the kernel's vDSO has none.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    libs.sort();
    libs.dedup();
    libs
}

/// The build context: a Dockerfile and the root filesystem, as a tar.
fn build_context(exe: &Path, libs: &[PathBuf]) -> Result<Vec<u8>, String> {
    let fail = |what: &str, e: std::io::Error| format!("pack the runtime image ({what}): {e}");
    let mut tar = Tar::new();
    let dockerfile = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         COPY --chown={CONTAINER_UID}:{CONTAINER_UID} ml/ /opt/ml/\n\
         ENV PATH=/usr/local/bin\n\
         WORKDIR /opt/ml\n\
         USER {CONTAINER_UID}:{CONTAINER_UID}\n\
         LABEL org.pipeline.runtime=\"{}\"\n\
         CMD [\"{RUNTIME_PROGRAM}\", \"--help\"]\n",
        env!("CARGO_PKG_VERSION")
    );
    tar.file("Dockerfile", 0o644, dockerfile.as_bytes())
        .map_err(|e| fail("Dockerfile", e))?;
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\npipeline:x:{CONTAINER_UID}:{CONTAINER_UID}:pipeline:/opt/ml:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\npipeline:x:{CONTAINER_UID}:\n");
    tar.file("rootfs/etc/passwd", 0o644, passwd.as_bytes())
        .map_err(|e| fail("passwd", e))?;
    tar.file("rootfs/etc/group", 0o644, group.as_bytes())
        .map_err(|e| fail("group", e))?;
    tar.dir("rootfs/tmp", 0o1777).map_err(|e| fail("tmp", e))?;
    // The container's user owns /opt/ml (COPY --chown: COPY itself makes
    // everything root's): a batch job lays the step out there itself (on
    // docker, the step's directories are mounted over it).
    tar.dir("ml", 0o755).map_err(|e| fail("/opt/ml", e))?;
    // This machine's CA certificates, for HTTPS to AWS from a batch job.
    if let Some(ca) = CA_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
        let data = std::fs::read(ca).map_err(|e| fail(ca, e))?;
        tar.file("rootfs/etc/ssl/certs/ca-certificates.crt", 0o644, &data)
            .map_err(|e| fail(ca, e))?;
    }
    let program = std::fs::read(exe).map_err(|e| fail(&exe.display().to_string(), e))?;
    tar.file(&format!("rootfs{RUNTIME_PROGRAM}"), 0o755, &program)
        .map_err(|e| fail("the program", e))?;
    for lib in libs {
        // The library's content at the path the loader looks for it.
        let data = std::fs::read(lib).map_err(|e| fail(&lib.display().to_string(), e))?;
        tar.file(&format!("rootfs{}", lib.display()), 0o755, &data)
            .map_err(|e| fail(&lib.display().to_string(), e))?;
    }
    tar.finish().map_err(|e| fail("finish", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_image_starts_the_program_through_its_own_loader() {
        let libs = [
            PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
            PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
        ];
        assert_eq!(
            staged_program(&libs),
            [
                "/opt/pipeline/lib/ld-linux-x86-64.so.2",
                "--library-path",
                "/opt/pipeline/lib",
                "/opt/pipeline/bin/pipeline"
            ]
        );
        assert_eq!(staged_program(&[]), ["/opt/pipeline/bin/pipeline"]);
    }

    #[test]
    fn ldd_output_gives_the_absolute_paths_only() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f96)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f96)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f96)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
