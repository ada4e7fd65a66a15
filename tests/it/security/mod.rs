//! Issue 25: every finding of the attack on tillgate, reproduced against
//! the real server. Each test fails on the build the attack succeeded on.

mod edges;
mod network;
mod signin;
mod sms_pumping;
