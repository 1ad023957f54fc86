//! Printing results on stdout: when the reader has gone (`t2 list | head -1`, a closed
//! terminal) the command ends quietly, as a program killed by SIGPIPE would, never in a panic.

/// Ends the process when a write to stdout failed: exit 0 for a closed pipe (the reader had
/// what it wanted), 1 for any other error.
pub fn or_exit(written: std::io::Result<()>) {
    if let Err(e) = written {
        std::process::exit(if e.kind() == std::io::ErrorKind::BrokenPipe {
            0
        } else {
            1
        });
    }
}

/// `println!` that ends the command quietly when stdout is closed (see [`or_exit`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::stdout::or_exit(writeln!(std::io::stdout().lock(), $($arg)*))
    }};
}

/// `print!` that ends the command quietly when stdout is closed (see [`or_exit`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        $crate::stdout::or_exit(write!(stdout, $($arg)*).and_then(|_| stdout.flush()))
    }};
}

pub(crate) use {out, outln};
