// Package supervise runs the command of tnl-do while its lock is held: it
// starts the command, passes every signal on to it exactly once, lends it the
// terminal, stops it when the lock is lost, and makes sure it never outlives
// tnl-do.
//
// # Why a process group of its own, and tcsetpgrp
//
// A signal can reach the command in two ways: sent to tnl-do (kill PID, a
// supervisor, a CI runner) and passed on by tnl-do, or sent by someone to a
// whole process group (kill -INT -PGID, a terminal's Ctrl-C, Ctrl-Z, a window
// resize). If the command shared tnl-do's process group, a group signal would
// reach it twice: once from the kernel, once from tnl-do. A Go program cannot
// tell the two apart (there is no siginfo), so instead the command gets a
// process group of its own (setpgid) and only ever hears group signals meant
// for its group:
//
//   - a signal to tnl-do, or to tnl-do's group, reaches tnl-do alone; tnl-do
//     passes it to the command, once (to the command process, as kill would;
//     only the --on-lost actions signal its whole group);
//   - when tnl-do owns the terminal's foreground (an interactive shell ran it
//     in the foreground), the command's group is made the terminal's
//     foreground group (tcsetpgrp, done in the child between fork and exec so
//     that it cannot race the command's first read). Ctrl-C, Ctrl-\, Ctrl-Z and
//     SIGWINCH then go from the terminal to the command's group directly, and
//     not to tnl-do, which therefore forwards nothing twice; and a command that
//     reads the terminal is in the foreground, so it is not stopped by
//     SIGTTIN. tnl-do takes the terminal back when the command stops or exits.
//
// The price: Ctrl-C at a terminal reaches the command and not the shell
// script that ran tnl-do, which sees tnl-do exit 130 rather than die of
// SIGINT, and so goes on unless it checks the status (set -e does).
//
// Ctrl-Z works like with any job: when the command's group stops while it has
// the terminal, tnl-do takes the terminal back and stops its own group, so the
// shell says "Stopped"; "fg" continues tnl-do, which gives the terminal back
// to the command's group and continues it; "bg" continues it without the
// terminal. When nobody could continue tnl-do (it is not a job of a shell with
// job control, e.g. the session leader of an ssh session), a stop of the
// command is undone at once instead of leaving everything stopped for good.
//
// Signals ignored when tnl-do started (nohup's SIGHUP, the SIGINT and SIGQUIT
// that a shell without job control ignores for background commands) stay
// ignored by tnl-do and by the command, as they would without tnl-do.
//
// # Why Pdeathsig on a locked thread
//
// If tnl-do is killed with SIGKILL it cannot pass anything on, and the
// command would run on without the lock. The kernel can kill it instead
// (PR_SET_PDEATHSIG), but the signal fires when the *thread* that forked the
// child exits, not the process (golang/go#27505), and the Go runtime may end a
// thread whose goroutine locked it and returned. So the goroutine that starts
// the child locks itself to its OS thread before forking and stays locked
// until the child is reaped: that thread ends only with the process.
//
// # What it does not do
//
// It knows nothing about locks or the network: a closed channel tells it that
// the lock is lost. It does not restart commands, and it does not chase
// processes that left the command's process group (daemons that setsid); only
// the command itself is killed by the kernel when tnl-do dies, its own
// children are signalled through its process group by the --on-lost actions.
package supervise
