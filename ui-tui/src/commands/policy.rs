//! `periscope policy apply|delete|get`: edits the live policy of a running local datapath
//! through its pinned maps, like `cilium policy import|delete|get`. The applied policies are kept
//! in the cluster's state dir, so they survive an agent restart and every apply compiles the
//! whole set: an invalid file changes nothing.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use periscope_datapath::cluster::Cluster;
use periscope_datapath::enforce::{self, PinnedPolicyMaps};
use periscope_datapath::policy::ChangeSet;

use crate::cli::{PolicyArgs, PolicyCommand};

fn cluster(prefix: &str, state_root: &Path) -> Result<Cluster> {
    Cluster::load(prefix, state_root)?
        .ok_or_else(|| anyhow!("no local cluster {prefix:?} (start one with `periscope demo` or `periscope cluster up`)"))
}

/// Compiles `text` together with the applied policies, loads the result into the live maps of
/// datapath `instance`, and saves it. Nothing changes if any step before the map sync fails.
pub fn apply_text(c: &Cluster, instance: &str, text: &str, file: &str) -> Result<ChangeSet> {
    let mut repo = enforce::load_repository(c)?;
    let changes = repo.apply_text(text, file)?;
    PinnedPolicyMaps::open(instance)?
        .sync(repo.resolved())
        .context("updating the datapath")?;
    enforce::save_repository(c, &repo)?;
    Ok(changes)
}

fn summary(verb: &str, ch: &ChangeSet) -> String {
    let names = |v: &[periscope_datapath::policy::PolicyKey]| {
        v.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    for (what, list) in [
        ("added", &ch.added),
        ("updated", &ch.updated),
        ("unchanged", &ch.unchanged),
        ("deleted", &ch.deleted),
    ] {
        if !list.is_empty() {
            parts.push(format!("{what}: {}", names(list)));
        }
    }
    format!(
        "{verb} (revision {}): {}; {} endpoint(s) regenerated",
        ch.revision,
        parts.join("; "),
        ch.endpoints.len()
    )
}

pub fn run(args: &PolicyArgs) -> Result<()> {
    let c = cluster(&args.prefix, &args.state_root)?;
    match &args.command {
        PolicyCommand::Apply { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let ch = apply_text(&c, &args.prefix, &text, &file.display().to_string())?;
            println!("{}", summary("applied", &ch));
        }
        PolicyCommand::Delete { name } => {
            let mut repo = enforce::load_repository(&c)?;
            let ch = repo.delete(name)?;
            PinnedPolicyMaps::open(&args.prefix)?
                .sync(repo.resolved())
                .context("updating the datapath")?;
            enforce::save_repository(&c, &repo)?;
            println!("{}", summary("deleted", &ch));
        }
        PolicyCommand::Get { endpoint, json } => {
            let repo = enforce::load_repository(&c)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&repo.render_json(*endpoint))?
                );
            } else {
                print!("{}", repo.render_text(*endpoint));
            }
        }
    }
    Ok(())
}
