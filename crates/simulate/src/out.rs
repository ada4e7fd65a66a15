//! `--out DIR`: the events as files instead of requests.
//!
//! Useful to look at what a cash server sends, to feed other tools, and as
//! fixtures. One folder per cash server (`<RestCode>_<server name>`), one
//! file per event named by its place in the stream and its Situation
//! (`000001_s1.xml`), so `ls` shows them in sending order.

use std::path::Path;

use super::ServerStream;

/// Writes every event of `streams` under `dir` (created if missing) and
/// returns how many files were written.
pub fn write_out(streams: &[ServerStream], dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut files = 0;
    for s in streams {
        let sub = dir.join(format!("{}_{}", s.rest_code, s.server_name));
        std::fs::create_dir_all(&sub)?;
        for (i, e) in s.events.iter().enumerate() {
            let name = format!("{:06}_s{}.xml", i + 1, e.event.situation.code());
            std::fs::write(sub.join(name), &e.xml)?;
            files += 1;
        }
    }
    Ok(files)
}
