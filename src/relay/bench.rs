//! `tillgate relay bench`: end-to-end relay throughput and added latency.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
pub async fn run(_a: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
