//! The pseudo-terminal the simulated modem serves: master side in this process,
//! slave side opened by the driver under test through a stable symlink.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::pty::{PtyMaster, grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;

use crate::Error;

/// One PTY pair. The slave fd is kept open here so the driver may close and
/// reopen its end (like a USB device node) without the master seeing a hang-up.
pub(crate) struct Pty {
    master: AsyncFd<PtyMaster>,
    _slave: File,
    slave_path: PathBuf,
}

impl Pty {
    /// Opens a new PTY in raw mode with echo off on the line discipline.
    pub(crate) fn open() -> Result<Pty, Error> {
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        let master = posix_openpt(flags).map_err(|e| Error::Pty(format!("posix_openpt: {e}")))?;
        grantpt(&master).map_err(|e| Error::Pty(format!("grantpt: {e}")))?;
        unlockpt(&master).map_err(|e| Error::Pty(format!("unlockpt: {e}")))?;
        let name = ptsname_r(&master).map_err(|e| Error::Pty(format!("ptsname_r: {e}")))?;
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(&name)
            .map_err(|e| Error::Pty(format!("open slave {name}: {e}")))?;
        let mut tio =
            tcgetattr(&slave).map_err(|e| Error::Pty(format!("tcgetattr {name}: {e}")))?;
        cfmakeraw(&mut tio);
        tcsetattr(&slave, SetArg::TCSANOW, &tio)
            .map_err(|e| Error::Pty(format!("tcsetattr {name}: {e}")))?;
        // `AsyncFd::new` is deprecated because a `T: AsRawFd` might not own its
        // fd; `PtyMaster` wraps an `OwnedFd`, so the fd stays valid and the same
        // for the AsyncFd's whole life (the safe path, as `unsafe` is denied here).
        #[allow(deprecated)]
        let master =
            AsyncFd::new(master).map_err(|e| Error::Pty(format!("register master: {e}")))?;
        Ok(Pty {
            master,
            _slave: slave,
            slave_path: PathBuf::from(name),
        })
    }

    /// The slave device, e.g. `/dev/pts/7`.
    pub(crate) fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Reads what the driver wrote.
    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|inner| inner.get_ref().read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes what fits now without waiting; returns the bytes written
    /// (0 when the line is full because nobody reads the slave side).
    pub(crate) fn try_write(&self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        match self.master.get_ref().write(data) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes everything, waiting at most `patience` for the driver to drain
    /// the line; returns false if the bytes had to be dropped because nobody
    /// reads the slave side (a real UART drops them too).
    pub(crate) async fn write_all(&self, mut data: &[u8], patience: Duration) -> io::Result<bool> {
        let deadline = tokio::time::Instant::now() + patience;
        while !data.is_empty() {
            let ready = tokio::time::timeout_at(deadline, self.master.writable()).await;
            let mut guard = match ready {
                Ok(g) => g?,
                Err(_elapsed) => return Ok(false),
            };
            match guard.try_io(|inner| inner.get_ref().write(data)) {
                Ok(Ok(n)) => data = data.get(n..).unwrap_or_default(),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(true)
    }
}
