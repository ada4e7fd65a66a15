//! Fuzzes the notify reader: whatever the bytes, `rk7::read` must not panic,
//! and every event it accepts must survive the writer unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = rk7::read(data) {
        let written = rk7::write(&event);
        let again = match rk7::read(&written) {
            Ok(e) => e,
            Err(e) => panic!(
                "the writer produced unreadable XML: {e}\n{}",
                String::from_utf8_lossy(&written)
            ),
        };
        assert_eq!(again, event, "read(write(e)) != e");
        // The writer is a function of the model: writing again is identical.
        assert_eq!(rk7::write(&again), written);
    }
});
