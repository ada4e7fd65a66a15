//! Load benchmark (placeholder).
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
pub async fn run_cli(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
