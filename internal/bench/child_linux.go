package bench

import "syscall"

// childAttr makes a process the bench starts die with the bench, even
// when the bench is killed before it can stop it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
