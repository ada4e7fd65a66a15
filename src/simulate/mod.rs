//! The cash-server emulator (placeholder until the real one lands).
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {}
pub async fn run_cli(_args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
