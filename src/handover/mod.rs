//! Binary upgrade without a refused connection: the running process starts
//! the new binary and hands it its listening sockets, as nginx's USR2 and
//! HAProxy's seamless reload do.
//!
//! The parts, in order:
//! - `sockets`: every listening socket the process serves, by its
//!   configured address, and, in a new process, the sockets it inherited,
//!   taken by the listeners that bind those addresses;
//! - `start`: the old process's side: the new binary started with the
//!   sockets and a pipe, and its word that it serves (or its failure);
//! - `notify`: systemd's `sd_notify` (`READY=1`, and `MAINPID=` when a new
//!   process takes over), so that `Type=notify` units follow the upgrade.
//!
//! Both processes accept on the same sockets while the new one starts, so
//! a connection attempt is never refused: until the old process stops
//! accepting, the kernel gives each connection to one of them.

pub(crate) mod notify;
pub mod sockets;
pub mod start;
