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
// # Why a watchdog, and why it leads the command's process group
//
// Pdeathsig reaches the command alone: what it started (a shell's
// children, a build's compilers) would run on, reparented to init, without
// the lock. Nothing in the kernel kills a process group when a process dies,
// so a second process does it (StartWatchdog): tnl-do itself, run again with
// one argument, which holds one end of a socket pair whose other end only
// tnl-do has. When tnl-do ends in any way, its end closes; if tnl-do did not
// say goodbye first (Close), the watchdog sends SIGKILL to its own process
// group and dies with it. Being another process, it survives a SIGKILL of
// tnl-do, and being in another process group than tnl-do's, a kill -9 of
// tnl-do's whole group.
//
// Its process group is the command's: the watchdog is forked first, as the
// leader of a new group, and the command joins that group as it is forked
// (Config.Watchdog). So the command can never run outside the watchdog's
// care, and the group's id can never name another group: a process group id
// is the pid of a process, and the kernel does not give that pid to a new
// process while any process is still in the group, which the watchdog is
// until its last act (or, dead, as a zombie that tnl-do never reaps). A
// kill(0, SIGKILL) from the watchdog therefore reaches exactly the command's
// group, even after the command itself has exited: the leader exiting
// first does not matter, and no pid can be reused under it.
//
// The watchdog costs tnl-do almost nothing: it is forked while tnl-do talks
// to the server, at the lowest scheduling priority (SCHED_IDLE, so that
// starting a second Go program uses only processors nobody else needs), and
// the command waits only for the fork. It then holds a copy of tnl-do's
// connection to the server (Keep), so that after a kill -9 of tnl-do the
// server sees the connection close, and gives the lock to someone else, only
// once the command's group has been sent SIGKILL, however late the watchdog
// gets a processor.
//
// Being in the command's group, the watchdog hears what is sent to the
// group: the terminal's Ctrl-C and Ctrl-Z, --on-lost's SIGTERM. It starts
// with all of those blocked (the mask survives fork and exec) and ignores
// them as soon as it runs. Go unblocks HUP, INT, QUIT, ABRT and TERM while it
// starts, so one of those in that first millisecond ends it; tnl-do notices
// (its end of the socket closes) and starts another in the same group. The
// kill of the group by --on-lost and the end of the command retire it: it
// dies with the group, or stands down.
//
// # What it does not do
//
// It knows nothing about locks or the network: a closed channel tells it that
// the lock is lost, and a deadline when SIGKILL is due at the latest. It does
// not restart commands, and it does not chase processes that left the
// command's process group: a descendant that calls setsid(2) or setpgid(2)
// (a daemon, an interactive shell's jobs) escapes both the --on-lost actions
// and the watchdog. When the command exits normally, what it left in its
// group is left alone, as without tnl-do.
package supervise
